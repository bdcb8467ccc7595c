#include "server/http_connection.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>

#include "model/sha256.h"

namespace omni::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using ipc::ErrorCode;
using json = nlohmann::json;

namespace {

// Beast 1.74 has its own string_view (boost::string_view): seen as std's here.
std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

constexpr size_t kLingerBytes = 16u << 20;   // drained after a refused body before closing
constexpr size_t kInlineBodyBytes = 64u << 10;   // completion bodies read on the I/O thread

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return r;
}

// Host names a loopback listener answers to: "localhost", 127.x.y.z, [::1], any port.
bool loopback_host(std::string_view host) {
  std::string h = lower(host);
  if (!h.empty() && h[0] == '[') {
    const auto close = h.find(']');
    return close != std::string::npos && h.substr(1, close - 1) == "::1";
  }
  if (const auto colon = h.find(':'); colon != std::string::npos) h = h.substr(0, colon);
  return h == "localhost" || h.ends_with(".localhost") || h.rfind("127.", 0) == 0;
}

// Compared as SHA-256 digests in constant time: neither the key's bytes nor its length
// leak through the time a wrong guess takes.
bool key_matches(std::string_view given, const std::string& key) {
  const Sha256 a = sha256(reinterpret_cast<const uint8_t*>(given.data()), given.size());
  const Sha256 b = sha256(reinterpret_cast<const uint8_t*>(key.data()), key.size());
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

enum class Route { none, health, models, model, metrics, chat };

Route route_of(std::string_view path) {
  if (path == "/health") return Route::health;
  if (path == "/v1/models") return Route::models;
  if (path.rfind("/v1/models/", 0) == 0 && path.size() > 11) return Route::model;
  if (path == "/metrics") return Route::metrics;
  if (path == "/v1/chat/completions") return Route::chat;
  return Route::none;
}

std::string to_hex(size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), d[n & 15]);
    n >>= 4;
  } while (n);
  return s;
}

bool is_http_parse_error(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

}  // namespace

HttpConnection::HttpConnection(tcp::socket socket, std::shared_ptr<HttpShared> shared)
    : stream_(std::move(socket)), shared_(std::move(shared)) {
  shared_->open.fetch_add(1);
}

HttpConnection::~HttpConnection() {
  if (ticket_) ticket_->cancel();
  if (!closed_) shared_->open.fetch_sub(1);
}

void HttpConnection::start() {
  safely([&] { read_next(true); });
}

void HttpConnection::log_failure(const char* what) noexcept {
  try {
    spdlog::error("http: a connection failed and was closed: {}", what);
  } catch (...) {
  }
}

void HttpConnection::close() {
  if (closed_) return;
  closed_ = true;
  // A client gone or misbehaving takes its request with it: the scheduler drops it at its
  // next step and frees its KV blocks.
  if (ticket_) {
    ticket_->cancel();
    ticket_.reset();
  }
  out_.clear();
  beast::error_code ignore;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignore);
  stream_.socket().close(ignore);
  shared_->open.fetch_sub(1);
}

void HttpConnection::close_if_idle() {
  keep_alive_ = false;   // whatever is being answered is the last answer
  if (state_ == State::reading) close();
}

void HttpConnection::read_next(bool first) {
  if (closed_) return;
  state_ = State::reading;
  parser_.emplace();
  parser_->header_limit(uint32_t(std::min<size_t>(shared_->settings.max_header_bytes, UINT32_MAX)));
  parser_->body_limit(uint64_t(shared_->settings.max_body_bytes));
  ticket_.reset();
  streaming_ = include_usage_ = head_sent_ = false;
  text_.clear();
  close_after_write_ = linger_after_write_ = done_answering_ = false;
  keep_alive_ = true;
  if (first || buffer_.size() > 0) {
    read_head();
    return;
  }
  // Between requests: the next one's first byte within idle_timeout, then its head
  // within header_timeout, so an idle keep-alive client is not cut off by the latter.
  stream_.expires_after(shared_->settings.idle_timeout);
  stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
    if (self->closed_) return;
    if (ec) {
      self->close();   // idle past the timeout, or gone
      return;
    }
    self->buffer_.commit(n);
    self->safely([&] { self->read_head(); });
  });
}

