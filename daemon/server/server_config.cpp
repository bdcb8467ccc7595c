#include "server/server_config.h"

#include <grp.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>

#include "kernels/cpu_weights.h"
#include "util/error.h"

namespace omni::server {

namespace {

template <class T>
void get(const toml::table& t, const char* key, T& out, const std::string& path) {
  const toml::node* n = t.get(key);
  if (!n) return;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!n->is_string()) throw UsageError(path + ": '" + key + "' must be a string");
    out = n->value<std::string>().value();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!n->is_boolean()) throw UsageError(path + ": '" + key + "' must be true or false");
    out = n->value<bool>().value();
  } else if constexpr (std::is_same_v<T, double>) {
    if (!n->is_number()) throw UsageError(path + ": '" + key + "' must be a number");
    out = n->value<double>().value();
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    const toml::array* a = n->as_array();
    if (!a) throw UsageError(path + ": '" + key + "' must be an array of strings");
    out.clear();
    for (const auto& e : *a) {
      auto v = e.value<std::string>();
      if (!v) throw UsageError(path + ": '" + key + "' must hold strings");
      out.push_back(*v);
    }
  } else if constexpr (std::is_same_v<T, std::vector<uint32_t>>) {
    const toml::array* a = n->as_array();
    if (!a) throw UsageError(path + ": '" + key + "' must be an array of integers");
    out.clear();
    for (const auto& e : *a) {
      auto v = e.value<int64_t>();
      if (!v || *v < 0) throw UsageError(path + ": '" + key + "' must hold non-negative integers");
      out.push_back(uint32_t(*v));
    }
  } else {
    auto v = n->value<int64_t>();
    if (!v || *v < 0) throw UsageError(path + ": '" + key + "' must be a non-negative integer");
    out = T(*v);
  }
}

// split = [3, 1] or "3,1"; max_memory = { "cuda:0" = "20GiB" } or "cuda:0=20GiB": kept as the flag's text.
void get_list(const toml::table& t, const char* key, std::string& out, const std::string& path) {
  const toml::node* n = t.get(key);
  if (!n || n->is_string()) return get(t, key, out, path);
  out.clear();
  if (const toml::array* a = n->as_array()) {
    for (const auto& e : *a) {
      auto v = e.value<double>();
      if (!v) throw UsageError(path + ": '" + key + "' must hold numbers");
      out += (out.empty() ? "" : ",") + std::to_string(*v);
    }
  } else if (const toml::table* tb = n->as_table()) {
    for (const auto& [k, v] : *tb) {
      auto s = v.value<std::string>();
      if (!s) throw UsageError(path + ": '" + key + "." + std::string(k.str()) + "' must be a size such as \"20GiB\"");
      out += (out.empty() ? "" : ",") + std::string(k.str()) + "=" + *s;
    }
  } else {
    throw UsageError(path + ": '" + key + "' must be a string, an array or a table");
  }
}

}  // namespace

