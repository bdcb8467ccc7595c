#include "server/server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "server/http_front.h"
#include "server/metrics_http.h"
#include "server/session.h"
#include "util/error.h"

namespace omni::server {

namespace asio = boost::asio;

namespace {

// nlohmann JSON (the placement summary) to the generic wire value.
ipc::Value to_value(const nlohmann::json& j) {
  if (j.is_object()) {
    ipc::Value::Map m;
    for (auto it = j.begin(); it != j.end(); ++it) m.emplace_back(it.key(), to_value(it.value()));
    return m;
  }
  if (j.is_array()) {
    ipc::Value::Array a;
    for (const auto& e : j) a.push_back(to_value(e));
    return a;
  }
  if (j.is_string()) return j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number()) return j.get<double>();
  return {};
}

}  // namespace

Server::Server(const ServerConfig& cfg, ChatModel& model, sched::Scheduler& sched, std::string placement_json)
    : cfg_(cfg), model_(model), sched_(sched), placement_json_(std::move(placement_json)),
      image_dirs_(cfg.allowed_image_dirs) {
  limits_.max_new_tokens = uint32_t(std::max(1, cfg.max_context - 16));
  chat_.model_name = model_.name();
  chat_.default_sampling = model_.default_sampling();
  chat_.limits = limits_;
  chat_.image_dirs = image_dirs_.empty() ? nullptr : &image_dirs_;
  // The daemon's own user always; root unless allow_root is off; the socket's group: who
  // may open the socket file is who the operator meant to let in (docs/operations.md).
  policy_.uids.push_back(::getuid());
  if (cfg.allow_root && ::getuid() != 0) policy_.uids.push_back(0);
  for (uint32_t u : cfg.allowed_uids) policy_.uids.push_back(uid_t(u));
  for (uint32_t g : cfg.allowed_gids) policy_.gids.push_back(gid_t(g));
  if (const long gid = cfg.socket_gid(); gid >= 0) policy_.gids.push_back(gid_t(gid));
}

Server::~Server() {
  // Adopted but never served (run() threw first).
  if (http_fd_ >= 0) ::close(http_fd_);
  if (metrics_fd_ >= 0) ::close(metrics_fd_);
}

void Server::adopt_unix_listener(int fd, const std::string& path) {
  listen_fd_ = ipc::UniqueFd(fd);
  activated_ = true;
  if (!path.empty()) cfg_.socket = path;
  struct stat st {};
  // Only when the unit's SocketMode lets that group connect (0660 does): a group the file
  // mode keeps out was not meant to be let in.
  if (!path.empty() && ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IWGRP)) policy_.gids.push_back(st.st_gid);
}

ipc::Value Server::status_details(bool operator_view) const {
  nlohmann::json d;
  d["placement"] = nlohmann::json::parse(placement_json_.empty() ? "null" : placement_json_);
  // Cache hits tell whether somebody asked about a given picture or prompt before: only
  // the daemon's own user (and root) see them (docs/operations.md, Security).
  d["vision_cache"] = {{"entries", model_.vision_cache().entries()}, {"bytes", model_.vision_cache().bytes()}};
  if (operator_view) {
    d["vision_cache"]["hits"] = model_.vision_cache().hits();
    d["vision_cache"]["misses"] = model_.vision_cache().misses();
  }
  nlohmann::json mem = nlohmann::json::array();
  for (const auto& dev : model_.decoder().placement().devices())
    mem.push_back({{"device", dev->id().str()},
                   {"used_bytes", dev->total_memory() - dev->free_memory()},
                   {"free_bytes", dev->free_memory()}});
  d["memory"] = mem;
  sched::Stats st = sched_.stats();
  d["completed_requests"] = st.completed;
  d["generated_tokens"] = st.generated_tokens;
  d["connections"] = sessions_.load();
  if (operator_view) d["accept_failures"] = accept_failures_.load();
  nlohmann::json stages = nlohmann::json::array();
  const auto& dstages = model_.decoder().stages();
  for (size_t i = 0; i < dstages.size(); ++i)
    stages.push_back({{"stage", i},
                      {"device", dstages[i].device->id().str()},
                      {"layers", {dstages[i].first_layer, dstages[i].last_layer}},
                      {"busy_seconds", i < st.pipeline.busy_seconds.size() ? st.pipeline.busy_seconds[i] : 0.0}});
  d["kv_cache"] = {{"block_tokens", st.kv.block_tokens},
                   {"blocks_total", st.kv.blocks_total},
                   {"blocks_used", st.kv.blocks_used},
                   {"blocks_cached", st.kv.blocks_cached}};
  if (operator_view) d["prefix_cache"] = {{"lookup_tokens", st.kv.lookup_tokens}, {"hit_tokens", st.kv.hit_tokens}};
  d["preemptions"] = st.preemptions;
  d["pipeline"] = {{"stages", stages},
                   {"steps", st.pipeline.jobs},
                   {"max_steps_in_flight", st.pipeline.max_in_flight},
                   {"max_busy_stages", st.pipeline.max_busy_stages}};
  return to_value(d);
}

