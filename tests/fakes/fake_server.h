// tests/fakes/fake_server.h - a TEST DOUBLE of the omnid server, built on omni_ipc.
// It follows the server contract in ipc/messages.h but knows no model: it answers
// generate with a few canned token frames. Never ship it as the daemon.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ipc/memfd.h"
#include "ipc/messages.h"
#include "ipc/socket.h"

namespace omni_test {

class FakeServer {
 public:
  struct Options {
    std::vector<std::string> pieces = {"A", " fake", " answer", "."};
    int token_delay_ms = 0;
    int close_after_tokens = -1;  // simulate a crash mid-stream
    std::string model = "fake-model";
    uint64_t max_image_bytes = 0;  // advertised in hello_ok and enforced; 0: the protocol default
  };

  explicit FakeServer(std::string path) : FakeServer(std::move(path), Options{}) {}
  FakeServer(std::string path, Options o) : path_(std::move(path)), opts_(std::move(o)) {
    listen_ = omni::ipc::listen_unix(path_);
    stop_ = omni::ipc::UniqueFd(::eventfd(0, EFD_CLOEXEC));
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FakeServer() { stop(); }

  void stop() {
    if (stopped_.exchange(true)) return;
    uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof(one));
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& t : sessions_) t.join();
    sessions_.clear();
    ::unlink(path_.c_str());
  }

  std::atomic<int> connections{0};
  std::atomic<int> generates{0};
  std::atomic<int> cancels{0};
  std::atomic<int> active{0};
  std::mutex mu;
  std::vector<std::string> prompts;      // guarded by mu
  std::vector<uint64_t> image_bytes;     // guarded by mu: sizes of mapped images
  std::vector<uint8_t> first_image_byte; // guarded by mu
  std::vector<omni::ipc::Sampling> samplings;  // guarded by mu: each generate's sampling map
  std::vector<omni::ipc::Generate> requests;   // guarded by mu: each generate as decoded

