// The daemon against local users and clients that misbehave on purpose: running out of
// descriptors, pipelining pictures, parking connection slots from outside the allow
// list, idling, replacing the socket, reading other users' cache hits, and the corners
// of the session protocol (docs/protocol.md), each answered as documented.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/wait.h>

#include <msgpack.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "daemon_process.h"
#include "ipc/memfd.h"
#include "ipc/messages.h"
#include "ipc/socket.h"
#include "sdk/client.h"
#include "util/skip.h"

using namespace omni;
using namespace std::chrono_literals;

namespace {

// A hand-written protocol client, as an attacker would write one from docs/protocol.md.
struct Raw {
  ipc::UniqueFd fd;
  ipc::FrameReader rd;
  explicit Raw(const std::string& socket, bool greet = true) : fd(ipc::connect_unix(socket)) {
    if (!greet) return;
    send(ipc::Hello{});
    REQUIRE(std::holds_alternative<ipc::HelloOk>(next()));
  }
  void send(const ipc::Message& m, const std::vector<int>& fds = {}) {
    ipc::send_frame(fd.get(), ipc::encode_message(m), fds, 5000);
  }
  void send_payload(const std::vector<uint8_t>& payload) {
    ipc::send_frame(fd.get(), ipc::encode_frame(payload), {}, 5000);
  }
  ipc::Message next(int timeout_ms = 10000) { return ipc::decode_message(ipc::recv_frame(fd.get(), rd, timeout_ms), {}); }
  // True when the daemon has closed its end (EOF) within `within`.
  bool hung_up(std::chrono::milliseconds within = 3000ms) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, int(within.count())) <= 0) return false;
    char b;
    return ::recv(fd.get(), &b, 1, MSG_DONTWAIT) == 0;
  }
};

// A hand-packed msgpack payload, for messages the typed encoder would never write.
template <class Pack>
std::vector<uint8_t> packed(Pack pack) {
  msgpack::sbuffer b;
  msgpack::packer<msgpack::sbuffer> p(b);
  pack(p);
  return {b.data(), b.data() + b.size()};
}

ipc::ErrorMsg as_error(const ipc::Message& m) {
  REQUIRE(std::holds_alternative<ipc::ErrorMsg>(m));
  return std::get<ipc::ErrorMsg>(m);
}

ipc::Generate text_request(uint64_t id, uint32_t max_tokens) {
  ipc::Generate g;
  g.id = id;
  g.prompt = "Tell me a story.";
  g.max_tokens = max_tokens;
  g.sampling.greedy = true;
  return g;
}

// Runs `body` as uid/gid 65534 in a child; its exit status (0: the body returned true,
// 11: false, 12: it threw).
int as_nobody(const std::function<bool()>& body) {
  return test::run_as(65534, 65534, [&] {
    try {
      return body() ? 0 : 11;
    } catch (...) {
      return 12;
    }
  });
}

