// The CUDA backend against the CPU reference: every op on random inputs (the inputs are
// rounded to bf16 first, so both backends see the same numbers), then whole models
// (qwen2/qwen3/llama tiny decoders, the SigLIP tower) on cuda:0 against cpu:0.
// Without a CUDA device every case warns and passes, so CI (no GPU) runs this suite too.
#include <catch2/catch.hpp>

#include <cmath>
#include <future>
#include <random>
#include <tuple>

#include "checkpoint/checkpoint.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "util/paged_layout.h"
#include "model/causal_lm.h"
#include "model/pipeline_runner.h"
#include "model/vision_config.h"
#include "model/vision_tower.h"
#include "model/weight_loader.h"
#include "util/golden.h"
#include "util/npy.h"
#include "util/skip.h"

using namespace omni;
using kernels::DType;
using kernels::Tensor;

#define SKIP_WITHOUT_CUDA()                              \
  if (omni::kernels::device_count(omni::kernels::DeviceId::Kind::CUDA) == 0) OMNI_SKIP("no CUDA device")

namespace {

constexpr double kTol = 1e-2;

struct Pair {
  std::shared_ptr<kernels::Device> cpu = kernels::make_device(kernels::DeviceId::parse("cpu:0"));
  std::shared_ptr<kernels::Device> gpu = kernels::make_device(kernels::DeviceId::parse("cuda:0"));
  std::mt19937 rng{1234};

  std::vector<float> random(size_t n, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = kernels::bf16_to_f32(kernels::f32_to_bf16(d(rng)));
    return v;
  }
  // The same values as F32 on the CPU and BF16 (or `gdt`) on the GPU.
  std::pair<Tensor, Tensor> both(const std::vector<float>& v, std::vector<int64_t> shape, DType gdt = DType::BF16) {
    return {Tensor::from_host(cpu, DType::F32, shape, v.data()), Tensor::from_host(gpu, gdt, shape, v.data())};
  }
  std::pair<Tensor, Tensor> ids(const std::vector<int32_t>& v) {
    return {Tensor::from_host_i32(cpu, {int64_t(v.size())}, v.data()),
            Tensor::from_host_i32(gpu, {int64_t(v.size())}, v.data())};
  }
  // An output pair, the GPU one poisoned with NaN so unwritten elements fail.
  std::pair<Tensor, Tensor> out(std::vector<int64_t> shape, DType gdt = DType::BF16) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> nan(size_t(n), NAN);
    return {Tensor::empty(cpu, DType::F32, shape), Tensor::from_host(gpu, gdt, shape, nan.data())};
  }
};

double err(const Tensor& gpu, const Tensor& cpu) { return test::rel_error(gpu.to_host(), cpu.to_host()); }

}  // namespace

TEST_CASE("cuda linear with and without bias", "[cuda]") {
  SKIP_WITHOUT_CUDA();
  Pair p;
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {{1, 96, 64}, {7, 130, 72}, {64, 256, 512}};
  for (auto [M, N, K] : shapes) {
    auto [xc, xg] = p.both(p.random(size_t(M * K)), {M, K});
    auto [wc, wg] = p.both(p.random(size_t(N * K)), {N, K});
    auto [bc, bg] = p.both(p.random(size_t(N)), {N});
    auto [yc, yg] = p.out({M, N});
    p.cpu->ops().linear(xc, wc, nullptr, yc);
    p.gpu->ops().linear(xg, wg, nullptr, yg);
    CHECK(err(yg, yc) < kTol);
    p.cpu->ops().linear(xc, wc, &bc, yc);
    p.gpu->ops().linear(xg, wg, &bg, yg);
    CHECK(err(yg, yc) < kTol);
  }
  // All-F32 goes through cuBLAS in fp32.
  auto [xc, xg] = p.both(p.random(33 * 40), {33, 40}, DType::F32);
  auto [wc, wg] = p.both(p.random(20 * 40), {20, 40}, DType::F32);
  auto [yc, yg] = p.out({33, 20}, DType::F32);
  p.cpu->ops().linear(xc, wc, nullptr, yc);
  p.gpu->ops().linear(xg, wg, nullptr, yg);
  CHECK(err(yg, yc) < 1e-5);
}

