// The paged KV cache through the daemon: a second question about the same picture
// prefills only its new rows (status and metrics count it), stop strings end answers as
// `omnid run` ends them, and after killed clients, cancellations and deadlines every KV
// block is back.
#include <catch2/catch.hpp>

#include <signal.h>

#include <thread>

#include "cli/run_command.h"
#include "daemon_process.h"
#include "kernels/device.h"
#include "model/chat_model.h"
#include "model/kv_pool.h"
#include "model/prefix_hash.h"
#include "sdk/client.h"
#include "util/tiny_fixtures.h"

using namespace omni;
using namespace std::chrono_literals;

namespace {

// details.<a>.<b> of a status as a number.
int64_t detail(const ipc::Status& s, const char* a, const char* b) { return test::status_detail(s, a, b); }

ipc::Done ask(sdk::Client& c, const std::string& image, const std::string& q, std::string& text) {
  sdk::GenerateRequest r;
  r.prompt = q;
  r.max_tokens = 10;
  r.sampling.greedy = true;
  if (!image.empty()) r.images.push_back(sdk::Image::from_file(image));
  text.clear();
  return c.generate(r, [&](const ipc::Token& t) { text += t.text; });
}

}  // namespace

TEST_CASE("the same picture asked again through the daemon prefills only the new question", "[daemon]") {
  const std::string img = test::data("minicpmv26-tiny/case_wide/image.png");
  const std::string q1 = "Describe the colours.", q2 = "Where is the brightest part of the picture?";
  // Rows the two prompts share from the start, counted in-process.
  auto model = ChatModel::load(test::data("minicpmv26-tiny"), [](const LlmConfig& c) {
    return DecoderPlacement::single(kernels::make_device({}), c.n_layers);
  });
  auto pic = [&] { return test::tiny_picture("case_wide"); };
  PrefixHasher h1 = PrefixHasher::for_prompt(model->prepare({pic()}, q1), 0);
  PrefixHasher h2 = PrefixHasher::for_prompt(model->prepare({pic()}, q2), 0);
  int64_t common = 0;
  while (common < std::min(h1.rows(), h2.rows()) && h1.row(common).token == h2.row(common).token &&
         h1.row(common).image == h2.row(common).image && h1.row(common).row == h2.row(common).row)
    ++common;

  std::string off_text;
  {
    test::DaemonProcess off({"--no-prefix-cache"});
    auto c = test::connected(off.socket());
    std::string ignored;
    ask(c, img, q1, ignored);
    ask(c, img, q2, off_text);
    CHECK(detail(c.status(), "prefix_cache", "hit_tokens") == 0);
  }
  const int port = 20000 + (::getpid() + 7) % 20000;
  test::DaemonProcess d({"--metrics-port", std::to_string(port), "--kv-cache-tokens", "4096"});
  auto c = test::connected(d.socket());
  std::string t1, t2;
  ask(c, img, q1, t1);
  const int64_t hit_before = detail(c.status(), "prefix_cache", "hit_tokens");
  const ipc::Done second = ask(c, img, q2, t2);
  const ipc::Status st = c.status();
  const int64_t hit = detail(st, "prefix_cache", "hit_tokens") - hit_before;
  INFO("prompt " << second.prompt_tokens << ", reused " << hit << ", shared rows " << common);
  CHECK(int64_t(second.prompt_tokens) - hit <= (h2.rows() - common) + kBlockTokens);
  CHECK(t2 == off_text);
  CHECK(detail(st, "kv_cache", "block_tokens") == kBlockTokens);
  CHECK(detail(st, "kv_cache", "blocks_total") == 4096 / kBlockTokens);
  CHECK(detail(st, "kv_cache", "blocks_used") == 0);
  CHECK(detail(st, "kv_cache", "blocks_cached") > 0);
  CHECK(detail(st, "prefix_cache", "lookup_tokens") > 0);
  CHECK(detail(st, "preemptions", nullptr) == 0);
  // Two different pictures of the same size with the same question: the same placeholder
  // ids, so only the text blocks before the picture may be shared.
  const test::SameSizePictures pics;
  const std::vector<uint8_t>&red = pics.red, &blue = pics.blue;
  const int64_t before_picture = test::rows_before_picture(*model, pics.input(red, "red"), "What colour?");
  auto ask_rgb = [&](const std::vector<uint8_t>& px) {
    sdk::GenerateRequest r;
    r.prompt = "What colour?";
    r.max_tokens = 4;
    r.sampling.greedy = true;
    r.images.push_back(sdk::Image::from_rgb(px, test::SameSizePictures::kWidth, test::SameSizePictures::kHeight));
    return c.generate(r, [](const ipc::Token&) {});
  };
  ask_rgb(red);
  const int64_t hit_red = detail(c.status(), "prefix_cache", "hit_tokens");
  ask_rgb(blue);
  CHECK(detail(c.status(), "prefix_cache", "hit_tokens") - hit_red <= before_picture / kBlockTokens * kBlockTokens);
  ask_rgb(red);   // the first picture again: its blocks are found
  CHECK(detail(c.status(), "prefix_cache", "hit_tokens") - hit_red > before_picture / kBlockTokens * kBlockTokens + kBlockTokens);

  const std::string m = test::fetch_metrics(port);
  CHECK_THAT(m, Catch::Contains("omnid_kv_blocks_total 256"));
  CHECK_THAT(m, Catch::Contains("omnid_kv_blocks_used 0"));
  CHECK_THAT(m, Catch::Contains("omnid_prefix_cache_hit_tokens_total " +
                                std::to_string(detail(c.status(), "prefix_cache", "hit_tokens"))));
  CHECK_THAT(m, Catch::Contains("omnid_prefix_cache_lookup_tokens_total "));
  CHECK_THAT(m, Catch::Contains("omnid_preemptions_total 0"));
}

