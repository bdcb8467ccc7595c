#pragma once
// What the HTTP front needs to know of the daemon: its settings (from ServerConfig) and
// the backend it hands requests to. The backend is null while the model loads: the
// front then answers 503 to everything (GET /health included), so a load balancer or a
// client's health probe can tell "starting" from "not there".
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "sched/request.h"
#include "server/openai_chat.h"
#include "server/server_config.h"

namespace omni::server {

struct HttpSettings {
  std::string api_key;          // empty: no key needed
  bool loopback = true;         // the listener is on loopback: Host must name it (DNS rebinding guard)
  int max_connections = 64;
  size_t max_header_bytes = 16u << 10;
  size_t max_body_bytes = 96u << 20;
  size_t max_outgoing_bytes = 8u << 20;   // buffered for a client that does not read: past it, cancelled and closed
  std::chrono::milliseconds header_timeout{10000}, body_timeout{60000}, idle_timeout{30000};

  static HttpSettings from(const ServerConfig& cfg);
};

class HttpBackend {
 public:
  virtual ~HttpBackend() = default;
  virtual const ChatContext& chat_context() const = 0;
  // Stopping: the health check says so and new completions are refused with 503.
  virtual bool draining() const = 0;
  // The scheduler's submit: nullptr when its queue is full. Events arrive on its threads.
  virtual std::shared_ptr<sched::Ticket> submit(sched::Request r) = 0;
  virtual std::string prometheus_text() const = 0;
};

}  // namespace omni::server
