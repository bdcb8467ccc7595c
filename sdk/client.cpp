#include "sdk/client.h"

#include <algorithm>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "ipc/memfd.h"
#include "ipc/socket.h"

namespace omni::sdk {

namespace {
Error to_error(const ipc::IpcError& e) { return Error(e.code(), e.what()); }

uint64_t initial_id() {
  // Random high bits keep ids of several clients apart in daemon logs.
  std::random_device rd;
  return ((static_cast<uint64_t>(rd()) & 0xffffu) << 40) | 1u;
}

std::string errno_text() { return std::strerror(errno); }

// A descriptor for reading a picture file. O_NONBLOCK: opening a FIFO without a
// writer must not block (fstat refuses it next); O_NOCTTY: a terminal is not adopted.
ipc::UniqueFd open_image_file(const std::string& path, const std::string& kind) {
  ipc::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) throw Error(ErrorCode::bad_image, "cannot open " + kind + " file " + path + ": " + errno_text());
  return fd;
}

// The size of the regular file behind `fd` (the descriptor just opened, so the checked
// file is the one read), refused when it is not one or is larger than max_bytes.
// `kind`: "image" or "video", for the messages and the limit's name.
uint64_t checked_image_file_size(int fd, const std::string& path, uint64_t max_bytes, const std::string& kind) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(ErrorCode::bad_image, "cannot stat " + kind + " file " + path + ": " + errno_text());
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::bad_image, kind + " file " + path + " is not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) throw Error(ErrorCode::bad_image, "empty " + kind + " file: " + path);
  if (size > max_bytes)
    throw Error(ErrorCode::too_large, kind + " file " + path + " is " + std::to_string(size) + " bytes, over the daemon's max_" +
                                          kind + "_bytes " + std::to_string(max_bytes));
  return size;
}

// Read the whole file, never more than max_bytes + 1 bytes: st_size was checked, but
// the file may have grown since.
std::vector<uint8_t> read_bounded(int fd, const std::string& path, uint64_t size_hint, uint64_t max_bytes,
                                  const std::string& kind) {
  // One byte past the limit tells "too large" from "exactly at it" (saturating: no limit stays none).
  const uint64_t cap = max_bytes == UINT64_MAX ? max_bytes : max_bytes + 1;
  std::vector<uint8_t> bytes(static_cast<std::size_t>(std::min(size_hint + 1, cap)));
  std::size_t got = 0;
  for (;;) {
    if (got == bytes.size()) {
      if (got >= cap) break;
      bytes.resize(static_cast<std::size_t>(std::min<uint64_t>(uint64_t{got} * 2, cap)));
    }
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(ErrorCode::bad_image, "cannot read " + kind + " file " + path + ": " + errno_text());
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > max_bytes)
    throw Error(ErrorCode::too_large, kind + " file " + path + " grew past the daemon's max_" + kind + "_bytes " +
                                          std::to_string(max_bytes) + " while being read");
  if (got == 0) throw Error(ErrorCode::bad_image, "empty " + kind + " file: " + path);
  bytes.resize(got);
  return bytes;
}

// NaN fails every range test, so an unchecked one would reach the daemon (or, in the C
// API and the plugin, fall through to "the model's default"): refuse it here, by name.
void check_finite(const char* name, const std::optional<double>& v) {
  if (v && !std::isfinite(*v))
    throw Error(ErrorCode::bad_message,
                std::string("sampling.") + name + " is " + std::to_string(*v) + ": sampling values must be finite");
}

void check_sampling(const ipc::Sampling& s) {
  check_finite("temperature", s.temperature);
  check_finite("top_p", s.top_p);
  check_finite("repetition_penalty", s.repetition_penalty);
}
}  // namespace

// ------------------------------------------------------------------ Image
Image Image::from_bytes(std::span<const uint8_t> encoded) {
  try {
    Image im;
    im.fd_ = std::make_shared<ipc::UniqueFd>(ipc::make_sealed_memfd(encoded, "omni-image"));
    im.size_ = encoded.size();
    return im;
  } catch (const ipc::IpcError& e) {
    throw to_error(e);
  }
}

Image Image::from_file(const std::string& path, uint64_t max_bytes) {
  const ipc::UniqueFd fd = open_image_file(path, "image");
  const uint64_t size = checked_image_file_size(fd.get(), path, max_bytes, "image");
  return from_bytes(read_bounded(fd.get(), path, size, max_bytes, "image"));
}