void HttpConnection::read_head() {
  stream_.expires_after(shared_->settings.header_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->safely([&] { self->on_head(ec); }); });
}

bool HttpConnection::answer_read_error(beast::error_code ec, const char* part) {
  std::optional<HttpError> e;
  if (ec == http::error::header_limit)
    e = HttpError::from_code(ErrorCode::too_large, "the request head exceeds " +
                                                       std::to_string(shared_->settings.max_header_bytes) +
                                                       " bytes (http_max_header_bytes)");
  else if (ec == http::error::body_limit)   // from the head: its Content-Length is over the limit
    e = HttpError::from_code(ErrorCode::too_large, "the body exceeds the limit of " +
                                                       std::to_string(shared_->settings.max_body_bytes) +
                                                       " bytes (http_max_body_bytes)");
  else if (is_http_parse_error(ec) && ec != http::error::end_of_stream && ec != http::error::partial_message)
    e = HttpError::from_code(ErrorCode::bad_message, std::string("malformed HTTP ") + part + ": " + ec.message());
  if (!e) return false;
  keep_alive_ = false;
  linger_after_write_ = true;
  respond_error(*e);
  return true;
}

void HttpConnection::on_head(beast::error_code ec) {
  if (closed_) return;
  if (ec && answer_read_error(ec, "request")) return;
  if (ec) {   // the header timeout, or the client went away: nothing to answer
    close();
    return;
  }
  const Request& req = parser_->get();
  http10_ = req.version() < 11;
  keep_alive_ = req.keep_alive() && !shared_->stopping;
  if (!admit_head(req)) return;
  if (parser_->is_done()) {
    dispatch(req);
    return;
  }
  // curl sends this for bodies over 1 MiB and waits a second for it.
  if (!http10_ && beast::iequals(req[http::field::expect], "100-continue")) send("HTTP/1.1 100 Continue\r\n\r\n");
  read_body();
}

void HttpConnection::read_body() {
  stream_.expires_after(shared_->settings.body_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->safely([&] { self->on_body(ec); }); });
}

void HttpConnection::on_body(beast::error_code ec) {
  if (closed_) return;
  if (ec && answer_read_error(ec, "body")) return;
  if (ec) {   // the body timeout, or gone
    close();
    return;
  }
  dispatch(parser_->get());
}

bool HttpConnection::admit_head(const Request& req) {
  auto refuse = [&](const HttpError& e, const std::string& extra = "") {
    // A body not read yet cannot be skipped reliably: answer, then close.
    if (!parser_->is_done()) {
      keep_alive_ = false;
      linger_after_write_ = true;
    }
    respond_error(e, extra);
    return false;
  };
  const HttpSettings& s = shared_->settings;
  const std::string_view target = sv(req.target());
  const std::string_view path = target.substr(0, target.find('?'));
  if (s.loopback) {
    // A web page the user visits may resolve its own name to 127.0.0.1 (DNS rebinding)
    // and then talk to this port as its own origin; its requests still name its host.
    const std::string_view host = sv(req[http::field::host]);
    if (!host.empty() && !loopback_host(host))
      return refuse(HttpError::from_code(ErrorCode::bad_message,
                                         "Host '" + std::string(host) +
                                             "': this server listens on loopback and answers only requests to "
                                             "localhost, 127.0.0.1 or [::1]"));
  }
  const Route route = route_of(path);
  if (route == Route::none)
    return refuse(HttpError::not_found(std::string(sv(req.method_string())) + " " + std::string(path) +
                                       ": no such route (POST /v1/chat/completions, GET /v1/models, GET /health, "
                                       "GET /metrics)"));
  const http::verb want = route == Route::chat ? http::verb::post : http::verb::get;
  if (req.method() != want)
    return refuse(HttpError::method_not_allowed(std::string(sv(req.method_string())) + " " + std::string(path) +
                                                ": only " + std::string(sv(http::to_string(want))) + " is allowed"),
                  "Allow: " + std::string(sv(http::to_string(want))) + "\r\n");
  if (route != Route::health && !s.api_key.empty()) {
    const std::string_view auth = sv(req[http::field::authorization]);
    if (auth.size() < 7 || lower(auth.substr(0, 7)) != "bearer ")
      return refuse(HttpError::invalid_api_key("missing API key: send the header 'Authorization: Bearer <key>'"),
                    "WWW-Authenticate: Bearer\r\n");
    std::string_view token = auth.substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (!key_matches(token, s.api_key))
      return refuse(HttpError::invalid_api_key("incorrect API key"), "WWW-Authenticate: Bearer\r\n");
  }
  if (route == Route::chat) {
    // Browsers send application/json across origins only after a preflight this server
    // never grants, so requiring it keeps web pages from posting to a local daemon.
    const std::string ct = lower(sv(req[http::field::content_type]));
    if (ct.rfind("application/json", 0) != 0)
      return refuse(HttpError::unsupported_media_type("Content-Type must be application/json, got '" + ct + "'"));
  }
  if (!shared_->backend) {
    if (route == Route::health) {
      if (!parser_->is_done()) {
        keep_alive_ = false;
        linger_after_write_ = true;
      }
      respond(503, "application/json", R"({"status":"loading"})");
      return false;
    }
    return refuse(HttpError::from_code(ErrorCode::not_ready, "the model is still loading; try again shortly"));
  }
  if (route == Route::chat && shared_->backend->draining())
    return refuse(HttpError::from_code(ErrorCode::not_ready, "omnid is shutting down"));
  return true;
}

