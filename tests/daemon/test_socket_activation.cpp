// Socket activation as systemd does it (daemon/systemd/omnid.socket): the test makes the
// listening sockets, the child gets them as descriptors 3 and 4 with LISTEN_PID (its own
// pid, set after fork) and LISTEN_FDS, and omnid serves them: generation over the Unix
// socket, the HTTP front on the TCP one. The socket file is systemd's: left in place.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "daemon_process.h"
#include "util/listeners.h"
#include "util/skip.h"

namespace fs = std::filesystem;
using namespace omni;

namespace {

std::string http_get(int port, const std::string& target) {
  const int fd = test::connect_loopback(port);
  std::string resp;
  if (fd < 0) return resp;
  const std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size())) {
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, size_t(n));
  }
  ::close(fd);
  return resp;
}

}  // namespace

TEST_CASE("a daemon started through socket activation serves the passed Unix and TCP sockets", "[activation]") {
  const fs::path dir = fs::temp_directory_path() / ("omnid-activation-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string sock = (dir / "omnid.sock").string();
  const int ufd = test::listening_unix(sock);
  int port = 0;
  const int tfd = test::listening_tcp(&port);

  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(ufd, 3);
    ::dup2(tfd, 4);
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "2", 1);
    ::setenv("OMNI_LOG_LEVEL", "warn", 1);
    const std::string bin = std::string(OMNI_BIN_DIR) + "/omnid";
    const std::string model = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny";
    // --socket names a path nobody made: the passed socket is served instead.
    const std::string unused = (dir / "not-this.sock").string();
    ::execl(bin.c_str(), bin.c_str(), "serve", "--model", model.c_str(), "--socket", unused.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(ufd);
  ::close(tfd);

  // Clients may connect at once (the socket listens already); the answer waits for the load.
  std::string health;
  for (int i = 0; i < 600 && health.find("200 OK") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    health = http_get(port, "/health");
    int st = 0;
    REQUIRE(::waitpid(pid, &st, WNOHANG) == 0);   // still running
  }
  CHECK(health.find("200 OK") != std::string::npos);

  auto c = test::connected(sock);
  sdk::GenerateRequest r;
  r.prompt = "What is this?";
  r.max_tokens = 4;
  r.sampling.greedy = true;
  std::string text;
  const auto done = c.generate(r, [&](const ipc::Token& t) { text += t.text; });
  CHECK(done.reason != ipc::FinishReason::error);
  CHECK(done.completion_tokens > 0);

  ::kill(pid, SIGTERM);
  int st = 0;
  REQUIRE(::waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK(fs::exists(sock));                       // systemd's socket file stays
  CHECK_FALSE(fs::exists(dir / "not-this.sock")); // and none was made at --socket
  fs::remove_all(dir);
}

TEST_CASE("a passed descriptor that is not a listening socket is refused with exit 2", "[activation]") {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 3);
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    ::setenv("LISTEN_FDS", "1", 1);
    const std::string bin = std::string(OMNI_BIN_DIR) + "/omnid";
    const std::string model = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny";
    const int quiet = ::open("/dev/null", O_WRONLY);
    ::dup2(quiet, 2);
    ::execl(bin.c_str(), bin.c_str(), "serve", "--model", model.c_str(), "--socket", "/tmp/omni-unused.sock", nullptr);
    ::_exit(127);
  }
  int st = 0;
  REQUIRE(::waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 2);
}

namespace {

// Connects as uid/gid in a child: 0 let in, 1 refused with not_allowed, other: failure.
int connect_as(const std::string& sock, uid_t uid, gid_t gid) {
  return test::run_as(uid, gid, [&] {
    try {
      test::connected(sock).connect();
      return 0;
    } catch (const sdk::Error& e) {
      return e.code() == ipc::ErrorCode::not_allowed ? 1 : 12;
    }
  });
}

}  // namespace

TEST_CASE("root and the socket group's members may connect to a daemon of another user", "[access]") {
  if (::geteuid() != 0) OMNI_SKIP("not root: cannot run the daemon and its clients as other users here");
  const fs::path dir = fs::temp_directory_path() / ("omnid-access-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::all | fs::perms::sticky_bit);   // the daemon (uid 65534) makes its socket here
  const std::string sock = (dir / "omnid.sock").string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // As a service user: uid 65534, group 65534, which is also the socket's group; the
    // socket world-connectable so that only the daemon's own peer check decides.
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    ::setenv("OMNI_LOG_LEVEL", "warn", 1);
    const std::string bin = std::string(OMNI_BIN_DIR) + "/omnid";
    const std::string model = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny";
    ::execl(bin.c_str(), bin.c_str(), "serve", "--model", model.c_str(), "--socket", sock.c_str(), "--socket-group",
            "65534", nullptr);
    ::_exit(127);
  }
  for (int i = 0; i < 600 && !fs::exists(sock); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(fs::exists(sock));
  fs::permissions(sock, fs::perms::all);
  CHECK(connect_as(sock, 0, 0) == 0);              // root, by default
  CHECK(connect_as(sock, 4242, 65534) == 0);       // a member of the socket's group
  CHECK(connect_as(sock, 4243, 4243) == 1);        // anybody else: not_allowed
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st));
  fs::remove_all(dir);
}

TEST_CASE("a daemon may not give its socket to a group it is not in: exit 2 before the load", "[access]") {
  if (::geteuid() != 0) OMNI_SKIP("not root: cannot run the daemon as another user here");
  const fs::path dir = fs::temp_directory_path() / ("omnid-group-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::all | fs::perms::sticky_bit);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    const int quiet = ::open("/dev/null", O_WRONLY);
    ::dup2(quiet, 2);
    const std::string bin = std::string(OMNI_BIN_DIR) + "/omnid";
    const std::string model = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny";
    const std::string sock = (dir / "omnid.sock").string();
    ::execl(bin.c_str(), bin.c_str(), "serve", "--model", model.c_str(), "--socket", sock.c_str(), "--socket-group", "0",
            nullptr);
    ::_exit(127);
  }
  int st = 0;
  REQUIRE(::waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 2);
  CHECK_FALSE(fs::exists(dir / "omnid.sock"));
  fs::remove_all(dir);
}