TEST_CASE("cuda rms_norm and layer_norm, rows and per-head rows, in place", "[cuda]") {
  SKIP_WITHOUT_CUDA();
  Pair p;
  for (int64_t W : {16, 128, 1000, 3584}) {
    const int64_t R = 5;
    auto [xc, xg] = p.both(p.random(size_t(R * W), -3, 3), {R, W});
    auto [wc, wg] = p.both(p.random(size_t(W)), {W});
    auto [bc, bg] = p.both(p.random(size_t(W)), {W});
    auto [yc, yg] = p.out({R, W});
    p.cpu->ops().rms_norm(xc, wc, 1e-6f, yc);
    p.gpu->ops().rms_norm(xg, wg, 1e-6f, yg);
    CHECK(err(yg, yc) < kTol);
    p.cpu->ops().layer_norm(xc, wc, bc, 1e-5f, yc);
    p.gpu->ops().layer_norm(xg, wg, bg, 1e-5f, yg);
    CHECK(err(yg, yc) < kTol);
    p.cpu->ops().rms_norm(xc, wc, 1e-6f, xc);   // in place, as qk-norm does
    p.gpu->ops().rms_norm(xg, wg, 1e-6f, xg);
    CHECK(err(xg, xc) < kTol);
  }
}

TEST_CASE("cuda rope at large positions", "[cuda]") {
  SKIP_WITHOUT_CUDA();
  Pair p;
  const int T = 9, H = 3, D = 64;
  std::vector<float> f(D / 2);
  for (int i = 0; i < D / 2; ++i) f[size_t(i)] = float(std::pow(1e6, -2.0 * i / D));
  auto fc = Tensor::from_host(p.cpu, DType::F32, {D / 2}, f.data());
  auto fg = Tensor::from_host(p.gpu, DType::F32, {D / 2}, f.data());
  auto [pc, pg] = p.ids({0, 1, 2, 100, 4095, 4096, 30000, 32767, 120000});
  auto [xc, xg] = p.both(p.random(size_t(T * H * D)), {T, H * D});
  p.cpu->ops().rope(xc, pc, fc, H, D);
  p.gpu->ops().rope(xg, pg, fg, H, D);
  CHECK(err(xg, xc) < kTol);
}

TEST_CASE("cuda element-wise ops, embedding and dtype-converting copy", "[cuda]") {
  SKIP_WITHOUT_CUDA();
  Pair p;
  const int64_t n = 100003;
  auto [ac, ag] = p.both(p.random(size_t(n), -4, 4), {n});
  auto [bc, bg] = p.both(p.random(size_t(n), -4, 4), {n});
  auto [yc, yg] = p.out({n});
  p.cpu->ops().silu_mul(ac, bc, yc);
  p.gpu->ops().silu_mul(ag, bg, yg);
  CHECK(err(yg, yc) < kTol);
  p.cpu->ops().add(ac, bc, yc);
  p.gpu->ops().add(ag, bg, yg);
  CHECK(err(yg, yc) < kTol);
  p.cpu->ops().add(ac, bc, ac);   // y aliases a
  p.gpu->ops().add(ag, bg, ag);
  CHECK(err(ag, ac) < kTol);
  p.cpu->ops().gelu_tanh(bc);
  p.gpu->ops().gelu_tanh(bg);
  CHECK(err(bg, bc) < kTol);

  const int64_t V = 50, W = 72;
  auto [tc, tg] = p.both(p.random(size_t(V * W)), {V, W});
  auto [ic, ig] = p.ids({3, 0, 49, 3, 17});
  auto [ec, eg] = p.out({5, W});
  p.cpu->ops().embedding(tc, ic, ec);
  p.gpu->ops().embedding(tg, ig, eg);
  CHECK(err(eg, ec) == 0.0);
  auto [bad_c, bad_g] = p.ids({1, 50});
  CHECK_THROWS_AS(p.gpu->ops().embedding(tg, bad_g, eg), std::out_of_range);

  // BF16 -> F32 -> BF16 is exact; F32 -> BF16 rounds like the host's f32_to_bf16.
  std::vector<float> raw(999);
  std::uniform_real_distribution<float> d(-5, 5);
  for (auto& x : raw) x = d(p.rng);
  Tensor f32 = Tensor::from_host(p.gpu, DType::F32, {999}, raw.data());
  Tensor b16 = Tensor::empty(p.gpu, DType::BF16, {999});
  p.gpu->ops().copy(f32, b16);
  Tensor want = Tensor::from_host(p.gpu, DType::BF16, {999}, raw.data());
  CHECK(b16.to_host() == want.to_host());
  Tensor back = Tensor::empty(p.gpu, DType::F32, {999});
  p.gpu->ops().copy(b16, back);
  CHECK(back.to_host() == want.to_host());
  std::vector<int32_t> iv = {5, -7, 1 << 20};
  Tensor i1 = Tensor::from_host_i32(p.gpu, {3}, iv.data()), i2 = Tensor::empty(p.gpu, DType::I32, {3});
  p.gpu->ops().copy(i1, i2);
  std::vector<int32_t> got(3);
  p.gpu->download(got.data(), i2.raw(), 12);
  CHECK(got == iv);
}

