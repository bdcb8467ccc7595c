// Mistakes found before the model loads: each exits 2 at once with a message naming the
// thing, without reading a weight. The model folder's model.safetensors is a FIFO with no
// writer, so a command that opened the weights would hang there: `timeout` turns that
// into a kill, and the last case shows a correct command does get that far.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "cli/run_command.h"
#include "util/listeners.h"

namespace fs = std::filesystem;
using omni::test::bin;
using omni::test::run_command;
using omni::test::shell_quote;

namespace {

struct FifoModel {
  fs::path dir;
  FifoModel() {
    dir = fs::temp_directory_path() / ("omni-preflight-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "model");
    const fs::path src = fs::path(OMNI_TEST_DATA).parent_path().parent_path() / "models" / "shapes";
    for (const char* f : {"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
                          "tokenizer_config.json"})
      fs::copy_file(src / f, dir / "model" / f);
    REQUIRE(::mkfifo((dir / "model" / "model.safetensors").c_str(), 0600) == 0);
  }
  ~FifoModel() { fs::remove_all(dir); }
  std::string model() const { return (dir / "model").string(); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

struct Timed {
  omni::test::CommandResult r;
  double seconds = 0;
};

constexpr int kKilled = 137;   // what timeout -s KILL exits with

// Runs omnid with `args` (and `env` in front), killed after `limit` seconds.
Timed omnid(const std::string& args, int limit = 20, const std::string& env = "") {
  const auto t0 = std::chrono::steady_clock::now();
  Timed t;
  t.r = run_command(env + " timeout -s KILL " + std::to_string(limit) + " " + bin("omnid") + " " + args);
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return t;
}

// Exit 2, a message naming `names`, quickly (a second, with room for a loaded machine).
void refused(const Timed& t, const std::string& names) {
  INFO("stderr: " << t.r.err);
  CHECK(t.r.exit_code == 2);
  CHECK(t.r.err.find(names) != std::string::npos);
  CHECK(t.seconds < 5.0);
}

}  // namespace

TEST_CASE("omnid run refuses a missing picture a bad sampling value and a bad flag before loading", "[preflight]") {
  FifoModel m;
  const std::string model = "--model " + shell_quote(m.model());
  refused(omnid("run " + model + " --image " + shell_quote(m.path("missing.png")) + " hi"), "missing.png");
  refused(omnid("run " + model + " --temperature -1 hi"), "temperature");
  refused(omnid("run " + model + " --top-p 2 hi"), "top_p");
  refused(omnid("run " + model + " --no-such-flag hi"), "--no-such-flag");
  refused(omnid("run --model " + shell_quote(m.path("nowhere")) + " hi"), "nowhere");
  refused(omnid("run " + model + " --devices cuda:0 hi"), "cuda:0");
  refused(omnid("run " + model + " --devices cpu:0 --max-memory cpu:0=1MiB hi"), "cpu:0");
  refused(omnid("dump " + model + " --tokens 1,x --out " + shell_quote(m.path("out"))), "--tokens");
}

TEST_CASE("omnid serve refuses bad settings files sockets and ports before loading", "[preflight]") {
  FifoModel m;
  const std::string base = "serve --model " + shell_quote(m.model()) + " --socket " + shell_quote(m.path("d.sock"));
  {
    std::ofstream(m.path("bad.toml")) << "model = \"x\"\nmax_actve = 3\n";
    refused(omnid(base + " --config " + shell_quote(m.path("bad.toml"))), "max_actve");
  }
  refused(omnid(base + " --config " + shell_quote(m.path("absent.toml"))), "absent.toml");
  refused(omnid(base + " --max-active 0"), "max_active");
  refused(omnid("serve --model " + shell_quote(m.model()) + " --socket " + shell_quote(m.path("no/dir/d.sock"))),
          "socket directory");
  refused(omnid(base + " --socket-group no-such-group-omni"), "no-such-group-omni");
  {
    const int fd = omni::test::listening_unix(m.path("live.sock"));
    refused(omnid("serve --model " + shell_quote(m.model()) + " --socket " + shell_quote(m.path("live.sock"))),
            "another server is listening");
    ::close(fd);
  }
  {
    int port = 0;
    const int fd = omni::test::listening_tcp(&port);
    refused(omnid(base + " --metrics-port " + std::to_string(port)), "metrics_port");
    refused(omnid(base + " --http 127.0.0.1:" + std::to_string(port)), "http_listen");
    ::close(fd);
  }
  refused(omnid(base + " --http 127.0.0.1:notaport"), "http_listen");
  refused(omnid(base + " --http 127.0.0.1:0 --api-key-file " + shell_quote(m.path("no-key"))), "no-key");
  {
    std::ofstream(m.path("open-key")) << "secret\n";
    fs::permissions(m.path("open-key"), fs::perms::owner_read | fs::perms::others_read);
    refused(omnid(base + " --http 127.0.0.1:0 --api-key-file " + shell_quote(m.path("open-key"))), "open-key");
  }
  refused(omnid(base, 20, "OMNI_LOG_LEVEL=loud"), "OMNI_LOG_LEVEL");
  // Nothing was left behind by the refusals.
  CHECK_FALSE(fs::exists(m.path("d.sock")));
}

TEST_CASE("a correct omnid serve gets as far as the weights (the checks above are what stopped them)", "[preflight]") {
  FifoModel m;
  const Timed t = omnid("serve --model " + shell_quote(m.model()) + " --socket " + shell_quote(m.path("ok.sock")), 3);
  INFO("stderr: " << t.r.err);
  CHECK(t.r.exit_code == kKilled);   // blocked opening the FIFO: it was reading the weights
}
