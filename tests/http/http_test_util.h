#pragma once
// For the HTTP front's suites: `omnid serve` with --http on a port of its own (any model),
// and a hand-written HTTP/1.1 client over a raw socket, so every byte on the wire is the
// test's choice (a trickled head, a lying Content-Length, a client that leaves mid-answer).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "daemon/daemon_process.h"
#include "ipc/socket.h"

namespace omni::test {

// A port nothing listens on now (bound to 0, read back, closed).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("free_port: bind failed");
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::string base64(const std::string& bytes) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

// `omnid serve --model MODEL --socket S --http 127.0.0.1:PORT EXTRA...`, stopped (SIGTERM) at the end.
class HttpDaemon : public DaemonProcess {
 public:
  explicit HttpDaemon(std::vector<std::string> extra = {}, std::string model = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny")
      : HttpDaemon(free_port(), std::move(extra), std::move(model)) {}
  int port() const { return port_; }

 private:
  HttpDaemon(int port, std::vector<std::string> extra, std::string model)
      : DaemonProcess(with_http(port, std::move(extra)), 0, std::move(model)), port_(port) {}
  static std::vector<std::string> with_http(int port, std::vector<std::string> extra) {
    extra.insert(extra.begin(), {"--http", "127.0.0.1:" + std::to_string(port)});
    return extra;
  }
  int port_;
};

inline int connect_port(int port) {
  const int fd = connect_loopback(port);
  if (fd < 0) throw std::runtime_error("connect to 127.0.0.1:" + std::to_string(port) + " failed");
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

inline bool send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

// Bytes until EOF or `timeout` without any.
inline std::string recv_until_eof(int fd, std::chrono::milliseconds timeout = std::chrono::milliseconds(20000)) {
  std::string out;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, int(timeout.count())) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;   // names lower-cased
  std::string body;                              // chunks joined
  nlohmann::json json() const { return nlohmann::json::parse(body); }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// One whole response from `raw` (status line, headers, a Content-Length or chunked body).
inline HttpResponse parse_response(const std::string& raw) {
  HttpResponse r;
  const auto end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  std::istringstream head(raw.substr(0, end));
  std::string line;
  std::getline(head, line);
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = char(std::tolower(uint8_t(c)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  std::string rest = raw.substr(end + 4);
  if (r.header("transfer-encoding") == "chunked") {
    size_t pos = 0;
    for (;;) {
      const auto eol = rest.find("\r\n", pos);
      if (eol == std::string::npos) break;
      const size_t n = std::stoul(rest.substr(pos, eol - pos), nullptr, 16);
      if (n == 0) break;
      r.body += rest.substr(eol + 2, n);
      pos = eol + 2 + n + 2;
    }
  } else if (!r.header("content-length").empty()) {
    r.body = rest.substr(0, std::stoul(r.header("content-length")));
  } else {
    r.body = rest;
  }
  return r;
}

// A request on a new connection (Connection: close) and its whole answer.
inline HttpResponse http_call(int port, const std::string& method, const std::string& path, const std::string& body = "",
                              const std::string& extra_headers = "", const std::string& content_type = "application/json") {
  const int fd = connect_port(port);
  std::string req = method + " " + path + " HTTP/1.1\r\n";
  if (extra_headers.find("Host:") == std::string::npos) req += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  req += "Connection: close\r\n" + extra_headers;
  if (!body.empty() || method == "POST")
    req += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  send_all(fd, req);
  const std::string raw = recv_until_eof(fd);
  ::close(fd);
  return parse_response(raw);
}

// SSE events of a text/event-stream body: the text after "data: " of each.
inline std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const auto end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    const std::string ev = body.substr(pos, end - pos);
    if (ev.rfind("data: ", 0) == 0) out.push_back(ev.substr(6));
    pos = end + 2;
  }
  return out;
}

// A Prometheus sample of /metrics ("omnid_active_requests" -> 0); -1 when absent.
inline double metric_value(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  return -1;
}

}  // namespace omni::test