TEST_CASE("stop strings end the answer the same way in omnid run and through the daemon", "[daemon]") {
  test::DaemonProcess d;
  const std::string model = test::data("minicpmv26-tiny");
  const std::string img = test::data("minicpmv26-tiny/case_small/image.png");
  auto full = test::run_command(test::bin("omnid") + " run --model " + model + " --image " + img +
                                " --greedy --max-tokens 24 'Describe it.'");
  REQUIRE(full.exit_code == 0);
  std::string answer = full.out;
  if (!answer.empty() && answer.back() == '\n') answer.pop_back();
  REQUIRE(answer.size() > 12);
  // A stop string from the middle of the answer (most likely across tokens), and a second
  // one that never occurs.
  size_t at = 6;
  while (at < answer.size() && (static_cast<unsigned char>(answer[at]) & 0xC0) == 0x80) ++at;   // a character start
  size_t len = 3;
  while (at + len < answer.size() && (static_cast<unsigned char>(answer[at + len]) & 0xC0) == 0x80) ++len;
  const std::string stop = answer.substr(at, len);
  const size_t first = answer.find(stop);
  const std::string want = answer.substr(0, first) + "\n";
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return q + "'";
  };
  auto run = test::run_command(test::bin("omnid") + " run --model " + model + " --image " + img +
                               " --greedy --max-tokens 24 --stop " + quote(stop) + " --stop never-there 'Describe it.'");
  auto ask = test::run_command(test::bin("omni") + " ask --socket " + d.socket() + " --image " + img +
                               " --greedy --max-tokens 24 --stop " + quote(stop) + " --stop never-there 'Describe it.'");
  INFO("answer " << answer << ", stop " << stop);
  REQUIRE(run.exit_code == 0);
  REQUIRE(ask.exit_code == 0);
  CHECK(run.out == want);
  CHECK(ask.out == want);
}

TEST_CASE("after killed clients, cancellations and deadlines every KV block is back", "[daemon]") {
  test::DaemonProcess d({"--max-active", "8", "--kv-cache-tokens", "2048"});
  std::vector<pid_t> children;
  for (int i = 0; i < 6; ++i) {
    pid_t p = ::fork();
    if (p == 0) {
      try {
        auto c = test::connected(d.socket());
        sdk::GenerateRequest r;
        r.prompt = "Tell story number " + std::to_string(i);
        r.max_tokens = 3000;
        c.generate(r, [](const ipc::Token&) {});
      } catch (...) {
      }
      ::_exit(0);
    }
    children.push_back(p);
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i)
    threads.emplace_back([&, i] {
      auto c = test::connected(d.socket());
      sdk::GenerateRequest r;
      r.prompt = "Count to " + std::to_string(100 + i);
      r.max_tokens = 3000;
      if (i % 2) r.deadline_ms = 50 + 30 * uint32_t(i);
      if (i % 2 == 0) {   // cancelled from its own token callback after a few tokens
        uint64_t id = 0;
        int seen = 0;
        c.generate(r, [&](const ipc::Token&) {
          if (++seen == 5 + i) c.cancel(id);
        }, &id);
      } else {
        c.generate(r, [](const ipc::Token&) {});
      }
    });
  std::this_thread::sleep_for(150ms);
  for (pid_t p : children) ::kill(p, SIGKILL);
  for (pid_t p : children) ::waitpid(p, nullptr, 0);
  for (auto& t : threads) t.join();
  auto c = test::connected(d.socket());
  ipc::Status st = c.status();
  for (int i = 0; i < 300 && (st.active_requests != 0 || detail(st, "kv_cache", "blocks_used") != 0); ++i) {
    std::this_thread::sleep_for(20ms);
    st = c.status();
  }
  CHECK(st.active_requests == 0);
  CHECK(detail(st, "kv_cache", "blocks_used") == 0);
  CHECK(detail(st, "kv_cache", "blocks_cached") <= detail(st, "kv_cache", "blocks_total"));
  CHECK(d.alive());
}
