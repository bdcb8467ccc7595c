#pragma once
// Settings of `omnid serve`: defaults, then the TOML file (--config), then flags.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace omni::server {

struct ServerConfig {
  std::string model;                      // checkpoint folder
  std::string socket = "/run/omnid/omnid.sock";
  unsigned socket_mode = 0660;
  std::vector<uint32_t> allowed_uids;     // besides the daemon's own uid (always allowed)
  std::vector<uint32_t> allowed_gids;
  // The socket file's group (a name or a gid): set after bind, and let in like allowed_gids.
  // Empty: the daemon's group. A socket handed over by systemd has the group its unit gave
  // it, which is let in the same way.
  std::string socket_group;
  bool allow_root = true;                 // uid 0 may connect (operators: omni status)
  int threads = 0;                        // CPU threads per cpu device; 0: the measured default
  std::string cpu_weights = "auto";       // how cpu devices keep weight matrices (kernels/cpu_weights.h)
  // Placement (docs/parallelism.md). devices empty: discovered (every CUDA device, else cpu:0).
  std::string devices;
  bool use_multi_gpu = true;
  std::string parallel = "auto";          // auto | single | pipeline | tensor
  std::string max_memory;                 // "cuda:0=20GiB,cuda:1=20GiB" (TOML: that string or a table)
  std::string split;                      // "3,1" (TOML: that string or an array of numbers)
  std::string vision_device;
  // Devices with a copy of the vision tower, pictures split among them: "cpu:0,cpu:1"
  // (TOML: that string or an array of strings). Empty: every device of the plan with room.
  std::string vision_devices;
  int max_active = 16;
  int max_batch_tokens = 512;             // rows per decoder step; longer prompts prefill in chunks
  bool enable_thinking = false;           // Qwen3-style templates (MiniCPM-V 4.5): reason in <think> first
  int max_queue = 64;
  int max_context = 8192;
  int64_t kv_cache_tokens = 0;            // KV pool size; 0: max_active x max_context (docs/configuration.md)
  bool prefix_cache = true;               // reuse cached prompt prefixes (pictures included)
  int max_connections = 256;
  double idle_timeout_seconds = 300;      // a greeted connection with nothing running and no frame: closed (0: never)
  size_t max_outgoing_bytes = 8u << 20;   // per connection before it counts as not reading
  double drain_seconds = 30;
  size_t vision_cache_mb = 256;
  uint64_t max_image_pixels = 40'000'000;
  int metrics_port = -1;                  // >= 0: Prometheus text on 127.0.0.1:port/metrics

  // The OpenAI-compatible HTTP front (docs/http.md). Empty: off. "PORT" alone is
  // 127.0.0.1:PORT; any other address must be written out, so nobody exposes the
  // daemon beyond the machine by accident.
  std::string http_listen;
  std::string api_key;                    // set: every HTTP request but GET /health needs "Bearer <key>"
  std::string api_key_file;               // read once at start (load_api_key); not world-readable
  std::vector<std::string> allowed_image_dirs;   // file:// pictures only from under these (empty: none)
  int http_max_connections = 64;
  size_t http_max_header_bytes = 16u << 10;
  size_t http_max_body_bytes = 96u << 20;   // room for several large pictures as base64, bounded
  double http_header_timeout_seconds = 10;  // from a request's first byte to its last header line
  double http_body_timeout_seconds = 60;
  double http_idle_timeout_seconds = 30;    // a keep-alive connection between requests

  // Reads a TOML file; unknown keys are errors naming the key and file.
  void load_toml(const std::string& path);
  void validate() const;
  // socket_group as a gid (-1 when empty); UsageError when no such group exists.
  long socket_gid() const;
  // api_key_file into api_key (trailing newline trimmed). Throws naming the file when it
  // cannot be read, is empty, or other users may read it; and when both are set.
  void load_api_key();
};

// http_listen split into an address and a port ("8000", "127.0.0.1:8000", "[::1]:8000",
// "localhost:8000"). Throws Error naming the setting.
struct ListenAddress {
  std::string address;   // numeric IPv4 or IPv6
  uint16_t port = 0;
  bool loopback = false;
};
ListenAddress parse_listen_address(const std::string& text);

}  // namespace omni::server
