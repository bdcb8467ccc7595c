#pragma once
// One HTTP/1.1 client connection of the OpenAI-compatible front, on the daemon's I/O
// thread: reads one request at a time (head within header_timeout, body within
// body_timeout, head and body bounded), answers it, and waits for the next one on a
// keep-alive connection up to idle_timeout. A chat completion goes to the scheduler;
// its tokens come back through asio::post and are written as they come (streaming) or
// gathered into one answer. The client hanging up, not reading (more than
// max_outgoing_bytes waiting) or a write failing cancels its request at once.
// <utility> first: Boost 1.74's asio/awaitable.hpp uses std::exchange without it (GCC 12).
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <array>
#include <chrono>
#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "server/http_errors.h"
#include "server/http_settings.h"
#include "server/openai_chat.h"

namespace omni::server {

// State the front and its connections share; connections may outlive the front's
// listener by a little at shutdown (I/O thread only, but for the counter).
struct HttpShared {
  HttpSettings settings;
  HttpBackend* backend = nullptr;   // null while the model loads
  boost::asio::thread_pool* reader = nullptr;   // parses completion bodies (with a backend)
  std::atomic<int> open{0};         // connections being served (the cap, the metrics)
  bool stopping = false;            // shutdown: no more keep-alive
  int64_t started = 0;              // Unix seconds: "created" of the model object
  uint64_t next_request_id = 1;
  // One warning per 10 s for what a client can repeat at will (not reading its answers).
  std::chrono::steady_clock::time_point last_warning{};
  bool may_warn() {
    const auto now = std::chrono::steady_clock::now();
    if (last_warning != std::chrono::steady_clock::time_point{} && now - last_warning < std::chrono::seconds(10))
      return false;
    last_warning = now;
    return true;
  }
};

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(boost::asio::ip::tcp::socket socket, std::shared_ptr<HttpShared> shared);
  ~HttpConnection();
  void start();
  // Shutdown: closes the connection now when no request of it is running or being
  // answered; otherwise it closes once its answer is written.
  void close_if_idle();
  void close();   // inline: cancels its request, closes the socket

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  enum class State { reading, running, answering };

  void read_next(bool first);
  void read_head();
  void on_head(boost::beast::error_code ec);
  void read_body();
  void on_body(boost::beast::error_code ec);
  // A read that failed on the request itself (head or body over its limit, malformed):
  // answered (413, 400), then the connection drains and closes. False for anything else
  // (a timeout, the client gone), which the caller closes on.
  bool answer_read_error(boost::beast::error_code ec, const char* part);
  // The head is in: where it goes, whether it may (Host, key, content type), and the
  // answer when it may not. Returns false when it was answered.
  bool admit_head(const Request& req);
  void dispatch(const Request& req);
  void start_completion(std::string body);   // parses it off the I/O thread, then submit()
  void submit(ChatCompletion c);
  void on_token(const std::string& text);
  void on_done(const sched::Result& res);
  void watch_peer();   // a running request: EOF from the client cancels it
  // Runs a handler's work: whatever it throws (out of memory, a bug) closes this
  // connection, cancelling its request, and goes no further; the others serve on.
  template <class F>
  void safely(F&& f) noexcept {
    try {
      f();
    } catch (const std::exception& e) {
      log_failure(e.what());
      close();
    } catch (...) {
      log_failure("unknown exception");
      close();
    }
  }
  static void log_failure(const char* what) noexcept;

  // Writing. Everything goes through one bounded queue.
  void send(std::string bytes);
  void write_next();
  void respond(int status, const std::string& content_type, const std::string& body,
               const std::string& extra_headers = "");
  void respond_error(const HttpError& e, const std::string& extra_headers = "");
  void stream_head();
  void stream_event(const std::string& event);   // one SSE event (a chunk on HTTP/1.1)
  void end_stream();
  void answered();   // the whole answer is queued: next request (keep-alive) or close once written
  void linger_close();   // after a refused body: stop sending, drain what the client still sends, close
  void drain_some();

  boost::beast::tcp_stream stream_;
  std::shared_ptr<HttpShared> shared_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  State state_ = State::reading;
  bool closed_ = false;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool writing_ = false;
  bool close_after_write_ = false;
  bool linger_after_write_ = false;
  bool done_answering_ = false;
  std::deque<std::string> out_;
  size_t out_bytes_ = 0;
  // The running completion.
  std::shared_ptr<sched::Ticket> ticket_;
  CompletionMeta meta_;
  bool streaming_ = false, include_usage_ = false, head_sent_ = false;
  std::string text_;   // the answer so far (not streamed)
  std::unique_ptr<std::array<char, 16384>> drain_buf_;   // linger_close only
  size_t linger_left_ = 0;
};

}  // namespace omni::server