 private:
  bool wait_readable(int fd) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    for (;;) {
      const int r = ::poll(p, 2, -1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 || (p[1].revents & POLLIN)) return false;
      return true;
    }
  }

  void accept_loop() {
    while (wait_readable(listen_.get())) {
      auto c = omni::ipc::accept_unix(listen_.get());
      if (!c) continue;
      ++connections;
      sessions_.emplace_back([this, fd = std::make_shared<omni::ipc::UniqueFd>(std::move(c))] { session(fd->get()); });
    }
  }

  void send(int fd, const omni::ipc::Message& m) { omni::ipc::send_frame(fd, omni::ipc::encode_message(m), {}, 2000); }

  // Drain frames already received without blocking; returns false on EOF.
  bool poll_frames(int fd, omni::ipc::FrameReader& r, std::vector<omni::ipc::Frame>& out) {
    for (;;) {
      auto res = omni::ipc::recv_into(fd, r, true);
      if (res == omni::ipc::RecvResult::eof) return false;
      if (res == omni::ipc::RecvResult::would_block) break;
    }
    while (auto f = r.next()) out.push_back(std::move(*f));
    return true;
  }

  void session(int fd) {
    using namespace omni::ipc;
    Limits lim;
    if (opts_.max_image_bytes) lim.max_image_bytes = opts_.max_image_bytes;
    FrameReader reader(lim);
    std::vector<Frame> pending;
    bool hello_done = false;
    try {
      for (;;) {
        if (pending.empty()) {
          if (!wait_readable(fd)) return;
          if (!poll_frames(fd, reader, pending)) return;
          continue;
        }
        Frame f = std::move(pending.front());
        pending.erase(pending.begin());
        uint64_t id = 0;
        Message m;
        try {
          m = decode_message(f, lim, &id);
        } catch (const IpcError& e) {
          send(fd, ErrorMsg{id, e.code(), e.what()});
          continue;
        }
        if (!hello_done) {
          auto* h = std::get_if<Hello>(&m);
          if (!h) {
            send(fd, ErrorMsg{0, ErrorCode::not_ready, "hello expected"});
            return;
          }
          if (h->proto_major != kProtocolMajor) {
            send(fd, ErrorMsg{0, ErrorCode::unsupported_version, "protocol major 1 required"});
            return;
          }
          HelloOk ok;
          ok.proto_minor = std::min(kProtocolMinor, h->proto_minor);
          ok.server_version = "fake-0";
          ok.model = opts_.model;
          ok.limits = lim;
          send(fd, ok);
          hello_done = true;
          continue;
        }
        if (auto* s = std::get_if<StatusRequest>(&m)) {
          Status st;
          st.id = s->id;
          st.model = opts_.model;
          st.active_requests = static_cast<uint32_t>(active.load());
          st.tokens_per_s = 42.0;
          st.details = Value(Value::Map{{"placement", Value("cpu")},
                                        {"memory", Value(Value::Map{{"cpu", Value(uint64_t{1} << 30)}})}});
          send(fd, st);
        } else if (std::get_if<Cancel>(&m)) {
          ++cancels;  // not in flight: ignored
        } else if (auto* g = std::get_if<Generate>(&m)) {
          ++generates;
          std::vector<ImageMapping> maps;
          try {
            for (const auto& im : g->images) maps.push_back(map_sealed_image(f.fds[im.fd_index].get(), im.size, lim));
          } catch (const IpcError& e) {
            send(fd, ErrorMsg{g->id, e.code(), e.what()});
            continue;
          }
          {
            std::lock_guard lk(mu);
            prompts.push_back(g->prompt);
            samplings.push_back(g->sampling);
            requests.push_back(*g);
            for (const auto& mp : maps) {
              image_bytes.push_back(mp.size());
              first_image_byte.push_back(mp.data()[0]);
            }
          }
          ++active;
          Done d;
          d.id = g->id;
          d.prompt_tokens = static_cast<uint32_t>(g->prompt.size());
          d.image_tokens = static_cast<uint32_t>(64 * g->images.size());
          d.reason = FinishReason::stop;
          uint32_t n = 0;
          bool cancelled = false;
          for (const auto& piece : opts_.pieces) {
            if (n >= g->max_tokens) {
              d.reason = FinishReason::length;
              break;
            }
            if (opts_.close_after_tokens >= 0 && static_cast<int>(n) >= opts_.close_after_tokens) {
              --active;
              return;  // "crash"
            }
            if (opts_.token_delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(opts_.token_delay_ms));
            if (!poll_frames(fd, reader, pending)) {
              --active;
              return;
            }
            for (auto it = pending.begin(); it != pending.end();) {
              Message pm;
              try {
                pm = decode_message(*it, lim);
              } catch (const IpcError&) {
                ++it;
                continue;
              }
              if (auto* c = std::get_if<Cancel>(&pm); c && c->id == g->id) {
                ++cancels;
                cancelled = true;
                it = pending.erase(it);
              } else {
                ++it;
              }
            }
            if (cancelled) {
              d.reason = FinishReason::cancelled;
              break;
            }
            send(fd, Token{g->id, piece, static_cast<int64_t>(100 + n)});
            ++n;
          }
          d.completion_tokens = n;
          d.timings.total_ms = 1.0;
          --active;
          send(fd, d);
        } else {
          send(fd, ErrorMsg{id, ErrorCode::bad_message, std::string("unexpected ") + message_type(m)});
        }
      }
    } catch (const IpcError& e) {
      try {
        send(fd, ErrorMsg{0, e.code(), e.what()});
      } catch (...) {
      }
    }
  }

  std::string path_;
  Options opts_;
  omni::ipc::UniqueFd listen_, stop_;
  std::thread acceptor_;
  std::vector<std::thread> sessions_;
  std::atomic<bool> stopped_{false};
};

}  // namespace omni_test
