// CPU engine throughput on a synthetic Qwen2-shaped checkpoint with random bf16
// weights (written to a temporary folder): prefill, batch-1 decode, and batched decode
// of B sequences in one forward per step (what the scheduler does); then the same model
// as a 2-stage pipeline over cpu:0,cpu:1: B sequences as one batch walking the stages,
// versus two groups of B/2 kept in flight by the PipelineRunner (what the scheduler does
// over a pipeline). Prints a table.
//
//   bench_engine [hidden=512] [layers=8] [batch=16] [prompt=128] [steps=32] [threads=0]
// threads: CPU threads per cpu device (kernels/cpu/cpu_threads.h); 0: omnid's default,
// the cores for the one-device rows and the cores shared by the two stages for the
// pipeline rows (one core each on a 2-core machine, as a GPU is one device).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "kernels/cpu/cpu_threads.h"
#include "kernels/cpu/openmp_wait_policy.h"
#include "kernels/device.h"
#include "random_safetensors.h"
#include <condition_variable>
#include <mutex>

#include "model/causal_lm.h"
#include "model/pipeline_runner.h"

using namespace omni;
using Clock = std::chrono::steady_clock;

namespace {

void write_checkpoint(const std::filesystem::path& dir, int H, int L, int F, int V, int heads, int kv) {
  std::filesystem::create_directories(dir);
  nlohmann::json cfg = {{"model_type", "qwen2"}, {"hidden_size", H}, {"num_hidden_layers", L},
                        {"num_attention_heads", heads}, {"num_key_value_heads", kv}, {"intermediate_size", F},
                        {"vocab_size", V}, {"rms_norm_eps", 1e-6}, {"rope_theta", 1e6}, {"hidden_act", "silu"},
                        {"tie_word_embeddings", false}, {"max_position_embeddings", 4096}, {"torch_dtype", "bfloat16"}};
  std::ofstream(dir / "config.json") << cfg.dump();
  const int hd = H / heads;
  std::vector<std::pair<std::string, std::vector<int64_t>>> ts = {{"model.embed_tokens.weight", {V, H}},
                                                                  {"model.norm.weight", {H}},
                                                                  {"lm_head.weight", {V, H}}};
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ts.push_back({p + "input_layernorm.weight", {H}});
    ts.push_back({p + "post_attention_layernorm.weight", {H}});
    ts.push_back({p + "self_attn.q_proj.weight", {heads * hd, H}});
    ts.push_back({p + "self_attn.q_proj.bias", {heads * hd}});
    ts.push_back({p + "self_attn.k_proj.weight", {kv * hd, H}});
    ts.push_back({p + "self_attn.k_proj.bias", {kv * hd}});
    ts.push_back({p + "self_attn.v_proj.weight", {kv * hd, H}});
    ts.push_back({p + "self_attn.v_proj.bias", {kv * hd}});
    ts.push_back({p + "self_attn.o_proj.weight", {H, heads * hd}});
    ts.push_back({p + "mlp.gate_proj.weight", {F, H}});
    ts.push_back({p + "mlp.up_proj.weight", {F, H}});
    ts.push_back({p + "mlp.down_proj.weight", {H, F}});
  }
  omni::bench::write_random_bf16_safetensors(dir / "model.safetensors", ts);
}

double secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

// B caches holding the same prompt of P tokens.
std::vector<std::unique_ptr<KvSequence>> prefilled(const Decoder& dec, int B, const std::vector<int32_t>& prompt, int S) {
  std::vector<std::unique_ptr<KvSequence>> caches;
  for (int b = 0; b < B; ++b) {
    caches.push_back(dec.new_cache(int64_t(prompt.size()) + S + 1));
    prefill(dec, *caches.back(), dec.embed(prompt), false);
  }
  return caches;
}

