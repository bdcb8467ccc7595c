#include "cli/preflight.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <vector>

#include "ipc/socket.h"
#include "plan/model_shape.h"
#include "util/error.h"

namespace omni {

void check_model_and_plan(const std::string& model_dir, const DeviceOptions& devices) {
  struct stat st {};
  if (::stat(model_dir.c_str(), &st) != 0)
    throw UsageError("--model " + model_dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw UsageError("--model " + model_dir + ": not a folder (a checkpoint folder in Hugging Face layout)");
  const std::filesystem::path dir(model_dir);
  std::error_code ec;
  if (!std::filesystem::exists(dir / "model.safetensors", ec) &&
      !std::filesystem::exists(dir / "model.safetensors.index.json", ec))
    throw UsageError("--model " + model_dir + ": no model.safetensors or model.safetensors.index.json in it");
  as_usage_error("--model " + model_dir, [&] { devices.make_plan(plan::ModelShape::from_dir(model_dir)); });
}

void check_readable_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw UsageError(what + " " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw UsageError(what + " " + path + ": not a regular file");
  if (::access(path.c_str(), R_OK) != 0) throw UsageError(what + " " + path + ": " + std::strerror(errno));
}

void check_sampling(const SamplingOptions& sampling) {
  // The flags laid over valid defaults: only what was given can be wrong.
  as_usage_error("", [&] { sampling.resolve(SamplingParams{}); });
}

void check_socket_path(const std::string& path) {
  as_usage_error("socket " + path, [&] { ipc::check_socket_path(path); });
}

void check_socket_group(long gid, const std::string& name) {
  if (gid < 0 || ::geteuid() == 0 || ::getegid() == gid_t(gid)) return;
  std::vector<gid_t> groups(size_t(std::max(0, ::getgroups(0, nullptr))));
  if (!groups.empty() && ::getgroups(int(groups.size()), groups.data()) < 0) groups.clear();
  if (std::find(groups.begin(), groups.end(), gid_t(gid)) == groups.end())
    throw UsageError("socket_group " + name + ": this user is not a member of it, so cannot give it the socket");
}

}  // namespace omni
