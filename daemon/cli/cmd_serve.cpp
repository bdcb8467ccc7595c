// omnid serve: load and place the model once, then serve local clients over the Unix
// socket until SIGTERM/SIGINT, which drains in-flight requests within a deadline.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <spdlog/spdlog.h>

#include <thread>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/preflight.h"
#include "server/http_loading.h"
#include "server/metrics_http.h"
#include "server/socket_activation.h"
#include "server/server.h"
#include "server/systemd_notify.h"
#include "util/error.h"

namespace omni {

namespace {

int g_signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  (void)!::write(g_signal_pipe[1], &b, 1);
}

struct ServeArgs {
  std::string config_file;
  server::ServerConfig flags;   // only the options given on the command line are applied
  bool no_prefix_cache = false;
  CLI::App* cmd = nullptr;
};

void apply_flags(const ServeArgs& a, server::ServerConfig& c) {
  auto given = [&](const char* name) { return a.cmd->count(name) > 0; };
  const auto& f = a.flags;
  if (given("--model")) c.model = f.model;
  if (given("--socket")) c.socket = f.socket;
  if (given("--devices")) c.devices = f.devices;
  if (given("--use-multi-gpu")) c.use_multi_gpu = f.use_multi_gpu;
  if (given("--parallel")) c.parallel = f.parallel;
  if (given("--max-memory")) c.max_memory = f.max_memory;
  if (given("--split")) c.split = f.split;
  if (given("--vision-device")) c.vision_device = f.vision_device;
  if (given("--vision-devices")) c.vision_devices = f.vision_devices;
  if (given("--max-active")) c.max_active = f.max_active;
  if (given("--max-batch-tokens")) c.max_batch_tokens = f.max_batch_tokens;
  if (given("--think")) c.enable_thinking = f.enable_thinking;
  if (given("--max-queue")) c.max_queue = f.max_queue;
  if (given("--max-context")) c.max_context = f.max_context;
  if (given("--kv-cache-tokens")) c.kv_cache_tokens = f.kv_cache_tokens;
  if (given("--no-prefix-cache")) c.prefix_cache = false;
  if (given("--max-connections")) c.max_connections = f.max_connections;
  if (given("--idle-timeout")) c.idle_timeout_seconds = f.idle_timeout_seconds;
  if (given("--allow-uid")) c.allowed_uids = f.allowed_uids;
  if (given("--allow-gid")) c.allowed_gids = f.allowed_gids;
  if (given("--socket-group")) c.socket_group = f.socket_group;
  if (given("--threads")) c.threads = f.threads;
  if (given("--cpu-weights")) c.cpu_weights = f.cpu_weights;
  if (given("--drain-seconds")) c.drain_seconds = f.drain_seconds;
  if (given("--vision-cache-mb")) c.vision_cache_mb = f.vision_cache_mb;
  if (given("--max-image-pixels")) c.max_image_pixels = f.max_image_pixels;
  if (given("--metrics-port")) c.metrics_port = f.metrics_port;
  if (given("--http")) c.http_listen = f.http_listen;
  if (given("--api-key-file")) {
    c.api_key_file = f.api_key_file;
    c.api_key.clear();   // the flag wins over a key in the file
  }
  if (given("--allowed-image-dir")) c.allowed_image_dirs = f.allowed_image_dirs;
  if (given("--http-max-connections")) c.http_max_connections = f.http_max_connections;
  if (given("--http-max-header-bytes")) c.http_max_header_bytes = f.http_max_header_bytes;
  if (given("--http-max-body-bytes")) c.http_max_body_bytes = f.http_max_body_bytes;
  if (given("--http-header-timeout")) c.http_header_timeout_seconds = f.http_header_timeout_seconds;
  if (given("--http-body-timeout")) c.http_body_timeout_seconds = f.http_body_timeout_seconds;
  if (given("--http-idle-timeout")) c.http_idle_timeout_seconds = f.http_idle_timeout_seconds;
}

void serve(const ServeArgs& a) {
  server::ServerConfig cfg;
  if (!a.config_file.empty()) {
    check_readable_file(a.config_file, "--config");
    cfg.load_toml(a.config_file);
  }
  apply_flags(a, cfg);
  cfg.validate();
  cfg.load_api_key();

  DeviceOptions dev;
  dev.devices = cfg.devices;
  dev.use_multi_gpu = cfg.use_multi_gpu;
  dev.parallel = cfg.parallel;
  dev.max_memory = cfg.max_memory;
  dev.split = cfg.split;
  dev.vision_device = cfg.vision_device;
  dev.vision_devices = cfg.vision_devices;
  dev.threads = cfg.threads;
  dev.cpu_weights = cfg.cpu_weights;
  // The KV pool: kv_cache_tokens, else room for every active request at full length
  // (shared: a request takes blocks as it grows).
  dev.context = cfg.max_context;
  dev.concurrency = cfg.max_active;
  dev.kv_tokens = cfg.kv_cache_tokens;

  // Everything that can be refused is refused before a weight is read (exit 2): the
  // settings above, the model folder and its plan, the socket path, the ports.
  server::ActivatedSockets passed = server::take_activated_sockets(cfg.metrics_port);
  if (passed.unix_fd < 0) {
    check_socket_path(cfg.socket);
    check_socket_group(cfg.socket_gid(), cfg.socket_group);
  }
  check_model_and_plan(cfg.model, dev);
  int metrics_fd = passed.metrics_fd;
  if (metrics_fd < 0 && cfg.metrics_port >= 0) metrics_fd = server::bind_metrics_listener(cfg.metrics_port);

  // SIGTERM/SIGINT may land on any thread (OpenBLAS starts its own before main), so the
  // handler only writes to a pipe that a waiting thread reads.
  if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) throw Error("serve: pipe failed");
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The HTTP port is taken before the model loads, and answers 503 meanwhile.
  std::unique_ptr<server::HttpLoading> http_loading;
  if (passed.http_fd >= 0 || !cfg.http_listen.empty())
    http_loading = std::make_unique<server::HttpLoading>(cfg, passed.http_fd);

