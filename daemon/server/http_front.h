#pragma once
// The OpenAI-compatible HTTP listener (docs/http.md) on the daemon's I/O thread: accepts
// up to http_max_connections connections (a newcomer past the cap gets a short 503 and
// is closed; nothing waits for it), waits and retries when accepting fails (out of
// descriptors) instead of ending, and closes its connections at shutdown.
// <utility> first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it (GCC 12).
#include <utility>
#include <boost/asio.hpp>

#include <boost/asio/thread_pool.hpp>

#include <memory>
#include <vector>

#include "server/http_settings.h"
#include "server/server_config.h"

namespace omni::server {

class HttpConnection;
struct HttpShared;

// A bound, listening TCP socket for `addr` (SO_REUSEADDR; IPv6 only for an IPv6
// address). Throws Error naming the address when it cannot be had.
int bind_http_listener(const ListenAddress& addr);

class HttpFront {
 public:
  // Takes `listen_fd` (from bind_http_listener). `backend` null: the model is loading and
  // every request is answered 503.
  HttpFront(boost::asio::io_context& io, int listen_fd, HttpSettings settings, HttpBackend* backend);
  ~HttpFront();
  uint16_t port() const;
  int open_connections() const;
  // Stops accepting and hands the listening socket back (the loading front gives it to
  // the serving one, so the port is never closed in between); its connections close.
  int release();
  // Shutdown: stops accepting, closes the connections between requests; the others
  // close once their answer is written.
  void close();
  void close_all();   // what is still open (the I/O loop has ended)

 private:
  void accept_next();
  void track(const std::shared_ptr<HttpConnection>& c);
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  std::shared_ptr<HttpShared> shared_;
  // One thread reading completion bodies (JSON, base64, file:// pictures) off the I/O
  // thread; joined when the front goes.
  std::unique_ptr<boost::asio::thread_pool> reader_;
  std::vector<std::weak_ptr<HttpConnection>> live_;
  uint64_t accept_failures_ = 0;
};

}  // namespace omni::server
