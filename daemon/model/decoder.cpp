#include "model/decoder.h"

#include <cmath>

#include "kernels/ops.h"
#include "util/error.h"

namespace omni {

using kernels::Tensor;

DecoderPlacement DecoderPlacement::single(const std::shared_ptr<kernels::Device>& dev, int n_layers) {
  return {dev, std::vector<std::shared_ptr<kernels::Device>>(size_t(n_layers), dev), dev};
}

Decoder::Decoder(WeightLoader& w, const LlmConfig& cfg, const std::string& prefix, DecoderPlacement placement)
    : cfg_(cfg), place_(std::move(placement)) {
  if (int(place_.layer_devices.size()) != cfg_.n_layers)
    throw Error("decoder placement lists " + std::to_string(place_.layer_devices.size()) + " layers, config has " +
                std::to_string(cfg_.n_layers));
  const int64_t H = cfg_.hidden, Q = cfg_.q_width(), KV = cfg_.kv_width(), F = cfg_.ffn, V = cfg_.vocab;
  const std::string m = prefix + "model.";
  const std::string head_name = cfg_.tie_embeddings ? m + "embed_tokens.weight" : prefix + "lm_head.weight";

  // Announce everything first so progress has a total.
  w.plan(m + "embed_tokens.weight");
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = m + "layers." + std::to_string(l) + ".";
    for (const char* n : {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                          "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                          "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
      w.plan(p + n);
    if (cfg_.qkv_bias)
      for (const char* n : {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}) w.plan(p + n);
    if (cfg_.qk_norm)
      for (const char* n : {"self_attn.q_norm.weight", "self_attn.k_norm.weight"}) w.plan(p + n);
  }
  w.plan(m + "norm.weight");
  w.plan(head_name);

  embed_tokens_ = w.load(m + "embed_tokens.weight", {V, H}, place_.embed_device);
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = m + "layers." + std::to_string(l) + ".";
    const auto& dev = place_.layer_devices[size_t(l)];
    Layer L;
    L.attn_norm = w.load(p + "input_layernorm.weight", {H}, dev);
    L.wq = w.load(p + "self_attn.q_proj.weight", {Q, H}, dev);
    L.wk = w.load(p + "self_attn.k_proj.weight", {KV, H}, dev);
    L.wv = w.load(p + "self_attn.v_proj.weight", {KV, H}, dev);
    if (cfg_.qkv_bias) {
      L.bq = w.load(p + "self_attn.q_proj.bias", {Q}, dev);
      L.bk = w.load(p + "self_attn.k_proj.bias", {KV}, dev);
      L.bv = w.load(p + "self_attn.v_proj.bias", {KV}, dev);
    }
    if (cfg_.qk_norm) {
      L.q_norm = w.load(p + "self_attn.q_norm.weight", {cfg_.head_dim}, dev);
      L.k_norm = w.load(p + "self_attn.k_norm.weight", {cfg_.head_dim}, dev);
    }
    L.wo = w.load(p + "self_attn.o_proj.weight", {H, Q}, dev);
    L.mlp_norm = w.load(p + "post_attention_layernorm.weight", {H}, dev);
    L.w_gate = w.load(p + "mlp.gate_proj.weight", {F, H}, dev);
    L.w_up = w.load(p + "mlp.up_proj.weight", {F, H}, dev);
    L.w_down = w.load(p + "mlp.down_proj.weight", {H, F}, dev);
    layers_.push_back(std::move(L));
    const std::vector<float> f = cfg_.rope_inv_freq();
    inv_freq_.push_back(Tensor::from_host(dev, kernels::DType::F32, {int64_t(f.size())}, f.data()));
  }
  final_norm_ = w.load(m + "norm.weight", {H}, place_.head_device);
  if (cfg_.tie_embeddings && place_.head_device == place_.embed_device) lm_head_ = embed_tokens_;
  else lm_head_ = w.load(head_name, {V, H}, place_.head_device);
}

Tensor Decoder::embed(const std::vector<int32_t>& ids) const {
  const auto& dev = place_.embed_device;
  for (int32_t id : ids)
    if (id < 0 || id >= cfg_.vocab)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (size " + std::to_string(cfg_.vocab) + ")");
  Tensor t_ids = Tensor::from_host_i32(dev, {int64_t(ids.size())}, ids.data());
  Tensor out = Tensor::empty(dev, dev->compute_dtype(), {int64_t(ids.size()), cfg_.hidden});
  dev->ops().embedding(embed_tokens_, t_ids, out);
  return out;
}

std::unique_ptr<KvCache> Decoder::new_cache(int64_t capacity) const {
  return std::make_unique<KvCache>(place_.layer_devices, cfg_.kv_width(), capacity);
}

namespace {

// Moves `t` to `dev` when it lives elsewhere (the pipeline hand-over between stages).
Tensor to_device(const Tensor& t, const std::shared_ptr<kernels::Device>& dev) {
  if (&t.device() == dev.get()) return t;
  Tensor out = Tensor::empty(dev, dev->compute_dtype(), t.shape());
  kernels::copy_between(t, out);
  return out;
}

}  // namespace

Tensor Decoder::forward(Tensor hidden, const std::vector<SeqSlice>& seqs) const {
  int64_t T = 0;
  std::vector<int32_t> pos;
  for (const auto& s : seqs) {
    if (!s.cache) throw Error("decoder forward: sequence without a KV cache");
    if (s.cache->length() + s.n_tokens > s.cache->capacity())
      throw Error("context length exceeded: " + std::to_string(s.cache->length() + s.n_tokens) + " tokens, cache holds " +
                  std::to_string(s.cache->capacity()));
    for (int64_t i = 0; i < s.n_tokens; ++i) pos.push_back(int32_t(s.cache->length() + i));
    T += s.n_tokens;
  }
  if (hidden.rows() != T || hidden.cols() != cfg_.hidden)
    throw Error("decoder forward: hidden " + hidden.describe() + " for " + std::to_string(T) + " tokens");

  // The residual stream is updated in place: work on a copy, never the caller's tensor.
  {
    const auto& first = place_.layer_devices.front();
    Tensor own = Tensor::empty(first, first->compute_dtype(), hidden.shape());
    kernels::copy_between(hidden, own);
    hidden = own;
  }
  Tensor positions;
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const auto& dev = place_.layer_devices[size_t(l)];
    if (!positions.defined() || &positions.device() != dev.get())
      positions = Tensor::from_host_i32(dev, {T}, pos.data());
    hidden = to_device(hidden, dev);
    run_layer(l, hidden, positions, seqs);
  }
  for (const auto& s : seqs) s.cache->advance(s.n_tokens);
  return to_device(hidden, place_.head_device);
}

