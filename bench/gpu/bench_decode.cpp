// GPU benchmark for the CUDA backend (docs/cuda.md), MiniCPM-V 2.6 shapes with random bf16
// weights: the Qwen2-7B decoder (hidden 3584, 28 layers, 28/4 heads, ffn 18944, vocab
// 151666) and the SigLIP-400M tower (27 layers, 1152 wide, 16 heads, ffn 4304).
//
// The layer loops below issue exactly the op sequence of daemon/model/decoder.cpp
// (run_layer) and daemon/model/vision_tower.cpp (encode), on tensors filled on the GPU,
// so no 15 GB checkpoint has to exist on the benchmark machine. Reported:
//   copy      device-to-device copy bandwidth (bytes read + written), the decode roofline
//   decode    batch-1 tokens/s after a 512-token prompt, vs bytes-per-token / copy bandwidth
//   batch16   16 concurrent sequences, one token each per step: aggregate tokens/s
//   prefill   one 512-token prompt: tokens/s and TFLOP/s (2 · params · tokens)
//   vision    10 pieces of 448×448 (1024 patches each) through the tower: pieces/s
// The last line is one JSON object (bench/gpu/run.sh reads it).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "kernels/tensor.h"

using namespace omni::kernels;

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

struct Rng {
  uint64_t seed = 1;
  uint64_t next() { return seed += 0x9e3779b97f4a7c15ull; }
};

std::shared_ptr<Device> g_dev;
CudaOps* g_ops = nullptr;
Rng g_rng;

Tensor rand_t(std::vector<int64_t> shape, float scale, float offset = 0.0f) {
  Tensor t = Tensor::empty(g_dev, DType::BF16, std::move(shape));
  g_ops->fill_uniform(t, g_rng.next(), scale);
  if (offset != 0.0f) {   // norms: weights around 1
    std::vector<float> one(size_t(t.numel()), offset);
    Tensor o = Tensor::from_host(g_dev, DType::BF16, t.shape(), one.data());
    g_ops->add(t, o, t);
  }
  return t;
}

// ---- decoder (Qwen2-7B) -----------------------------------------------------------------
struct LlmShape {
  int64_t H = 3584, F = 18944, V = 151666;
  int layers = 28, heads = 28, kv_heads = 4, head_dim = 128;
  double theta = 1e6;
  int64_t Q() const { return int64_t(heads) * head_dim; }
  int64_t KV() const { return int64_t(kv_heads) * head_dim; }
  double layer_params() const { return double(H) * Q() * 2 + double(H) * KV() * 2 + 3.0 * double(H) * F; }
  double params() const { return layers * layer_params() + double(V) * H; }   // lm_head counted, embed not
};

struct Layer {
  Tensor attn_norm, wq, wk, wv, wo, bq, bk, bv, mlp_norm, w_gate, w_up, w_down;
};

struct Seq {
  std::vector<Tensor> k, v;   // per layer [capacity, KV]
  int64_t len = 0;
};

struct Llm {
  LlmShape s;
  Tensor embed, final_norm, lm_head, inv_freq;
  std::vector<Layer> layers;

  explicit Llm(const LlmShape& shape) : s(shape) {
    const float w = 0.02f;
    embed = rand_t({s.V, s.H}, 0.5f);
    for (int l = 0; l < s.layers; ++l) {
      Layer L;
      L.attn_norm = rand_t({s.H}, 0.1f, 1.0f);
      L.wq = rand_t({s.Q(), s.H}, w);
      L.wk = rand_t({s.KV(), s.H}, w);
      L.wv = rand_t({s.KV(), s.H}, w);
      L.bq = rand_t({s.Q()}, w);
      L.bk = rand_t({s.KV()}, w);
      L.bv = rand_t({s.KV()}, w);
      L.wo = rand_t({s.H, s.Q()}, w);
      L.mlp_norm = rand_t({s.H}, 0.1f, 1.0f);
      L.w_gate = rand_t({s.F, s.H}, w);
      L.w_up = rand_t({s.F, s.H}, w);
      L.w_down = rand_t({s.H, s.F}, w / 2);
      layers.push_back(std::move(L));
    }
    final_norm = rand_t({s.H}, 0.1f, 1.0f);
    lm_head = rand_t({s.V, s.H}, w);
    std::vector<float> f(size_t(s.head_dim / 2));
    for (int i = 0; i < s.head_dim / 2; ++i) f[size_t(i)] = float(1.0 / std::pow(s.theta, 2.0 * i / s.head_dim));
    inv_freq = Tensor::from_host(g_dev, DType::F32, {int64_t(f.size())}, f.data());
  }

