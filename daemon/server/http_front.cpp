#include "server/http_front.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "server/http_connection.h"
#include "server/http_errors.h"
#include "util/error.h"

namespace omni::server {

namespace asio = boost::asio;
using asio::ip::tcp;

int bind_http_listener(const ListenAddress& addr) {
  const std::string where = "serve: http_listen " + addr.address + ":" + std::to_string(addr.port);
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&ss); ::inet_pton(AF_INET, addr.address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(addr.port);
    len = sizeof(sockaddr_in);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (::inet_pton(AF_INET6, addr.address.c_str(), &v6->sin6_addr) != 1) throw UsageError(where + ": not an IP address");
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(addr.port);
    len = sizeof(sockaddr_in6);
    family = AF_INET6;
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw UsageError(where + ": socket: " + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);   // restart while old connections linger
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 128) != 0) {
    const int err = errno;
    ::close(fd);
    throw UsageError(where + ": " + std::strerror(err));
  }
  return fd;
}

namespace {

tcp protocol_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
}

}  // namespace

HttpFront::HttpFront(asio::io_context& io, int listen_fd, HttpSettings settings, HttpBackend* backend)
    : acceptor_(io), backoff_(io), shared_(std::make_shared<HttpShared>()) {
  shared_->settings = std::move(settings);
  shared_->backend = backend;
  if (backend) {
    reader_ = std::make_unique<asio::thread_pool>(1);
    shared_->reader = reader_.get();
  }
  shared_->started =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  acceptor_.assign(protocol_of(listen_fd), listen_fd);
  accept_next();
}

HttpFront::~HttpFront() {
  close_all();
  if (reader_) reader_->join();   // a body being read finishes; its answer goes nowhere
}

uint16_t HttpFront::port() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

int HttpFront::open_connections() const { return shared_->open.load(); }

void HttpFront::track(const std::shared_ptr<HttpConnection>& c) {
  std::erase_if(live_, [](const std::weak_ptr<HttpConnection>& w) { return w.expired(); });
  live_.push_back(c);
}

void HttpFront::accept_next() {
  acceptor_.async_accept([this, shared = shared_](boost::system::error_code ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;   // closed or released
    if (ec) {
      // Out of descriptors or memory: wait, then accept again; the daemon serves on.
      if (accept_failures_++ % 100 == 0)
        spdlog::warn("http: accepting a connection failed: {} ({} times so far); retrying", ec.message(), accept_failures_);
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([this](boost::system::error_code tec) {
        if (!tec && acceptor_.is_open()) accept_next();
      });
      return;
    }
    if (shared->open.load() >= shared->settings.max_connections) {
      // Over the cap: a short answer if the socket takes it at once, then closed.
      static const std::string busy = [] {
        const HttpError e = HttpError::from_code(ipc::ErrorCode::busy, "too many connections (http_max_connections)");
        const std::string body = e.body();
        return "HTTP/1.1 " + std::to_string(e.status) + " " + http_reason(e.status) +
               "\r\nServer: omnid\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
      }();
      (void)!::send(sock.native_handle(), busy.data(), busy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      boost::system::error_code ignore;
      sock.shutdown(tcp::socket::shutdown_both, ignore);
      sock.close(ignore);
    } else {
      boost::system::error_code ignore;
      sock.set_option(tcp::no_delay(true), ignore);   // tokens go out as they come
      auto c = std::make_shared<HttpConnection>(std::move(sock), shared);
      track(c);
      c->start();
    }
    accept_next();
  });
}

int HttpFront::release() {
  backoff_.cancel();
  const int fd = acceptor_.release();
  close_all();
  return fd;
}

void HttpFront::close() {
  boost::system::error_code ignore;
  acceptor_.close(ignore);
  backoff_.cancel();
  shared_->stopping = true;
  for (auto& w : live_)
    if (auto c = w.lock()) c->close_if_idle();
}

void HttpFront::close_all() {
  shared_->stopping = true;
  for (auto& w : live_)
    if (auto c = w.lock()) c->close();
  live_.clear();
}

}  // namespace omni::server