void Decoder::run_layer(int l, Tensor& x, const Tensor& positions, const std::vector<SeqSlice>& seqs) const {
  const Layer& L = layers_[size_t(l)];
  const auto& dev = place_.layer_devices[size_t(l)];
  kernels::Ops& ops = dev->ops();
  const kernels::DType dt = dev->compute_dtype();
  const int64_t T = x.rows(), H = cfg_.hidden, Q = cfg_.q_width(), KV = cfg_.kv_width();

  Tensor n = Tensor::empty(dev, dt, {T, H});
  ops.rms_norm(x, L.attn_norm, cfg_.rms_eps, n);
  Tensor q = Tensor::empty(dev, dt, {T, Q}), k = Tensor::empty(dev, dt, {T, KV}), v = Tensor::empty(dev, dt, {T, KV});
  ops.linear(n, L.wq, cfg_.qkv_bias ? &L.bq : nullptr, q);
  ops.linear(n, L.wk, cfg_.qkv_bias ? &L.bk : nullptr, k);
  ops.linear(n, L.wv, cfg_.qkv_bias ? &L.bv : nullptr, v);
  if (cfg_.qk_norm) {  // per-head RMSNorm: rows of head_dim
    ops.rms_norm(q, L.q_norm, cfg_.rms_eps, q);
    ops.rms_norm(k, L.k_norm, cfg_.rms_eps, k);
  }
  ops.rope(q, positions, inv_freq_[size_t(l)], cfg_.n_heads, cfg_.head_dim);
  ops.rope(k, positions, inv_freq_[size_t(l)], cfg_.n_kv_heads, cfg_.head_dim);

  Tensor attn = Tensor::empty(dev, dt, {T, Q});
  kernels::AttentionArgs args;
  args.n_heads = cfg_.n_heads;
  args.n_kv_heads = cfg_.n_kv_heads;
  args.head_dim = cfg_.head_dim;
  args.scale = float(1.0 / std::sqrt(double(cfg_.head_dim)));
  int64_t row = 0;
  for (const auto& s : seqs) {
    const int64_t past = s.cache->length(), n_new = s.n_tokens;
    Tensor kc = s.cache->k(l).rows_view(past, n_new), vc = s.cache->v(l).rows_view(past, n_new);
    ops.copy(k.rows_view(row, n_new), kc);
    ops.copy(v.rows_view(row, n_new), vc);
    args.causal_offset = past;
    Tensor out = attn.rows_view(row, n_new);
    ops.attention(q.rows_view(row, n_new), s.cache->k(l).rows_view(0, past + n_new),
                  s.cache->v(l).rows_view(0, past + n_new), out, args);
    row += n_new;
  }
  Tensor o = Tensor::empty(dev, dt, {T, H});
  ops.linear(attn, L.wo, nullptr, o);
  ops.add(x, o, x);

  ops.rms_norm(x, L.mlp_norm, cfg_.rms_eps, n);
  Tensor g = Tensor::empty(dev, dt, {T, cfg_.ffn}), u = Tensor::empty(dev, dt, {T, cfg_.ffn});
  ops.linear(n, L.w_gate, nullptr, g);
  ops.linear(n, L.w_up, nullptr, u);
  ops.silu_mul(g, u, g);
  ops.linear(g, L.w_down, nullptr, o);
  ops.add(x, o, x);
}

std::vector<float> Decoder::logits(const Tensor& hidden) const {
  const auto& dev = place_.head_device;
  Tensor h = to_device(hidden, dev);
  Tensor n = Tensor::empty(dev, dev->compute_dtype(), {h.rows(), cfg_.hidden});
  dev->ops().rms_norm(h, final_norm_, cfg_.rms_eps, n);
  Tensor out = Tensor::empty(dev, dev->compute_dtype(), {h.rows(), cfg_.vocab});
  dev->ops().linear(n, lm_head_, nullptr, out);
  return out.to_host();
}

}  // namespace omni
