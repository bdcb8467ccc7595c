#include "server/http_settings.h"

namespace omni::server {

HttpSettings HttpSettings::from(const ServerConfig& cfg) {
  auto ms = [](double s) { return std::chrono::milliseconds(int64_t(s * 1000)); };
  HttpSettings h;
  h.api_key = cfg.api_key;
  h.loopback = cfg.http_listen.empty() || parse_listen_address(cfg.http_listen).loopback;
  h.max_connections = cfg.http_max_connections;
  h.max_header_bytes = cfg.http_max_header_bytes;
  h.max_body_bytes = cfg.http_max_body_bytes;
  h.max_outgoing_bytes = cfg.max_outgoing_bytes;
  h.header_timeout = ms(cfg.http_header_timeout_seconds);
  h.body_timeout = ms(cfg.http_body_timeout_seconds);
  h.idle_timeout = ms(cfg.http_idle_timeout_seconds);
  return h;
}

}  // namespace omni::server
