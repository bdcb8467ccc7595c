#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "fakes/fake_server.h"
#include "ipc/memfd.h"
#include "ipc/socket.h"
#include "omni_client.h"
#include "sdk/client.h"
#include "../ipc/ipc_test_util.h"
#include "util/skip.h"

using namespace omni;

namespace {
std::vector<uint8_t> fake_png(std::size_t n) {
  std::vector<uint8_t> v(n, 0x42);
  v[0] = 0x89;
  return v;
}

std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = ::pclose(p);
  return out;
}
}  // namespace

TEST_CASE("generate streams tokens and returns done - images arrive as sealed memfds") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  const int fds_before = omni_test::count_open_fds();
  {
    omni_test::FakeServer server(path);
    sdk::Client client({path, "test"});
    auto info = client.connect();
    REQUIRE(info.model == "fake-model");
    sdk::GenerateRequest req;
    req.prompt = "What is in the picture?";
    req.images.push_back(sdk::Image::from_bytes(fake_png(1000)));
    std::vector<uint8_t> rgb(4 * 3 * 3, 7);
    req.images.push_back(sdk::Image::from_rgb(rgb, 4, 3));
    std::string text;
    int tokens = 0;
    auto done = client.generate(req, [&](const ipc::Token& t) {
      text += t.text;
      ++tokens;
    });
    REQUIRE(text == "A fake answer.");
    REQUIRE(tokens == 4);
    REQUIRE(done.reason == ipc::FinishReason::stop);
    REQUIRE(done.completion_tokens == 4);
    {
      std::lock_guard lk(server.mu);
      REQUIRE(server.prompts.back() == req.prompt);
      REQUIRE(server.image_bytes == std::vector<uint64_t>{1000, 36});
      REQUIRE(server.first_image_byte == std::vector<uint8_t>{0x89, 7});
    }
    req.max_tokens = 2;
    text.clear();
    done = client.generate(req, [&](const ipc::Token& t) { text += t.text; });
    REQUIRE(done.reason == ipc::FinishReason::length);
    REQUIRE(text == "A fake");
    REQUIRE(server.connections == 1);  // one connection reused
  }
  REQUIRE(omni_test::count_open_fds() == fds_before);
}

TEST_CASE("status returns active_requests and details") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer server(path);
  sdk::Client client({path, "test"});
  auto s = client.status();
  REQUIRE(s.model == "fake-model");
  REQUIRE(s.active_requests == 0);
  const std::string j = sdk::status_to_json(s);
  REQUIRE(j.find("\"active_requests\":0") != std::string::npos);
  REQUIRE(j.find("\"placement\":\"cpu\"") != std::string::npos);
}

TEST_CASE("cancel from another thread ends the request as cancelled - cancel twice is harmless") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer::Options o;
  o.pieces = std::vector<std::string>(50, "x");
  o.token_delay_ms = 20;
  omni_test::FakeServer server(path, o);
  sdk::Client client({path, "test"});
  sdk::GenerateRequest req;
  req.prompt = "long";
  req.request_id = client.next_request_id();
  std::atomic<int> seen{0};
  std::thread canceller([&] {
    while (seen.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    client.cancel(req.request_id);
    client.cancel(req.request_id);
  });
  auto done = client.generate(req, [&](const ipc::Token&) { ++seen; });
  canceller.join();
  REQUIRE(done.reason == ipc::FinishReason::cancelled);
  REQUIRE(seen.load() < 50);
  // cancel before start: never sent
  const int gens = server.generates.load();
  req.request_id = client.next_request_id();
  client.cancel(req.request_id);
  done = client.generate(req, nullptr);
  REQUIRE(done.reason == ipc::FinishReason::cancelled);
  REQUIRE(server.generates.load() == gens);
  // the connection is still usable
  req.request_id = 0;
  o.pieces.resize(1);
  REQUIRE(client.status().model == "fake-model");
}

TEST_CASE("daemon restart: the next call reconnects - crash mid-stream is unavailable") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  sdk::Client client({path, "test"});
  sdk::GenerateRequest req;
  req.prompt = "q";
  {
    omni_test::FakeServer server(path);
    REQUIRE(client.generate(req, nullptr).reason == ipc::FinishReason::stop);
  }
  // no daemon at all
  try {
    client.generate(req, nullptr);
    FAIL("expected unavailable");
  } catch (const sdk::Error& e) {
    REQUIRE(e.code() == ipc::ErrorCode::unavailable);
  }
  {
    omni_test::FakeServer server(path);
    REQUIRE(client.generate(req, nullptr).reason == ipc::FinishReason::stop);
  }
  {
    omni_test::FakeServer::Options o;
    o.close_after_tokens = 2;
    omni_test::FakeServer crashing(path, o);
    std::string text;
    try {
      client.generate(req, [&](const ipc::Token& t) { text += t.text; });
      FAIL("expected unavailable");
    } catch (const sdk::Error& e) {
      REQUIRE(e.code() == ipc::ErrorCode::unavailable);
    }
    REQUIRE(text == "A fake");
  }
  {
    omni_test::FakeServer server(path);  // restarted daemon, same client object
    REQUIRE(client.generate(req, nullptr).reason == ipc::FinishReason::stop);
  }
}

