#pragma once
// Socket activation (systemd's omnid.socket, daemon/systemd/): the listening sockets
// handed over as descriptors 3.. with LISTEN_PID / LISTEN_FDS (sd_listen_fds(3)'s
// protocol, read here directly so it works with or without libsystemd). The Unix stream
// socket is the IPC socket; a TCP listener is the metrics endpoint when its port is
// `metrics_port`, else the HTTP front's. systemd owns the socket file: omnid never
// removes it.
#include <string>

namespace omni::server {

struct ActivatedSockets {
  int unix_fd = -1;      // the IPC listener
  std::string unix_path; // its path (for logs, and its group for the access check)
  int http_fd = -1;
  int metrics_fd = -1;
  bool any() const { return unix_fd >= 0 || http_fd >= 0 || metrics_fd >= 0; }
};

// Takes the descriptors passed to this process (none: all -1) and clears LISTEN_* from
// the environment so children do not see them. A descriptor that is not a listening
// stream socket, or a second one of a kind, is a UsageError naming it. A TCP listener
// serves HTTP even without http_listen in the settings (the socket unit configures it).
ActivatedSockets take_activated_sockets(int metrics_port);

}  // namespace omni::server