// A config letting every local user reach the socket file, so that only the daemon's own
// peer check stands between another uid and the daemon.
std::string open_socket_config(const std::string& extra) {
  const std::string cfg = (std::filesystem::temp_directory_path() /
                           ("omnid-hard-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()) + ".toml"))
                              .string();
  std::ofstream(cfg) << "socket_mode = \"0666\"\n" << extra;
  return cfg;
}

}  // namespace

TEST_CASE("out of descriptors, the daemon refuses newcomers and serves on", "[daemon]") {
#ifdef OMNI_SANITIZED
  // UBSan's vptr check reads /proc/self/maps on a type-cache miss: with no descriptor left
  // it reports valid objects as having an invalid vptr and aborts the daemon.
  OMNI_SKIP("the sanitizers' runtime needs descriptors of its own");
#endif
  // 64 descriptors: the model, the listeners and a few sessions fit, 80 more connections
  // (idle metrics ones, Unix ones that never say hello) do not.
  const int port = 20000 + (::getpid() + 7) % 20000;
  test::DaemonProcess d({"--metrics-port", std::to_string(port)}, 64);
  auto c = test::connected(d.socket());
  c.connect();   // connected before the descriptors run out
  std::vector<int> idle;
  for (int i = 0; i < 20; ++i)
    if (int fd = test::connect_loopback(port); fd >= 0) idle.push_back(fd);
  std::vector<ipc::UniqueFd> held;
  for (int i = 0; i < 60; ++i) held.push_back(ipc::connect_unix(d.socket()));   // the backlog takes them
  // Some of those could not be accepted: they were closed (EOF), not left waiting.
  int shed = 0;
  for (auto& h : held) {
    pollfd p{h.get(), POLLIN, 0};
    char b;
    if (::poll(&p, 1, 3000) == 1 && ::recv(h.get(), &b, 1, MSG_DONTWAIT) == 0) ++shed;
    if (shed) break;
  }
  CHECK(shed > 0);
  REQUIRE(d.alive());
  sdk::GenerateRequest r;
  r.prompt = "Hello";
  r.max_tokens = 3;
  r.sampling.greedy = true;
  CHECK(c.generate(r, [](const ipc::Token&) {}).reason != ipc::FinishReason::error);
  CHECK(test::status_detail(c.status(), "accept_failures") > 0);
  for (int fd : idle) ::close(fd);
  held.clear();
  // Once the descriptors are back, newcomers get in again (more than once: the spare
  // descriptor is taken again for the next shortage).
  bool in = false;
  for (int i = 0; i < 50 && !in; ++i) {
    try {
      auto again = test::connected(d.socket());
      in = again.generate(r, [](const ipc::Token&) {}).reason != ipc::FinishReason::error;
    } catch (const sdk::Error&) {
      std::this_thread::sleep_for(100ms);
    }
  }
  CHECK(in);
  CHECK_THAT(test::fetch_metrics(port), Catch::StartsWith("HTTP/1.1 200 OK"));
  CHECK(d.alive());
}

TEST_CASE("the metrics port closes connections that send no request head", "[daemon]") {
  const int port = 20000 + (::getpid() + 11) % 20000;
  test::DaemonProcess d({"--metrics-port", std::to_string(port)});
  const int fd = test::connect_loopback(port);
  REQUIRE(fd >= 0);
  pollfd p{fd, POLLIN, 0};
  REQUIRE(::poll(&p, 1, 10000) == 1);   // closed by the daemon after its read timeout
  char b;
  CHECK(::recv(fd, &b, 1, 0) <= 0);
  ::close(fd);
  CHECK_THAT(test::fetch_metrics(port), Catch::StartsWith("HTTP/1.1 200 OK"));
}

TEST_CASE("200 pipelined picture requests on one connection are each answered once", "[daemon]") {
  test::DaemonProcess d({"--max-queue", "16"});
  Raw raw(d.socket());
  std::vector<uint8_t> rgb(16 * 16 * 3, 90);
  ipc::UniqueFd pic = ipc::make_sealed_memfd(rgb);
  constexpr int N = 200;
  for (int i = 1; i <= N; ++i) {
    ipc::Generate g = text_request(uint64_t(i), 1);
    g.images.push_back({0, rgb.size(), ipc::ImageFormat::rgb, 16, 16});
    raw.send(g, {pic.get()});
  }
  std::map<uint64_t, int> terminal;
  int answered = 0, busy = 0;
  while (answered + busy < N) {
    ipc::Message m = raw.next(60000);
    if (auto* dn = std::get_if<ipc::Done>(&m)) {
      ++terminal[dn->id];
      ++answered;
    } else if (auto* e = std::get_if<ipc::ErrorMsg>(&m)) {
      REQUIRE(e->id != 0);   // no connection-level error: the connection stays
      CHECK(e->code == ipc::ErrorCode::busy);
      ++terminal[e->id];
      ++busy;
    }
  }
  CHECK(terminal.size() == size_t(N));
  for (const auto& [id, n] : terminal) CHECK(n == 1);
  CHECK(answered > 0);
  raw.send(ipc::StatusRequest{999});
  CHECK(std::holds_alternative<ipc::Status>(raw.next()));
}

TEST_CASE("a user outside the allow list cannot lock allowed clients out", "[daemon]") {
  if (::geteuid() != 0) {
    OMNI_SKIP("needs root to connect as a second uid");
  }
  const std::string cfg = open_socket_config("allowed_uids = [4242424]\nmax_connections = 8\n");
  test::DaemonProcess d({"--config", cfg});
  std::filesystem::permissions(std::filesystem::path(d.socket()).parent_path(), std::filesystem::perms::all);
  // The outsider holds 100 connections open while an allowed client connects 10 times.
  int ready[2], release[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(release) == 0);
  pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    std::vector<ipc::UniqueFd> held;
    for (int i = 0; i < 100; ++i) {
      try {
        held.push_back(ipc::connect_unix(d.socket()));
      } catch (...) {
      }
    }
    char x = 1;
    (void)!::write(ready[1], &x, 1);
    (void)!::read(release[0], &x, 1);
    ::_exit(0);
  }
  char x;
  REQUIRE(::read(ready[0], &x, 1) == 1);
  int ok = 0;
  for (int i = 0; i < 10; ++i) {
    try {
      auto c = test::connected(d.socket());
      c.connect();
      ++ok;
    } catch (const sdk::Error&) {
    }
  }
  CHECK(ok == 10);
  (void)!::write(release[1], &x, 1);
  ::waitpid(child, nullptr, 0);
  for (int f : {ready[0], ready[1], release[0], release[1]}) ::close(f);
  CHECK(d.alive());
  std::filesystem::remove(cfg);
}