std::string Server::prometheus_text() const {
  sched::Stats st = sched_.stats();
  std::string t;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& value,
                    const std::string& labels = "") {
    t += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    t += std::string(name) + labels + " " + value + "\n";
  };
  metric("omnid_active_requests", "gauge", "Requests decoding now.", std::to_string(st.active));
  metric("omnid_queue_depth", "gauge", "Requests waiting for a slot.", std::to_string(st.queued));
  metric("omnid_tokens_per_second", "gauge", "Generated tokens per second over the last 5 s.",
         std::to_string(st.tokens_per_s));
  metric("omnid_generated_tokens_total", "counter", "Tokens generated.", std::to_string(st.generated_tokens));
  metric("omnid_completed_requests_total", "counter", "Requests finished (any reason).", std::to_string(st.completed));
  metric("omnid_connections", "gauge", "Open client connections.", std::to_string(sessions_.load()));
  if (http_)
    metric("omnid_http_connections", "gauge", "Open connections of the HTTP front.",
           std::to_string(http_->open_connections()));
  metric("omnid_kv_blocks_used", "gauge", "KV cache blocks held by requests.", std::to_string(st.kv.blocks_used));
  metric("omnid_kv_blocks_total", "gauge", "KV cache blocks in the pool.", std::to_string(st.kv.blocks_total));
  metric("omnid_prefix_cache_lookup_tokens_total", "counter", "Prompt tokens looked up in the prefix cache.",
         std::to_string(st.kv.lookup_tokens));
  metric("omnid_prefix_cache_hit_tokens_total", "counter", "Prompt tokens found in the prefix cache (not prefilled).",
         std::to_string(st.kv.hit_tokens));
  metric("omnid_preemptions_total", "counter", "Requests preempted (recomputed later) when the KV cache ran dry.",
         std::to_string(st.preemptions));
  metric("omnid_vision_cache_hits_total", "counter", "Pictures served from the embedding cache.",
         std::to_string(model_.vision_cache().hits()));
  metric("omnid_vision_cache_misses_total", "counter", "Pictures encoded by the vision tower.",
         std::to_string(model_.vision_cache().misses()));
  // Stage occupancy: busy seconds that differ much between stages mean an unbalanced split.
  t += "# HELP omnid_pipeline_stage_busy_seconds_total Time each pipeline stage spent computing.\n"
       "# TYPE omnid_pipeline_stage_busy_seconds_total counter\n";
  const auto& dstages = model_.decoder().stages();
  for (size_t i = 0; i < dstages.size() && i < st.pipeline.busy_seconds.size(); ++i)
    t += "omnid_pipeline_stage_busy_seconds_total{stage=\"" + std::to_string(i) + "\",device=\"" +
         dstages[i].device->id().str() + "\"} " + std::to_string(st.pipeline.busy_seconds[i]) + "\n";
  t += "# HELP omnid_device_memory_used_bytes Memory the engine holds per device.\n"
       "# TYPE omnid_device_memory_used_bytes gauge\n";
  for (const auto& dev : model_.decoder().placement().devices())
    t += "omnid_device_memory_used_bytes{device=\"" + dev->id().str() + "\"} " +
         std::to_string(dev->total_memory() - dev->free_memory()) + "\n";
  return t;
}