  ChatModelOptions mo;
  if (cfg.enable_thinking) mo.enable_thinking = true;
  mo.vision_cache_bytes = cfg.vision_cache_mb << 20;
  mo.image_limits.max_pixels = cfg.max_image_pixels;
  mo.video_limits.max_frame_pixels = cfg.max_image_pixels;
  // The decode-work bound is sized for the default pixel limit (image/decode.h): it grows
  // with a larger one, so legitimate progressive JPEGs of the allowed size still pass.
  const image::DecodeLimits defaults;
  if (cfg.max_image_pixels > defaults.max_pixels)
    mo.image_limits.max_decode_work = uint64_t(std::min(
        1e18, double(defaults.max_decode_work) * double(cfg.max_image_pixels) / double(defaults.max_pixels)));
  auto model = ChatModel::load(cfg.model, dev.placer(cfg.model), log_progress(cfg.model), mo);

  sched::SchedulerOptions so;
  so.max_active = cfg.max_active;
  so.max_batch_tokens = cfg.max_batch_tokens;
  so.max_queue = cfg.max_queue;
  so.max_context = cfg.max_context;
  so.kv_blocks = dev.plan_options(model->config()).workload.kv_blocks();   // what the planner budgeted
  so.prefix_cache = cfg.prefix_cache;
  auto scheduler = std::make_unique<sched::Scheduler>(*model, so);
  server::Server srv(cfg, *model, *scheduler, dev.placement_json(model->decoder()));
  if (http_loading) srv.adopt_http_listener(http_loading->release());
  if (metrics_fd >= 0) srv.adopt_metrics_listener(metrics_fd);
  if (passed.unix_fd >= 0) srv.adopt_unix_listener(passed.unix_fd, passed.unix_path);
  server::Watchdog watchdog;