  Seq new_seq(int64_t capacity) const {
    Seq q;
    for (int l = 0; l < s.layers; ++l) {
      q.k.push_back(Tensor::empty(g_dev, DType::BF16, {capacity, s.KV()}));
      q.v.push_back(Tensor::empty(g_dev, DType::BF16, {capacity, s.KV()}));
    }
    return q;
  }

  // decoder.cpp's forward + logits for the rows of `seqs` (n_new tokens each), ids given.
  std::vector<float> step(std::vector<Seq*>& seqs, const std::vector<int64_t>& n_new, const std::vector<int32_t>& ids,
                          bool want_logits) {
    Ops& ops = *g_ops;
    const int64_t T = int64_t(ids.size());
    std::vector<int32_t> pos;
    for (size_t i = 0; i < seqs.size(); ++i)
      for (int64_t j = 0; j < n_new[i]; ++j) pos.push_back(int32_t(seqs[i]->len + j));
    Tensor t_ids = Tensor::from_host_i32(g_dev, {T}, ids.data());
    Tensor x = Tensor::empty(g_dev, DType::BF16, {T, s.H});
    ops.embedding(embed, t_ids, x);
    Tensor positions = Tensor::from_host_i32(g_dev, {T}, pos.data());
    AttentionArgs args{s.heads, s.kv_heads, s.head_dim, float(1.0 / std::sqrt(double(s.head_dim))), 0};
    for (int l = 0; l < s.layers; ++l) {
      const Layer& L = layers[size_t(l)];
      Tensor n = Tensor::empty(g_dev, DType::BF16, {T, s.H});
      ops.rms_norm(x, L.attn_norm, 1e-6f, n);
      Tensor q = Tensor::empty(g_dev, DType::BF16, {T, s.Q()}), k = Tensor::empty(g_dev, DType::BF16, {T, s.KV()}),
             v = Tensor::empty(g_dev, DType::BF16, {T, s.KV()});
      ops.linear(n, L.wq, &L.bq, q);
      ops.linear(n, L.wk, &L.bk, k);
      ops.linear(n, L.wv, &L.bv, v);
      ops.rope(q, positions, inv_freq, s.heads, s.head_dim);
      ops.rope(k, positions, inv_freq, s.kv_heads, s.head_dim);
      Tensor attn = Tensor::empty(g_dev, DType::BF16, {T, s.Q()});
      int64_t row = 0;
      for (size_t i = 0; i < seqs.size(); ++i) {
        Seq& sq = *seqs[i];
        const int64_t past = sq.len, nn = n_new[i];
        Tensor kc = sq.k[size_t(l)].rows_view(past, nn), vc = sq.v[size_t(l)].rows_view(past, nn);
        ops.copy(k.rows_view(row, nn), kc);
        ops.copy(v.rows_view(row, nn), vc);
        args.causal_offset = past;
        Tensor out = attn.rows_view(row, nn);
        ops.attention(q.rows_view(row, nn), sq.k[size_t(l)].rows_view(0, past + nn),
                      sq.v[size_t(l)].rows_view(0, past + nn), out, args);
        row += nn;
      }
      Tensor o = Tensor::empty(g_dev, DType::BF16, {T, s.H});
      ops.linear(attn, L.wo, nullptr, o);
      ops.add(x, o, x);
      ops.rms_norm(x, L.mlp_norm, 1e-6f, n);
      Tensor g = Tensor::empty(g_dev, DType::BF16, {T, s.F}), u = Tensor::empty(g_dev, DType::BF16, {T, s.F});
      ops.linear(n, L.w_gate, nullptr, g);
      ops.linear(n, L.w_up, nullptr, u);
      ops.silu_mul(g, u, g);
      ops.linear(g, L.w_down, nullptr, o);
      ops.add(x, o, x);
    }
    for (size_t i = 0; i < seqs.size(); ++i) seqs[i]->len += n_new[i];
    if (!want_logits) {
      g_dev->synchronize();
      return {};
    }
    // Last row of each sequence through the final norm and lm_head, logits to the host
    // (what the engine does before sampling).
    const int64_t R = int64_t(seqs.size());
    Tensor last = Tensor::empty(g_dev, DType::BF16, {R, s.H});
    int64_t row = 0;
    for (size_t i = 0; i < seqs.size(); ++i) {
      row += n_new[i];
      Tensor dst = last.rows_view(int64_t(i), 1);
      ops.copy(x.rows_view(row - 1, 1), dst);
    }
    Tensor n = Tensor::empty(g_dev, DType::BF16, {R, s.H});
    ops.rms_norm(last, final_norm, 1e-6f, n);
    Tensor logits = Tensor::empty(g_dev, DType::BF16, {R, s.V});
    ops.linear(n, lm_head, nullptr, logits);
    return logits.to_host();
  }
};

