// ipc/asio_connection.h - one server-side connection on Boost.Asio (for daemon/server/).
//
// Owns the socket, reads with async_wait(wait_read) + recv_into() (so descriptors
// passed with SCM_RIGHTS are received), yields complete frames (not yet decoded:
// call decode_message() and answer errors per the contract in ipc/messages.h), and
// writes queued frames with async_write.
//
// Threading: every handler runs on the socket's executor. send() and close() may be
// called from any thread (they post to the executor), e.g. from the scheduler that
// produces tokens. The close handler is called exactly once.
// Back-pressure: when queued outbound bytes exceed max_outbound_bytes (a client that
// stopped reading), the connection is closed with ErrorCode::busy.
// A stream-level error (bad_frame / too_large from the framing layer) sends
// error{id:0} and closes after flushing it.
#pragma once

#include <boost/asio/local/stream_protocol.hpp>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "ipc/error.h"
#include "ipc/frame.h"
#include "ipc/limits.h"
#include "ipc/messages.h"
#include "ipc/socket.h"

namespace omni::ipc {

class AsioConnection : public std::enable_shared_from_this<AsioConnection> {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;
  using FrameHandler = std::function<void(Frame&&)>;
  /// Called once when the connection ends: code ok = peer closed cleanly.
  using CloseHandler = std::function<void(const Error&)>;

  static std::shared_ptr<AsioConnection> create(Socket socket, const Limits& limits,
                                                std::size_t max_outbound_bytes = 4u << 20);
  ~AsioConnection();

  /// SO_PEERCRED of the peer (read at creation).
  const PeerCred& peer() const noexcept { return peer_; }
  /// Start reading. Call once.
  void start(FrameHandler on_frame, CloseHandler on_close);
  /// Queue a message (any thread).
  void send(const Message& m);
  /// Queue a message, then close once everything queued is written (any thread).
  void send_and_close(const Message& m);
  /// Close now (any thread); pending writes are dropped.
  void close();
  /// Close at once, inline: only on the executor's thread, or once its io_context has
  /// stopped (a server's last clean-up). The close handler runs before this returns,
  /// which releases whatever the handlers held (a session owning this connection).
  void close_now();
  std::size_t queued_bytes() const noexcept { return queued_bytes_; }

 private:
  AsioConnection(Socket socket, const Limits& limits, std::size_t max_out);
  void arm_read();
  void on_readable();
  void enqueue(std::vector<uint8_t> bytes, bool close_after);
  void write_next();
  void finish(const Error& e);

  Socket socket_;
  Limits limits_;
  std::size_t max_out_;
  FrameReader reader_;
  PeerCred peer_;
  FrameHandler on_frame_;
  CloseHandler on_close_;
  std::deque<std::vector<uint8_t>> out_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool close_after_flush_ = false;
  bool closed_ = false;
};

}  // namespace omni::ipc
