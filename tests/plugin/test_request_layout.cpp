// The plugin reads a host's structs only as far as their struct_size declares, steps
// through image arrays by the declared element size, refuses a struct_size that ends
// inside a field, refuses non-finite sampling values and bounds picture files by the
// daemon's max_image_bytes. Each case runs against the in-test fake server, so a
// request the plugin wrongly lets through shows up as a generate the server received.
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../ipc/ipc_test_util.h"
#include "fakes/fake_server.h"
#include "omni_plugin.h"

namespace {

const omni_plugin_api* api() {
  static const omni_plugin_api* table = [] {
    void* h = ::dlopen(OMNI_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    REQUIRE(h != nullptr);
    auto entry = reinterpret_cast<omni_plugin_entry_fn>(::dlsym(h, "omni_plugin_entry"));
    REQUIRE(entry != nullptr);
    return entry(OMNI_PLUGIN_ABI_VERSION);
  }();
  return table;
}

// One plugin client on a fake daemon in a temporary directory.
struct Session {
  omni_test::TempDir dir;
  std::string socket = dir.path + "/omnid.sock";
  omni_test::FakeServer server;
  omni_plugin_client* client = nullptr;

  explicit Session(omni_test::FakeServer::Options o = {}) : server(socket, std::move(o)) {
    REQUIRE(api()->client_create(socket.c_str(), "layout-test", &client) == OMNI_PLUGIN_OK);
  }
  ~Session() { api()->client_destroy(client); }

  // generate() with a request of any layout; the FINAL's status must equal the return.
  int32_t generate(const void* request) {
    struct Final {
      int finals = 0;
      int32_t status = 1;
    } f;
    auto cb = [](void* user, const omni_plugin_event* ev) {
      auto* x = static_cast<Final*>(user);
      if (ev->kind == OMNI_PLUGIN_EVENT_FINAL) {
        ++x->finals;
        x->status = ev->status;
      }
    };
    const int32_t rc = api()->generate(client, static_cast<const omni_plugin_request*>(request), cb, &f);
    CHECK(f.finals == 1);
    CHECK(f.status == rc);
    return rc;
  }
  std::string error() const { return api()->last_error(); }
};

omni_plugin_request request(const char* prompt) {
  omni_plugin_request r;
  api()->request_init(&r);
  r.prompt = prompt;
  return r;
}

// `n` bytes that end where an inaccessible page begins: reading one byte more than the
// host declared faults instead of passing unnoticed.
class GuardedTail {
 public:
  GuardedTail() {
    page_ = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    base_ = ::mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(base_ != MAP_FAILED);
    REQUIRE(::mprotect(static_cast<char*>(base_) + page_, page_, PROT_NONE) == 0);
  }
  ~GuardedTail() { ::munmap(base_, 2 * page_); }
  template <typename T>
  T* place(const T* items, std::size_t bytes) {
    REQUIRE(bytes <= page_);
    REQUIRE(bytes % alignof(T) == 0);
    char* at = static_cast<char*>(base_) + page_ - bytes;
    std::memcpy(at, items, bytes);
    return reinterpret_cast<T*>(at);
  }

 private:
  std::size_t page_ = 0;
  void* base_ = nullptr;
};

// omni_plugin_image as an older header had it: no path, width or height.
struct OldImage {
  uint32_t struct_size;
  uint32_t format;
  const void* data;
  size_t size;
};
static_assert(sizeof(OldImage) == offsetof(omni_plugin_image, path), "an older layout is a prefix of ours");

// A newer header's structs: ours plus fields this plugin does not know.
struct NewerImage {
  omni_plugin_image known;
  uint64_t future[2];
};
struct NewerRequest {
  omni_plugin_request known;
  uint64_t future[4];
};

}  // namespace

TEST_CASE("plugin request: struct_size 12 (half of the prompt pointer) is invalid_arg and no crash") {
  Session s;
  omni_plugin_request r = request("What is this?");
  r.struct_size = 12;
  REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_INVALID_ARG);
  REQUIRE(s.error() == "request.struct_size 12 ends inside request.prompt (bytes 8..16)");
  REQUIRE(s.server.generates == 0);
}