void HttpConnection::dispatch(const Request& req) {
  stream_.expires_never();
  const std::string_view target = sv(req.target());
  const std::string path(target.substr(0, target.find('?')));
  HttpBackend& b = *shared_->backend;
  const std::string& name = b.chat_context().model_name;
  const json model = {{"id", name}, {"object", "model"}, {"created", shared_->started}, {"owned_by", "omnid"}};
  switch (route_of(path)) {
    case Route::health:
      if (b.draining()) respond(503, "application/json", R"({"status":"draining"})");
      else respond(200, "application/json", R"({"status":"ok"})");
      return;
    case Route::models:
      respond(200, "application/json", dump_json({{"object", "list"}, {"data", json::array({model})}}));
      return;
    case Route::model:
      if (path.substr(11) == name) respond(200, "application/json", dump_json(model));
      else respond_error(HttpError::model_not_found("model '" + path.substr(11) + "' is not served here; this daemon serves '" + name + "'"));
      return;
    case Route::metrics:
      respond(200, "text/plain; version=0.0.4", b.prometheus_text());
      return;
    case Route::chat:
      start_completion(std::move(parser_->get().body()));
      return;
    case Route::none: break;
  }
  respond_error(HttpError::not_found("no such route"));
}

void HttpConnection::start_completion(std::string body) {
  state_ = State::running;
  const ChatContext* ctx = &shared_->backend->chat_context();
  // Reads the body; on `error` the answer, else the request.
  auto read = [ctx](const std::string& text, std::optional<ChatCompletion>& parsed, std::optional<HttpError>& error) {
    try {
      parsed = parse_chat_completion(text, *ctx);
    } catch (const HttpFailure& f) {
      error = f.error();
    } catch (const std::exception& e) {   // out of memory, a bug: this request only
      error = HttpError::from_code(ErrorCode::internal, std::string("reading the request failed: ") + e.what());
    }
  };
  // A small body (text, a small picture) is read here: well under a millisecond, less
  // than the hop to another thread costs. A large one, or one naming a file to read, goes
  // to the front's reader thread: JSON and base64 take tens of milliseconds per MiB,
  // which the I/O thread owes every other connection's stream.
  if (body.size() <= kInlineBodyBytes && body.find("file:") == std::string::npos) {
    std::optional<ChatCompletion> parsed;
    std::optional<HttpError> error;
    read(body, parsed, error);
    if (error) respond_error(*error);
    else submit(std::move(*parsed));
    return;
  }
  auto ex = stream_.get_executor();
  asio::post(*shared_->reader, [self = shared_from_this(), ex, read, body = std::move(body)]() mutable {
    auto parsed = std::make_shared<std::optional<ChatCompletion>>();
    auto error = std::make_shared<std::optional<HttpError>>();
    read(body, *parsed, *error);
    body = std::string();   // freed here, not on the I/O thread
    // `self` goes with the handler, so the connection is released on the I/O thread.
    asio::post(ex, [self = std::move(self), parsed, error] {
      self->safely([&] {
        if (*error) self->respond_error(**error);
        else self->submit(std::move(**parsed));
      });
    });
  });
}

