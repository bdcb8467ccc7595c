#include "ipc/socket.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ipc/error.h"

namespace omni::ipc {

namespace {

[[noreturn]] void sys_fail(ErrorCode c, const std::string& what) {
  throw IpcError(c, what + ": " + std::strerror(errno));
}

sockaddr_un make_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(a.sun_path))
    throw IpcError(ErrorCode::bad_message, "socket path empty or too long: " + path);
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) sys_fail(ErrorCode::unavailable, "poll");
  }
}

}  // namespace

PeerCred peer_credentials(int sock) {
  ucred c{};
  socklen_t len = sizeof(c);
  if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &c, &len) != 0 || len != sizeof(c))
    sys_fail(ErrorCode::internal, "SO_PEERCRED");
  return PeerCred{c.pid, c.uid, c.gid};
}

bool AccessPolicy::allows(const PeerCred& c) const {
  if (uids.empty() && gids.empty()) return true;
  if (c.uid == ::geteuid()) return true;
  if (std::find(uids.begin(), uids.end(), c.uid) != uids.end()) return true;
  if (std::find(gids.begin(), gids.end(), c.gid) != gids.end()) return true;
  if (gids.empty()) return false;
  // Supplementary groups of the peer's user, from the group database.
  passwd pw{};
  passwd* res = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(c.uid, &pw, buf.data(), buf.size(), &res) != 0 || !res) return false;
  int n = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(n));
  if (::getgrouplist(pw.pw_name, c.gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<std::size_t>(n));
    if (::getgrouplist(pw.pw_name, c.gid, groups.data(), &n) < 0) return false;
  }
  groups.resize(static_cast<std::size_t>(n));
  for (gid_t g : groups)
    if (std::find(gids.begin(), gids.end(), g) != gids.end()) return true;
  return false;
}

bool check_socket_path(const std::string& path) {
  const sockaddr_un addr = make_addr(path);
  const std::string dir = std::filesystem::path(path).parent_path().empty()
                              ? std::string(".")
                              : std::filesystem::path(path).parent_path().string();
  struct stat ds {};
  if (::stat(dir.c_str(), &ds) != 0 || !S_ISDIR(ds.st_mode))
    throw IpcError(ErrorCode::not_allowed, "socket directory does not exist: " + dir);
  if ((ds.st_mode & S_IWOTH) && !(ds.st_mode & S_ISVTX))
    throw IpcError(ErrorCode::not_allowed, "socket directory is world-writable without sticky bit: " + dir);
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw IpcError(ErrorCode::not_allowed, "socket directory " + dir + " is not writable by this user");

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw IpcError(ErrorCode::not_allowed, "path exists and is not a socket (not removed): " + path);
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) sys_fail(ErrorCode::internal, "socket");
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0)
      throw IpcError(ErrorCode::busy, "another server is listening on " + path);
    if (errno != ECONNREFUSED) sys_fail(ErrorCode::not_allowed, "probing existing socket " + path);
    return true;   // stale
  } else if (errno != ENOENT) {
    sys_fail(ErrorCode::not_allowed, "lstat " + path);
  }
  return false;
}

UniqueFd listen_unix(const std::string& path, unsigned mode, int backlog, SocketFile* bound, long group) {
  const sockaddr_un addr = make_addr(path);
  if (check_socket_path(path) && ::unlink(path.c_str()) != 0 && errno != ENOENT)
    sys_fail(ErrorCode::not_allowed, "removing stale socket");

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) sys_fail(ErrorCode::internal, "socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
    sys_fail(ErrorCode::internal, "bind " + path);
  if (bound) {
    struct stat bs {};
    if (::lstat(path.c_str(), &bs) != 0) sys_fail(ErrorCode::internal, "lstat " + path);
    *bound = SocketFile{bs.st_dev, bs.st_ino};
  }
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    errno = e;
    sys_fail(ErrorCode::internal, "chmod " + path);
  }
  if (group >= 0 && ::chown(path.c_str(), uid_t(-1), gid_t(group)) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    errno = e;
    sys_fail(ErrorCode::not_allowed, "chown " + path + " to group " + std::to_string(group));
  }
  if (::listen(fd.get(), backlog) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    errno = e;
    sys_fail(ErrorCode::internal, "listen");
  }
  return fd;
}