TEST_CASE("server rejects unsealed images with bad_image for that request id") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer server(path);
  auto fd = ipc::connect_unix(path);
  ipc::send_frame(fd.get(), ipc::encode_message(ipc::Hello{}));
  ipc::FrameReader r;
  auto hello = ipc::decode_message(ipc::recv_frame(fd.get(), r, 2000), r.limits());
  REQUIRE(std::holds_alternative<ipc::HelloOk>(hello));
  ipc::UniqueFd unsealed(::memfd_create("x", MFD_CLOEXEC));
  REQUIRE(::ftruncate(unsealed.get(), 10) == 0);
  ipc::Generate g;
  g.id = 99;
  g.prompt = "q";
  g.images = {ipc::ImageRef{0, 10, ipc::ImageFormat::encoded, 0, 0}};
  const int fds[] = {unsealed.get()};
  ipc::send_frame(fd.get(), ipc::encode_message(g), fds);
  auto reply = ipc::decode_message(ipc::recv_frame(fd.get(), r, 2000), r.limits());
  auto* e = std::get_if<ipc::ErrorMsg>(&reply);
  REQUIRE(e);
  REQUIRE(e->id == 99);
  REQUIRE(e->code == ipc::ErrorCode::bad_image);
}

TEST_CASE("C API: generate, status, cancel twice, errors with messages") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_client* c = nullptr;
  REQUIRE(omni_client_create(path.c_str(), "c-test", &c) == OMNI_OK);
  omni_generate_params p;
  omni_generate_params_init(&p);
  p.prompt = "hi";
  omni_done d;
  REQUIRE(omni_client_generate(c, &p, nullptr, nullptr, &d) == OMNI_E_UNAVAILABLE);
  REQUIRE(std::string(omni_last_error()).size() > 0);
  REQUIRE(omni_client_generate(c, nullptr, nullptr, nullptr, &d) == OMNI_E_INVALID_ARG);
  {
    omni_test::FakeServer server(path);
    std::string text;
    auto cb = [](void* user, uint64_t, const char* piece, size_t len, int64_t) {
      static_cast<std::string*>(user)->append(piece, len);
    };
    auto img = fake_png(64);
    omni_image im{img.data(), img.size(), OMNI_IMAGE_ENCODED, 0, 0};
    p.images = &im;
    p.n_images = 1;
    REQUIRE(omni_client_generate(c, &p, cb, &text, &d) == OMNI_OK);
    REQUIRE(text == "A fake answer.");
    REQUIRE(std::string(d.finish_reason) == "stop");
    char* json = nullptr;
    REQUIRE(omni_client_status_json(c, &json) == OMNI_OK);
    REQUIRE(std::string(json).find("\"active_requests\"") != std::string::npos);
    omni_string_free(json);
    REQUIRE(omni_client_cancel(c, 12345) == OMNI_OK);
    REQUIRE(omni_client_cancel(c, 12345) == OMNI_OK);
    omni_image bad{img.data(), img.size(), OMNI_IMAGE_RGB, 5, 5};  // size mismatch
    p.images = &bad;
    REQUIRE(omni_client_generate(c, &p, nullptr, nullptr, &d) == OMNI_E_BAD_IMAGE);
  }
  omni_client_destroy(c);
}

TEST_CASE("omni CLI: ask and status --json") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  const std::string bin = std::string(OMNI_BIN_DIR) + "/omni";
  if (!std::filesystem::exists(bin)) {
    OMNI_SKIP("omni binary not built: " << bin);
  }
  omni_test::FakeServer server(path);
  const std::string img = dir.path + "/x.png";
  {
    FILE* f = std::fopen(img.c_str(), "wb");
    auto b = fake_png(100);
    std::fwrite(b.data(), 1, b.size(), f);
    std::fclose(f);
  }
  int st = 0;
  auto out = run(bin + " ask --socket " + path + " --image " + img + " --max-tokens 8 --greedy \"what is it?\"", &st);
  REQUIRE(WIFEXITED(st));
  REQUIRE(WEXITSTATUS(st) == 0);
  REQUIRE(out == "A fake answer.\n");
  out = run(bin + " status --socket " + path + " --json", &st);
  REQUIRE(WEXITSTATUS(st) == 0);
  REQUIRE(out.find("\"active_requests\": 0") != std::string::npos);
  out = run(bin + " status --socket " + dir.path + "/none.sock --json 2>/dev/null", &st);
  REQUIRE(WEXITSTATUS(st) == 2);
}
