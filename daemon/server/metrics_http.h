#pragma once
// An optional Prometheus text endpoint (GET /metrics) on 127.0.0.1, served on the
// daemon's I/O thread. Loopback only: the socket is the way in; this only reports.
// Any local user can read it (docs/operations.md, Security), so it is off by default,
// and nobody can use it to stall or starve the daemon: a few connections at a time,
// each closed when its request head has not arrived within a few seconds, and accept
// failures (out of descriptors) wait and retry instead of ending the endpoint.
#include <utility>
#include <boost/asio.hpp>
#include <functional>
#include <memory>
#include <string>

namespace omni::server {

class MetricsHttp {
 public:
  static constexpr int kMaxConnections = 8;
  static constexpr int kReadTimeoutMs = 5000;
  static constexpr size_t kMaxHeadBytes = 8192;

  // Serves the listening TCP socket `fd` (from bind_metrics_listener, or handed over by
  // socket activation); `render` returns the exposition text.
  MetricsHttp(boost::asio::io_context& io, int fd, std::function<std::string()> render);
  uint16_t port() const;
  // Stops accepting (shutdown); handlers already queued see a closed acceptor and end.
  void close();

 private:
  void accept_next();
  void serve(std::shared_ptr<boost::asio::ip::tcp::socket> s);
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  // Shared with the connections' handlers, which may outlive this object at shutdown.
  std::shared_ptr<const std::function<std::string()>> render_;
  std::shared_ptr<int> open_ = std::make_shared<int>(0);   // connections being served
};

// Binds and listens on 127.0.0.1:port (0: a free port) before the model loads; a port
// that cannot be had is a UsageError naming metrics_port.
int bind_metrics_listener(int port);

}  // namespace omni::server