TEST_CASE("plugin request: a struct_size ending inside any field is refused by name") {
  Session s;
  struct Cut {
    uint32_t size;
    const char* field;
  };
  const Cut cuts[] = {
      {offsetof(omni_plugin_request, temperature) + 2, "request.temperature"},
      {offsetof(omni_plugin_request, seed) + 4, "request.seed"},
      {offsetof(omni_plugin_request, stop) + 4, "request.stop"},
      {offsetof(omni_plugin_request, request_id) + 4, "request.request_id"},
  };
  for (const Cut& c : cuts) {
    INFO("struct_size " << c.size);
    omni_plugin_request r = request("q");
    r.struct_size = c.size;
    REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_INVALID_ARG);
    REQUIRE(s.error().find(std::string("ends inside ") + c.field + " ") != std::string::npos);
  }
  for (const uint32_t tiny : {0u, 4u, 7u}) {
    INFO("struct_size " << tiny);
    omni_plugin_request r = request("q");
    r.struct_size = tiny;
    REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_INVALID_ARG);
    REQUIRE(s.error().find("request.struct_size " + std::to_string(tiny) + " is below") != std::string::npos);
  }
  {
    std::vector<uint8_t> png(100, 1);
    omni_plugin_image im;
    api()->image_init(&im);
    im.data = png.data();
    im.size = png.size();
    im.struct_size = offsetof(omni_plugin_image, path) + 4;
    omni_plugin_request r = request("q");
    r.images = &im;
    r.n_images = 1;
    REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_INVALID_ARG);
    REQUIRE(s.error() == "request.images[0].struct_size 28 ends inside request.images[0].path (bytes 24..32)");
  }
  REQUIRE(s.server.generates == 0);
}

TEST_CASE("plugin request: an older host's image array is read element by element at its own stride") {
  Session s;
  std::vector<uint8_t> a(10, 0xa1), b(20, 0xb2), c(30, 0xc3);
  const OldImage old[3] = {
      {sizeof(OldImage), OMNI_PLUGIN_IMAGE_ENCODED, a.data(), a.size()},
      {sizeof(OldImage), OMNI_PLUGIN_IMAGE_ENCODED, b.data(), b.size()},
      {sizeof(OldImage), OMNI_PLUGIN_IMAGE_ENCODED, c.data(), c.size()},
  };
  GuardedTail guard;  // the array ends at an inaccessible page: no reading past old[2]
  const OldImage* images = guard.place(old, sizeof(old));
  omni_plugin_request r = request("three pictures");
  r.images = reinterpret_cast<const omni_plugin_image*>(images);
  r.n_images = 3;
  REQUIRE(s.generate(&r) == OMNI_PLUGIN_OK);
  std::lock_guard lk(s.server.mu);
  REQUIRE(s.server.image_bytes == std::vector<uint64_t>{10, 20, 30});
  REQUIRE(s.server.first_image_byte == std::vector<uint8_t>{0xa1, 0xb2, 0xc3});
}

TEST_CASE("plugin request: elements of one image array declaring different sizes are refused") {
  Session s;
  std::vector<uint8_t> a(10, 1);
  NewerImage mixed[2];
  for (auto& m : mixed) {
    api()->image_init(&m.known);
    m.known.data = a.data();
    m.known.size = a.size();
    m.known.struct_size = sizeof(NewerImage);
  }
  mixed[1].known.struct_size = sizeof(omni_plugin_image);
  omni_plugin_request r = request("q");
  r.images = &mixed[0].known;
  r.n_images = 2;
  REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_INVALID_ARG);
  REQUIRE(s.error().find("request.images[1].struct_size 40 differs from request.images[0]'s 56") != std::string::npos);
  REQUIRE(s.server.generates == 0);
}

TEST_CASE("plugin request: an older request takes the model's defaults for the fields it lacks") {
  Session s;
  omni_plugin_request full = request("old host");
  std::memset(&full.temperature, 0, sizeof(omni_plugin_request) - offsetof(omni_plugin_request, temperature));
  full.struct_size = offsetof(omni_plugin_request, temperature);  // ends after n_images
  GuardedTail guard;
  const omni_plugin_request* r = guard.place(&full, offsetof(omni_plugin_request, temperature));
  REQUIRE(s.generate(r) == OMNI_PLUGIN_OK);
  std::lock_guard lk(s.server.mu);
  REQUIRE(s.server.prompts.back() == "old host");
  const omni::ipc::Sampling& sp = s.server.samplings.back();
  REQUIRE_FALSE(sp.temperature.has_value());  // not 0 (greedy): absent means the model's default
  REQUIRE_FALSE(sp.top_p.has_value());
  REQUIRE_FALSE(sp.repetition_penalty.has_value());
  REQUIRE_FALSE(sp.top_k.has_value());
  REQUIRE_FALSE(sp.greedy);
}