int32_t argmax(const std::vector<float>& v, size_t first, size_t n) {
  return int32_t(std::max_element(v.begin() + long(first), v.begin() + long(first + n)) - (v.begin() + long(first)));
}

// ---- vision tower (SigLIP-400M) ---------------------------------------------------------------
struct VLayer {
  Tensor ln1_w, ln1_b, wq, bq, wk, bk, wv, bv, wo, bo, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
};

double bench_vision(int pieces, int reps) {
  const int64_t H = 1152, F = 4304, P = 14, K = 3 * P * P, L = (448 / P) * (448 / P), table = 70 * 70;
  const int layers = 27, heads = 16;
  const float w = 0.02f;
  Tensor patch_w = rand_t({H, K}, w), patch_b = rand_t({H}, w), pos_table = rand_t({table, H}, 0.5f);
  Tensor post_w = rand_t({H}, 0.1f, 1.0f), post_b = rand_t({H}, 0.1f);
  std::vector<VLayer> ls;
  for (int l = 0; l < layers; ++l) {
    VLayer y;
    y.ln1_w = rand_t({H}, 0.1f, 1.0f), y.ln1_b = rand_t({H}, 0.1f);
    y.wq = rand_t({H, H}, w), y.bq = rand_t({H}, w), y.wk = rand_t({H, H}, w), y.bk = rand_t({H}, w);
    y.wv = rand_t({H, H}, w), y.bv = rand_t({H}, w), y.wo = rand_t({H, H}, w), y.bo = rand_t({H}, w);
    y.ln2_w = rand_t({H}, 0.1f, 1.0f), y.ln2_b = rand_t({H}, 0.1f);
    y.fc1_w = rand_t({F, H}, w), y.fc1_b = rand_t({F}, w), y.fc2_w = rand_t({H, F}, w), y.fc2_b = rand_t({H}, w);
    ls.push_back(std::move(y));
  }
  std::vector<float> pixels(size_t(L * K));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = float(int(i * 2654435761u % 2001) - 1000) / 1000.0f;
  std::vector<int32_t> ids(static_cast<size_t>(L));
  for (int64_t i = 0; i < L; ++i) ids[size_t(i)] = int32_t((i / 32) * 70 + (i % 32) * 70 / 32);
  Ops& ops = *g_ops;
  auto encode = [&]() {   // vision_tower.cpp's encode, one piece
    Tensor t_patches = Tensor::from_host(g_dev, DType::BF16, {L, K}, pixels.data());
    Tensor t_ids = Tensor::from_host_i32(g_dev, {L}, ids.data());
    Tensor x = Tensor::empty(g_dev, DType::BF16, {L, H});
    ops.linear(t_patches, patch_w, &patch_b, x);
    Tensor pe = Tensor::empty(g_dev, DType::BF16, {L, H});
    ops.embedding(pos_table, t_ids, pe);
    ops.add(x, pe, x);
    AttentionArgs args{heads, heads, int(H / heads), float(1.0 / std::sqrt(double(H / heads))), -1};
    Tensor n = Tensor::empty(g_dev, DType::BF16, {L, H}), q = Tensor::empty(g_dev, DType::BF16, {L, H}),
           k = Tensor::empty(g_dev, DType::BF16, {L, H}), v = Tensor::empty(g_dev, DType::BF16, {L, H}),
           attn = Tensor::empty(g_dev, DType::BF16, {L, H}), o = Tensor::empty(g_dev, DType::BF16, {L, H}),
           m = Tensor::empty(g_dev, DType::BF16, {L, F});
    for (const VLayer& y : ls) {
      ops.layer_norm(x, y.ln1_w, y.ln1_b, 1e-6f, n);
      ops.linear(n, y.wq, &y.bq, q);
      ops.linear(n, y.wk, &y.bk, k);
      ops.linear(n, y.wv, &y.bv, v);
      ops.attention(q, k, v, attn, args);
      ops.linear(attn, y.wo, &y.bo, o);
      ops.add(x, o, x);
      ops.layer_norm(x, y.ln2_w, y.ln2_b, 1e-6f, n);
      ops.linear(n, y.fc1_w, &y.fc1_b, m);
      ops.gelu_tanh(m);
      ops.linear(m, y.fc2_w, &y.fc2_b, o);
      ops.add(x, o, x);
    }
    Tensor out = Tensor::empty(g_dev, DType::BF16, {L, H});
    ops.layer_norm(x, post_w, post_b, 1e-6f, out);
    return out;
  };
  encode();
  g_dev->synchronize();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto a = Clock::now();
    for (int p = 0; p < pieces; ++p) encode();
    g_dev->synchronize();
    t.push_back(secs(a, Clock::now()));
  }
  return median(t);
}

