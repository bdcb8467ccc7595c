#include "ipc/asio_connection.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace omni::ipc {

std::shared_ptr<AsioConnection> AsioConnection::create(Socket socket, const Limits& limits,
                                                       std::size_t max_outbound_bytes) {
  return std::shared_ptr<AsioConnection>(new AsioConnection(std::move(socket), limits, max_outbound_bytes));
}

AsioConnection::AsioConnection(Socket socket, const Limits& limits, std::size_t max_out)
    : socket_(std::move(socket)), limits_(limits), max_out_(max_out), reader_(limits) {
  peer_ = peer_credentials(socket_.native_handle());
  socket_.non_blocking(true);
}

AsioConnection::~AsioConnection() = default;

void AsioConnection::start(FrameHandler on_frame, CloseHandler on_close) {
  on_frame_ = std::move(on_frame);
  on_close_ = std::move(on_close);
  boost::asio::post(socket_.get_executor(), [self = shared_from_this()] { self->arm_read(); });
}

void AsioConnection::arm_read() {
  if (closed_ || close_after_flush_) return;
  socket_.async_wait(Socket::wait_read, [self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->closed_) {
      if (!self->closed_) self->finish(Error{ErrorCode::unavailable, ec.message()});
      return;
    }
    self->on_readable();
  });
}

void AsioConnection::on_readable() {
  try {
    for (int i = 0; i < 16; ++i) {  // bounded, then yield to other connections
      const RecvResult r = recv_into(socket_.native_handle(), reader_, /*nonblocking=*/true);
      if (r == RecvResult::would_block) break;
      // Complete frames go to the handler after every read, so the reader never holds
      // more than the frame in progress (and its descriptors) however fast the client
      // pipelines.
      while (auto f = reader_.next()) {
        if (closed_ || close_after_flush_) return;
        on_frame_(std::move(*f));
      }
      if (r == RecvResult::eof) {
        finish(Error{ErrorCode::ok, "peer closed the connection"});
        return;
      }
    }
  } catch (const IpcError& e) {
    if (e.code() == ErrorCode::unavailable) {
      finish(e.error());
      return;
    }
    send_and_close(ErrorMsg{0, e.code(), e.what()});  // framing lost
    return;
  } catch (const std::exception& e) {  // a frame handler failed
    send_and_close(ErrorMsg{0, ErrorCode::internal, e.what()});
    return;
  }
  arm_read();
}

void AsioConnection::send(const Message& m) {
  auto bytes = encode_message(m);
  boost::asio::post(socket_.get_executor(), [self = shared_from_this(), b = std::move(bytes)]() mutable {
    self->enqueue(std::move(b), false);
  });
}

void AsioConnection::send_and_close(const Message& m) {
  auto bytes = encode_message(m);
  boost::asio::post(socket_.get_executor(), [self = shared_from_this(), b = std::move(bytes)]() mutable {
    self->enqueue(std::move(b), true);
  });
}

void AsioConnection::close() {
  boost::asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->finish(Error{ErrorCode::ok, "closed by server"});
  });
}

void AsioConnection::close_now() { finish(Error{ErrorCode::ok, "closed by server"}); }

void AsioConnection::enqueue(std::vector<uint8_t> bytes, bool close_after) {
  if (closed_ || close_after_flush_) return;
  queued_bytes_ += bytes.size();
  out_.push_back(std::move(bytes));
  if (close_after) close_after_flush_ = true;
  if (queued_bytes_ > max_out_) {
    finish(Error{ErrorCode::busy, "client does not read its replies (outbound buffer full)"});
    return;
  }
  if (!writing_) write_next();
}

void AsioConnection::write_next() {
  if (closed_) return;
  if (out_.empty()) {
    writing_ = false;
    if (close_after_flush_) finish(Error{ErrorCode::ok, "closed after error"});
    return;
  }
  writing_ = true;
  boost::asio::async_write(socket_, boost::asio::buffer(out_.front()),
                           [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                             if (self->closed_) return;
                             if (ec) {
                               self->finish(Error{ErrorCode::unavailable, ec.message()});
                               return;
                             }
                             self->queued_bytes_ -= self->out_.front().size();
                             self->out_.pop_front();
                             self->write_next();
                           });
}

void AsioConnection::finish(const Error& e) {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.cancel(ignored);
  socket_.close(ignored);
  out_.clear();
  queued_bytes_ = 0;
  if (on_close_) {
    auto cb = std::move(on_close_);
    cb(e);
  }
  on_frame_ = nullptr;
}

}  // namespace omni::ipc