void ServerConfig::load_toml(const std::string& path) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw UsageError(path + ": " + std::string(e.description()) + " at line " +
                std::to_string(e.source().begin.line));
  }
  static const std::set<std::string> known = {
      "model", "socket", "socket_mode", "allowed_uids", "allowed_gids", "devices", "max_active", "max_batch_tokens", "max_queue",
      "max_context", "max_connections", "idle_timeout_seconds", "max_outgoing_bytes", "drain_seconds", "vision_cache_mb", "max_image_pixels", "metrics_port",
      "use_multi_gpu", "enable_thinking", "parallel", "max_memory", "split", "vision_device", "vision_devices", "kv_cache_tokens",
      "prefix_cache", "http_listen", "api_key", "api_key_file", "allowed_image_dirs", "http_max_connections",
      "http_max_header_bytes", "http_max_body_bytes", "http_header_timeout_seconds", "http_body_timeout_seconds",
      "http_idle_timeout_seconds", "socket_group", "allow_root", "threads", "cpu_weights"};
  for (const auto& [k, v] : t)
    if (!known.count(std::string(k.str()))) throw UsageError(path + ": unknown setting '" + std::string(k.str()) + "'");
  get(t, "model", model, path);
  get(t, "socket", socket, path);
  if (const toml::node* n = t.get("socket_mode")) {
    if (auto s = n->value<std::string>()) socket_mode = unsigned(std::stoul(*s, nullptr, 8));
    else get(t, "socket_mode", socket_mode, path);
  }
  get(t, "allowed_uids", allowed_uids, path);
  get(t, "allowed_gids", allowed_gids, path);
  get(t, "socket_group", socket_group, path);
  get(t, "allow_root", allow_root, path);
  get(t, "threads", threads, path);
  get(t, "cpu_weights", cpu_weights, path);
  get(t, "devices", devices, path);
  get(t, "use_multi_gpu", use_multi_gpu, path);
  get(t, "parallel", parallel, path);
  get_list(t, "max_memory", max_memory, path);
  get_list(t, "split", split, path);
  get(t, "vision_device", vision_device, path);
  if (const toml::node* n = t.get("vision_devices"); n && n->is_array()) {
    std::vector<std::string> list;
    get(t, "vision_devices", list, path);
    vision_devices.clear();
    for (const auto& d : list) vision_devices += (vision_devices.empty() ? "" : ",") + d;
  } else {
    get(t, "vision_devices", vision_devices, path);
  }
  get(t, "max_active", max_active, path);
  get(t, "max_batch_tokens", max_batch_tokens, path);
  get(t, "enable_thinking", enable_thinking, path);
  get(t, "max_queue", max_queue, path);
  get(t, "max_context", max_context, path);
  get(t, "kv_cache_tokens", kv_cache_tokens, path);
  get(t, "prefix_cache", prefix_cache, path);
  get(t, "max_connections", max_connections, path);
  get(t, "idle_timeout_seconds", idle_timeout_seconds, path);
  get(t, "max_outgoing_bytes", max_outgoing_bytes, path);
  get(t, "drain_seconds", drain_seconds, path);
  get(t, "vision_cache_mb", vision_cache_mb, path);
  get(t, "max_image_pixels", max_image_pixels, path);
  get(t, "metrics_port", metrics_port, path);
  get(t, "http_listen", http_listen, path);
  get(t, "api_key", api_key, path);
  get(t, "api_key_file", api_key_file, path);
  get(t, "allowed_image_dirs", allowed_image_dirs, path);
  get(t, "http_max_connections", http_max_connections, path);
  get(t, "http_max_header_bytes", http_max_header_bytes, path);
  get(t, "http_max_body_bytes", http_max_body_bytes, path);
  get(t, "http_header_timeout_seconds", http_header_timeout_seconds, path);
  get(t, "http_body_timeout_seconds", http_body_timeout_seconds, path);
  get(t, "http_idle_timeout_seconds", http_idle_timeout_seconds, path);
}