void HttpConnection::submit(ChatCompletion c) {
  if (closed_ || state_ != State::running) return;   // the client left while it was read
  HttpBackend& b = *shared_->backend;
  if (b.draining()) {   // began while the body was read
    respond_error(HttpError::from_code(ErrorCode::not_ready, "omnid is shutting down"));
    return;
  }
  meta_ = new_completion_meta(b.chat_context().model_name);
  streaming_ = c.stream;
  include_usage_ = c.stream && c.include_usage;
  sched::Request& r = c.request;
  r.id = shared_->next_request_id++;
  // Events come on the scheduler's threads: hop to the I/O thread before touching the
  // connection. on_done holds the connection until the scheduler is done with the request.
  auto ex = stream_.get_executor();
  std::weak_ptr<HttpConnection> weak = weak_from_this();
  r.events.on_token = [weak, ex](const std::string& text, int32_t) {
    asio::post(ex, [weak, text] {
      if (auto s = weak.lock()) s->safely([&] { s->on_token(text); });
    });
  };
  r.events.on_done = [self = shared_from_this(), ex](const sched::Result& res) {
    asio::post(ex, [self, res] { self->safely([&] { self->on_done(res); }); });
  };
  ticket_ = b.submit(std::move(r));
  if (!ticket_) {
    respond_error(HttpError::from_code(ErrorCode::busy, "the request queue is full; try again later"));
    return;
  }
  watch_peer();
}

void HttpConnection::watch_peer() {
  if (closed_ || state_ != State::running) return;
  stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    if (ec || self->closed_ || self->state_ != State::running) return;
    char b;
    const ssize_t n = ::recv(self->stream_.socket().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      spdlog::debug("http: the client left; its request is cancelled");
      self->close();
      return;
    }
    // n > 0: its next request, pipelined; read once this one is answered. A client that
    // leaves after that is noticed when its answer cannot be written.
    if (n < 0) self->watch_peer();
  });
}

void HttpConnection::on_token(const std::string& text) {
  if (closed_ || state_ != State::running) return;
  if (!streaming_) {
    text_ += text;
    return;
  }
  if (!head_sent_) stream_head();
  if (!text.empty()) stream_event(chunk_event(meta_, false, text, std::nullopt, include_usage_));
}

void HttpConnection::on_done(const sched::Result& res) {
  if (closed_) return;   // it was cancelled because the client left
  ticket_.reset();
  if (state_ != State::running) return;
  const std::optional<std::string> reason =
      res.error == ErrorCode::ok ? openai_finish_reason(res.finish_reason) : std::nullopt;
  if (!reason) {
    HttpError e;
    if (res.error != ErrorCode::ok) e = HttpError::from_code(res.error, res.error_message);
    else if (res.finish_reason == FinishReason::cancelled)   // only the drain cancels what we did not
      e = HttpError::from_code(ErrorCode::not_ready, "the request was cancelled: omnid is shutting down");
    else
      e = HttpError::from_code(ErrorCode::internal,
                               res.error_message.empty() ? std::string("the request failed") : res.error_message);
    if (head_sent_) {   // the status is sent: the error goes in the stream, which ends
      keep_alive_ = false;
      stream_event(error_event(e.body()));
      end_stream();
    } else {
      respond_error(e);
    }
    return;
  }
  if (!streaming_) {
    respond(200, "application/json", completion_body(meta_, text_, *reason, res.prompt_tokens, res.completion_tokens));
    return;
  }
  if (!head_sent_) stream_head();
  stream_event(chunk_event(meta_, false, std::nullopt, reason, include_usage_));
  if (include_usage_) stream_event(usage_event(meta_, res.prompt_tokens, res.completion_tokens));
  stream_event(std::string(kDoneEvent));
  end_stream();
}

