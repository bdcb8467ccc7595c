#include "server/socket_activation.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "util/error.h"

namespace omni::server {

namespace {

constexpr int kFirstFd = 3;   // SD_LISTEN_FDS_START

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (*end == '\0' && n >= 0 && n < (1 << 20)) ? int(n) : -1;
}

}  // namespace

ActivatedSockets take_activated_sockets(int metrics_port) {
  ActivatedSockets out;
  const int pid = env_int("LISTEN_PID");
  const int n = env_int("LISTEN_FDS");
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (pid != int(::getpid()) || n <= 0) return out;   // not for us (or none)
  for (int fd = kFirstFd; fd < kFirstFd + n; ++fd) {
    const std::string what = "socket activation: descriptor " + std::to_string(fd);
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
      throw UsageError(what + " is not a stream socket");
    len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
      throw UsageError(what + " is not listening");
    sockaddr_storage ss{};
    len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) throw UsageError(what + ": getsockname failed");
    if (ss.ss_family == AF_UNIX) {
      if (out.unix_fd >= 0) throw UsageError(what + " is a second Unix socket (one is served)");
      out.unix_fd = fd;
      const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
      out.unix_path = std::string(un->sun_path, ::strnlen(un->sun_path, sizeof un->sun_path));
      continue;
    }
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) throw UsageError(what + " is neither a Unix nor a TCP socket");
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);   // as the fronts' own listeners are
    const int port = ss.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port)
                                             : ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
    if (port == metrics_port) {
      if (out.metrics_fd >= 0) throw UsageError(what + " is a second metrics listener");
      out.metrics_fd = fd;
    } else {
      if (out.http_fd >= 0)
        throw UsageError(what + " (TCP port " + std::to_string(port) + ") is a second HTTP listener");
      out.http_fd = fd;
    }
  }
  return out;
}

}  // namespace omni::server