Image Image::video_from_bytes(std::span<const uint8_t> encoded) {
  Image im = from_bytes(encoded);
  im.format_ = ipc::ImageFormat::video;
  return im;
}

Image Image::video_from_file(const std::string& path, uint64_t max_bytes) {
  const ipc::UniqueFd fd = open_image_file(path, "video");
  const uint64_t size = checked_image_file_size(fd.get(), path, max_bytes, "video");
  return video_from_bytes(read_bounded(fd.get(), path, size, max_bytes, "video"));
}

Image Image::from_rgb(std::span<const uint8_t> rgb, uint32_t width, uint32_t height) {
  if (width == 0 || height == 0 || uint64_t{width} * height * 3 != rgb.size())
    throw Error(ErrorCode::bad_image, "rgb buffer size must be width*height*3");
  Image im = from_bytes(rgb);
  im.format_ = ipc::ImageFormat::rgb;
  im.width_ = width;
  im.height_ = height;
  return im;
}

Image Image::from_sealed_memfd(ipc::UniqueFd fd, uint64_t size, ipc::ImageFormat format, uint32_t width,
                               uint32_t height) {
  try {
    ipc::Limits unlimited;
    unlimited.max_image_bytes = UINT64_MAX;
    unlimited.max_video_bytes = UINT64_MAX;
    (void)ipc::map_sealed_image(fd.get(), size, unlimited);  // same checks as the daemon
  } catch (const ipc::IpcError& e) {
    throw to_error(e);
  }
  Image im;
  im.fd_ = std::make_shared<ipc::UniqueFd>(std::move(fd));
  im.size_ = size;
  im.format_ = format;
  im.width_ = width;
  im.height_ = height;
  return im;
}

// ------------------------------------------------------------------ Client
Client::Client(ClientOptions options) : opts_(std::move(options)), next_id_(initial_id()) {}

Client::~Client() { close(); }

uint64_t Client::next_request_id() noexcept { return next_id_.fetch_add(1, std::memory_order_relaxed); }

void Client::close() noexcept {
  std::lock_guard lk(write_mu_);
  fd_.reset();
  reader_.reset();
}

void Client::drop_locked() noexcept {
  std::lock_guard lk(write_mu_);
  fd_.reset();
  reader_.reset();
}

bool Client::alive_locked() noexcept {
  if (!fd_) return false;
  pollfd p{fd_.get(), static_cast<short>(POLLIN | POLLRDHUP), 0};
  if (::poll(&p, 1, 0) <= 0) return true;
  if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) {
    // maybe unread frames (e.g. a final error) remain, but the peer is gone
    return false;
  }
  if (p.revents & POLLIN) {
    char c;
    const ssize_t n = ::recv(fd_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;
  }
  return true;
}

ipc::Frame Client::read_frame_locked(int timeout_ms) {
  return ipc::recv_frame(fd_.get(), *reader_, timeout_ms);
}

void Client::ensure_connected_locked(bool* reused) {
  if (reused) *reused = false;
  if (fd_ && alive_locked()) {
    if (reused) *reused = true;
    return;
  }
  drop_locked();
  try {
    ipc::UniqueFd fd = ipc::connect_unix(opts_.socket_path);
    ipc::Hello h;
    h.client = opts_.client_name.substr(0, 256);
    ipc::send_frame(fd.get(), ipc::encode_message(h));
    ipc::Limits read_limits;  // server frames: no descriptors allowed
    read_limits.max_fds_per_frame = 0;
    auto reader = std::make_unique<ipc::FrameReader>(read_limits);
    ipc::Frame f = ipc::recv_frame(fd.get(), *reader, opts_.handshake_timeout_ms);
    ipc::Message m = ipc::decode_message(f, read_limits);
    if (auto* e = std::get_if<ipc::ErrorMsg>(&m)) throw Error(e->code, "daemon refused the connection: " + e->message);
    auto* ok = std::get_if<ipc::HelloOk>(&m);
    if (!ok) throw Error(ErrorCode::bad_message, std::string("expected hello_ok, got ") + ipc::message_type(m));
    if (ok->proto_major != ipc::kProtocolMajor)
      throw Error(ErrorCode::unsupported_version, "daemon speaks protocol " + std::to_string(ok->proto_major));
    std::lock_guard lk(write_mu_);
    server_ = *ok;
    fd_ = std::move(fd);
    reader_ = std::move(reader);
  } catch (const ipc::IpcError& e) {
    throw to_error(e);
  }
}

