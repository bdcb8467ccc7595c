// Pipelined execution: several batches in flight through the stage threads compute what
// one device computes, stages sharing a device take turns, errors reach the job, and
// the scheduler keeps one batch per stage in flight.
#include <catch2/catch.hpp>

#include <fstream>
#include <future>

#include "model/causal_lm.h"
#include "model/chat_model.h"
#include "model/pipeline_runner.h"
#include "plan/placement.h"
#include "plan_fixtures.h"
#include "sched/scheduler.h"
#include "util/npy.h"

using namespace omni;
using plan::Parallel;

namespace {

CausalLm::PlaceFn planned(const std::string& model, const std::string& devs, Parallel par) {
  return [=](const LlmConfig&) { return plan::make_placement(plan::make_plan(test::shape_of(model), test::options(devs, par))); };
}

std::vector<int32_t> golden_ids(const std::string& name) {
  return read_npy(test::data(name + "/golden_input_ids.npy")).as_int32();
}

// Three batches of different shapes: two prompts, one prompt, three prompts.
std::vector<std::vector<std::vector<int32_t>>> batches(const std::vector<int32_t>& ids) {
  auto part = [&](size_t from, size_t n) {
    return drop_pad_tokens(std::vector<int32_t>(ids.begin() + long(from), ids.begin() + long(from + n)), 0);
  };
  return {{part(0, 12), part(5, 7)}, {part(20, 16)}, {part(1, 3), part(9, 10), part(30, 5)}};
}

struct Step {
  std::vector<std::unique_ptr<KvSequence>> caches;
  std::vector<float> logits;   // last row of every prompt
};

// The reference: each batch alone through Decoder::forward on one device.
Step reference(const Decoder& dec, const std::vector<std::vector<int32_t>>& prompts) {
  Step s;
  std::vector<int32_t> all;
  std::vector<SeqSlice> seqs;
  for (const auto& p : prompts) {
    s.caches.push_back(dec.new_cache(64));
    seqs.push_back({s.caches.back().get(), int64_t(p.size())});
    all.insert(all.end(), p.begin(), p.end());
  }
  kernels::Tensor out = dec.forward(dec.embed(all), seqs);
  std::vector<float> rows = dec.logits(out);
  const size_t V = size_t(dec.config().vocab);
  size_t end = 0;
  for (const auto& p : prompts) {
    end += p.size();
    s.logits.insert(s.logits.end(), rows.begin() + long((end - 1) * V), rows.begin() + long(end * V));
  }
  return s;
}

std::shared_ptr<PipelineJob> job_for(const Decoder& dec, const std::vector<std::vector<int32_t>>& prompts,
                                     std::vector<std::unique_ptr<KvSequence>>& caches) {
  auto job = std::make_shared<PipelineJob>();
  std::vector<int32_t> all;
  for (const auto& p : prompts) {
    caches.push_back(dec.new_cache(64));
    job->seqs.push_back({caches.back().get(), int64_t(p.size())});
    all.insert(all.end(), p.begin(), p.end());
    job->logit_rows.push_back(int64_t(all.size()) - 1);
  }
  job->hidden = dec.embed(all);
  return job;
}

void check_pipeline_equals_one_device(const std::string& name, const std::string& devs, int stages) {
  INFO(name << " over " << devs);
  auto one = CausalLm::load(test::data(name), planned(name, "cpu:0", Parallel::Single));
  auto many = CausalLm::load(test::data(name), planned(name, devs, Parallel::Pipeline));
  const Decoder& dec = many->decoder();
  REQUIRE(int(dec.stages().size()) == stages);
  const auto work = batches(golden_ids(name));

  PipelineRunner runner(dec);
  REQUIRE(runner.n_stages() == stages);
  std::vector<std::vector<std::unique_ptr<KvSequence>>> caches(work.size());
  std::vector<std::promise<std::shared_ptr<PipelineJob>>> done(work.size());
  std::atomic<int> calls{0};
  for (size_t b = 0; b < work.size(); ++b)   // all submitted before any is awaited
    runner.submit(job_for(dec, work[b], caches[b]), [&, b](const std::shared_ptr<PipelineJob>& j) {
      ++calls;
      done[b].set_value(j);
    });
  for (size_t b = 0; b < work.size(); ++b) {
    auto job = done[b].get_future().get();
    REQUIRE_FALSE(job->error);
    const Step want = reference(one->decoder(), work[b]);
    const double err = test::rel_error(job->logits, want.logits);
    INFO("batch " << b << " relative error " << err);
    CHECK(err <= 1e-6);
    for (size_t i = 0; i < work[b].size(); ++i) CHECK(caches[b][i]->length() == int64_t(work[b][i].size()));
  }
  CHECK(calls.load() == int(work.size()));
  const PipelineStats st = runner.stats();
  CHECK(st.jobs == work.size());
  CHECK(st.max_in_flight == int(work.size()));
  CHECK(st.busy_seconds.size() == size_t(stages));
}

}  // namespace

TEST_CASE("the pipeline runner keeps several batches in flight and computes what one device does", "[pipeline]") {
  check_pipeline_equals_one_device("qwen2-tiny", "cpu:0,cpu:1", 2);
  check_pipeline_equals_one_device("qwen2-tiny", "cpu:0,cpu:1,cpu:2", 3);
  check_pipeline_equals_one_device("llama-tiny", "cpu:0,cpu:1", 2);
}

