#include "server/session.h"

#include <spdlog/spdlog.h>

#include "ipc/memfd.h"
#include "server/request_options.h"
#include "server/server.h"

namespace omni::server {

namespace asio = boost::asio;
using ipc::ErrorCode;

namespace {

ipc::AsioConnection::Socket adopt(asio::io_context& io, ipc::UniqueFd& fd) {
  ipc::AsioConnection::Socket sock(io);
  sock.assign(asio::local::stream_protocol(), fd.get());   // throws and leaves fd ours on failure
  fd.release();
  return sock;
}

}  // namespace

Session::Session(Server& server, ipc::UniqueFd fd, ipc::PeerCred cred, bool counted)
    : server_(server),
      conn_(ipc::AsioConnection::create(adopt(server.io(), fd), server.limits(), server.config().max_outgoing_bytes)),
      timer_(server.io()),
      idle_timer_(server.io()),
      cred_(cred),
      counted_(counted) {}

Session::~Session() { cancel_requests(); }

void Session::start() {
  spdlog::debug("client connected: pid {} uid {} gid {}", cred_.pid, cred_.uid, cred_.gid);
  auto self = shared_from_this();   // the connection's handlers keep the session until it closes
  conn_->start([self](ipc::Frame&& f) { self->handle(std::move(f)); },
               [self](const ipc::Error& why) { self->on_closed(why); });
  timer_.expires_after(std::chrono::seconds(5));
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->greeted_ || self->closed_) return;
    self->hang_up(0, ErrorCode::not_ready, "no hello within 5 s");
  });
}

void Session::refuse(ErrorCode code, const std::string& message) {
  refusing_ = true;   // frames are read and dropped until the client hangs up
  start();
  send_error(0, code, message);
  timer_.expires_after(std::chrono::seconds(2));
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (auto self = weak.lock(); self && !ec) self->conn_->close();
  });
}

void Session::arm_idle_timer() {
  const double idle_s = server_.config().idle_timeout_seconds;
  if (idle_s <= 0 || closed_) return;
  const auto idle = std::chrono::milliseconds(int64_t(idle_s * 1000));
  idle_timer_.expires_at(last_activity_ + idle);
  idle_timer_.async_wait([weak = weak_from_this(), idle](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->closed_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!self->requests_.empty()) self->touch();   // waiting for answers is not idle
    if (now - self->last_activity_ < idle) {
      self->arm_idle_timer();
      return;
    }
    // Closed without a frame: the SDK sees the closed connection on its next call and
    // reconnects, where a stale error frame would be read as that call's answer.
    spdlog::debug("closing the idle connection of pid {}", self->cred_.pid);
    self->conn_->close();
  });
}

void Session::say_goodbye() { hang_up(0, ErrorCode::not_ready, "omnid is shutting down"); }

void Session::close_now() {
  if (!closed_) conn_->close_now();
}

void Session::on_closed(const ipc::Error& why) {
  if (closed_) return;
  closed_ = true;
  if (why.code == ErrorCode::busy)   // the client does not read: cancel its work rather than buffer
    spdlog::warn("client pid {} is not reading its answers; closed it", cred_.pid);
  // A client that is gone or misbehaving takes its requests with it: the scheduler drops
  // them at its next step and frees their KV caches.
  cancel_requests();
  timer_.cancel();
  idle_timer_.cancel();
  server_.session_closed(counted_);
}

void Session::cancel_requests() {
  for (auto& [id, t] : requests_) t->cancel();
  requests_.clear();
}

void Session::send(const ipc::Message& m) {
  if (!closed_) conn_->send(m);
}

void Session::send_error(uint64_t id, ErrorCode code, const std::string& message) {
  send(ipc::ErrorMsg{id, code, message});
}

void Session::hang_up(uint64_t id, ErrorCode code, const std::string& message) {
  hanging_up_ = true;
  cancel_requests();
  if (!closed_) conn_->send_and_close(ipc::ErrorMsg{id, code, message});
}

