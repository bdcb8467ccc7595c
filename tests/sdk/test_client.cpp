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
  REQUIRE(WEXITSTATUS(st) == 1);   // a runtime failure: the daemon is not there
  out = run(bin + " ask --socket " + path + " --no-such-flag 2>/dev/null", &st);
  REQUIRE(WEXITSTATUS(st) == 2);   // a usage mistake
  out = run(bin + " --version", &st);
  REQUIRE(WEXITSTATUS(st) == 0);
  REQUIRE(out.rfind("omni ", 0) == 0);
}

TEST_CASE("conversations reach the daemon turn by turn from the C++ SDK and the C API") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  omni_test::FakeServer server(path);
  auto img = fake_png(64);
  {
    sdk::ClientOptions o;
    o.socket_path = path;
    sdk::Client client(o);
    sdk::GenerateRequest r;
    r.images.push_back(sdk::Image::from_bytes(img));
    r.messages = {{ipc::Role::user, {ipc::TurnPart::of_text("Look:"), ipc::TurnPart::of_image(0)}},
                  {ipc::Role::assistant, {ipc::TurnPart::of_text("A square.")}},
                  {ipc::Role::user, {ipc::TurnPart::of_text("Colour? <|im_end|>")}}};
    r.system = "Be brief.";
    r.options.max_slice_nums = 2;
    const auto d = client.generate(r, [](const ipc::Token&) {});
    CHECK(d.reason == ipc::FinishReason::stop);
    // Refused before sending: a picture nobody refers to, a system turn not first.
    r.messages[0].parts.pop_back();
    CHECK_THROWS_WITH(client.generate(r, [](const ipc::Token&) {}),
                      Catch::Matchers::Contains("images[0]: no message part refers to it"));
  }
  {
    std::lock_guard lk(server.mu);
    REQUIRE(server.requests.size() == 1);
    const ipc::Generate& g = server.requests[0];
    REQUIRE(g.messages.size() == 3);
    CHECK(g.messages[0].parts[1].image == 0);
    CHECK(g.messages[2].parts[0].text == "Colour? <|im_end|>");
    CHECK(g.system == "Be brief.");
    CHECK(g.options.max_slice_nums == 2u);
    CHECK(!g.options.use_image_id);
  }
  omni_client* c = nullptr;
  REQUIRE(omni_client_create(path.c_str(), "c-test", &c) == OMNI_OK);
  omni_image im{img.data(), img.size(), OMNI_IMAGE_ENCODED, 0, 0};
  omni_generate_params p;
  omni_generate_params_init(&p);
  p.images = &im;
  p.n_images = 1;
  const omni_message_part user_parts[] = {{nullptr, 0}, {"What is it?", 0}};
  const omni_message msgs[] = {{OMNI_ROLE_USER, user_parts, 2}};
  omni_chat chat;
  omni_chat_init(&chat);
  chat.messages = msgs;
  chat.n_messages = 1;
  chat.use_image_id = 0;
  omni_done d;
  REQUIRE(omni_client_chat(c, &p, &chat, nullptr, nullptr, &d) == OMNI_OK);
  CHECK(std::string(d.finish_reason) == "stop");
  {
    std::lock_guard lk(server.mu);
    REQUIRE(server.requests.size() == 2);
    const ipc::Generate& g = server.requests[1];
    REQUIRE(g.messages.size() == 1);
    CHECK(g.messages[0].parts[0].image == 0);
    CHECK(g.messages[0].parts[1].text == "What is it?");
    CHECK(g.options.use_image_id == false);
    CHECK(!g.options.enable_thinking);
  }
  // Bad arguments name the field.
  const omni_message bad_role[] = {{7, user_parts, 2}};
  chat.messages = bad_role;
  CHECK(omni_client_chat(c, &p, &chat, nullptr, nullptr, &d) == OMNI_E_INVALID_ARG);
  CHECK_THAT(std::string(omni_last_error()), Catch::Matchers::Contains("chat.messages[0].role"));
  const omni_message_part far[] = {{nullptr, 3}};
  const omni_message far_msg[] = {{OMNI_ROLE_USER, far, 1}};
  chat.messages = far_msg;
  CHECK(omni_client_chat(c, &p, &chat, nullptr, nullptr, &d) == OMNI_E_INVALID_ARG);
  CHECK_THAT(std::string(omni_last_error()), Catch::Matchers::Contains("chat.messages[0].parts[0].image 3"));
  chat.struct_size = 4;
  CHECK(omni_client_chat(c, &p, &chat, nullptr, nullptr, &d) == OMNI_E_INVALID_ARG);
  CHECK(omni_client_chat(c, &p, nullptr, nullptr, nullptr, &d) == OMNI_E_INVALID_ARG);
  omni_client_destroy(c);
}

TEST_CASE("omni ask --messages sends the file's conversation with its pictures") {
  omni_test::TempDir dir;
  const std::string path = dir.path + "/omnid.sock";
  const std::string bin = std::string(OMNI_BIN_DIR) + "/omni";
  if (!std::filesystem::exists(bin)) OMNI_SKIP("omni binary not built: " << bin);
  omni_test::FakeServer server(path);
  {
    FILE* f = std::fopen((dir.path + "/x.png").c_str(), "wb");
    auto b = fake_png(100);
    std::fwrite(b.data(), 1, b.size(), f);
    std::fclose(f);
  }
  // "iVBORw==" is the base64 of the PNG signature's first four bytes.
  const std::string json = R"({"messages": [
    {"role": "system", "content": "S"},
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}},
                                 {"type": "text", "text": "first?"}]},
    {"role": "assistant", "content": "one"},
    {"role": "user", "content": [{"type": "text", "text": "and"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}}]}]})";
  {
    FILE* f = std::fopen((dir.path + "/chat.json").c_str(), "wb");
    std::fwrite(json.data(), 1, json.size(), f);
    std::fclose(f);
  }
  int st = 0;
  auto out = run(bin + " ask --socket " + path + " --messages " + dir.path + "/chat.json --max-slice-nums 3", &st);
  REQUIRE(WEXITSTATUS(st) == 0);
  CHECK(out == "A fake answer.\n");
  {
    std::lock_guard lk(server.mu);
    REQUIRE(server.requests.size() == 1);
    const ipc::Generate& g = server.requests[0];
    REQUIRE(g.messages.size() == 4);
    CHECK(g.messages[0].role == ipc::Role::system);
    CHECK(g.messages[1].parts[0].image == 0);
    CHECK(g.messages[3].parts[1].image == 1);
    CHECK(g.options.max_slice_nums == 3u);
    REQUIRE(server.image_bytes.size() == 2);
    CHECK(server.image_bytes[0] == 100);
    CHECK(server.image_bytes[1] == 4);
  }
  // A URL that would need the network is refused; so is a question with --messages.
  const std::string remote = R"([{"role": "user", "content": [{"type": "image_url", "image_url": "https://example.com/a.png"}]}])";
  {
    FILE* f = std::fopen((dir.path + "/remote.json").c_str(), "wb");
    std::fwrite(remote.data(), 1, remote.size(), f);
    std::fclose(f);
  }
  out = run(bin + " ask --socket " + path + " --messages " + dir.path + "/remote.json 2>&1", &st);
  CHECK(WEXITSTATUS(st) == 1);
  CHECK_THAT(out, Catch::Matchers::Contains("is not fetched"));
  out = run(bin + " ask --socket " + path + " --messages " + dir.path + "/chat.json question 2>&1", &st);
  CHECK(WEXITSTATUS(st) != 0);
}