void Server::session_closed(bool counted) {
  if (counted) sessions_.fetch_sub(1);
  else refusing_.fetch_sub(1);
}

void Server::track(const std::shared_ptr<Session>& s) {
  std::erase_if(live_, [](const std::weak_ptr<Session>& w) { return w.expired(); });
  live_.push_back(s);
}

bool Server::LogBudget::take() {
  const auto now = std::chrono::steady_clock::now();
  if (last != std::chrono::steady_clock::time_point{} && now - last < std::chrono::seconds(10)) {
    ++suppressed;
    return false;
  }
  last = now;
  return true;
}

void Server::accept_next() {
  listener_->async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec || stopping_) return;
    for (int n = 0; n < 64; ++n) {   // bounded, so the sessions' handlers get their turns
      int err = 0;
      ipc::UniqueFd fd = ipc::accept_unix(listener_->native_handle(), &err);
      if (err) {
        accept_failed(err);
        return;
      }
      if (!fd) break;
      keep_spare_fd();   // taken again once descriptors are back
      admit(std::move(fd));
    }
    accept_next();
  });
}

void Server::accept_failed(int err) {
  // Out of descriptors (EMFILE, ENFILE) the newcomer cannot even be accepted, and it
  // stays in the backlog, readable forever: shed it with the descriptor kept spare for
  // this, then wait a little before accepting again. Nothing that runs is touched.
  bool shed = false;
  if ((err == EMFILE || err == ENFILE) && spare_fd_) {
    spare_fd_ = {};
    shed = bool(ipc::UniqueFd(::accept4(listener_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC)));   // closed here
    keep_spare_fd();
  }
  ++accept_failures_;
  if (accept_log_.take())
    spdlog::warn("accepting a connection failed: {}{}; {} such failures so far, serving on", std::strerror(err),
                 shed ? " (the newcomer was closed)" : "", accept_failures_.load());
  accept_backoff_ = std::make_unique<asio::steady_timer>(io_, std::chrono::milliseconds(100));
  accept_backoff_->async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopping_) accept_next();
  });
}