ipc::HelloOk Client::connect() {
  std::lock_guard lk(call_mu_);
  ensure_connected_locked(nullptr);
  return server_;
}

void Client::cancel(uint64_t request_id) noexcept {
  try {
    std::lock_guard lk(write_mu_);
    if (fd_ && active_id_ == request_id && request_id != 0) {
      ipc::send_frame(fd_.get(), ipc::encode_message(ipc::Cancel{request_id}), {}, 1000);
    } else if (request_id != 0) {
      pre_cancelled_.push_back(request_id);
      if (pre_cancelled_.size() > 256) pre_cancelled_.pop_front();
    }
  } catch (...) {
    // best effort: a dead connection ends the request anyway
  }
}

ipc::Done Client::generate(const GenerateRequest& req, const TokenCallback& on_token, uint64_t* assigned_id) {
  check_sampling(req.sampling);
  std::lock_guard call(call_mu_);
  const uint64_t id = req.request_id ? req.request_id : next_request_id();
  if (assigned_id) *assigned_id = id;
  {
    std::lock_guard lk(write_mu_);
    for (auto it = pre_cancelled_.begin(); it != pre_cancelled_.end(); ++it) {
      if (*it == id) {
        pre_cancelled_.erase(it);
        ipc::Done d;
        d.id = id;
        d.reason = ipc::FinishReason::cancelled;
        return d;
      }
    }
  }
  ipc::Generate g;
  g.id = id;
  g.prompt = req.prompt;
  g.messages = req.messages;
  // A part names an attachment by index; whether it is a video part follows from it.
  for (auto& t : g.messages)
    for (auto& part : t.parts)
      if (part.is_image() && size_t(part.image) < req.images.size())
        part.video = req.images[size_t(part.image)].format() == ipc::ImageFormat::video;
  g.system = req.system;
  g.options = req.options;
  g.max_tokens = req.max_tokens;
  g.sampling = req.sampling;
  g.stop = req.stop;
  g.deadline_ms = req.deadline_ms;
  std::vector<int> fds;
  for (std::size_t i = 0; i < req.images.size(); ++i) {
    const Image& im = req.images[i];
    if (im.fd() < 0) throw Error(ErrorCode::bad_image, "image " + std::to_string(i) + " is empty");
    g.images.push_back(ipc::ImageRef{static_cast<uint32_t>(i), im.size(), im.format(), im.width(), im.height()});
    fds.push_back(im.fd());
  }
  std::vector<uint8_t> frame;
  try {
    ipc::check_conversation(g);
    frame = ipc::encode_message(g);
  } catch (const ipc::IpcError& e) {
    throw to_error(e);
  }

  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    ensure_connected_locked(&reused);
    const ipc::Limits& lim = server_.limits;
    const bool needs_1_1 = !g.messages.empty() || !g.system.empty() || g.options.max_slice_nums ||
                           g.options.use_image_id || g.options.enable_thinking;
    if (needs_1_1 && server_.proto_minor < 1)
      throw Error(ErrorCode::unsupported_version, "the daemon speaks protocol 1." + std::to_string(server_.proto_minor) +
                                                      ": messages, system and picture options need 1.1");
    const bool needs_1_2 = std::any_of(req.images.begin(), req.images.end(),
                                       [](const Image& im) { return im.format() == ipc::ImageFormat::video; });
    if (needs_1_2 && server_.proto_minor < 2)
      throw Error(ErrorCode::unsupported_version, "the daemon speaks protocol 1." + std::to_string(server_.proto_minor) +
                                                      ": videos need 1.2");
    if (req.images.size() > lim.max_images || fds.size() > lim.max_fds_per_frame)
      throw Error(ErrorCode::too_large, "too many images: daemon accepts " + std::to_string(lim.max_images));
    if (frame.size() - ipc::kFrameHeaderBytes > lim.max_frame_bytes)
      throw Error(ErrorCode::too_large, "request frame exceeds the daemon's max_frame_bytes");
    for (const auto& im : req.images) {
      if (im.format() == ipc::ImageFormat::video) {
        if (im.size() > lim.max_video_bytes) throw Error(ErrorCode::too_large, "video exceeds the daemon's max_video_bytes");
      } else if (im.size() > lim.max_image_bytes) {
        throw Error(ErrorCode::too_large, "image exceeds the daemon's max_image_bytes");
      }
    }
    try {
      std::lock_guard lk(write_mu_);
      ipc::send_frame(fd_.get(), frame, fds, opts_.io_timeout_ms);
      active_id_ = id;
      break;
    } catch (const ipc::IpcError& e) {
      drop_locked();
      if (e.code() == ErrorCode::unavailable && reused && attempt == 0) continue;  // stale connection
      throw to_error(e);
    }
  }

  struct ClearActive {
    Client* c;
    ~ClearActive() {
      std::lock_guard lk(c->write_mu_);
      c->active_id_ = 0;
    }
  } clear_active{this};

  try {
    for (;;) {
      ipc::Frame f = read_frame_locked(opts_.io_timeout_ms);
      ipc::Message m = ipc::decode_message(f, reader_->limits());
      if (auto* t = std::get_if<ipc::Token>(&m)) {
        if (t->id != id) continue;
        if (on_token) {
          try {
            on_token(*t);
          } catch (...) {
            drop_locked();
            throw;
          }
        }
      } else if (auto* d = std::get_if<ipc::Done>(&m)) {
        if (d->id == id) return *d;
      } else if (auto* e = std::get_if<ipc::ErrorMsg>(&m)) {
        if (e->id == id) throw Error(e->code, e->message);
        if (e->id == 0) {
          drop_locked();
          throw Error(e->code, "daemon closed the session: " + e->message);
        }
      }
      // other frames (late status replies, other ids) are skipped
    }
  } catch (const ipc::IpcError& e) {
    drop_locked();
    if (e.code() == ErrorCode::unavailable)
      throw Error(ErrorCode::unavailable, std::string("connection to the daemon lost: ") + e.what());
    throw to_error(e);
  }
}