TEST_CASE("cuda attention: prefill, decode, GQA, no mask, split keys", "[cuda]") {
  SKIP_WITHOUT_CUDA();
  Pair p;
  struct Case { int heads, kv, dim; int64_t tq, tk, offset; int splits; };
  const std::vector<Case> cases = {
      {4, 4, 64, 37, 37, 0, 0},        // causal prefill
      {28, 4, 128, 1, 700, 699, 0},    // Qwen2-7B decode step (automatic split)
      {28, 4, 128, 1, 700, 699, 7},    // forced splits
      {6, 2, 32, 5, 300, 295, 3},      // a few new rows after a cache, split
      {16, 16, 72, 130, 130, -1, 0},   // SigLIP: head_dim 72, no mask
      {8, 8, 128, 64, 200, -1, 4},     // resampler-like: no mask, split
      {2, 1, 256, 3, 40, 37, 0},       // largest head_dim
      {4, 2, 16, 4, 4, 0, 0},          // tiny head_dim
  };
  for (const auto& c : cases) {
    INFO("heads " << c.heads << "/" << c.kv << " dim " << c.dim << " Tq " << c.tq << " Tk " << c.tk << " offset "
                  << c.offset << " splits " << c.splits);
    kernels::AttentionArgs a{c.heads, c.kv, c.dim, float(1.0 / std::sqrt(double(c.dim))), c.offset};
    auto [qc, qg] = p.both(p.random(size_t(c.tq * c.heads * c.dim), -2, 2), {c.tq, int64_t(c.heads) * c.dim});
    auto [kc, kg] = p.both(p.random(size_t(c.tk * c.kv * c.dim), -2, 2), {c.tk, int64_t(c.kv) * c.dim});
    auto [vc, vg] = p.both(p.random(size_t(c.tk * c.kv * c.dim)), {c.tk, int64_t(c.kv) * c.dim});
    auto [oc, og] = p.out({c.tq, int64_t(c.heads) * c.dim});
    auto& ops = dynamic_cast<kernels::CudaOps&>(p.gpu->ops());
    ops.set_attention_splits(c.splits);
    p.cpu->ops().attention(qc, kc, vc, oc, a);
    p.gpu->ops().attention(qg, kg, vg, og, a);
    ops.set_attention_splits(0);
    CHECK(err(og, oc) < kTol);
  }
}

TEST_CASE("cuda paged attention: many sequences in one call through scrambled block tables", "[cuda]") {
  SKIP_WITHOUT_CUDA();
  Pair p;
  const int H = 8, KVH = 2, D = 128, br = 16, n_blocks = 40;
  // Prefill rows, decode rows, a chunk after a cache, a shared prefix (blocks 3 and 17).
  const kernels::AttentionLayout lay = test::paged_layout(
      {{37, 37, {9, 3, 30}}, {1, 50, {3, 17, 2, 5}}, {9, 30, {22, 0}}, {1, 1, {11}}, {5, 40, {3, 17, 35}}}, br);
  const int64_t T = lay.seqs.back().q_begin + lay.seqs.back().q_rows, rows = int64_t(n_blocks) * br;
  kernels::AttentionArgs a{H, KVH, D, float(1.0 / std::sqrt(double(D))), -1};
  auto [qc, qg] = p.both(p.random(size_t(T * H * D), -2, 2), {T, int64_t(H) * D});
  auto [kc, kg] = p.both(p.random(size_t(rows * KVH * D), -2, 2), {rows, int64_t(KVH) * D});
  auto [vc, vg] = p.both(p.random(size_t(rows * KVH * D)), {rows, int64_t(KVH) * D});
  auto [oc, og] = p.out({T, int64_t(H) * D});
  p.cpu->ops().attention(qc, kc, vc, oc, a, lay);
  auto& ops = dynamic_cast<kernels::CudaOps&>(p.gpu->ops());
  for (int splits : {0, 3}) {   // automatic, and forced key splits (the merge path)
    INFO("splits " << splits);
    ops.set_attention_splits(splits);
    kernels::AttentionLayout on_gpu = lay;
    p.gpu->ops().attention(qg, kg, vg, og, a, on_gpu);      // the op uploads the layout itself
    CHECK(err(og, oc) < kTol);
    on_gpu.upload(p.gpu);                                   // the decoder's way: once per step
    p.gpu->ops().attention(qg, kg, vg, og, a, on_gpu);
    CHECK(err(og, oc) < kTol);
  }
  ops.set_attention_splits(0);
  // write_rows: new keys into their pool rows, as the decoder writes them.
  auto [sc, sg] = p.both(p.random(size_t(3 * KVH * D)), {3, int64_t(KVH) * D});
  const std::vector<int32_t> at = {5, 600, 17};
  p.cpu->ops().write_rows(sc, Tensor::from_host_i32(p.cpu, {3}, at.data()), kc);
  p.gpu->ops().write_rows(sg, Tensor::from_host_i32(p.gpu, {3}, at.data()), kg);
  CHECK(err(kg, kc) < kTol);
}

