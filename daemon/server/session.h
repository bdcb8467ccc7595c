#pragma once
// One client connection: handshake, then generate / cancel / status frames in, token /
// done / status / error frames out. Runs on the server's I/O thread only.
#include <utility>
#include <boost/asio.hpp>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "ipc/frame.h"
#include "ipc/messages.h"
#include "ipc/socket.h"
#include "sched/request.h"

namespace omni::server {

class Server;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& server, ipc::UniqueFd fd, ipc::PeerCred cred);
  ~Session();
  void start();
  // Sends `code`/`message` and hangs up once the client has read it (or after 2 s),
  // ignoring what it sends meanwhile: closing at once would reset the connection and
  // could destroy the error frame before the client reads it.
  void refuse(ipc::ErrorCode code, const std::string& message);
  void close();   // cancels this client's requests and closes the socket
  // Stops reading; closes once the queued frames (an error saying why) are written.
  void close_after_flush();

 private:
  void read_more();
  void handle(ipc::Frame frame);
  void on_generate(ipc::Generate g, std::vector<ipc::UniqueFd> fds);
  void send(const ipc::Message& m);
  void send_error(uint64_t id, ipc::ErrorCode code, const std::string& message);
  void flush();

  Server& server_;
  boost::asio::posix::stream_descriptor sock_;
  boost::asio::steady_timer hello_timer_;   // a silent connection must not hold a slot
  ipc::PeerCred cred_;
  ipc::FrameReader reader_;
  bool greeted_ = false;
  bool closed_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool refusing_ = false;
  std::deque<std::vector<uint8_t>> out_;
  size_t out_bytes_ = 0;
  std::map<uint64_t, std::shared_ptr<sched::Ticket>> requests_;   // running requests by client id
};

}  // namespace omni::server
