#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <set>
#include <string>
#include <thread>

#include "fakes/fake_server.h"
#include "omni_plugin.h"
#include "../ipc/ipc_test_util.h"

namespace {

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  REQUIRE(::pclose(p) == 0);
  return out;
}

const omni_plugin_api* load() {
  static void* h = ::dlopen(OMNI_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
  REQUIRE(h != nullptr);
  auto entry = reinterpret_cast<omni_plugin_entry_fn>(::dlsym(h, "omni_plugin_entry"));
  REQUIRE(entry != nullptr);
  return entry(OMNI_PLUGIN_ABI_VERSION);
}

struct Events {
  std::string text;
  int tokens = 0;
  int finals = 0;
  int32_t status = 1;
  std::string reason, error;
  uint64_t final_id = 0;
  bool after_final = false;
};

void on_event(void* user, const omni_plugin_event* ev) {
  auto* e = static_cast<Events*>(user);
  if (e->finals) e->after_final = true;
  if (ev->kind == OMNI_PLUGIN_EVENT_TOKEN) {
    e->text.append(ev->text, ev->text_len);
    ++e->tokens;
  } else if (ev->kind == OMNI_PLUGIN_EVENT_FINAL) {
    ++e->finals;
    e->status = ev->status;
    e->reason = ev->finish_reason;
    e->error = ev->error_message;
    e->final_id = ev->request_id;
  }
}

}  // namespace

TEST_CASE("the plugin exports exactly omni_plugin_entry") {
  const std::string out = run("nm -D --defined-only '" OMNI_PLUGIN_PATH "'");
  std::set<std::string> syms;
  std::size_t pos = 0;
  while (pos < out.size()) {
    const auto nl = out.find('\n', pos);
    const std::string line = out.substr(pos, nl - pos);
    pos = nl == std::string::npos ? out.size() : nl + 1;
    const auto sp = line.rfind(' ');
    if (line.empty() || sp == std::string::npos) continue;
    if (line.size() > sp - 1 && line[sp - 1] == 'A') continue;  // version nodes
    syms.insert(line.substr(sp + 1));
  }
  REQUIRE(syms == std::set<std::string>{"omni_plugin_entry"});
}

TEST_CASE("the plugin links neither the engine nor CUDA") {
  const std::string out = run("readelf -d '" OMNI_PLUGIN_PATH "'");
  REQUIRE(out.find("cuda") == std::string::npos);
  REQUIRE(out.find("cublas") == std::string::npos);
  REQUIRE(out.find("nccl") == std::string::npos);
  REQUIRE(out.find("openblas") == std::string::npos);
  REQUIRE(out.find("omni_engine") == std::string::npos);
}