TEST_CASE("cuda device memory, transfers and peer copies", "[cuda]") {
  SKIP_WITHOUT_CUDA();
  auto dev = kernels::make_device(kernels::DeviceId::parse("cuda:0"), size_t(64) << 20);
  CHECK(dev->total_memory() == size_t(64) << 20);
  CHECK(dev->compute_dtype() == DType::BF16);
  const size_t before = dev->free_memory();
  {
    // Larger than the staging buffers: the upload goes through both in turn.
    std::vector<float> big(size_t(10) << 20);
    for (size_t i = 0; i < big.size(); ++i) big[i] = float(i % 1000);
    Tensor t = Tensor::from_host(dev, DType::F32, {int64_t(big.size())}, big.data());
    CHECK(dev->free_memory() <= before - big.size() * 4);
    CHECK(t.to_host() == big);
    CHECK_THROWS_WITH(Tensor::empty(dev, DType::F32, {int64_t(32) << 20}), Catch::Contains("cuda:0"));
  }
  CHECK(dev->free_memory() == before);

  // cuda -> cuda (another device object, same or next GPU) and cuda <-> cpu.
  const int other = kernels::device_count(kernels::DeviceId::Kind::CUDA) > 1 ? 1 : 0;
  auto dev2 = kernels::make_device(kernels::DeviceId{kernels::DeviceId::Kind::CUDA, other});
  auto cpu = kernels::make_device(kernels::DeviceId::parse("cpu:0"));
  std::vector<float> v = {1.5f, -2.25f, 3.0f, 1e-3f};
  Tensor a = Tensor::from_host(dev, DType::BF16, {4}, v.data());
  Tensor b = Tensor::empty(dev2, DType::BF16, {4});
  kernels::copy_between(a, b);
  CHECK(b.to_host() == a.to_host());
  Tensor c = Tensor::empty(cpu, DType::F32, {4});
  kernels::copy_between(b, c);
  CHECK(c.to_host() == a.to_host());
}

namespace {

std::unique_ptr<CausalLm> load_on(const std::string& dir, const std::string& dev_name) {
  return CausalLm::load(dir, [&](const LlmConfig& cfg) {
    return DecoderPlacement::single(kernels::make_device(kernels::DeviceId::parse(dev_name)), cfg.n_layers);
  });
}

void check_decoder(const std::string& name) {
  const std::string dir = test::data(name);
  auto cpu = load_on(dir, "cpu:0");
  auto gpu = load_on(dir, "cuda:0");
  std::vector<int32_t> ids = read_npy(dir + "/golden_input_ids.npy").as_int32();
  auto run = [&](const Decoder& dec) {
    auto cache = dec.new_cache(int64_t(ids.size()) + 8);
    std::vector<float> all = prefill(dec, *cache, dec.embed(ids), true);
    // Then decode steps through the KV cache (split-key attention on the GPU).
    for (int32_t t : {5, 17, 3}) {
      std::vector<float> l = prefill(dec, *cache, dec.embed({t}), false);
      all.insert(all.end(), l.begin(), l.end());
    }
    return all;
  };
  const std::vector<float> want = run(cpu->decoder()), got = run(gpu->decoder());
  const double e = test::rel_error(got, want);
  INFO(name << " cuda vs cpu logits relative error " << e);
  CHECK(e < kTol);
}

}  // namespace