TEST_CASE("an idle greeted connection is closed after the idle timeout, a busy one is not", "[daemon]") {
  test::DaemonProcess d({"--idle-timeout", "0.5"});
  Raw idle(d.socket());
  Raw busy(d.socket());
  busy.send(text_request(1, 40));
  CHECK(idle.hung_up(5000ms));
  // The busy one gets its whole answer, though it sends nothing meanwhile.
  for (;;) {
    ipc::Message m = busy.next(30000);
    if (auto* dn = std::get_if<ipc::Done>(&m)) {
      CHECK(dn->reason != ipc::FinishReason::error);
      break;
    }
    REQUIRE(std::holds_alternative<ipc::Token>(m));
  }
  // The SDK reconnects on its next call after an idle close.
  auto c = test::connected(d.socket());
  c.connect();
  std::this_thread::sleep_for(1200ms);
  CHECK(c.status().active_requests == 0);
}

TEST_CASE("SIGTERM leaves a socket that another daemon now owns", "[daemon]") {
  test::DaemonProcess d;
  const std::string path = d.socket();
  // Somebody removed our socket and another server listens on the path now.
  REQUIRE(::unlink(path.c_str()) == 0);
  ipc::UniqueFd other = ipc::listen_unix(path);
  CHECK(d.stop() == 0);
  CHECK(std::filesystem::exists(path));
  CHECK_NOTHROW(ipc::connect_unix(path));
}

TEST_CASE("cache hit counters are shown only to the daemon's own user", "[daemon]") {
  if (::geteuid() != 0) {
    OMNI_SKIP("needs root to connect as a second uid");
  }
  const std::string cfg = open_socket_config("allowed_uids = [65534]\n");
  test::DaemonProcess d({"--config", cfg});
  std::filesystem::permissions(std::filesystem::path(d.socket()).parent_path(), std::filesystem::perms::all);
  auto mine = test::connected(d.socket()).status();
  const ipc::Value& details = mine.details;
  REQUIRE(details.find("vision_cache"));
  CHECK(details.find("vision_cache")->find("hits"));
  CHECK(details.find("prefix_cache"));
  const int st = as_nobody([&] {
    auto theirs = test::connected(d.socket()).status();
    const ipc::Value* vc = theirs.details.find("vision_cache");
    return vc && vc->find("entries") && !vc->find("hits") && !theirs.details.find("prefix_cache");
  });
  CHECK(st == 0);
  std::filesystem::remove(cfg);
}

