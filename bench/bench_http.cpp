// bench_http: what the OpenAI-compatible HTTP front adds to a request, next to the Unix
// socket, on one daemon: the same one-token greedy request (text only) sent many times
// in a row, over one SDK connection and over one keep-alive HTTP connection, taking
// turns so both see the same machine. Prints the median and p90 of both and the
// difference of the medians.
//   bench_http OMNID_BINARY MODEL_DIR [requests=300]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ipc/socket.h"
#include "sdk/client.h"

using Clock = std::chrono::steady_clock;

namespace {

double us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }
double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// One keep-alive HTTP/1.1 connection; post() returns the body of the answer.
class Http {
 public:
  explicit Http(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect failed");
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Http() { ::close(fd_); }
  std::string post(const std::string& body) {
    const std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                            "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) throw std::runtime_error("send failed");
    for (;;) {
      const auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        const auto cl = buf_.find("Content-Length: ");
        if (cl == std::string::npos || cl > end) throw std::runtime_error("no Content-Length: " + buf_);
        const size_t n = std::stoul(buf_.substr(cl + 16));
        if (buf_.size() >= end + 4 + n) {
          if (buf_.rfind("HTTP/1.1 200", 0) != 0) throw std::runtime_error("HTTP error: " + buf_);
          std::string out = buf_.substr(end + 4, n);
          buf_.erase(0, end + 4 + n);
          return out;
        }
      }
      char b[65536];
      const ssize_t got = ::recv(fd_, b, sizeof b, 0);
      if (got <= 0) throw std::runtime_error("the connection closed");
      buf_.append(b, size_t(got));
    }
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_http OMNID_BINARY MODEL_DIR [requests=300]\n");
    return 2;
  }
  const std::string omnid = argv[1], model = argv[2];
  const int n = argc > 3 ? std::atoi(argv[3]) : 300;
  const int port = free_port();
  char tmpl[] = "/tmp/omni-bench-http-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string socket = dir + "/omnid.sock";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("OMNI_LOG_LEVEL", "warn", 1);
    const std::string http = "127.0.0.1:" + std::to_string(port);
    ::execl(omnid.c_str(), omnid.c_str(), "serve", "--model", model.c_str(), "--socket", socket.c_str(), "--http",
            http.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = false;
  for (int i = 0; i < 600 && !up; ++i) {
    try {
      omni::ipc::connect_unix(socket);
      up = true;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  int rc = 0;
  try {
    if (!up) throw std::runtime_error("omnid serve did not start");
    omni::sdk::ClientOptions o;
    o.socket_path = socket;
    omni::sdk::Client client(o);
    client.connect();
    omni::sdk::GenerateRequest g;
    g.prompt = "Hi";
    g.max_tokens = 1;
    g.sampling.greedy = true;
    Http http(port);
    const std::string body =
        nlohmann::json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 1}, {"temperature", 0}}.dump();
    for (int i = 0; i < 10; ++i) {   // warm-up: caches, the prefix cache holds the prompt from here on
      client.generate(g, {});
      http.post(body);
    }
    std::vector<double> sock_us, http_us;
    for (int i = 0; i < n; ++i) {
      auto t0 = Clock::now();
      client.generate(g, {});
      sock_us.push_back(us(Clock::now() - t0));
      t0 = Clock::now();
      http.post(body);
      http_us.push_back(us(Clock::now() - t0));
    }
    std::printf("requests: %d each, max_tokens 1, greedy, text prompt \"Hi\", one connection each\n", n);
    std::printf("unix socket (SDK):    median %8.1f us  p90 %8.1f us\n", pct(sock_us, 0.5), pct(sock_us, 0.9));
    std::printf("HTTP (keep-alive):    median %8.1f us  p90 %8.1f us\n", pct(http_us, 0.5), pct(http_us, 0.9));
    std::printf("HTTP - socket median: %8.1f us\n", pct(http_us, 0.5) - pct(sock_us, 0.5));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_http: %s\n", e.what());
    rc = 1;
  }
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(dir);
  return rc;
}
