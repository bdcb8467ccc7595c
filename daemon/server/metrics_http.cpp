#include "server/metrics_http.h"

#include <spdlog/spdlog.h>

namespace omni::server {

namespace asio = boost::asio;
using asio::ip::tcp;

MetricsHttp::MetricsHttp(asio::io_context& io, uint16_t port, std::function<std::string()> render)
    : acceptor_(io, tcp::endpoint(asio::ip::address_v4::loopback(), port)), render_(std::move(render)) {
  accept_next();
  spdlog::info("metrics on http://127.0.0.1:{}/metrics", this->port());
}

uint16_t MetricsHttp::port() const { return acceptor_.local_endpoint().port(); }

void MetricsHttp::accept_next() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
    if (ec) return;   // acceptor closed
    auto s = std::make_shared<tcp::socket>(std::move(sock));
    auto buf = std::make_shared<asio::streambuf>(8192);   // bounded request head
    asio::async_read_until(*s, *buf, "\r\n\r\n", [this, s, buf](boost::system::error_code rec, size_t) {
      std::string head;
      if (!rec) {
        std::istream in(buf.get());
        std::getline(in, head);
      }
      const bool ok = head.rfind("GET /metrics ", 0) == 0;
      auto body = std::make_shared<std::string>(ok ? render_() : "not found\n");
      auto resp = std::make_shared<std::string>(
          std::string(ok ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.1 404 Not Found\r\n") +
          "Content-Type: text/plain; version=0.0.4\r\nContent-Length: " + std::to_string(body->size()) +
          "\r\nConnection: close\r\n\r\n" + *body);
      asio::async_write(*s, asio::buffer(*resp), [s, resp](boost::system::error_code, size_t) {
        boost::system::error_code ignore;
        s->shutdown(tcp::socket::shutdown_both, ignore);
      });
    });
    accept_next();
  });
}

}  // namespace omni::server
