#pragma once
// Starts `omnid serve` as a child process on a private socket and stops it again.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grp.h>

#include <chrono>
#include <functional>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "ipc/messages.h"
#include "ipc/socket.h"
#include "sdk/client.h"

namespace omni::test {

class DaemonProcess {
 public:
  // `nofile_limit` > 0: the daemon runs with that RLIMIT_NOFILE (descriptor exhaustion
  // tests without opening thousands of sockets). `model`: the checkpoint folder served.
  explicit DaemonProcess(std::vector<std::string> extra_args = {}, int nofile_limit = 0,
                         std::string model = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny") {
    dir_ = std::filesystem::temp_directory_path() / ("omnid-test-" + std::to_string(::getpid()) + "-" +
                                                      std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
    socket_ = (dir_ / "omnid.sock").string();
    std::vector<std::string> args = {std::string(OMNI_BIN_DIR) + "/omnid", "serve", "--model", model, "--socket",
                                     socket_};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::setenv("OMNI_LOG_LEVEL", "warn", 1);
      if (nofile_limit > 0) {
        const rlimit rl{rlim_t(nofile_limit), rlim_t(nofile_limit)};
        if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) ::_exit(126);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Ready when the socket accepts.
    for (int i = 0; i < 600; ++i) {
      try {
        ipc::connect_unix(socket_);
        return;
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
    }
    throw std::runtime_error("omnid serve did not start");
  }
  ~DaemonProcess() { stop(); std::filesystem::remove_all(dir_); }

  // SIGTERM; returns the exit status (or -1 when it had to be killed).
  int stop() {
    if (pid_ <= 0) return exit_;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 400; ++i) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        exit_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return exit_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return exit_ = -1;
  }
  bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
  const std::string& socket() const { return socket_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static int& counter() { static int c = 0; return c; }
  std::filesystem::path dir_;
  std::string socket_;
  pid_t pid_ = -1;
  int exit_ = -1;
};

// An SDK client of the daemon at `socket` (it connects on its first call).
inline sdk::Client connected(const std::string& socket) {
  sdk::ClientOptions o;
  o.socket_path = socket;
  return sdk::Client(o);
}

// A number in a status reply's details: details.a, or details.a.b.
inline int64_t status_detail(const ipc::Status& s, const char* a, const char* b = nullptr) {
  const ipc::Value* v = s.details.find(a);
  REQUIRE(v);
  v = b ? v->find(b) : v;
  REQUIRE(v);
  if (auto* i = std::get_if<int64_t>(&v->v)) return *i;
  if (auto* u = std::get_if<uint64_t>(&v->v)) return int64_t(*u);
  FAIL("details." << a << "." << (b ? b : "") << " is not a number");
  return -1;
}

// Runs `body` in a child as uid/gid (no supplementary groups): the child's exit status is
// body's result (10: the identity could not be taken; 13: body threw), or 128 + signal.
inline int run_as(uid_t uid, gid_t gid, const std::function<int()>& body) {
  const pid_t child = ::fork();
  if (child == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(10);
    int rc = 13;
    try {
      rc = body();
    } catch (...) {
    }
    ::_exit(rc);
  }
  int st = 0;
  ::waitpid(child, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// A TCP connection to `port` on loopback, nothing sent yet (-1 on failure).
inline int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// GET /metrics from a daemon's Prometheus port on loopback: the whole HTTP response.
inline std::string fetch_metrics(int port) {
  const int fd = connect_loopback(port);
  std::string resp;
  if (fd >= 0) {
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size())) {
      char buf[4096];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) resp.append(buf, size_t(n));
    }
    ::close(fd);
  }
  return resp;
}

}  // namespace omni::test