void ServerConfig::validate() const {
  if (model.empty()) throw UsageError("serve: no model (--model or 'model' in the config file)");
  if (socket.empty() || socket.size() >= 108) throw UsageError("serve: socket path must be 1..107 bytes");
  if (max_active < 1 || max_queue < 0 || max_context < 16 || max_connections < 1)
    throw UsageError("serve: max_active >= 1, max_queue >= 0, max_context >= 16, max_connections >= 1");
  // Every running request takes one row a step; prompts need room beside them.
  if (max_batch_tokens < max_active + 16)
    throw UsageError("serve: max_batch_tokens (" + std::to_string(max_batch_tokens) + ") must be at least max_active + 16 (" +
                std::to_string(max_active + 16) + "): each running request takes one row of a step");
  if (kv_cache_tokens < 0 || kv_cache_tokens > (int64_t(1) << 34))
    throw UsageError("serve: kv_cache_tokens must be 0 (max_active x max_context) or a number of tokens");
  if (!(idle_timeout_seconds >= 0 && idle_timeout_seconds <= 1e6))
    throw UsageError("serve: idle_timeout_seconds must be 0 (never) or a number of seconds");
  if (metrics_port > 65535) throw UsageError("serve: metrics_port must be 0..65535");
  if (socket_mode > 0777) throw UsageError("serve: socket_mode must be an octal permission such as 0660");
  socket_gid();   // throws naming an unknown group
  if (threads < 0 || threads > 1024) throw UsageError("serve: threads must be 0 (the default) or 1..1024");
  try {
    kernels::parse_cpu_weights(cpu_weights);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("serve: cpu_weights: ") + e.what());
  }
  if (!http_listen.empty()) parse_listen_address(http_listen);   // throws naming it
  if (!api_key.empty() && !api_key_file.empty())
    throw UsageError("serve: set api_key or api_key_file, not both");
  if (http_max_connections < 1 || http_max_connections > 65536)
    throw UsageError("serve: http_max_connections must be 1..65536");
  if (http_max_header_bytes < 1024 || http_max_header_bytes > (1u << 20))
    throw UsageError("serve: http_max_header_bytes must be 1024..1048576");
  if (http_max_body_bytes < 1024 || http_max_body_bytes > (size_t(1) << 32))
    throw UsageError("serve: http_max_body_bytes must be 1024..4294967296");
  for (auto [name, v] : {std::pair{"http_header_timeout_seconds", http_header_timeout_seconds},
                         std::pair{"http_body_timeout_seconds", http_body_timeout_seconds},
                         std::pair{"http_idle_timeout_seconds", http_idle_timeout_seconds}})
    if (!(v > 0 && v <= 86400)) throw UsageError(std::string("serve: ") + name + " must be a number of seconds in (0, 86400]");
  for (const auto& d : allowed_image_dirs)
    if (d.empty() || d[0] != '/') throw UsageError("serve: allowed_image_dirs: '" + d + "' is not an absolute path");
}

long ServerConfig::socket_gid() const {
  if (socket_group.empty()) return -1;
  if (socket_group.find_first_not_of("0123456789") == std::string::npos && socket_group.size() < 10)
    return std::stol(socket_group);
  std::vector<char> buf(16384);
  group g {};
  group* found = nullptr;
  if (::getgrnam_r(socket_group.c_str(), &g, buf.data(), buf.size(), &found) != 0 || !found)
    throw UsageError("serve: socket_group '" + socket_group + "': no such group");
  return long(found->gr_gid);
}

void ServerConfig::load_api_key() {
  if (api_key_file.empty()) return;
  const std::string& f = api_key_file;
  const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UsageError("serve: api_key_file " + f + ": " + std::strerror(errno));
  struct stat st {};
  std::string key;
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= 4096;
  // The key is a password: a file every local user may read gives it to all of them.
  const bool world_readable = ok && (st.st_mode & S_IROTH);
  if (ok && !world_readable) {
    key.resize(size_t(st.st_size));
    ok = ::read(fd, key.data(), key.size()) == ssize_t(key.size());
  }
  ::close(fd);
  if (world_readable)
    throw UsageError("serve: api_key_file " + f + " may be read by every user (mode " +
                std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
                std::to_string(st.st_mode & 7) + "): chmod o-r it");
  if (!ok) throw UsageError("serve: api_key_file " + f + ": not a readable file of at most 4096 bytes");
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.empty()) throw UsageError("serve: api_key_file " + f + " is empty");
  if (key.find_first_of("\r\n") != std::string::npos)
    throw UsageError("serve: api_key_file " + f + " holds more than one line");
  api_key = std::move(key);
}

ListenAddress parse_listen_address(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return UsageError("serve: http_listen '" + text + "': " + why + " (e.g. 127.0.0.1:8000, [::1]:8000 or 8000)");
  };
  std::string host, port;
  if (text.find_first_not_of("0123456789") == std::string::npos) {
    host = "127.0.0.1";   // a bare port: loopback
    port = text;
  } else if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw bad("an IPv6 address is written [addr]:port");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) throw bad("expected address:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535)
    throw bad("the port must be 0..65535");
  ListenAddress a;
  a.address = host;
  a.port = uint16_t(std::stoul(port));
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    a.loopback = (ntohl(v4.s_addr) >> 24) == 127;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    a.loopback = IN6_IS_ADDR_LOOPBACK(&v6);
  } else {
    throw bad("'" + host + "' is not a numeric IP address (or localhost)");
  }
  return a;
}

}  // namespace omni::server
