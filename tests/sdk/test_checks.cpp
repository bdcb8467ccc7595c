// What the SDK refuses before the daemon sees it: picture files that are not regular
// files or exceed max_image_bytes (checked before reading, read with a bound) and
// non-finite sampling values, in the C++ client and in the C API.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../ipc/ipc_test_util.h"
#include "fakes/fake_server.h"
#include "omni_client.h"
#include "sdk/client.h"

using namespace omni;

namespace {

// How Image::from_file ended: "ok <size>" or "<error code> <message>".
std::string from_file_outcome(const std::string& path, uint64_t max_bytes) {
  try {
    return "ok " + std::to_string(sdk::Image::from_file(path, max_bytes).size());
  } catch (const sdk::Error& e) {
    return std::string(ipc::error_code_name(e.code())) + " " + e.what();
  }
}

// from_file in a child process, so that a call that never returns (the unfixed reader
// on /dev/zero or a FIFO) fails this test after `ms` instead of hanging the suite.
std::optional<std::string> from_file_within(const std::string& path, uint64_t max_bytes, int ms) {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const std::string out = from_file_outcome(path, max_bytes);
    (void)!::write(p[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  bool finished = false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    pollfd pf{p[0], POLLIN, 0};
    if (left.count() <= 0 || ::poll(&pf, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[512];
    const ssize_t n = ::read(p[0], buf, sizeof(buf));
    if (n <= 0) {
      finished = n == 0;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(p[0]);
  if (!finished) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!finished) return std::nullopt;
  return out;
}

std::string write_file(const std::string& path, std::size_t n) {
  FILE* f = std::fopen(path.c_str(), "wb");
  REQUIRE(f);
  std::vector<uint8_t> bytes(n, 0x42);
  if (n) bytes[0] = 0x89;
  if (n) REQUIRE(std::fwrite(bytes.data(), 1, n, f) == n);   // fwrite(nullptr, ...) is undefined
  std::fclose(f);
  return path;
}

const uint64_t kProtocolMaxImageBytes = ipc::Limits{}.max_image_bytes;

}  // namespace

TEST_CASE("Image::from_file refuses /dev/zero at once and by name") {
  const auto out = from_file_within("/dev/zero", kProtocolMaxImageBytes, 2000);
  REQUIRE(out.has_value());  // the unfixed reader never returns (and grows without bound)
  REQUIRE(*out == "bad_image image file /dev/zero is not a regular file");
}

TEST_CASE("Image::from_file refuses a FIFO at once and by name though no one writes to it") {
  omni_test::TempDir dir;
  const std::string fifo = dir.path + "/picture.png";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const auto out = from_file_within(fifo, kProtocolMaxImageBytes, 2000);
  REQUIRE(out.has_value());  // opening a FIFO for reading must not wait for a writer
  REQUIRE(*out == "bad_image image file " + fifo + " is not a regular file");
}

TEST_CASE("Image::from_file refuses a directory and a missing file by name") {
  omni_test::TempDir dir;
  REQUIRE(from_file_outcome(dir.path, kProtocolMaxImageBytes) == "bad_image image file " + dir.path + " is not a regular file");
  const std::string missing = dir.path + "/missing.png";
  REQUIRE(from_file_outcome(missing, kProtocolMaxImageBytes).rfind("bad_image cannot open image file " + missing + ": ", 0) == 0);
  const std::string empty = write_file(dir.path + "/empty.png", 0);
  REQUIRE(from_file_outcome(empty, kProtocolMaxImageBytes) == "bad_image empty image file: " + empty);
}

TEST_CASE("Image::from_file refuses a file one byte over max_image_bytes without reading it") {
  omni_test::TempDir dir;
  // Sparse: st_size is one byte over the protocol's limit, yet no block is written.
  const std::string big = dir.path + "/big.png";
  {
    const int fd = ::open(big.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(kProtocolMaxImageBytes + 1)) == 0);
    ::close(fd);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const auto out = from_file_within(big, kProtocolMaxImageBytes, 5000);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(out.has_value());
  REQUIRE(*out == "too_large image file " + big + " is " + std::to_string(kProtocolMaxImageBytes + 1) +
                      " bytes, over the daemon's max_image_bytes " + std::to_string(kProtocolMaxImageBytes));
  CHECK(ms < 1000);  // stat and refuse: 64 MiB are not read (a loose bound for a loaded machine)
  // A limit passed in (the daemon's figure) counts, not the protocol's.
  const std::string f = write_file(dir.path + "/f.png", 101);
  REQUIRE(from_file_outcome(f, 100).rfind("too_large image file " + f + " is 101 bytes", 0) == 0);
  REQUIRE(from_file_outcome(f, 101) == "ok 101");
}

TEST_CASE("Image::from_file: a small regular picture still reaches the daemon") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer server(path);
  const std::string png = write_file(dir.path + "/cat.png", 64);
  sdk::Client client({path, "test"});
  sdk::GenerateRequest req;
  req.prompt = "what is it?";
  req.images.push_back(sdk::Image::from_file(png, client.connect().limits.max_image_bytes));
  REQUIRE(req.images[0].size() == 64);
  REQUIRE(req.images[0].format() == ipc::ImageFormat::encoded);
  REQUIRE(client.generate(req, nullptr).reason == ipc::FinishReason::stop);
  std::lock_guard lk(server.mu);
  REQUIRE(server.image_bytes.back() == 64);
  REQUIRE(server.first_image_byte.back() == 0x89);
}

TEST_CASE("C++ client: NaN and infinite sampling values are refused before anything is sent") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer server(path);
  sdk::Client client({path, "test"});
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  struct Bad {
    std::optional<double> ipc::Sampling::*field;
    double value;
    const char* name;
  };
  const Bad bad[] = {
      {&ipc::Sampling::temperature, nan, "sampling.temperature"},
      {&ipc::Sampling::temperature, inf, "sampling.temperature"},
      {&ipc::Sampling::top_p, nan, "sampling.top_p"},
      {&ipc::Sampling::top_p, -inf, "sampling.top_p"},
      {&ipc::Sampling::repetition_penalty, nan, "sampling.repetition_penalty"},
  };
  for (const Bad& b : bad) {
    INFO(b.name << " = " << b.value);
    sdk::GenerateRequest req;
    req.prompt = "q";
    req.sampling.*b.field = b.value;
    try {
      client.generate(req, nullptr);
      FAIL("expected bad_message");
    } catch (const sdk::Error& e) {
      REQUIRE(e.code() == ipc::ErrorCode::bad_message);
      REQUIRE(std::string(e.what()).rfind(std::string(b.name) + " is ", 0) == 0);
    }
  }
  REQUIRE(server.connections == 0);  // refused locally: the daemon never saw them
  sdk::GenerateRequest ok;
  ok.prompt = "q";
  ok.sampling.temperature = 0.3;
  REQUIRE(client.generate(ok, nullptr).reason == ipc::FinishReason::stop);
}

TEST_CASE("C API: NaN and infinite sampling values are invalid_arg naming the field") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer server(path);
  omni_client* c = nullptr;
  REQUIRE(omni_client_create(path.c_str(), "c-test", &c) == OMNI_OK);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Bad {
    float omni_generate_params::*field;
    float value;
    const char* name;
  };
  const Bad bad[] = {
      {&omni_generate_params::temperature, nan, "params->temperature"},
      {&omni_generate_params::temperature, inf, "params->temperature"},
      {&omni_generate_params::top_p, nan, "params->top_p"},
      {&omni_generate_params::top_p, -inf, "params->top_p"},
      {&omni_generate_params::repetition_penalty, nan, "params->repetition_penalty"},
  };
  for (const Bad& b : bad) {
    INFO(b.name << " = " << b.value);
    omni_generate_params p;
    omni_generate_params_init(&p);
    p.prompt = "q";
    p.*b.field = b.value;
    omni_done d;
    REQUIRE(omni_client_generate(c, &p, nullptr, nullptr, &d) == OMNI_E_INVALID_ARG);
    REQUIRE(std::string(omni_last_error()).rfind(std::string(b.name) + " is ", 0) == 0);
  }
  REQUIRE(server.generates == 0);
  omni_generate_params p;
  omni_generate_params_init(&p);
  p.prompt = "q";
  p.temperature = -0.5f;  // a finite negative still means the model's default
  omni_done d;
  REQUIRE(omni_client_generate(c, &p, nullptr, nullptr, &d) == OMNI_OK);
  {
    std::lock_guard lk(server.mu);
    REQUIRE_FALSE(server.samplings.back().temperature.has_value());
  }
  omni_client_destroy(c);
}