UniqueFd accept_unix(int listen_fd, int* error) {
  if (error) *error = 0;
  for (;;) {
    const int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) return UniqueFd(c);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return UniqueFd();
    const bool broken = errno == EBADF || errno == EINVAL || errno == ENOTSOCK || errno == EFAULT || errno == EOPNOTSUPP;
    if (broken || !error) sys_fail(ErrorCode::internal, "accept4");
    *error = errno;
    return UniqueFd();
  }
}

bool unlink_if_ours(const std::string& path, const SocketFile& ours) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  if (SocketFile{st.st_dev, st.st_ino} != ours) return false;
  return ::unlink(path.c_str()) == 0;
}

UniqueFd connect_unix(const std::string& path) {
  const sockaddr_un addr = make_addr(path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) sys_fail(ErrorCode::internal, "socket");
  for (;;) {
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) return fd;
    if (errno == EINTR) continue;
    sys_fail(ErrorCode::unavailable, "connect " + path);
  }
}

void send_frame(int sock, std::span<const uint8_t> frame, std::span<const int> fds, int timeout_ms) {
  if (fds.size() > 253) throw IpcError(ErrorCode::too_large, "too many descriptors for one frame");
  if (frame.empty()) throw IpcError(ErrorCode::bad_frame, "empty frame");
  std::vector<char> ctrl;
  if (!fds.empty()) ctrl.assign(CMSG_SPACE(fds.size() * sizeof(int)), 0);
  std::size_t sent = 0;
  while (sent < frame.size()) {
    iovec iov{const_cast<uint8_t*>(frame.data() + sent), frame.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sent == 0 && !fds.empty()) {
      msg.msg_control = ctrl.data();
      msg.msg_controllen = ctrl.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_fd(sock, POLLOUT, timeout_ms)) throw IpcError(ErrorCode::timeout, "send timed out");
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
      sys_fail(ErrorCode::unavailable, "connection lost");
    sys_fail(ErrorCode::unavailable, "sendmsg");
  }
}

RecvResult recv_into(int sock, FrameReader& reader, bool nonblocking, std::size_t chunk) {
  std::vector<uint8_t> buf(chunk);
  const std::size_t max_fds = reader.limits().max_fds_per_frame;
  // alignas: cmsghdr alignment
  std::vector<uint64_t> ctrl((CMSG_SPACE((max_fds ? max_fds : 1) * sizeof(int)) + 7) / 8);
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl.data();
  msg.msg_controllen = ctrl.size() * sizeof(uint64_t);
  ssize_t n;
  for (;;) {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | (nonblocking ? MSG_DONTWAIT : 0));
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return RecvResult::would_block;
    sys_fail(ErrorCode::unavailable, "recvmsg");
  }
  std::vector<UniqueFd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < k; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.emplace_back(fd);
      }
    }
    // other control messages (e.g. SCM_CREDENTIALS) carry no fds; ignored
  }
  if (msg.msg_flags & MSG_CTRUNC)
    throw IpcError(ErrorCode::too_large, "too many descriptors in one message (control data truncated)");
  if (n == 0) {
    if (!fds.empty()) throw IpcError(ErrorCode::bad_frame, "descriptors received without data");
    return RecvResult::eof;
  }
  reader.feed(std::span(buf.data(), static_cast<std::size_t>(n)), std::move(fds));
  return RecvResult::data;
}

Frame recv_frame(int sock, FrameReader& reader, int timeout_ms) {
  for (;;) {
    if (auto f = reader.next()) return std::move(*f);
    if (timeout_ms >= 0 && !wait_fd(sock, POLLIN, timeout_ms))
      throw IpcError(ErrorCode::timeout, "timed out waiting for a frame");
    const RecvResult r = recv_into(sock, reader, timeout_ms >= 0);
    if (r == RecvResult::eof) throw IpcError(ErrorCode::unavailable, "connection closed by peer");
  }
}

}  // namespace omni::ipc