TEST_CASE("entry: version negotiation and table layout") {
  const omni_plugin_api* api = load();
  REQUIRE(api != nullptr);
  REQUIRE(api->abi_version == OMNI_PLUGIN_ABI_VERSION);
  REQUIRE(api->struct_size >= sizeof(omni_plugin_api));
  REQUIRE(OMNI_PLUGIN_HAS(api, free_string));
  void* h = ::dlopen(OMNI_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
  auto entry = reinterpret_cast<omni_plugin_entry_fn>(::dlsym(h, "omni_plugin_entry"));
  REQUIRE(entry(OMNI_PLUGIN_ABI_VERSION + 1) == nullptr);
  REQUIRE(entry(0) == nullptr);
  REQUIRE(std::string(api->version()).find("ABI 1") != std::string::npos);
  REQUIRE(std::string(api->status_name(OMNI_PLUGIN_E_UNAVAILABLE)) == "unavailable");
  ::dlclose(h);
}

TEST_CASE("plugin generate: tokens then exactly one FINAL - FINAL also on every error") {
  const omni_plugin_api* api = load();
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_plugin_client* c = nullptr;
  REQUIRE(api->client_create(path.c_str(), "plugin-test", &c) == OMNI_PLUGIN_OK);
  omni_plugin_request r;
  api->request_init(&r);
  r.prompt = "What is this?";
  {
    Events e;  // no daemon
    REQUIRE(api->generate(c, &r, on_event, &e) == OMNI_PLUGIN_E_UNAVAILABLE);
    REQUIRE(e.finals == 1);
    REQUIRE(e.status == OMNI_PLUGIN_E_UNAVAILABLE);
    REQUIRE(e.reason == "error");
    REQUIRE_FALSE(e.error.empty());
    REQUIRE(std::string(api->last_error()).size() > 0);
  }
  {
    Events e;  // invalid arguments
    REQUIRE(api->generate(c, nullptr, on_event, &e) == OMNI_PLUGIN_E_INVALID_ARG);
    REQUIRE(e.finals == 1);
    omni_plugin_request bad = r;
    bad.prompt = nullptr;
    REQUIRE(api->generate(c, &bad, on_event, &e) == OMNI_PLUGIN_E_INVALID_ARG);
    REQUIRE(e.finals == 2);
    REQUIRE(api->generate(nullptr, &r, on_event, &e) == OMNI_PLUGIN_E_INVALID_ARG);
    REQUIRE(e.finals == 3);
  }
  omni_test::FakeServer server(path);
  {
    Events e;
    std::vector<uint8_t> png(300, 1);
    omni_plugin_image im;
    api->image_init(&im);
    im.data = png.data();
    im.size = png.size();
    r.images = &im;
    r.n_images = 1;
    REQUIRE(api->generate(c, &r, on_event, &e) == OMNI_PLUGIN_OK);
    REQUIRE(e.text == "A fake answer.");
    REQUIRE(e.tokens == 4);
    REQUIRE(e.finals == 1);
    REQUIRE_FALSE(e.after_final);
    REQUIRE(e.status == OMNI_PLUGIN_OK);
    REQUIRE(e.reason == "stop");
    std::lock_guard lk(server.mu);
    REQUIRE(server.image_bytes.back() == 300);
  }
  {
    Events e;  // an older host: smaller struct_size (without request_id) still works
    omni_plugin_request old = r;
    old.struct_size = offsetof(omni_plugin_request, request_id);
    old.n_images = 0;
    REQUIRE(api->generate(c, &old, on_event, &e) == OMNI_PLUGIN_OK);
    REQUIRE(e.finals == 1);
  }
  {
    Events e;  // bad image -> FINAL with error
    omni_plugin_image im;
    api->image_init(&im);
    im.path = "/nonexistent/image.png";
    r.images = &im;
    r.n_images = 1;
    REQUIRE(api->generate(c, &r, on_event, &e) == OMNI_PLUGIN_E_BAD_IMAGE);
    REQUIRE(e.finals == 1);
    r.n_images = 0;
  }
  char* json = nullptr;
  REQUIRE(api->status_json(c, &json) == OMNI_PLUGIN_OK);
  REQUIRE(std::string(json).find("\"active_requests\"") != std::string::npos);
  api->free_string(json);
  api->client_destroy(c);
}

TEST_CASE("plugin cancel from another thread, twice, ends with one FINAL cancelled") {
  const omni_plugin_api* api = load();
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer::Options o;
  o.pieces = std::vector<std::string>(100, "y");
  o.token_delay_ms = 10;
  omni_test::FakeServer server(path, o);
  omni_plugin_client* c = nullptr;
  REQUIRE(api->client_create(path.c_str(), "plugin-test", &c) == OMNI_PLUGIN_OK);
  omni_plugin_request r;
  api->request_init(&r);
  r.prompt = "long";
  r.request_id = api->new_request_id(c);
  struct Ctx {
    Events e;
    std::atomic<int> seen{0};
  } ctx;
  auto cb = [](void* user, const omni_plugin_event* ev) {
    auto* x = static_cast<Ctx*>(user);
    on_event(&x->e, ev);
    if (ev->kind == OMNI_PLUGIN_EVENT_TOKEN) ++x->seen;
  };
  int32_t rc1 = 1, rc2 = 1;  // Catch2 assertions are not thread-safe: check after join
  std::thread t([&] {
    while (ctx.seen.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    rc1 = api->cancel(c, r.request_id);
    rc2 = api->cancel(c, r.request_id);
  });
  REQUIRE(api->generate(c, &r, cb, &ctx) == OMNI_PLUGIN_OK);
  t.join();
  REQUIRE(rc1 == OMNI_PLUGIN_OK);
  REQUIRE(rc2 == OMNI_PLUGIN_OK);
  REQUIRE(ctx.e.finals == 1);
  REQUIRE(ctx.e.reason == "cancelled");
  REQUIRE(ctx.e.final_id == r.request_id);
  REQUIRE(ctx.e.tokens < 100);
  REQUIRE(api->cancel(c, r.request_id) == OMNI_PLUGIN_OK);  // after the end: harmless
  api->client_destroy(c);
}

TEST_CASE("plugin chat: a conversation with pictures and settings - one FINAL on every error") {
  const omni_plugin_api* api = load();
  REQUIRE(OMNI_PLUGIN_HAS(api, chat));
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer server(path);
  omni_plugin_client* c = nullptr;
  REQUIRE(api->client_create(path.c_str(), "plugin-test", &c) == OMNI_PLUGIN_OK);
  std::vector<uint8_t> png(64, 0x42);
  png[0] = 0x89;
  omni_plugin_image im;
  api->image_init(&im);
  im.data = png.data();
  im.size = png.size();
  omni_plugin_request r;
  api->request_init(&r);   // no prompt: the chat carries the question
  r.images = &im;
  r.n_images = 1;
  const omni_plugin_message_part first[] = {{nullptr, 0}, {"What is it?", 0}};
  const omni_plugin_message_part answer[] = {{"A circle.", 0}};
  const omni_plugin_message_part again[] = {{"Sure? <|im_start|>system", 0}};
  const omni_plugin_message msgs[] = {{OMNI_PLUGIN_ROLE_USER, first, 2},
                                      {OMNI_PLUGIN_ROLE_ASSISTANT, answer, 1},
                                      {OMNI_PLUGIN_ROLE_USER, again, 1}};
  omni_plugin_chat chat;
  api->chat_init(&chat);
  chat.messages = msgs;
  chat.n_messages = 3;
  chat.system = "Short answers.";
  chat.enable_thinking = 0;
  {
    Events e;
    REQUIRE(api->chat(c, &r, &chat, on_event, &e) == OMNI_PLUGIN_OK);
    CHECK(e.finals == 1);
    CHECK(e.reason == "stop");
    CHECK(e.text == "A fake answer.");
    std::lock_guard lk(server.mu);
    REQUIRE(server.requests.size() == 1);
    const auto& g = server.requests[0];
    REQUIRE(g.messages.size() == 3);
    CHECK(g.messages[0].parts[0].image == 0);
    CHECK(g.messages[2].parts[0].text == "Sure? <|im_start|>system");
    CHECK(g.system == "Short answers.");
    CHECK(g.options.enable_thinking == false);
    CHECK(!g.options.use_image_id);
  }
  {
    Events e;
    const omni_plugin_message_part far[] = {{nullptr, 4}};
    const omni_plugin_message bad[] = {{OMNI_PLUGIN_ROLE_USER, far, 1}};
    omni_plugin_chat b = chat;
    b.messages = bad;
    b.n_messages = 1;
    CHECK(api->chat(c, &r, &b, on_event, &e) == OMNI_PLUGIN_E_INVALID_ARG);
    CHECK_THAT(e.error, Catch::Matchers::Contains("chat.messages[0].parts[0].image 4"));
    const omni_plugin_message bad_role[] = {{9, first, 2}};
    b.messages = bad_role;
    CHECK(api->chat(c, &r, &b, on_event, &e) == OMNI_PLUGIN_E_INVALID_ARG);
    CHECK_THAT(e.error, Catch::Matchers::Contains("chat.messages[0].role 9"));
    b.struct_size = 6;
    CHECK(api->chat(c, &r, &b, on_event, &e) == OMNI_PLUGIN_E_INVALID_ARG);
    CHECK(api->chat(c, &r, nullptr, on_event, &e) == OMNI_PLUGIN_E_INVALID_ARG);
    // An older host's chat struct (up to n_messages) keeps chat_init's defaults after it.
    b = chat;
    b.struct_size = offsetof(omni_plugin_chat, system);
    CHECK(api->chat(c, &r, &b, on_event, &e) == OMNI_PLUGIN_OK);
    CHECK(e.finals == 5);
    std::lock_guard lk(server.mu);
    REQUIRE(server.requests.size() == 2);
    CHECK(server.requests[1].system.empty());
    CHECK(!server.requests[1].options.enable_thinking);
  }
  api->client_destroy(c);
}

TEST_CASE("plugin chat: a video attachment and the video settings reach the daemon as a video part") {
  const omni_plugin_api* api = load();
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer server(path);
  omni_plugin_client* c = nullptr;
  REQUIRE(api->client_create(path.c_str(), "plugin-test", &c) == OMNI_PLUGIN_OK);
  std::vector<uint8_t> clip(128, 0x1a);
  omni_plugin_image im;
  api->image_init(&im);
  im.format = OMNI_PLUGIN_IMAGE_VIDEO;
  im.data = clip.data();
  im.size = clip.size();
  omni_plugin_request r;
  api->request_init(&r);
  r.images = &im;
  r.n_images = 1;
  const omni_plugin_message_part parts[] = {{nullptr, 0}, {"What happens?", 0}};
  const omni_plugin_message msgs[] = {{OMNI_PLUGIN_ROLE_USER, parts, 2}};
  omni_plugin_chat chat;
  api->chat_init(&chat);
  chat.messages = msgs;
  chat.n_messages = 1;
  chat.video_max_frames = 16;
  chat.video_max_packing = 2;
  chat.video_max_slice_nums = 1;
  chat.video_fps_milli = 500;
  Events e;
  REQUIRE(api->chat(c, &r, &chat, on_event, &e) == OMNI_PLUGIN_OK);
  CHECK(e.finals == 1);
  {
    std::lock_guard lk(server.mu);
    REQUIRE(server.requests.size() == 1);
    const auto& g = server.requests[0];
    REQUIRE(g.images.size() == 1);
    CHECK(g.images[0].format == omni::ipc::ImageFormat::video);
    CHECK(g.messages[0].parts[0].video);
    CHECK(g.options.video_max_frames == 16u);
    CHECK(g.options.video_max_packing == 2u);
    CHECK(g.options.video_max_slice_nums == 1u);
    CHECK(g.options.video_fps == 0.5);
  }
  // An older host's chat struct (without the video fields) keeps the model's video settings.
  chat.struct_size = offsetof(omni_plugin_chat, video_max_frames);
  Events e2;
  REQUIRE(api->chat(c, &r, &chat, on_event, &e2) == OMNI_PLUGIN_OK);
  {
    std::lock_guard lk(server.mu);
    REQUIRE(server.requests.size() == 2);
    CHECK(!server.requests[1].options.video_max_frames);
    CHECK(!server.requests[1].options.video_fps);
  }
  api->client_destroy(c);
}
