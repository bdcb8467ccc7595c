#pragma once
// What the commands check before a weight is read: the model folder and the placement
// its config.json implies, files named on the command line, sampling values, the socket
// path. Each failure is a UsageError naming the thing (main() exits 2), found in well
// under a second instead of after a load that may take minutes.
#include <string>

#include "cli/device_options.h"
#include "cli/sampling_options.h"

namespace omni {

// The folder exists and its config.json plans onto the devices (plan::ModelShape reads
// config.json alone); the weight files are looked at (present), never opened.
void check_model_and_plan(const std::string& model_dir, const DeviceOptions& devices);
// `path` is a regular file this user may read (`what` names it: "--image").
void check_readable_file(const std::string& path, const std::string& what);
void check_sampling(const SamplingOptions& sampling);
// The socket's folder is there and writable and nobody answers on the path.
void check_socket_path(const std::string& path);
// This process may give its socket to group `gid` (root, or a member of it); -1: none asked.
void check_socket_group(long gid, const std::string& name);

}  // namespace omni
