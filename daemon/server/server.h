#pragma once
// The daemon's front: a Unix socket served with Boost.Asio on one I/O thread. Each
// connection is a Session speaking ipc/ frames; generation goes to the Scheduler,
// whose events come back to the I/O thread through asio::post, so a session's state
// is only ever touched on that thread. Nothing is shared with clients but the socket
// and the sealed, read-only image memfds they hand over.
#include <utility>
#include <boost/asio.hpp>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "ipc/messages.h"
#include "ipc/socket.h"
#include "sched/scheduler.h"
#include "server/http_image_files.h"
#include "server/http_settings.h"
#include "server/openai_chat.h"
#include "server/server_config.h"

namespace omni::server {

class Session;
class HttpFront;

// The HttpBackend is what the OpenAI-compatible front (cfg.http_listen) asks of it.
class Server : public HttpBackend {
 public:
  Server(const ServerConfig& cfg, ChatModel& model, sched::Scheduler& sched, std::string placement_json);
  ~Server() override;
  // The TCP listeners are bound (or taken from systemd) before the model loads, by
  // `omnid serve` (daemon/cli/cmd_serve.cpp), and served here: the HTTP front's
  // (HttpLoading answered 503 on it meanwhile) and the metrics endpoint's.
  void adopt_http_listener(int fd) { http_fd_ = fd; }
  void adopt_metrics_listener(int fd) { metrics_fd_ = fd; }
  // The IPC listener handed over by socket activation (daemon/server/socket_activation.h):
  // served as is, and its file, systemd's, is never removed. Its group is let in like
  // allowed_gids.
  void adopt_unix_listener(int fd, const std::string& path);
  // Creates the socket and serves until stop(); `on_ready` runs once listening.
  void run(const std::function<void()>& on_ready = {});
  // Stops accepting, drains the scheduler within cfg.drain_seconds, closes sessions.
  void stop();

  // For sessions.
  boost::asio::io_context& io() { return io_; }
  const ServerConfig& config() const { return cfg_; }
  ChatModel& model() { return model_; }
  sched::Scheduler& scheduler() { return sched_; }
  const ipc::Limits& limits() const { return limits_; }
  // `operator_view`: the daemon's own user or root, who also see the cache hit counters.
  ipc::Value status_details(bool operator_view) const;
  bool operator_view(const ipc::PeerCred& c) const;
  std::string prometheus_text() const override;
  // HttpBackend.
  const ChatContext& chat_context() const override { return chat_; }
  bool draining() const override { return stopping_.load(); }
  std::shared_ptr<sched::Ticket> submit(sched::Request r) override { return sched_.submit(std::move(r)); }
  void session_closed(bool counted);   // counted: it held a connection slot (not a refusal)

 private:
  void accept_next();
  // The IPC listener's accept loop, the metrics endpoint and the HTTP front.
  void start_listeners();
  // accept4 failed with `err` but the listener is fine: shed the newcomer if out of
  // descriptors, log (rate-limited) and accept again after a pause.
  void accept_failed(int err);
  void admit(ipc::UniqueFd fd);   // peer check, then a session or a refusal
  void keep_spare_fd();           // (re)opens the spare descriptor when it is missing
  // Says why and closes; past kMaxRefusing refusals at once, just closes.
  void refuse(ipc::UniqueFd fd, const ipc::PeerCred& cred, ipc::ErrorCode code, const std::string& why);
  static constexpr int kMaxRefusing = 16;
  struct LogBudget {   // one line per 10 s for what a peer can repeat at will
    std::chrono::steady_clock::time_point last{};
    uint64_t suppressed = 0;
    bool take();
  };
  // Remembers a session so shutdown can reach it (I/O thread only).
  void track(const std::shared_ptr<Session>& s);
  // Shutdown: polls until every session (and HTTP connection) has closed or `give_up`, then stops the loop.
  void wait_for_goodbyes(std::chrono::steady_clock::time_point give_up);
  ServerConfig cfg_;
  ChatModel& model_;
  sched::Scheduler& sched_;
  std::string placement_json_;
  ipc::Limits limits_;
  ipc::AccessPolicy policy_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> listener_;
  ipc::UniqueFd listen_fd_;
  ipc::SocketFile socket_file_;   // the socket file as bound: only that one is removed at exit
  ipc::UniqueFd spare_fd_;        // given up to shed a newcomer when out of descriptors
  std::unique_ptr<boost::asio::steady_timer> accept_backoff_;
  std::atomic<uint64_t> accept_failures_{0};
  LogBudget accept_log_, refuse_log_;
  std::atomic<int> sessions_{0};     // greeted or greeting sessions (connection slots)
  std::atomic<int> refusing_{0};     // refusals still saying why
  std::atomic<bool> stopping_{false};
  std::unique_ptr<class MetricsHttp> metrics_;
  // Open sessions (I/O thread only). A session and its connection own each other until
  // the connection closes, so shutdown must close every one of them or they leak.
  std::vector<std::weak_ptr<Session>> live_;
  std::unique_ptr<boost::asio::steady_timer> goodbye_timer_;
  ImageDirs image_dirs_;
  ChatContext chat_;
  int http_fd_ = -1;
  int metrics_fd_ = -1;
  bool activated_ = false;   // listen_fd_ came from systemd
  std::unique_ptr<HttpFront> http_;
};

}  // namespace omni::server