TEST_CASE("the session protocol's corners behave as docs/protocol.md says", "[daemon]") {
  test::DaemonProcess d;
  SECTION("a second hello is bad_message and the connection stays") {
    Raw raw(d.socket());
    raw.send(ipc::Hello{});
    const ipc::ErrorMsg e = as_error(raw.next());
    CHECK(e.code == ipc::ErrorCode::bad_message);
    CHECK(e.id == 0);
    raw.send(ipc::StatusRequest{3});
    CHECK(std::holds_alternative<ipc::Status>(raw.next()));
  }
  SECTION("an unknown type carrying an id is answered with id 0") {
    Raw raw(d.socket());
    raw.send_payload(packed([](auto& p) {
      p.pack_map(2);
      p.pack("type");
      p.pack("frobnicate");
      p.pack("id");
      p.pack(uint64_t(7));
    }));
    const ipc::ErrorMsg e = as_error(raw.next());
    CHECK(e.code == ipc::ErrorCode::bad_message);
    CHECK(e.id == 0);
    raw.send(ipc::StatusRequest{3});
    CHECK(std::holds_alternative<ipc::Status>(raw.next()));
  }
  SECTION("undecodable msgpack in a well-framed payload is bad_frame and closes") {
    Raw raw(d.socket());
    raw.send_payload({0xc1});   // a byte msgpack never uses
    const ipc::ErrorMsg e = as_error(raw.next());
    CHECK(e.code == ipc::ErrorCode::bad_frame);
    CHECK(raw.hung_up());
  }
  SECTION("a malformed first frame gets its error and the connection closes at once") {
    Raw raw(d.socket(), false);
    raw.send_payload(packed([](auto& p) {
      p.pack_map(1);
      p.pack("type");
      p.pack("hello");   // no proto_major
    }));
    CHECK(as_error(raw.next()).code == ipc::ErrorCode::bad_message);
    CHECK(raw.hung_up(3000ms));   // before the 5 s hello deadline
  }
  SECTION("a top_k above 2^31 keeps every token instead of failing as a negative number") {
    Raw raw(d.socket());
    ipc::Generate g = text_request(4, 3);
    g.sampling.greedy = false;
    g.sampling.top_k = 3000000000u;
    raw.send(g);
    for (;;) {
      ipc::Message m = raw.next();
      REQUIRE_FALSE(std::holds_alternative<ipc::ErrorMsg>(m));
      if (auto* dn = std::get_if<ipc::Done>(&m)) {
        CHECK(dn->reason != ipc::FinishReason::error);
        break;
      }
    }
  }
  SECTION("a duplicate in-flight id is refused on the connection, and the first request ends once") {
    Raw raw(d.socket());
    raw.send(text_request(5, 60));
    raw.send(text_request(5, 60));
    int done = 0, refusals = 0;
    while (done == 0) {
      ipc::Message m = raw.next(30000);
      if (auto* e = std::get_if<ipc::ErrorMsg>(&m)) {
        CHECK(e->id == 0);   // error{5} would end request 5 while its tokens go on
        CHECK(e->code == ipc::ErrorCode::bad_message);
        ++refusals;
      } else if (auto* dn = std::get_if<ipc::Done>(&m)) {
        CHECK(dn->id == 5);
        ++done;
      }
    }
    CHECK(refusals == 1);
    raw.send(ipc::StatusRequest{6});
    for (;;) {   // nothing more for id 5 arrives before the status reply
      ipc::Message m = raw.next();
      if (std::holds_alternative<ipc::Status>(m)) break;
      FAIL("a frame after request 5's done");
    }
  }
  CHECK(d.alive());
}