ipc::Status Client::status() {
  std::lock_guard call(call_mu_);
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    ensure_connected_locked(&reused);
    const uint64_t sid = next_request_id();
    try {
      {
        std::lock_guard lk(write_mu_);
        ipc::send_frame(fd_.get(), ipc::encode_message(ipc::StatusRequest{sid}), {}, opts_.io_timeout_ms);
      }
      for (;;) {
        ipc::Frame f = read_frame_locked(opts_.io_timeout_ms);
        ipc::Message m = ipc::decode_message(f, reader_->limits());
        if (auto* s = std::get_if<ipc::Status>(&m)) {
          if (s->id == sid || s->id == 0) return *s;
        } else if (auto* e = std::get_if<ipc::ErrorMsg>(&m)) {
          if (e->id == sid || e->id == 0) {
            if (e->id == 0) drop_locked();
            throw Error(e->code, e->message);
          }
        }
      }
    } catch (const ipc::IpcError& e) {
      drop_locked();
      // status is idempotent: one retry on a fresh connection
      if (e.code() == ErrorCode::unavailable && reused && attempt == 0) continue;
      throw to_error(e);
    }
  }
}

// ------------------------------------------------------------------ JSON
namespace {
nlohmann::json value_to_json(const ipc::Value& v) {
  return std::visit(
      [](const auto& x) -> nlohmann::json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) return nullptr;
        else if constexpr (std::is_same_v<T, ipc::Value::Array>) {
          auto a = nlohmann::json::array();
          for (const auto& e : x) a.push_back(value_to_json(e));
          return a;
        } else if constexpr (std::is_same_v<T, ipc::Value::Map>) {
          auto o = nlohmann::json::object();
          for (const auto& [k, e] : x) o[k] = value_to_json(e);
          return o;
        } else {
          return x;
        }
      },
      v.v);
}
}  // namespace

std::string status_to_json(const ipc::Status& s, int indent) {
  nlohmann::json j;
  j["model"] = s.model;
  j["queue_depth"] = s.queue_depth;
  j["active_requests"] = s.active_requests;
  j["tokens_per_s"] = s.tokens_per_s;
  j["details"] = s.details.is_nil() ? nlohmann::json::object() : value_to_json(s.details);
  // JSON strings must be UTF-8: replace invalid sequences rather than throw
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace omni::sdk