void HttpConnection::send(std::string bytes) {
  if (closed_) return;
  if (out_bytes_ + bytes.size() > shared_->settings.max_outgoing_bytes) {
    // The client does not read: cancel its work rather than buffer without end.
    if (shared_->may_warn())
      spdlog::warn("http: a client is not reading its answer ({} bytes waiting); closed it", out_bytes_);
    close();
    return;
  }
  out_bytes_ += bytes.size();
  out_.push_back(std::move(bytes));
  if (!writing_) write_next();
}

void HttpConnection::write_next() {
  if (closed_) return;
  if (out_.empty()) {
    writing_ = false;
    if (!done_answering_) return;
    done_answering_ = false;
    if (linger_after_write_) linger_close();
    else if (close_after_write_) close();
    else read_next(false);
    return;
  }
  writing_ = true;
  // Everything queued goes in one write (a stream's small events pile up meanwhile).
  auto buf = std::make_shared<std::string>();
  for (auto& s : out_) *buf += s;
  out_.clear();
  // A reader that stalls altogether. Every operation on stream_ sets its own expiry first:
  // an expired one left standing would end the next at once.
  stream_.expires_after(shared_->settings.body_timeout);
  asio::async_write(stream_, asio::buffer(*buf), [self = shared_from_this(), buf](beast::error_code ec, size_t) {
    self->out_bytes_ -= std::min(self->out_bytes_, buf->size());
    if (self->closed_) return;
    if (ec) {
      self->close();   // gone, or not reading: its request is cancelled
      return;
    }
    self->safely([&] { self->write_next(); });
  });
}

void HttpConnection::respond(int status, const std::string& content_type, const std::string& body,
                             const std::string& extra_headers) {
  state_ = State::answering;
  if (shared_->stopping) keep_alive_ = false;
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + http_reason(status) +
                     "\r\nServer: omnid\r\nContent-Type: " + content_type +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers +
                     (keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n") + "\r\n";
  send(head + body);
  answered();
}

void HttpConnection::respond_error(const HttpError& e, const std::string& extra_headers) {
  spdlog::debug("http: {} {}: {}", e.status, e.code, e.message);
  respond(e.status, "application/json", e.body(), extra_headers);
}

void HttpConnection::stream_head() {
  head_sent_ = true;
  if (http10_ || shared_->stopping) keep_alive_ = false;
  std::string head = "HTTP/1.1 200 OK\r\nServer: omnid\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n";
  // HTTP/1.0 has no chunks: the stream ends with the connection.
  if (!http10_) head += "Transfer-Encoding: chunked\r\n";
  head += keep_alive_ ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  send(std::move(head));
  stream_event(chunk_event(meta_, true, std::string(), std::nullopt, include_usage_));
}

void HttpConnection::stream_event(const std::string& event) {
  if (http10_) send(event);
  else send(to_hex(event.size()) + "\r\n" + event + "\r\n");
}

void HttpConnection::end_stream() {
  state_ = State::answering;
  if (!http10_) send("0\r\n\r\n");
  answered();
}

void HttpConnection::answered() {
  if (closed_) return;
  done_answering_ = true;
  if (!keep_alive_) close_after_write_ = true;
  if (!writing_) write_next();
}

void HttpConnection::linger_close() {
  // Closing with unread bytes from the client makes the kernel reset the connection,
  // which can destroy the answer before the client reads it: stop sending, read and
  // drop what still comes (bounded in time and bytes), then close.
  state_ = State::answering;
  beast::error_code ignore;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignore);
  stream_.expires_after(std::chrono::seconds(2));
  linger_left_ = kLingerBytes;
  drain_buf_ = std::make_unique<std::array<char, 16384>>();
  drain_some();
}

void HttpConnection::drain_some() {
  stream_.async_read_some(asio::buffer(*drain_buf_), [self = shared_from_this()](beast::error_code ec, size_t n) {
    if (ec || self->closed_ || n >= self->linger_left_) {
      self->close();   // EOF (the client read the answer and left), the 2 s, or the bytes
      return;
    }
    self->linger_left_ -= n;
    self->drain_some();
  });
}

}  // namespace omni::server
