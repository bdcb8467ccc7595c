#pragma once
// One client connection: handshake, then generate / cancel / status frames in, token /
// done / status / error frames out. Runs on the server's I/O thread only.
#include <utility>
#include <boost/asio.hpp>
#include <map>
#include <memory>
#include <vector>

#include "ipc/asio_connection.h"
#include "ipc/frame.h"
#include "ipc/messages.h"
#include "ipc/socket.h"
#include "sched/request.h"

namespace omni::server {

class Server;

// The transport (frame reading with descriptors, the bounded write queue, hanging up
// after an error) is ipc::AsioConnection; this class is the protocol on top of it.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // Throws when the descriptor cannot be used as a connection. `counted`: it holds one
  // of the server's connection slots (a refusal does not).
  Session(Server& server, ipc::UniqueFd fd, ipc::PeerCred cred, bool counted);
  ~Session();
  void start();
  // Sends `code`/`message` and hangs up once the client has hung up (or after 2 s),
  // ignoring what it sends meanwhile: closing at once could destroy the error frame
  // before the client reads it.
  void refuse(ipc::ErrorCode code, const std::string& message);
  // Daemon shutdown: tells the client why and hangs up once that is written.
  void say_goodbye();
  // Closes inline (I/O thread, or after the I/O loop has ended); breaks the
  // session <-> connection ownership so nothing outlives the server.
  void close_now();

 private:
  void handle(ipc::Frame frame);
  void on_generate(ipc::Generate g, std::vector<ipc::UniqueFd> fds);
  void on_closed(const ipc::Error& why);
  void send(const ipc::Message& m);
  void send_error(uint64_t id, ipc::ErrorCode code, const std::string& message);
  // Says why, then closes once it is written; this client's requests are cancelled.
  void hang_up(uint64_t id, ipc::ErrorCode code, const std::string& message);
  void cancel_requests();
  void touch() { last_activity_ = std::chrono::steady_clock::now(); }
  // A greeted connection with no request running and no frame for the configured idle
  // timeout is closed, so idle clients cannot park the connection slots.
  void arm_idle_timer();

  Server& server_;
  std::shared_ptr<ipc::AsioConnection> conn_;
  boost::asio::steady_timer timer_;   // hello deadline; the polite refusal's hang-up
  boost::asio::steady_timer idle_timer_;
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
  ipc::PeerCred cred_;
  bool counted_ = true;
  bool greeted_ = false;
  bool closed_ = false;
  bool refusing_ = false;
  bool hanging_up_ = false;   // said why and closes once written: nothing more is handled
  std::map<uint64_t, std::shared_ptr<sched::Ticket>> requests_;   // running requests by client id
};

}  // namespace omni::server
