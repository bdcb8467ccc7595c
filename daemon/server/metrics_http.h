#pragma once
// An optional Prometheus text endpoint (GET /metrics) on 127.0.0.1, served on the
// daemon's I/O thread. Loopback only: the socket is the way in; this only reports.
#include <utility>
#include <boost/asio.hpp>
#include <functional>
#include <memory>
#include <string>

namespace omni::server {

class MetricsHttp {
 public:
  // `render` returns the exposition text; port 0 picks a free port (see port()).
  MetricsHttp(boost::asio::io_context& io, uint16_t port, std::function<std::string()> render);
  uint16_t port() const;

 private:
  void accept_next();
  boost::asio::ip::tcp::acceptor acceptor_;
  std::function<std::string()> render_;
};

}  // namespace omni::server
