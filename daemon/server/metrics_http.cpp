#include "server/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace omni::server {

namespace asio = boost::asio;
using asio::ip::tcp;

int bind_metrics_listener(int port) {
  const std::string where = "serve: metrics_port " + std::to_string(port);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    const int err = errno;
    // The systemd unit allows AF_UNIX only (daemon/systemd/omnid.service.in).
    throw UsageError(where + ": socket: " + std::strerror(err) +
                     (err == EAFNOSUPPORT ? " (TCP is not allowed here: under systemd, let omnid.socket listen "
                                            "on the port or add AF_INET to RestrictAddressFamilies; docs/operations.md)"
                                          : ""));
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    throw UsageError(where + ": 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(err));
  }
  return fd;
}

MetricsHttp::MetricsHttp(asio::io_context& io, int fd, std::function<std::string()> render)
    : acceptor_(io), backoff_(io), render_(std::make_shared<const std::function<std::string()>>(std::move(render))) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  acceptor_.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd);
  accept_next();
  spdlog::info("metrics on http://127.0.0.1:{}/metrics", this->port());
}

uint16_t MetricsHttp::port() const { return acceptor_.local_endpoint().port(); }

void MetricsHttp::close() {
  boost::system::error_code ignore;
  acceptor_.close(ignore);
  backoff_.cancel();
}

void MetricsHttp::accept_next() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;   // closed: shutting down
    if (ec) {
      // Out of descriptors or memory: wait, then accept again; the daemon serves on.
      spdlog::debug("metrics: accept failed: {}", ec.message());
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([this](boost::system::error_code tec) {
        if (!tec && acceptor_.is_open()) accept_next();
      });
      return;
    }
    if (*open_ >= kMaxConnections) {
      boost::system::error_code ignore;
      sock.close(ignore);   // over the cap: closed at once, nothing read
    } else {
      serve(std::make_shared<tcp::socket>(std::move(sock)));
    }
    accept_next();
  });
}

void MetricsHttp::serve(std::shared_ptr<tcp::socket> s) {
  ++*open_;
  // Released with the last handler holding it, whatever the path.
  auto slot = std::shared_ptr<void>(nullptr, [open = open_](void*) { --*open; });
  auto timer = std::make_shared<asio::steady_timer>(acceptor_.get_executor(), std::chrono::milliseconds(kReadTimeoutMs));
  timer->async_wait([s](boost::system::error_code ec) {
    if (ec) return;   // answered in time
    boost::system::error_code ignore;
    s->close(ignore);   // a slow or silent client: the pending read ends with an error
  });
  auto buf = std::make_shared<asio::streambuf>(kMaxHeadBytes);   // bounded request head
  asio::async_read_until(*s, *buf, "\r\n\r\n", [render = render_, s, buf, timer, slot](boost::system::error_code rec, size_t) {
    timer->cancel();
    if (rec || !s->is_open()) return;   // timed out, too long a head, or gone
    std::string head;
    std::istream in(buf.get());
    std::getline(in, head);
    const bool ok = head.rfind("GET /metrics ", 0) == 0;
    auto body = std::make_shared<std::string>(ok ? (*render)() : "not found\n");
    auto resp = std::make_shared<std::string>(
        std::string(ok ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n") +
        "Content-Type: text/plain; version=0.0.4\r\nContent-Length: " + std::to_string(body->size()) +
        "\r\nConnection: close\r\n\r\n" + *body);
    timer->expires_after(std::chrono::milliseconds(kReadTimeoutMs));   // and a reader that does not read
    timer->async_wait([s](boost::system::error_code ec) {
      if (ec) return;
      boost::system::error_code ignore;
      s->close(ignore);
    });
    asio::async_write(*s, asio::buffer(*resp), [s, resp, timer, slot](boost::system::error_code, size_t) {
      timer->cancel();
      boost::system::error_code ignore;
      s->shutdown(tcp::socket::shutdown_both, ignore);
    });
  });
}

}  // namespace omni::server
