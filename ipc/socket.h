// ipc/socket.h - the Unix domain socket: listening, connecting, peer credentials,
// and frame I/O with descriptor passing (sendmsg/recvmsg, SCM_RIGHTS).
//
// Usable from Boost.Asio: wrap the descriptor in a
// boost::asio::local::stream_protocol::socket (assign), call
// async_wait(wait_read) and then recv_into(sock.native_handle(), reader, true);
// for writes either boost::asio::async_write(encode_message(...)) (server frames
// carry no fds) or send_frame() on a blocking socket.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ipc/frame.h"
#include "ipc/unique_fd.h"

namespace omni::ipc {

struct PeerCred {
  pid_t pid = 0;  // as of connect(); may be recycled, do not authorize on it
  uid_t uid = 0;
  gid_t gid = 0;
};

/// SO_PEERCRED of a connected AF_UNIX stream socket. Throws IpcError(internal).
PeerCred peer_credentials(int sock);

/// Who may talk to the daemon (second gate after the socket file's 0660 mode).
/// allows(): true when both lists are empty; otherwise true when the peer's uid is
/// in `uids`, or its primary gid or any supplementary group of the uid (from the
/// group database) is in `gids`, or the peer runs as the daemon's own euid.
struct AccessPolicy {
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;
  bool allows(const PeerCred& c) const;
};

/// Create a listening socket at `path` (SOCK_STREAM|SOCK_CLOEXEC):
/// - refuses when the parent directory is missing, or world-writable without the
///   sticky bit (not_allowed);
/// - an existing path: a socket nobody listens on (ECONNREFUSED) is removed as stale;
///   a live socket -> IpcError(busy); anything that is not a socket is never removed
///   (IpcError(not_allowed));
/// - bind, chmod(path, mode) and, with `group` >= 0, chown to that group BEFORE listen()
///   (no peer can connect in between).
/// `bound`, when given, receives the socket file's identity right after bind().
struct SocketFile {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const SocketFile&) const = default;
};
UniqueFd listen_unix(const std::string& path, unsigned mode = 0660, int backlog = 64, SocketFile* bound = nullptr,
                     long group = -1);

/// The checks listen_unix makes before it binds, alone (the daemon makes them before the
/// model loads): throws as listen_unix does; true when `path` is a stale socket that
/// listen_unix would replace.
bool check_socket_path(const std::string& path);

/// Removes `path` only while it is still the socket file `ours` (same device and
/// inode): another daemon may have replaced it since. True when removed.
bool unlink_if_ours(const std::string& path, const SocketFile& ours);

/// accept4(SOCK_CLOEXEC). Returns an invalid fd when nothing is pending (EAGAIN,
/// ECONNABORTED; EINTR is retried). Every other failure leaves the listener usable
/// (out of descriptors or memory, a peer that went away): it returns an invalid fd
/// with the errno in `*error`, or throws IpcError(internal) when `error` is null.
/// Only a broken listener (EBADF, EINVAL, ENOTSOCK, EFAULT, EOPNOTSUPP) always throws.
UniqueFd accept_unix(int listen_fd, int* error = nullptr);

/// Connect (blocking, SOCK_CLOEXEC). Throws IpcError(unavailable) when nobody listens.
UniqueFd connect_unix(const std::string& path);

/// Send one complete frame (as produced by encode_message/encode_frame) with
/// optional descriptors, which ride on the first sendmsg. MSG_NOSIGNAL; retries on
/// EINTR and partial writes; on a non-blocking socket waits with poll(POLLOUT) up
/// to timeout_ms (-1 = forever). Throws IpcError(unavailable) (EPIPE/ECONNRESET),
/// IpcError(timeout), IpcError(too_large) for > 253 fds.
void send_frame(int sock, std::span<const uint8_t> frame, std::span<const int> fds = {}, int timeout_ms = -1);

enum class RecvResult { data, eof, would_block };

/// One recvmsg() (MSG_CMSG_CLOEXEC; MSG_DONTWAIT when nonblocking) of up to
/// `chunk` bytes into `reader`, with a control buffer sized for
/// reader.limits().max_fds_per_frame descriptors. Received descriptors are owned
/// immediately. MSG_CTRUNC (more fds than allowed) -> IpcError(too_large) after
/// closing what arrived; unexpected control messages are closed and ignored.
/// Throws IpcError(unavailable) on ECONNRESET and other socket errors.
RecvResult recv_into(int sock, FrameReader& reader, bool nonblocking, std::size_t chunk = 64 * 1024);

/// Blocking helper: read until a complete frame is available. timeout_ms applies to
/// each wait (-1 = forever). Throws IpcError(unavailable) on EOF, (timeout) on timeout.
Frame recv_frame(int sock, FrameReader& reader, int timeout_ms = -1);

}  // namespace omni::ipc
