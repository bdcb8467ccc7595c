// The continuous-batching scheduler on the tiny MiniCPM-V checkpoint: batched answers
// equal answers computed alone, cancellation and deadlines free the slot, the queue is
// bounded, bad pictures fail only their own request.
#include <catch2/catch.hpp>

#include <fstream>
#include <future>

#include "kernels/device.h"
#include "model/answer.h"
#include "sched/scheduler.h"
#include "util/tiny_fixtures.h"

using namespace omni;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<ChatModel> tiny() {
  return ChatModel::load(test::data("minicpmv26-tiny"), [](const LlmConfig& c) {
    return DecoderPlacement::single(kernels::make_device({}), c.n_layers);
  });
}

ImageInput picture(const std::string& c) { return test::tiny_picture(c); }

struct Collected {
  std::string text;
  std::promise<sched::Result> done;
};

std::pair<std::shared_ptr<sched::Ticket>, std::shared_ptr<Collected>> submit(sched::Scheduler& s, uint64_t id,
                                                                              std::vector<ImageInput> images,
                                                                              const std::string& q, int max_tokens) {
  auto c = std::make_shared<Collected>();
  sched::Request r;
  r.id = id;
  r.images = std::move(images);
  r.messages = ipc::single_turn(r.images.size(), q);
  r.options.sampling.greedy = true;
  r.options.max_tokens = max_tokens;
  r.events.on_token = [c](const std::string& t, int32_t) { c->text += t; };
  r.events.on_done = [c](const sched::Result& res) { c->done.set_value(res); };
  return {s.submit(std::move(r)), c};
}

// The requests the batching tests send (a sliced picture, a small picture, text only,
// greedy, 12 tokens) and what each answers computed alone, without the scheduler.
struct Alone {
  std::string qa = "Describe the colours.", qb = "What is this?";
  Answer a, b, c;
};

Alone answers_alone(ChatModel& model) {
  AnswerOptions o;
  o.sampling.greedy = true;
  o.max_tokens = 12;
  Alone r;
  r.a = answer(model, {picture("case_wide")}, r.qa, o);
  r.b = answer(model, {picture("case_small")}, r.qb, o);
  r.c = answer(model, {}, r.qb, o);
  return r;
}

}  // namespace

TEST_CASE("batched greedy answers equal answers computed alone", "[sched]") {
  auto model = tiny();
  const Alone alone = answers_alone(*model);
  const std::string &qa = alone.qa, &qb = alone.qb;
  const Answer &alone_a = alone.a, &alone_b = alone.b, &alone_c = alone.c;

  sched::Scheduler s(*model, {});
  auto [ta, ca] = submit(s, 1, {picture("case_wide")}, qa, 12);
  auto [tb, cb] = submit(s, 2, {picture("case_small")}, qb, 12);
  auto [tc, cc] = submit(s, 3, {}, qb, 12);
  REQUIRE(ta);
  REQUIRE(tb);
  REQUIRE(tc);
  auto ra = ca->done.get_future().get();
  auto rb = cb->done.get_future().get();
  auto rc = cc->done.get_future().get();
  CHECK(ca->text == alone_a.text);
  CHECK(cb->text == alone_b.text);
  CHECK(cc->text == alone_c.text);
  CHECK(ra.finish_reason == alone_a.finish_reason);
  CHECK(ra.image_tokens > 0);
  CHECK(rc.image_tokens == 0);
  CHECK(ra.completion_tokens == alone_a.tokens.size());
  CHECK(s.stats().active == 0);
}

TEST_CASE("prompts longer than max_batch_tokens are prefilled in chunks, with the same answers", "[sched]") {
  auto model = tiny();
  const Alone alone = answers_alone(*model);
  const std::string &qa = alone.qa, &qb = alone.qb;
  const Answer &alone_a = alone.a, &alone_b = alone.b, &alone_c = alone.c;
  sched::SchedulerOptions so;
  so.max_batch_tokens = 16;

  SECTION("one request: its prompt takes ceil(rows / 16) steps, then one step a token") {
    sched::Scheduler s(*model, so);
    auto [t, c] = submit(s, 1, {picture("case_wide")}, qa, 12);
    REQUIRE(t);
    auto r = c->done.get_future().get();
    CHECK(c->text == alone_a.text);
    REQUIRE(r.prompt_tokens > 3 * 16);   // long enough to need several chunks
    const uint64_t prefill_steps = (r.prompt_tokens + 15) / 16;
    CHECK(s.stats().pipeline.jobs == prefill_steps + r.completion_tokens - 1);
  }
  SECTION("running requests keep decoding while others' prompts come in chunks") {
    sched::Scheduler s(*model, so);
    auto [tc, cc] = submit(s, 3, {}, qb, 12);
    auto [ta, ca] = submit(s, 1, {picture("case_wide")}, qa, 12);
    auto [tb, cb] = submit(s, 2, {picture("case_small")}, qb, 12);
    REQUIRE(ta);
    REQUIRE(tb);
    REQUIRE(tc);
    cc->done.get_future().get();
    ca->done.get_future().get();
    cb->done.get_future().get();
    CHECK(ca->text == alone_a.text);
    CHECK(cb->text == alone_b.text);
    CHECK(cc->text == alone_c.text);
  }
}