// S decode steps for each of `groups` groups of the caches, every group's next step
// submitted as soon as its previous one is back. Returns seconds.
double pipelined_decode(const Decoder& dec, std::vector<std::unique_ptr<KvSequence>>& caches, int groups, int S) {
  PipelineRunner runner(dec);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> left(size_t(groups), S);
  int running = groups;
  const size_t per = caches.size() / size_t(groups);
  std::function<void(int)> step = [&](int g) {
    auto job = std::make_shared<PipelineJob>();
    for (size_t i = 0; i < per; ++i) {
      job->seqs.push_back({caches[size_t(g) * per + i].get(), 1});
      job->logit_rows.push_back(int64_t(i));
    }
    {
      std::lock_guard<kernels::TurnLock> lock(dec.placement().embed_device->exec_mutex());
      job->hidden = dec.embed(std::vector<int32_t>(per, 1));
    }
    runner.submit(job, [&, g](const std::shared_ptr<PipelineJob>& j) {
      if (j->error) {   // the callback must not throw: report and stop
        try {
          std::rethrow_exception(j->error);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "bench_engine: pipelined step failed: %s\n", e.what());
        }
        std::_Exit(1);
      }
      bool again;
      {
        std::lock_guard<std::mutex> lock(mu);
        again = --left[size_t(g)] > 0;
        if (!again) --running;
      }
      if (again) step(g);
      else cv.notify_all();
    });
  };
  const auto t0 = Clock::now();
  for (int g = 0; g < groups; ++g) step(g);
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return running == 0; });
  return secs(t0);
}

}  // namespace