TEST_CASE("cuda decoder equals cpu: qwen2-tiny", "[cuda][model]") {
  SKIP_WITHOUT_CUDA();
  check_decoder("qwen2-tiny");
}
TEST_CASE("cuda decoder equals cpu: qwen3-tiny", "[cuda][model]") {
  SKIP_WITHOUT_CUDA();
  check_decoder("qwen3-tiny");
}
TEST_CASE("cuda decoder equals cpu: llama-tiny", "[cuda][model]") {
  SKIP_WITHOUT_CUDA();
  check_decoder("llama-tiny");
}

TEST_CASE("cuda pipeline: two stages on one GPU with three batches in flight equal cpu", "[cuda][model]") {
  SKIP_WITHOUT_CUDA();
  // cuda:0,cuda:0: one device object, two stages, each on its own thread (taking turns).
  const std::string dir = test::data("qwen2-tiny");
  auto cpu = load_on(dir, "cpu:0");
  auto gpu = CausalLm::load(dir, [&](const LlmConfig& cfg) {
    DecoderPlacement p = DecoderPlacement::single(kernels::make_device(kernels::DeviceId::parse("cuda:0")), cfg.n_layers);
    p.stage_starts = {0, cfg.n_layers / 2};
    return p;
  });
  const Decoder& dec = gpu->decoder();
  REQUIRE(dec.stages().size() == 2);
  const std::vector<int32_t> ids = read_npy(dir + "/golden_input_ids.npy").as_int32();
  const std::vector<std::vector<int32_t>> batches = {{ids.begin() + 1, ids.begin() + 9}, {ids.begin() + 3, ids.begin() + 20},
                                                     {ids.begin() + 30, ids.begin() + 34}};
  PipelineRunner runner(dec);
  std::vector<std::unique_ptr<KvSequence>> caches;
  std::vector<std::promise<std::shared_ptr<PipelineJob>>> done(batches.size());
  for (size_t b = 0; b < batches.size(); ++b) {
    auto job = std::make_shared<PipelineJob>();
    caches.push_back(dec.new_cache(64));
    job->seqs = {{caches.back().get(), int64_t(batches[b].size())}};
    job->logit_rows = {int64_t(batches[b].size()) - 1};
    {
      std::lock_guard<kernels::TurnLock> lock(dec.placement().embed_device->exec_mutex());
      job->hidden = dec.embed(batches[b]);
    }
    runner.submit(job, [&, b](const std::shared_ptr<PipelineJob>& j) { done[b].set_value(j); });
  }
  for (size_t b = 0; b < batches.size(); ++b) {
    auto job = done[b].get_future().get();
    REQUIRE_FALSE(job->error);
    const Decoder& ref = cpu->decoder();
    auto cache = ref.new_cache(64);
    std::vector<float> want = prefill(ref, *cache, ref.embed(batches[b]), false);
    const double e = test::rel_error(job->logits, want);
    INFO("batch " << b << " relative error " << e);
    CHECK(e < kTol);
  }
  CHECK(runner.stats().max_in_flight == 3);
}

TEST_CASE("cuda vision tower equals cpu: navit-siglip-tiny", "[cuda][model]") {
  SKIP_WITHOUT_CUDA();
  const std::string dir = test::data("navit-siglip-tiny");
  Checkpoint ckpt(dir);
  VisionConfig cfg = VisionConfig::from_json(ckpt.config(), dir + "/config.json");
  auto encode = [&](const std::string& dev_name) {
    WeightLoader loader(ckpt);
    VisionTower tower(loader, cfg, "", kernels::make_device(kernels::DeviceId::parse(dev_name)));
    const int h = 2 * cfg.patch_size, w = 3 * cfg.patch_size;
    std::vector<float> px(size_t(3 * h * w));
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> d(-1, 1);
    for (auto& x : px) x = d(rng);
    return tower.encode(px, h, w).to_host();
  };
  const double e = test::rel_error(encode("cuda:0"), encode("cpu:0"));
  INFO("vision cuda vs cpu relative error " << e);
  CHECK(e < kTol);
}