void Server::keep_spare_fd() {
  if (!spare_fd_) spare_fd_ = ipc::UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

void Server::admit(ipc::UniqueFd fd) {
  ipc::PeerCred cred;
  try {
    cred = ipc::peer_credentials(fd.get());
  } catch (const std::exception& e) {
    spdlog::warn("refusing a connection: {}", e.what());
    return;
  }
  // The peer is checked before it takes a connection slot: refusals have slots of their
  // own, few and short-lived, and past those a refused peer is closed without a word.
  if (!policy_.allows(cred)) {
    if (refuse_log_.take())
      spdlog::warn("refused pid {} uid {} gid {}: not an allowed user or group ({} more refusals not logged)",
                   cred.pid, cred.uid, cred.gid, refuse_log_.suppressed);
    refuse(std::move(fd), cred, ipc::ErrorCode::not_allowed,
           "uid " + std::to_string(cred.uid) + " is not allowed to use this daemon");
    return;
  }
  if (sessions_.load() >= cfg_.max_connections) {
    refuse(std::move(fd), cred, ipc::ErrorCode::busy, "too many connections");
    return;
  }
  try {
    auto s = std::make_shared<Session>(*this, std::move(fd), cred, /*counted=*/true);
    sessions_.fetch_add(1);
    track(s);
    s->start();
  } catch (const std::exception& e) {   // the descriptor could not be adopted; it is closed
    spdlog::warn("dropping a connection from pid {}: {}", cred.pid, e.what());
  }
}

void Server::refuse(ipc::UniqueFd fd, const ipc::PeerCred& cred, ipc::ErrorCode code, const std::string& why) {
  if (refusing_.load() >= kMaxRefusing) return;   // fd closes here
  try {
    auto s = std::make_shared<Session>(*this, std::move(fd), cred, /*counted=*/false);
    refusing_.fetch_add(1);
    track(s);
    s->refuse(code, why);
  } catch (const std::exception& e) {
    spdlog::debug("dropping a refused connection from pid {}: {}", cred.pid, e.what());
  }
}

bool Server::operator_view(const ipc::PeerCred& c) const { return c.uid == 0 || c.uid == ::geteuid(); }

void Server::run(const std::function<void()>& on_ready) {
  if (!activated_) {
    listen_fd_ = ipc::listen_unix(cfg_.socket, cfg_.socket_mode, 64, &socket_file_, cfg_.socket_gid());
    try {
      start_listeners();
    } catch (...) {
      // Whatever failed after bind: the socket file this daemon made goes with it.
      ipc::unlink_if_ours(cfg_.socket, socket_file_);
      throw;
    }
  } else {
    start_listeners();
  }
  spdlog::info("serving {} on {}{}", model_.name(), cfg_.socket, activated_ ? " (passed by systemd)" : "");
  if (on_ready) on_ready();
  // No handler's failure may end the daemon and every request in flight with it: log
  // it and serve on (the handlers themselves answer what they can).
  for (;;) {
    try {
      io_.run();
      break;
    } catch (const std::exception& e) {
      spdlog::error("the I/O loop caught an error and serves on: {}", e.what());
    }
  }
  // The loop has ended (stop()): close what is still open, here, so no session and
  // connection keep each other alive past the server.
  for (auto& w : live_)
    if (auto s = w.lock()) s->close_now();
  live_.clear();
  metrics_.reset();
  if (http_) http_->close_all();
}

void Server::start_listeners() {
  listener_ = std::make_unique<asio::posix::stream_descriptor>(io_, ::dup(listen_fd_.get()));
  listener_->non_blocking(true);
  keep_spare_fd();
  accept_next();
  if (metrics_fd_ >= 0) {
    metrics_ = std::make_unique<MetricsHttp>(io_, metrics_fd_, [this] { return prometheus_text(); });
    metrics_fd_ = -1;   // the endpoint owns it now
  }
  if (http_fd_ >= 0) {
    http_ = std::make_unique<HttpFront>(io_, http_fd_, HttpSettings::from(cfg_), this);
    http_fd_ = -1;   // the front owns it now
    spdlog::info("http: serving {} on port {}", model_.name(), http_->port());
  }
}

void Server::stop() {
  asio::post(io_, [this] {
    if (stopping_.exchange(true)) return;
    boost::system::error_code ec;
    listener_->close(ec);
    if (metrics_) metrics_->close();   // destroyed after the loop: its queued handlers still run
    // No new HTTP connections; idle keep-alive ones close now, running answers when written.
    if (http_) http_->close();
    listen_fd_ = {};
    accept_backoff_.reset();
    // Only the socket file this daemon made: another one may have replaced it since, and
    // one systemd made stays (its unit removes it).
    if (!activated_ && !ipc::unlink_if_ours(cfg_.socket, socket_file_))
      spdlog::info("{} is no longer this daemon's socket: left in place", cfg_.socket);
  });
  // Let running requests finish (their frames still flow through the I/O thread).
  sched_.drain(std::chrono::steady_clock::now() +
               std::chrono::milliseconds(int64_t(cfg_.drain_seconds * 1000)));
  // Tell each client why it is being dropped and end the loop once the goodbyes are
  // written (each session closes after its own), or after 2 s for clients that do not
  // read; run() closes whatever is left.
  asio::post(io_, [this] {
    for (auto& w : live_)
      if (auto s = w.lock()) s->say_goodbye();
    wait_for_goodbyes(std::chrono::steady_clock::now() + std::chrono::seconds(2));
  });
}

void Server::wait_for_goodbyes(std::chrono::steady_clock::time_point give_up) {
  const bool http_open = http_ && http_->open_connections() > 0;
  if ((sessions_.load() == 0 && !http_open) || std::chrono::steady_clock::now() > give_up) {
    io_.stop();
    return;
  }
  goodbye_timer_ = std::make_unique<asio::steady_timer>(io_, std::chrono::milliseconds(5));
  goodbye_timer_->async_wait([this, give_up](boost::system::error_code) { wait_for_goodbyes(give_up); });
}

}  // namespace omni::server
