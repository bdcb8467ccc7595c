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
#include "server/server_config.h"

namespace omni::server {

class Session;

class Server {
 public:
  Server(const ServerConfig& cfg, ChatModel& model, sched::Scheduler& sched, std::string placement_json);
  ~Server();
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
  ipc::Value status_details() const;
  std::string prometheus_text() const;
  void session_closed();

 private:
  void accept_next();
  // Remembers a session so shutdown can reach it (I/O thread only).
  void track(const std::shared_ptr<Session>& s);
  // Shutdown: polls until every session has closed or `give_up`, then stops the loop.
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
  std::atomic<int> sessions_{0};
  std::atomic<bool> stopping_{false};
  std::unique_ptr<class MetricsHttp> metrics_;
  // Open sessions (I/O thread only). A session and its connection own each other until
  // the connection closes, so shutdown must close every one of them or they leak.
  std::vector<std::weak_ptr<Session>> live_;
  std::unique_ptr<boost::asio::steady_timer> goodbye_timer_;
};

}  // namespace omni::server