void Session::handle(ipc::Frame frame) {
  if (refusing_ || hanging_up_) return;   // frames read after a hang-up are dropped
  touch();
  ipc::Message msg;
  uint64_t rid = 0;
  try {
    msg = ipc::decode_message(frame, server_.limits(), &rid);
  } catch (const ipc::IpcError& e) {
    // Undecodable msgpack means the stream cannot be trusted any more, and a client that
    // has not said hello gets no second chance: both close. Schema errors in a greeted
    // session are answered and the connection stays (docs/protocol.md §4).
    // An id still running gets error{0}: error{id} would be a terminal frame for it.
    if (e.code() == ErrorCode::bad_frame || !greeted_) hang_up(0, e.code(), e.what());
    else send_error(requests_.count(rid) ? 0 : rid, e.code(), e.what());
    return;
  }
  if (auto* h = std::get_if<ipc::Hello>(&msg)) {
    if (greeted_) {
      send_error(0, ErrorCode::bad_message, "a second hello on this connection");
      return;
    }
    if (h->proto_major != ipc::kProtocolMajor) {
      hang_up(0, ErrorCode::unsupported_version,
              "protocol " + std::to_string(h->proto_major) + " not supported (server speaks " +
                  std::to_string(ipc::kProtocolMajor) + ")");
      return;
    }
    greeted_ = true;
    timer_.cancel();
    arm_idle_timer();
    ipc::HelloOk ok;
    ok.proto_minor = std::min(h->proto_minor, ipc::kProtocolMinor);
    ok.server_version = "omnid 0.1.0";
    ok.model = server_.model().name();
    ok.limits = server_.limits();
    send(ok);
    return;
  }
  if (!greeted_) {
    hang_up(0, ErrorCode::not_ready, std::string("'") + ipc::message_type(msg) + "' before the hello handshake");
    return;
  }
  if (auto* g = std::get_if<ipc::Generate>(&msg)) {
    on_generate(std::move(*g), std::move(frame.fds));
  } else if (auto* c = std::get_if<ipc::Cancel>(&msg)) {
    auto it = requests_.find(c->id);
    if (it != requests_.end()) it->second->cancel();   // done follows from the scheduler
  } else if (auto* s = std::get_if<ipc::StatusRequest>(&msg)) {
    sched::Stats st = server_.scheduler().stats();
    ipc::Status out;
    out.id = s->id;
    out.model = server_.model().name();
    out.queue_depth = st.queued;
    out.active_requests = st.active;
    out.tokens_per_s = st.tokens_per_s;
    out.details = server_.status_details(server_.operator_view(cred_));
    send(out);
  } else {
    send_error(0, ErrorCode::bad_message, std::string("a client may not send '") + ipc::message_type(msg) + "'");
  }
}

void Session::on_generate(ipc::Generate g, std::vector<ipc::UniqueFd> fds) {
  if (requests_.count(g.id)) {
    // Not error{id}: that would be a terminal frame for the request still running
    // under this id, whose frames go on. The refusal is the connection's.
    send_error(0, ErrorCode::bad_message,
               "request id " + std::to_string(g.id) + " is already running; the new generate was dropped");
    return;
  }
  sched::Request r;
  r.id = g.id;
  r.messages = ipc::generate_turns(g);
  r.prompt = g.options;
  try {
    for (size_t i = 0; i < g.images.size(); ++i) {
      const ipc::ImageRef& ref = g.images[i];
      if (ref.fd_index >= fds.size())
        throw ipc::IpcError(ErrorCode::bad_message, "images[" + std::to_string(i) + "].fd refers to descriptor " +
                                                        std::to_string(ref.fd_index) + " of " + std::to_string(fds.size()));
      const bool video = ref.format == ipc::ImageFormat::video;
      auto map = std::make_shared<ipc::ImageMapping>(
          ipc::map_sealed_image(fds[ref.fd_index].get(), ref.size, server_.limits(), video));
      ImageInput in;
      in.name = "request " + std::to_string(g.id) + (video ? " video " : " image ") + std::to_string(i);
      in.video = video;
      in.data = map->data();
      in.size = map->size();
      in.keepalive = map;
      if (ref.format == ipc::ImageFormat::rgb) {
        in.rgb_width = int(ref.width);
        in.rgb_height = int(ref.height);
      }
      r.images.push_back(std::move(in));
    }
  } catch (const ipc::IpcError& e) {
    send_error(g.id, e.code(), e.what());
    return;
  }
  AnswerOptions& o = r.options;
  o.max_tokens = int(g.max_tokens);
  o.stop_strings = g.stop;
  try {
    o.sampling = resolve_sampling(server_.model().default_sampling(), g.sampling);
  } catch (const ipc::IpcError& e) {
    send_error(g.id, e.code(), std::string("generate.") + e.what());
    return;
  }
  if (g.deadline_ms) r.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(g.deadline_ms);

  // Events arrive on the scheduler thread; hop to the I/O thread before touching us.
  std::weak_ptr<Session> weak = weak_from_this();
  asio::io_context& io = server_.io();
  const uint64_t id = g.id;
  r.events.on_token = [weak, &io, id](const std::string& text, int32_t tok) {
    asio::post(io, [weak, id, text, tok] {
      if (auto s = weak.lock()) s->send(ipc::Token{id, text, tok});
    });
  };
  r.events.on_done = [weak, &io, id](const sched::Result& res) {
    asio::post(io, [weak, id, res] {
      auto s = weak.lock();
      if (!s) return;
      s->requests_.erase(id);
      s->touch();
      ipc::Done d;
      d.id = id;
      d.reason = wire_reason(res.finish_reason);
      d.prompt_tokens = res.prompt_tokens;
      d.completion_tokens = res.completion_tokens;
      d.image_tokens = res.image_tokens;
      d.timings = {res.queue_ms, res.prefill_ms, res.decode_ms, res.total_ms};
      d.error_code = res.error;
      d.error_message = res.error_message;
      s->send(d);
    });
  };
  auto ticket = server_.scheduler().submit(std::move(r));
  if (!ticket) {
    send_error(id, ErrorCode::busy, "the request queue is full; try again later");
    return;
  }
  requests_[id] = ticket;
}

}  // namespace omni::server