TEST_CASE("stages that share a device are separate stages and take turns", "[pipeline]") {
  // As cuda:0,cuda:0 on a single GPU: one device object, two stages.
  const std::string name = "qwen3-tiny";
  auto lm = CausalLm::load(test::data(name), planned(name, "cpu:0,cpu:0", Parallel::Pipeline));
  const Decoder& dec = lm->decoder();
  REQUIRE(dec.stages().size() == 2);
  CHECK(dec.stages()[0].device == dec.stages()[1].device);
  CHECK(dec.stages()[0].last_layer + 1 == dec.stages()[1].first_layer);
  auto one = CausalLm::load(test::data(name), planned(name, "cpu:0", Parallel::Single));
  REQUIRE(one->decoder().stages().size() == 1);

  PipelineRunner runner(dec);
  const auto work = batches(golden_ids(name));
  std::vector<std::vector<std::unique_ptr<KvSequence>>> caches(work.size());
  std::vector<std::promise<std::shared_ptr<PipelineJob>>> done(work.size());
  for (size_t b = 0; b < work.size(); ++b)
    runner.submit(job_for(dec, work[b], caches[b]),
                  [&, b](const std::shared_ptr<PipelineJob>& j) { done[b].set_value(j); });
  for (size_t b = 0; b < work.size(); ++b) {
    auto job = done[b].get_future().get();
    REQUIRE_FALSE(job->error);
    CHECK(test::rel_error(job->logits, reference(one->decoder(), work[b]).logits) <= 1e-6);
  }
}

TEST_CASE("a failing batch reports its error to its own job only", "[pipeline][errors]") {
  const std::string name = "qwen2-tiny";
  auto lm = CausalLm::load(test::data(name), planned(name, "cpu:0,cpu:1", Parallel::Pipeline));
  const Decoder& dec = lm->decoder();
  PipelineRunner runner(dec);

  // A cache too small for its prompt: refused before any stage runs.
  auto small = dec.new_cache(2);
  auto bad = std::make_shared<PipelineJob>();
  bad->hidden = dec.embed({1, 2, 3});
  bad->seqs = {{small.get(), 3}};
  bad->logit_rows = {2};
  std::promise<std::shared_ptr<PipelineJob>> bad_done;
  runner.submit(bad, [&](const std::shared_ptr<PipelineJob>& j) { bad_done.set_value(j); });

  // A logit row beyond the batch: fails in the last stage, after the layers ran.
  auto cache = dec.new_cache(8);
  auto late = std::make_shared<PipelineJob>();
  late->hidden = dec.embed({1, 2, 3});
  late->seqs = {{cache.get(), 3}};
  late->logit_rows = {7};
  std::promise<std::shared_ptr<PipelineJob>> late_done;
  runner.submit(late, [&](const std::shared_ptr<PipelineJob>& j) { late_done.set_value(j); });

  std::vector<std::unique_ptr<KvSequence>> caches;
  auto good = job_for(dec, {{1, 2, 3, 4}}, caches);
  std::promise<std::shared_ptr<PipelineJob>> good_done;
  runner.submit(good, [&](const std::shared_ptr<PipelineJob>& j) { good_done.set_value(j); });

  auto message = [](const std::shared_ptr<PipelineJob>& j) {
    try {
      std::rethrow_exception(j->error);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  auto b = bad_done.get_future().get();
  REQUIRE(b->error);
  CHECK(message(b).find("context length exceeded") != std::string::npos);
  CHECK(small->length() == 0);
  auto l = late_done.get_future().get();
  REQUIRE(l->error);
  CHECK(l->logits.empty());
  auto g = good_done.get_future().get();
  CHECK_FALSE(g->error);
  CHECK(g->logits.size() == size_t(dec.config().vocab));
}

TEST_CASE("the scheduler keeps one batch per stage in flight over a pipeline", "[pipeline][sched]") {
  const std::string dir = test::data("minicpmv26-tiny");
  auto model = ChatModel::load(dir, planned("minicpmv26-tiny", "cpu:0,cpu:1", Parallel::Pipeline));
  REQUIRE(model->decoder().stages().size() == 2);
  AnswerOptions o;
  o.sampling.greedy = true;
  o.max_tokens = 10;
  const std::vector<std::string> questions = {"What is this?", "Describe the colours.", "Count the shapes.",
                                              "Is it day or night?"};
  std::vector<std::string> alone;
  for (const auto& q : questions) alone.push_back(answer(*model, {}, q, o).text);

  sched::Scheduler s(*model, {});
  std::vector<std::shared_ptr<std::promise<std::string>>> got;
  std::vector<std::shared_ptr<std::string>> texts;
  for (size_t i = 0; i < questions.size(); ++i) {
    auto p = std::make_shared<std::promise<std::string>>();
    auto text = std::make_shared<std::string>();
    sched::Request r;
    r.id = i;
    r.messages = ipc::single_turn(r.images.size(), questions[i]);
    r.options = o;
    r.events.on_token = [text](const std::string& t, int32_t) { *text += t; };
    r.events.on_done = [p, text](const sched::Result&) { p->set_value(*text); };
    REQUIRE(s.submit(std::move(r)));
    got.push_back(p);
  }
  for (size_t i = 0; i < questions.size(); ++i) CHECK(got[i]->get_future().get() == alone[i]);
  const auto st = s.stats().pipeline;
  CHECK(st.busy_seconds.size() == 2);
  CHECK(st.max_in_flight == 2);   // both groups stepping at once, never more
}
