#pragma once
// The HTTP port while the model loads: bound at start (a port in use fails `omnid
// serve` before a minute of loading, not after) and answered 503 on a thread of its
// own, GET /health with {"status":"loading"}. Once the model is in, release() hands the
// listening socket to the serving front without closing it.
// <utility> first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it (GCC 12).
#include <utility>
#include <boost/asio.hpp>

#include <memory>
#include <thread>

#include "server/http_settings.h"
#include "server/server_config.h"

namespace omni::server {

class HttpFront;

class HttpLoading {
 public:
  // `fd` >= 0: a listener handed over by socket activation, else cfg.http_listen is bound.
  explicit HttpLoading(const ServerConfig& cfg, int fd = -1);
  ~HttpLoading();
  uint16_t port() const { return port_; }
  // Stops answering and returns the listening socket; connections opened meanwhile close.
  int release();

 private:
  boost::asio::io_context io_;
  // Keeps the loop running even should the acceptor fail, so release() is always answered.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<HttpFront> front_;
  std::thread thread_;
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace omni::server
