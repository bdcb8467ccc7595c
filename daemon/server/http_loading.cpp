#include "server/http_loading.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <future>

#include "server/http_front.h"

namespace omni::server {

HttpLoading::HttpLoading(const ServerConfig& cfg, int fd) {
  if (fd < 0) {
    const ListenAddress addr = parse_listen_address(cfg.http_listen);
    fd = bind_http_listener(addr);
    if (!addr.loopback && cfg.api_key.empty())
      spdlog::warn("http: listening on {} (not loopback) without an api_key: anyone who can reach it may use the model",
                   cfg.http_listen);
  }
  front_ = std::make_unique<HttpFront>(io_, fd, HttpSettings::from(cfg), /*backend=*/nullptr);
  port_ = front_->port();
  spdlog::info("http: OpenAI-compatible API on port {} (503 until the model is loaded)", port_);
  thread_ = std::thread([this] {
    for (;;) {
      try {
        io_.run();
        break;
      } catch (const std::exception& e) {
        spdlog::error("http (loading): the I/O loop caught an error and serves on: {}", e.what());
      }
    }
  });
}

HttpLoading::~HttpLoading() {
  if (front_) ::close(release());
}

int HttpLoading::release() {
  if (!front_) return fd_;
  // On the loop's own thread: the front is only ever touched there.
  std::promise<int> fd;
  boost::asio::post(io_, [&] {
    try {
      fd.set_value(front_->release());
    } catch (...) {
      fd.set_exception(std::current_exception());
    }
  });
  std::exception_ptr err;
  try {
    fd_ = fd.get_future().get();
  } catch (...) {
    err = std::current_exception();
  }
  work_.reset();
  io_.stop();
  thread_.join();
  front_.reset();
  if (err) std::rethrow_exception(err);
  return fd_;
}

}  // namespace omni::server