TEST_CASE("plugin request: a newer host's larger structs are accepted and only the known fields read") {
  Session s;
  std::vector<uint8_t> a(11, 0x11), b(22, 0x22);
  NewerImage imgs[2];
  for (auto& m : imgs) {
    std::memset(&m, 0xff, sizeof(m));  // the unknown fields hold junk this plugin must ignore
    api()->image_init(&m.known);
    m.known.struct_size = sizeof(NewerImage);
  }
  imgs[0].known.data = a.data();
  imgs[0].known.size = a.size();
  imgs[1].known.data = b.data();
  imgs[1].known.size = b.size();
  NewerRequest newer;
  std::memset(&newer, 0xff, sizeof(newer));
  newer.known = request("newer host");
  newer.known.struct_size = sizeof(NewerRequest);
  newer.known.images = &imgs[0].known;
  newer.known.n_images = 2;
  newer.known.temperature = 0.5f;
  REQUIRE(s.generate(&newer) == OMNI_PLUGIN_OK);
  {
    std::lock_guard lk(s.server.mu);
    REQUIRE(s.server.image_bytes == std::vector<uint64_t>{11, 22});
    REQUIRE(s.server.first_image_byte == std::vector<uint8_t>{0x11, 0x22});
    REQUIRE(s.server.samplings.back().temperature == 0.5);
  }
  // Declaring more than the plugin knows makes it read no further than its own sizeof:
  // here the struct is followed by an inaccessible page.
  omni_plugin_request known = request("newer host, tail unmapped");
  known.struct_size = sizeof(NewerRequest);
  GuardedTail guard;
  REQUIRE(s.generate(guard.place(&known, sizeof(known))) == OMNI_PLUGIN_OK);
}

TEST_CASE("plugin request: NaN and infinite sampling values are invalid_arg naming the field") {
  Session s;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Bad {
    float omni_plugin_request::*field;
    float value;
    const char* name;
  };
  const Bad bad[] = {
      {&omni_plugin_request::temperature, nan, "request.temperature"},
      {&omni_plugin_request::temperature, inf, "request.temperature"},
      {&omni_plugin_request::top_p, nan, "request.top_p"},
      {&omni_plugin_request::top_p, -inf, "request.top_p"},
      {&omni_plugin_request::repetition_penalty, nan, "request.repetition_penalty"},
  };
  for (const Bad& b : bad) {
    INFO(b.name << " = " << b.value);
    omni_plugin_request r = request("q");
    r.*b.field = b.value;
    REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_INVALID_ARG);
    REQUIRE(s.error().rfind(std::string(b.name) + " is ", 0) == 0);
    REQUIRE(s.error().find("must be finite") != std::string::npos);
  }
  REQUIRE(s.server.generates == 0);
  omni_plugin_request r = request("q");
  r.temperature = -0.5f;  // a finite negative still means the model's default
  REQUIRE(s.generate(&r) == OMNI_PLUGIN_OK);
  std::lock_guard lk(s.server.mu);
  REQUIRE_FALSE(s.server.samplings.back().temperature.has_value());
}

TEST_CASE("plugin request: a path image is bounded by the daemon's max_image_bytes before it is read") {
  omni_test::FakeServer::Options o;
  o.max_image_bytes = 1000;  // the daemon's figure, learnt from hello_ok
  Session s(o);
  auto write_file = [&](const std::string& name, std::size_t n) {
    const std::string path = s.dir.path + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    const std::vector<uint8_t> bytes(n, 0x89);
    REQUIRE(std::fwrite(bytes.data(), 1, n, f) == n);
    std::fclose(f);
    return path;
  };
  omni_plugin_image im;
  api()->image_init(&im);
  omni_plugin_request r = request("q");
  r.images = &im;
  r.n_images = 1;

  const std::string over = write_file("over.png", 1001);
  im.path = over.c_str();
  REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_TOO_LARGE);
  REQUIRE(s.error().find(over) != std::string::npos);
  REQUIRE(s.error().find("max_image_bytes 1000") != std::string::npos);
  REQUIRE(s.server.generates == 0);  // refused here, not by the daemon

  const std::string fifo = s.dir.path + "/fifo.png";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  im.path = fifo.c_str();
  REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_BAD_IMAGE);  // at once: opening it does not wait for a writer
  REQUIRE(s.error() == "image file " + fifo + " is not a regular file");

  const std::string fits = write_file("fits.png", 1000);
  im.path = fits.c_str();
  REQUIRE(s.generate(&r) == OMNI_PLUGIN_OK);
  std::lock_guard lk(s.server.mu);
  REQUIRE(s.server.image_bytes.back() == 1000);
}

TEST_CASE("plugin request: a garbage image struct_size or count is refused before any element is walked") {
  Session s;
  std::vector<uint8_t> a(10, 1);
  omni_plugin_image im;
  api()->image_init(&im);
  im.data = a.data();
  im.size = a.size();
  im.struct_size = 0xFFFFFFF0u;   // a 4 GiB stride: the second element would be far away
  omni_plugin_request r = request("q");
  r.images = &im;
  r.n_images = 2;
  REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_INVALID_ARG);
  REQUIRE(s.error().find("request.images[0].struct_size 4294967280 is over 4096 bytes") != std::string::npos);
  im.struct_size = sizeof(omni_plugin_image);
  r.n_images = size_t(1) << 40;
  REQUIRE(s.generate(&r) == OMNI_PLUGIN_E_INVALID_ARG);
  REQUIRE(s.error().find("request.n_images 1099511627776 is over 1024") != std::string::npos);
  REQUIRE(s.server.generates == 0);
}