double copy_bandwidth() {
  const size_t bytes = size_t(1) << 30;
  Tensor a = Tensor::empty(g_dev, DType::BF16, {int64_t(bytes / 2)}), b = Tensor::empty(g_dev, DType::BF16, {int64_t(bytes / 2)});
  g_ops->fill_uniform(a, 1, 1.0f);
  auto stream = static_cast<cudaStream_t>(dynamic_cast<CudaDevice&>(*g_dev).stream());
  cudaEvent_t e0, e1;
  check(cudaEventCreate(&e0), "event");
  check(cudaEventCreate(&e1), "event");
  std::vector<double> t;
  for (int i = 0; i < 13; ++i) {
    check(cudaEventRecord(e0, stream), "record");
    check(cudaMemcpyAsync(b.raw(), a.raw(), bytes, cudaMemcpyDeviceToDevice, stream), "copy");
    check(cudaEventRecord(e1, stream), "record");
    check(cudaEventSynchronize(e1), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
    if (i >= 3) t.push_back(ms / 1e3);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return 2.0 * double(bytes) / median(t);
}

}  // namespace

int main(int argc, char** argv) {
  int layers = 28, decode_steps = 64, batch = 16, prompt = 512, pieces = 10;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") layers = 4, decode_steps = 16, pieces = 2;
    else if (a == "--layers" && i + 1 < argc) layers = std::stoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_decode [--quick] [--layers N]\n");
      return 2;
    }
  }
  try {
    if (device_count(DeviceId::Kind::CUDA) == 0) {
      std::fprintf(stderr, "bench_decode: no CUDA device\n");
      return 1;
    }
    g_dev = make_device(DeviceId::parse("cuda:0"));
    g_ops = &dynamic_cast<CudaOps&>(g_dev->ops());
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "properties");
    std::printf("device: %s, %d SMs, %.1f GiB free\n", prop.name, prop.multiProcessorCount,
                double(g_dev->free_memory()) / double(1 << 30));

    const double bw = copy_bandwidth();
    std::printf("copy: %.0f GB/s (device-to-device, read + write)\n", bw / 1e9);

    LlmShape shape;
    shape.layers = layers;
    auto llm_owner = std::make_unique<Llm>(shape);
    Llm& llm = *llm_owner;
    g_dev->synchronize();
    const double weight_bytes = 2.0 * shape.params();

    // Prefill: one prompt of `prompt` tokens, fresh cache each time; first run warms up.
    std::vector<int32_t> ids(static_cast<size_t>(prompt));
    for (int i = 0; i < prompt; ++i) ids[size_t(i)] = int32_t((i * 7919) % shape.V);
    std::vector<double> tp;
    for (int r = 0; r < 4; ++r) {
      Seq s = llm.new_seq(prompt + decode_steps + 8);
      std::vector<Seq*> ss{&s};
      auto a = Clock::now();
      llm.step(ss, {prompt}, ids, true);
      if (r) tp.push_back(secs(a, Clock::now()));
    }
    const double prefill_s = median(tp);
    const double prefill_tflops = 2.0 * shape.params() * prompt / prefill_s / 1e12;
    std::printf("prefill %d: %.1f ms, %.0f tok/s, %.0f TFLOP/s\n", prompt, prefill_s * 1e3, prompt / prefill_s,
                prefill_tflops);

    // Batch-1 decode after the prompt: greedy, logits to the host every step.
    Seq s = llm.new_seq(prompt + decode_steps + 8);
    std::vector<Seq*> ss{&s};
    std::vector<float> lg = llm.step(ss, {prompt}, ids, true);
    int32_t tok = argmax(lg, 0, size_t(shape.V));
    std::vector<double> td;
    for (int i = 0; i < decode_steps; ++i) {
      auto a = Clock::now();
      lg = llm.step(ss, {1}, {tok}, true);
      tok = argmax(lg, 0, size_t(shape.V));
      if (i >= 4) td.push_back(secs(a, Clock::now()));
    }
    const double decode_s = median(td);
    const double kv_bytes = 2.0 * 2.0 * double(shape.layers) * double(prompt + decode_steps / 2) * double(shape.KV());
    const double roof_s = (weight_bytes + kv_bytes) / bw;
    std::printf("decode b1: %.2f ms/token, %.1f tok/s; roofline %.2f ms (%.1f tok/s): %.0f%% of it\n", decode_s * 1e3,
                1.0 / decode_s, roof_s * 1e3, 1.0 / roof_s, 100.0 * roof_s / decode_s);

    // 16 concurrent sequences, each with its own 128-token prompt, one token each per step.
    const int ctx = 128;
    std::vector<Seq> seqs;
    for (int b = 0; b < batch; ++b) seqs.push_back(llm.new_seq(ctx + decode_steps + 8));
    std::vector<Seq*> sp;
    for (auto& q : seqs) sp.push_back(&q);
    for (auto* q : sp) {
      std::vector<Seq*> one{q};
      llm.step(one, {ctx}, std::vector<int32_t>(ids.begin(), ids.begin() + ctx), false);
    }
    std::vector<int32_t> toks(size_t(batch), 1);
    std::vector<double> tb;
    for (int i = 0; i < decode_steps / 2; ++i) {
      auto a = Clock::now();
      lg = llm.step(sp, std::vector<int64_t>(size_t(batch), 1), toks, true);
      for (int b = 0; b < batch; ++b) toks[size_t(b)] = argmax(lg, size_t(b) * size_t(shape.V), size_t(shape.V));
      if (i >= 2) tb.push_back(secs(a, Clock::now()));
    }
    const double batch_s = median(tb);
    std::printf("decode b%d: %.2f ms/step, %.0f tok/s aggregate\n", batch, batch_s * 1e3, batch / batch_s);

    seqs.clear();
    sp.clear();
    s = Seq{};
    llm_owner.reset();   // free the decoder weights before the tower
    const double vision_s = bench_vision(pieces, 3);
    std::printf("vision: %d pieces of 448x448 in %.1f ms, %.1f pieces/s\n", pieces, vision_s * 1e3, pieces / vision_s);

    std::printf(
        "{\"device\": \"%s\", \"layers\": %d, \"copy_gbs\": %.1f, \"prefill_tok_s\": %.1f, \"prefill_tflops\": %.1f, "
        "\"decode_ms\": %.3f, \"decode_tok_s\": %.2f, \"roofline_tok_s\": %.2f, \"batch\": %d, \"batch_tok_s\": %.1f, "
        "\"vision_pieces\": %d, \"vision_ms\": %.1f}\n",
        prop.name, layers, bw / 1e9, prompt / prefill_s, prefill_tflops, decode_s * 1e3, 1.0 / decode_s, 1.0 / roof_s,
        batch, batch / batch_s, pieces, vision_s * 1e3);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_decode: %s\n", e.what());
    return 1;
  }
}
