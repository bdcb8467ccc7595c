// The paged KV cache on CPU, through the scheduler:
//  1. time to first token of a second, different question about the same picture
//     against the first (prefix reuse: the picture's rows and the tower are skipped),
//     and the same second question with the prefix cache off;
//  2. requests served at once from one KV budget: the paged pool (blocks taken as
//     answers grow) against the old contiguous reservation of prompt + max_tokens.
//
//   bench_kv [minicpmv_dir=tests/data/minicpmv26-tiny] [short_answer_dir=models/shapes] [repeats=5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "kernels/device.h"
#include "model/chat_model.h"
#include "model/kv_pool.h"
#include "sched/scheduler.h"

using namespace omni;
using Clock = std::chrono::steady_clock;

namespace {

ImageInput file_picture(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(f)), {});
  if (b.empty()) throw std::runtime_error("cannot read " + path);
  return ImageInput::from_bytes(path, std::vector<uint8_t>(b.begin(), b.end()));
}

// Seconds from submit to the first token of one greedy request, and its result.
std::pair<double, sched::Result> ttft(sched::Scheduler& s, std::vector<ImageInput> images, const std::string& q,
                                      int max_tokens) {
  auto first = std::make_shared<std::promise<double>>();
  auto done = std::make_shared<std::promise<sched::Result>>();
  auto seen = std::make_shared<bool>(false);
  const auto t0 = Clock::now();
  sched::Request r;
  r.images = std::move(images);
  r.messages = ipc::single_turn(r.images.size(), q);
  r.options.sampling.greedy = true;
  r.options.max_tokens = max_tokens;
  r.events.on_token = [first, seen, t0](const std::string&, int32_t) {
    if (!*seen) first->set_value(std::chrono::duration<double>(Clock::now() - t0).count());
    *seen = true;
  };
  r.events.on_done = [done](const sched::Result& res) { done->set_value(res); };
  if (!s.submit(std::move(r))) throw std::runtime_error("queue full");
  const sched::Result res = done->get_future().get();
  return {first->get_future().get(), res};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const std::string vlm = argc > 1 ? argv[1] : "tests/data/minicpmv26-tiny";
  const std::string shapes = argc > 2 ? argv[2] : "models/shapes";
  const int R = argc > 3 ? std::atoi(argv[3]) : 5;
  auto place = [](const LlmConfig& c) { return DecoderPlacement::single(kernels::make_device({}), c.n_layers); };

  // 1. Prefix reuse. A fresh scheduler and an empty vision cache per repeat, so the first
  // question pays for the tower and the whole prefill.
  std::vector<double> first, second, second_off;
  uint32_t prompt1 = 0, prompt2 = 0;
  uint64_t reused = 0;
  for (int i = 0; i < R; ++i) {
    for (bool prefix : {true, false}) {
      auto model = ChatModel::load(vlm, place);
      sched::SchedulerOptions so;
      so.prefix_cache = prefix;
      sched::Scheduler s(*model, so);
      const ImageInput pic = file_picture(vlm + "/case_wide/image.png");
      auto [t1, r1] = ttft(s, {pic}, "Describe the colours of this picture.", 1);
      const uint64_t hit0 = s.stats().kv.hit_tokens;
      auto [t2, r2] = ttft(s, {pic}, "Where is the brightest part, and what shape is it?", 1);
      if (prefix) {
        first.push_back(t1);
        second.push_back(t2);
        prompt1 = r1.prompt_tokens;
        prompt2 = r2.prompt_tokens;
        reused = s.stats().kv.hit_tokens - hit0;
      } else {
        second_off.push_back(t2);
      }
    }
  }
  std::printf("model: %s (%s)\n", vlm.c_str(), "CPU, fp32, one device");
  std::printf("| measurement | value |\n|---|---|\n");
  std::printf("| first question about a picture (%u prompt rows): time to first token | %.2f ms |\n", prompt1,
              median(first) * 1e3);
  std::printf("| second question, same picture (%u rows, %llu reused) | %.2f ms (%.2f of the first) |\n", prompt2,
              (unsigned long long)reused, median(second) * 1e3, median(second) / median(first));
  std::printf("| second question, prefix cache off (vision cache still warm) | %.2f ms (%.2f of the first) |\n",
              median(second_off) * 1e3, median(second_off) / median(first));

  // 2. Requests at once from one KV budget: 64 short questions, max_tokens 2048, short answers.
  // Embeddings on cpu:0, layers on cpu:1, so that holding the layers' device stops the
  // steps but not admission.
  auto model = ChatModel::load(shapes, [](const LlmConfig& c) {
    DecoderPlacement p = DecoderPlacement::single(kernels::make_device({kernels::DeviceId::Kind::CPU, 1}), c.n_layers);
    p.embed_device = kernels::make_device({kernels::DeviceId::Kind::CPU, 0});
    return p;
  });
  const int64_t budget = 4096;
  const int N = 64, M = 2048;
  sched::SchedulerOptions so;
  so.max_active = N;
  so.max_batch_tokens = 4096;
  so.kv_blocks = budget / kBlockTokens;
  sched::Scheduler s(*model, so);
  std::vector<std::shared_ptr<std::promise<sched::Result>>> outs;
  uint32_t prompt = 0, answer = 0;
  {
    // Hold the layers' device while the requests come in, so all of them are admitted
    // before the first step (as a burst of clients would be).
    std::lock_guard<kernels::TurnLock> hold(model->decoder().stages().front().device->exec_mutex());
    for (int i = 0; i < N; ++i) {
      auto p = std::make_shared<std::promise<sched::Result>>();
      sched::Request r;
      r.messages = ipc::single_turn(r.images.size(), "Question " + std::to_string(i) + ": what shape?");
      r.options.sampling.greedy = true;
      r.options.max_tokens = M;
      r.events.on_done = [p](const sched::Result& res) { p->set_value(res); };
      if (!s.submit(std::move(r))) throw std::runtime_error("queue full");
      outs.push_back(p);
    }
    while (s.stats().active < uint32_t(N)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& p : outs) {
    const sched::Result r = p->get_future().get();
    prompt = std::max(prompt, r.prompt_tokens);
    answer = std::max(answer, r.completion_tokens);
  }
  const sched::Stats st = s.stats();
  std::printf("| %d requests (prompt <= %u, max_tokens %d, answers <= %u tokens), KV budget %lld tokens: "
              "contiguous reservation | %lld at once |\n",
              N, prompt, M, answer, (long long)budget, (long long)(budget / (prompt + M)));
  std::printf("| same, paged (16-token blocks) | %u at once, %llu preemptions |\n", st.max_running,
              (unsigned long long)st.preemptions);
  return 0;
}