  std::thread signals([&] {
    unsigned char sig = 0;
    while (::read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (sig == 0) return;   // the server stopped on its own
    spdlog::info("signal {}: draining (up to {} s)", sig, cfg.drain_seconds);
    server::notify_systemd("STOPPING=1");
    srv.stop();
  });
  // The I/O loop may end (no work left) while the signal thread is still draining the
  // scheduler: let it finish before the scheduler goes (found by ThreadSanitizer). Also when
  // run() throws (socket in use): a joinable thread left behind would terminate the process.
  auto stop_signal_thread = [&] {
    const unsigned char zero = 0;
    (void)!::write(g_signal_pipe[1], &zero, 1);   // wakes the waiter if no signal came
    signals.join();
  };
  try {
    srv.run([] { server::notify_systemd("READY=1"); });
  } catch (...) {
    stop_signal_thread();
    throw;
  }
  stop_signal_thread();
  scheduler.reset();   // before the server's I/O context goes away
  spdlog::info("stopped");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Load the model once and serve local clients over a Unix socket");
  a->cmd = cmd;
  auto& f = a->flags;
  cmd->add_option("--config", a->config_file, "TOML settings file (every setting is also a flag; flags win)");
  cmd->add_option("--model", f.model, "Checkpoint folder");
  cmd->add_option("--socket", f.socket, "Unix socket path (created with mode 0660)");
  cmd->add_option("--devices", f.devices, "Comma-separated devices, e.g. cpu:0,cpu:1 (default: every CUDA device, else cpu:0)");
  cmd->add_option("--use-multi-gpu", f.use_multi_gpu, "false: run on the first device only");
  cmd->add_option("--parallel", f.parallel, "auto, single, pipeline or tensor")
      ->check(CLI::IsMember({"auto", "single", "pipeline", "tensor"}));
  cmd->add_option("--max-memory", f.max_memory, "Per-device memory caps, e.g. cuda:0=20GiB,cuda:1=20GiB");
  cmd->add_option("--split", f.split, "Pipeline layer shares per listed device, e.g. 3,1");
  cmd->add_option("--vision-device", f.vision_device, "Device for the vision tower and resampler");
  cmd->add_option("--vision-devices", f.vision_devices,
                  "Devices with a copy of the vision tower, pictures split among them, e.g. cpu:0,cpu:1 "
                  "(default: every device of the plan with room)");
  cmd->add_option("--max-active", f.max_active, "Requests decoding together");
  cmd->add_flag("--think", f.enable_thinking, "Let the model reason in a <think> block first (Qwen3-style templates: MiniCPM-V 4.5)");
  cmd->add_option("--max-batch-tokens", f.max_batch_tokens,
                  "Rows per decoder step: running requests one each, prompts the rest (longer ones in chunks)");
  cmd->add_option("--max-queue", f.max_queue, "Waiting requests before answering busy");
  cmd->add_option("--max-context", f.max_context, "Prompt plus generated tokens per request");
  cmd->add_option("--kv-cache-tokens", f.kv_cache_tokens,
                  "KV cache size in tokens, shared by all requests (default: max_active x max_context)");
  cmd->add_flag("--no-prefix-cache", a->no_prefix_cache, "Do not reuse the KV cache of earlier prompts with the same start");
  cmd->add_option("--max-connections", f.max_connections, "Simultaneous client connections");
  cmd->add_option("--idle-timeout", f.idle_timeout_seconds,
                  "Seconds a connection with nothing running may stay silent before it is closed (0: never)");
  cmd->add_option("--allow-uid", f.allowed_uids, "User ids allowed to connect besides the daemon's own and root");
  cmd->add_option("--allow-gid", f.allowed_gids, "Group ids allowed to connect");
  cmd->add_option("--socket-group", f.socket_group,
                  "Group (name or gid) of the socket file, whose members may connect (default: the daemon's group)");
  cmd->add_option("--threads", f.threads, "CPU threads per cpu device (default: the cores shared among the cpu devices)");
  cmd->add_option("--cpu-weights", f.cpu_weights,
                  "How cpu devices keep weight matrices: auto (as the checkpoint stores them), f32, bf16 or int8 (Q8_0 blocks)");
  cmd->add_option("--drain-seconds", f.drain_seconds, "On SIGTERM, time running requests get to finish");
  cmd->add_option("--vision-cache-mb", f.vision_cache_mb, "Bound of the picture-embedding cache");
  cmd->add_option("--max-image-pixels", f.max_image_pixels, "Largest picture accepted (pixels)");
  cmd->add_option("--metrics-port", f.metrics_port, "Serve Prometheus text on 127.0.0.1:PORT/metrics (0: any port)");
  cmd->add_option("--http", f.http_listen,
                  "Serve the OpenAI-compatible HTTP API on ADDRESS:PORT (PORT alone: 127.0.0.1:PORT; docs/http.md)");
  cmd->add_option("--api-key-file", f.api_key_file,
                  "File holding the key HTTP clients must send as 'Authorization: Bearer KEY' (not world-readable)");
  cmd->add_option("--allowed-image-dir", f.allowed_image_dirs,
                  "Folder HTTP requests may name pictures in as file:// URLs (repeatable; default: none)");
  cmd->add_option("--http-max-connections", f.http_max_connections, "Simultaneous HTTP connections");
  cmd->add_option("--http-max-header-bytes", f.http_max_header_bytes, "Largest HTTP request head");
  cmd->add_option("--http-max-body-bytes", f.http_max_body_bytes, "Largest HTTP request body (pictures as base64 included)");
  cmd->add_option("--http-header-timeout", f.http_header_timeout_seconds, "Seconds a request head may take to arrive");
  cmd->add_option("--http-body-timeout", f.http_body_timeout_seconds,
                  "Seconds a request body may take to arrive, and an answer's write to progress");
  cmd->add_option("--http-idle-timeout", f.http_idle_timeout_seconds,
                  "Seconds a keep-alive HTTP connection may wait for its next request");
  cmd->callback([a] { serve(*a); });
}

}  // namespace omni