TEST_CASE("a cancelled request leaves at once and frees its slot", "[sched]") {
  auto model = tiny();
  sched::Scheduler s(*model, {});
  auto [t, c] = submit(s, 1, {picture("case_wide")}, "Describe the colours.", 4000);
  REQUIRE(t);
  std::this_thread::sleep_for(50ms);
  t->cancel();
  t->cancel();   // twice is harmless
  auto fut = c->done.get_future();
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  CHECK(fut.get().finish_reason == FinishReason::cancelled);
  std::this_thread::sleep_for(20ms);
  CHECK(s.stats().active == 0);
}

TEST_CASE("deadlines end requests", "[sched]") {
  auto model = tiny();
  sched::Scheduler s(*model, {});
  auto c = std::make_shared<Collected>();
  sched::Request r;
  r.messages = ipc::single_turn(r.images.size(), "Count to a thousand.");
  r.options.max_tokens = 4000;
  r.deadline = std::chrono::steady_clock::now() + 30ms;
  r.events.on_done = [c](const sched::Result& res) { c->done.set_value(res); };
  REQUIRE(s.submit(std::move(r)));
  auto fut = c->done.get_future();
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  CHECK(fut.get().finish_reason == FinishReason::deadline);
}

TEST_CASE("a full queue answers busy instead of waiting", "[sched]") {
  auto model = tiny();
  sched::SchedulerOptions o;
  o.max_active = 1;
  o.max_queue = 1;
  sched::Scheduler s(*model, o);
  std::vector<std::shared_ptr<sched::Ticket>> tickets;
  std::vector<std::shared_ptr<Collected>> outs;
  int refused = 0;
  for (int i = 0; i < 6; ++i) {
    auto [t, c] = submit(s, uint64_t(i + 1), {}, "Hello", 2000);
    if (!t) ++refused;
    else {
      tickets.push_back(t);
      outs.push_back(c);
    }
  }
  CHECK(refused >= 4);
  for (auto& t : tickets) t->cancel();
  for (auto& c : outs) CHECK(c->done.get_future().wait_for(10s) == std::future_status::ready);
}

TEST_CASE("a bad picture fails its own request only", "[sched]") {
  auto model = tiny();
  sched::Scheduler s(*model, {});
  auto [tb, cb] = submit(s, 1, {ImageInput::from_bytes("garbage.png", {1, 2, 3, 4, 5})}, "What?", 4);
  auto [tg, cg] = submit(s, 2, {picture("case_small")}, "What?", 4);
  auto rb = cb->done.get_future().get();
  auto rg = cg->done.get_future().get();
  CHECK(rb.finish_reason == FinishReason::error);
  CHECK(rb.error == ipc::ErrorCode::bad_image);
  CHECK_THAT(rb.error_message, Catch::Contains("garbage.png"));
  CHECK(rg.finish_reason != FinishReason::error);
}

TEST_CASE("a prompt beyond the context is refused with the numbers", "[sched]") {
  auto model = tiny();
  sched::SchedulerOptions o;
  o.max_context = 32;
  sched::Scheduler s(*model, o);
  auto [t, c] = submit(s, 1, {}, "Hello there", 64);
  auto r = c->done.get_future().get();
  CHECK(r.finish_reason == FinishReason::error);
  CHECK_THAT(r.error_message, Catch::Contains("exceeds the context of 32"));
}

TEST_CASE("a picture that is slow to prepare delays only its own request", "[sched]") {
  // Pictures are decoded and sliced on the decode threads, not on the admission thread:
  // a text request sent right after a 36-megapixel picture is answered first.
  auto model = tiny();
  sched::SchedulerOptions so;
  so.decode_threads = 1;
  so.max_active = 1;
  sched::Scheduler s(*model, so);
  ImageInput big;
  big.name = "big picture";
  auto px = std::make_shared<std::vector<uint8_t>>(size_t(6000) * 6000 * 3);
  for (size_t i = 0; i < px->size(); ++i) (*px)[i] = uint8_t(i * 2654435761u >> 24);
  big.data = px->data();
  big.size = px->size();
  big.keepalive = px;
  big.rgb_width = big.rgb_height = 6000;
  auto [tb, cb] = submit(s, 1, {big}, "What is this?", 2);
  auto [tt, ct] = submit(s, 2, {}, "Hello", 2);
  auto ft = ct->done.get_future();
  auto fb = cb->done.get_future();
  REQUIRE(ft.wait_for(60s) == std::future_status::ready);
  // With one slot, had the picture been prepared on the admission thread, the text
  // request would have waited for the whole picture request.
  CHECK(fb.wait_for(0s) == std::future_status::timeout);
  REQUIRE(fb.wait_for(120s) == std::future_status::ready);
  CHECK(ft.get().finish_reason != FinishReason::error);
  CHECK(fb.get().finish_reason != FinishReason::error);
}

TEST_CASE("a request cancelled while its picture decodes ends as cancelled, and the next one runs", "[sched]") {
  auto model = tiny();
  sched::Scheduler s(*model, {});
  ImageInput big;
  big.name = "big picture";
  auto px = std::make_shared<std::vector<uint8_t>>(size_t(6000) * 6000 * 3, 90);
  big.data = px->data();
  big.size = px->size();
  big.keepalive = px;
  big.rgb_width = big.rgb_height = 6000;
  auto [tb, cb] = submit(s, 1, {big}, "What is this?", 2);
  tb->cancel();
  CHECK(cb->done.get_future().get().finish_reason == FinishReason::cancelled);
  auto [tt, ct] = submit(s, 2, {}, "Hello", 2);
  CHECK(ct->done.get_future().get().finish_reason != FinishReason::error);
  CHECK(s.stats().active == 0);
}