int main(int argc, char** argv) {
  kernels::brief_openmp_spin_by_default(argv);   // as omnid does
  const int H = argc > 1 ? std::atoi(argv[1]) : 512, L = argc > 2 ? std::atoi(argv[2]) : 8;
  const int B = argc > 3 ? std::atoi(argv[3]) : 16, P = argc > 4 ? std::atoi(argv[4]) : 128;
  const int S = argc > 5 ? std::atoi(argv[5]) : 32;
  const int threads = argc > 6 ? std::atoi(argv[6]) : 0;
  kernels::set_cpu_threads(threads > 0 ? threads : kernels::default_cpu_threads(1));
  const int heads = H / 64, kv = std::max(1, heads / 4), F = H * 11 / 4, V = 32000;
  const auto dir = std::filesystem::temp_directory_path() / "omni-bench-engine";
  write_checkpoint(dir, H, L, F, V, heads, kv);
  auto dev = kernels::make_device({});
  auto lm = CausalLm::load(dir.string(), [&](const LlmConfig& c) { return DecoderPlacement::single(dev, c.n_layers); });
  const Decoder& dec = lm->decoder();
  const double params = double(L) * double(lm->config().layer_params()) + 2.0 * V * H;
  std::printf("model: qwen2 hidden %d, %d layers, ffn %d, vocab %d, %.1f M params (fp32 on cpu:0, %d threads)\n", H, L,
              F, V, params / 1e6, kernels::cpu_threads());

  std::vector<int32_t> prompt(static_cast<size_t>(P));
  for (int i = 0; i < P; ++i) prompt[size_t(i)] = (i * 7919) % V;
  std::vector<std::unique_ptr<KvSequence>> caches;
  for (int b = 0; b < B; ++b) caches.push_back(dec.new_cache(P + S + 1));

  auto t0 = Clock::now();
  prefill(dec, *caches[0], dec.embed(prompt), false);
  const double t_prefill = secs(t0);

  t0 = Clock::now();
  for (int s = 0; s < S; ++s) dec.logits(dec.forward(dec.embed({int32_t(s + 1)}), {{caches[0].get(), 1}}));
  const double t_b1 = secs(t0);

  for (int b = 1; b < B; ++b) prefill(dec, *caches[size_t(b)], dec.embed(prompt), false);
  for (int b = 0; b < B; ++b) caches[size_t(b)]->truncate(P);
  std::vector<int32_t> toks(static_cast<size_t>(B), 1);
  std::vector<SeqSlice> seqs;
  for (auto& c : caches) seqs.push_back({c.get(), 1});
  t0 = Clock::now();
  for (int s = 0; s < S; ++s) dec.logits(dec.forward(dec.embed(toks), seqs));
  const double t_bn = secs(t0);

  std::printf("| measurement | value |\n|---|---|\n");
  std::printf("| prefill %d tokens | %.1f ms (%.0f tok/s) |\n", P, t_prefill * 1e3, P / t_prefill);
  std::printf("| decode, batch 1 | %.1f tok/s (%.1f ms/token) |\n", S / t_b1, t_b1 * 1e3 / S);
  std::printf("| decode, batch %d (one forward per step) | %.1f tok/s total |\n", B, double(S) * B / t_bn);

  // A picture's long prompt joins the B running streams. In one step (no chunking) every
  // stream waits for the whole prefill before its next token; with max_batch_tokens C a
  // step carries the B decode rows and C - B prompt rows (what the scheduler does).
  const int J = 1024;
  auto joining = dec.new_cache(J + 1);
  for (int C : {B + J, 512, 256}) {
    if (C - B < 1) continue;
    joining->truncate(0);
    for (auto& c : caches) c->truncate(P);
    double worst = 0;
    int steps = 0;
    t0 = Clock::now();
    for (int done = 0; done < J; ++steps) {
      const int n = std::min(C - B, J - done);
      std::vector<int32_t> ids(toks);
      for (int i = 0; i < n; ++i) ids.push_back(prompt[size_t(done + i) % prompt.size()]);
      std::vector<SeqSlice> step_seqs = seqs;
      step_seqs.push_back({joining.get(), n});
      const auto ts = Clock::now();
      kernels::Tensor h = dec.forward(dec.embed(ids), step_seqs);
      dec.logits(h.rows_view(0, B));   // the running streams' next tokens
      worst = std::max(worst, secs(ts));
      done += n;
    }
    std::printf("| a %d-token prompt joins %d streams, %s | streams wait up to %.0f ms for a token; prompt in %.0f ms "
                "(%d steps) |\n",
                J, B, C == B + J ? "whole prompt in one step" : ("max_batch_tokens " + std::to_string(C)).c_str(),
                worst * 1e3, secs(t0) * 1e3, steps);
  }

  // The same model over two stages, balanced as the planner balances: the first k layers on
  // cpu:0, the rest with lm_head (vocab x hidden, as costly as several layers) on cpu:1.
  const double lp = double(lm->config().layer_params()), head = double(V) * H;
  int k = 1;
  for (int c = 1; c < L; ++c)
    if (std::max(c * lp, (L - c) * lp + head) < std::max(k * lp, (L - k) * lp + head)) k = c;
  kernels::set_cpu_threads(threads > 0 ? threads : kernels::default_cpu_threads(2));
  auto dev1 = kernels::make_device({kernels::DeviceId::Kind::CPU, 1});
  auto lm2 = CausalLm::load(dir.string(), [&](const LlmConfig& c) {
    DecoderPlacement p = DecoderPlacement::single(dev, c.n_layers);
    for (int l = k; l < c.n_layers; ++l) p.layer_devices[size_t(l)] = dev1;
    p.head_device = dev1;
    return p;
  });
  const Decoder& dec2 = lm2->decoder();
  auto pc = prefilled(dec2, B, prompt, S);
  std::vector<SeqSlice> pseqs;
  for (auto& c : pc) pseqs.push_back({c.get(), 1});
  t0 = Clock::now();
  for (int s = 0; s < S; ++s) dec2.logits(dec2.forward(dec2.embed(toks), pseqs));
  const double t_seq = secs(t0);
  for (auto& c : pc) c->truncate(P);
  const double t_pipe = pipelined_decode(dec2, pc, 2, S);
  std::printf("| pipeline cpu:0 (%d layers), cpu:1 (%d + lm_head), %d threads each: batch %d walking the stages | %.1f tok/s total |\n",
              k, L - k, kernels::cpu_threads(), B, double(S) * B / t_seq);
  std::printf("| same pipeline, 2 groups of %d in flight | %.1f tok/s total |\n", B / 2, double(S) * B / t_pipe);
  std::filesystem::remove_all(dir);
  return 0;
}
