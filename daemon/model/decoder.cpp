#include "model/decoder.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "util/error.h"

namespace omni {

using kernels::Tensor;

std::vector<std::shared_ptr<kernels::Device>> DecoderPlacement::devices() const {
  std::vector<std::shared_ptr<kernels::Device>> out;
  auto add = [&](const std::shared_ptr<kernels::Device>& d) {
    if (d && std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  };
  add(embed_device);
  for (const auto& d : layer_devices) add(d);
  for (const auto& d : tp_devices) add(d);
  add(head_device);
  add(vision_device);
  for (const auto& d : vision_copies) add(d);
  return out;
}

DecoderPlacement DecoderPlacement::single(const std::shared_ptr<kernels::Device>& dev, int n_layers) {
  return {dev, std::vector<std::shared_ptr<kernels::Device>>(size_t(n_layers), dev), dev};
}

DecoderPlacement DecoderPlacement::tensor_parallel(const std::vector<std::shared_ptr<kernels::Device>>& ranks,
                                                   int n_layers) {
  if (ranks.empty()) throw Error("tensor parallel placement without devices");
  DecoderPlacement p = single(ranks.front(), n_layers);
  p.tp_devices = ranks;
  return p;
}

void Decoder::plan_weights(WeightLoader& w, const LlmConfig& cfg, const std::string& prefix) {
  const std::string m = prefix + "model.";
  w.plan(m + "embed_tokens.weight");
  for (int l = 0; l < cfg.n_layers; ++l) {
    const std::string p = m + "layers." + std::to_string(l) + ".";
    for (const char* n : {"input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                          "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
                          "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
      w.plan(p + n);
    if (cfg.qkv_bias)
      for (const char* n : {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}) w.plan(p + n);
    if (cfg.qk_norm)
      for (const char* n : {"self_attn.q_norm.weight", "self_attn.k_norm.weight"}) w.plan(p + n);
  }
  w.plan(m + "norm.weight");
  w.plan(cfg.tie_embeddings ? m + "embed_tokens.weight" : prefix + "lm_head.weight");
}

Decoder::Decoder(WeightLoader& w, const LlmConfig& cfg, const std::string& prefix, DecoderPlacement placement)
    : cfg_(cfg), place_(std::move(placement)) {
  ranks_ = place_.tp_size();
  if (ranks_ > 1) {
    cfg_.check_tensor_split(ranks_);
    const auto& r0 = place_.tp_devices.front();
    if (place_.layer_devices.empty()) place_.layer_devices.assign(size_t(cfg_.n_layers), r0);
    if (!place_.embed_device) place_.embed_device = r0;
    if (!place_.head_device) place_.head_device = r0;
    if (place_.embed_device != r0 || place_.head_device != r0)
      throw Error("tensor parallel: the embeddings and lm_head must sit on rank 0 (" + r0->id().str() + ")");
    for (const auto& d : place_.layer_devices)
      if (d != r0) throw Error("tensor parallel: layer devices must all be rank 0 (" + r0->id().str() + ")");
    if (!place_.comm) place_.comm = kernels::make_communicator(place_.tp_devices);
    if (place_.comm->size() != ranks_)
      throw Error("tensor parallel: communicator of " + std::to_string(place_.comm->size()) + " ranks for " +
                  std::to_string(ranks_) + " devices");
  }
  if (int(place_.layer_devices.size()) != cfg_.n_layers)
    throw Error("decoder placement lists " + std::to_string(place_.layer_devices.size()) + " layers, config has " +
                std::to_string(cfg_.n_layers));
  const int64_t H = cfg_.hidden, V = cfg_.vocab;
  const std::string m = prefix + "model.";
  const std::string head_name = cfg_.tie_embeddings ? m + "embed_tokens.weight" : prefix + "lm_head.weight";
  plan_weights(w, cfg_, prefix);

  embed_tokens_ = w.load_matrix(m + "embed_tokens.weight", {V, H}, place_.embed_device);
  const std::vector<float> f = cfg_.rope_inv_freq();
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = m + "layers." + std::to_string(l) + ".";
    for (int r = 0; r < ranks_; ++r) {
      const auto& dev = rank_device(l, r);
      load_layer(w, p, r, dev);
      inv_freq_.push_back(Tensor::from_host(dev, kernels::DType::F32, {int64_t(f.size())}, f.data()));
    }
  }
  make_stages();
  final_norm_ = w.load(m + "norm.weight", {H}, place_.head_device);
  if (cfg_.tie_embeddings && place_.head_device == place_.embed_device) lm_head_ = embed_tokens_;
  else lm_head_ = w.load_matrix(head_name, {V, H}, place_.head_device);
}

void Decoder::make_stages() {
  const int n = cfg_.n_layers;
  if (ranks_ > 1) {
    stages_ = {{0, n - 1, place_.tp_devices.front()}};
    return;
  }
  std::vector<int> starts = place_.stage_starts;
  if (starts.empty())
    for (int l = 0; l < n; ++l)
      if (l == 0 || place_.layer_devices[size_t(l)] != place_.layer_devices[size_t(l - 1)]) starts.push_back(l);
  if (starts.empty() || starts.front() != 0) throw Error("decoder placement: the first stage must start at layer 0");
  for (size_t i = 0; i < starts.size(); ++i) {
    const int first = starts[i], last = i + 1 < starts.size() ? starts[i + 1] - 1 : n - 1;
    if (last < first || last >= n)
      throw Error("decoder placement: stage starts must increase within the " + std::to_string(n) + " layers");
    for (int l = first; l <= last; ++l)
      if (place_.layer_devices[size_t(l)] != place_.layer_devices[size_t(first)])
        throw Error("decoder placement: stage " + std::to_string(i) + " (layers " + std::to_string(first) + ".." +
                    std::to_string(last) + ") spans two devices");
    stages_.push_back({first, last, place_.layer_devices[size_t(first)]});
  }
}

const std::shared_ptr<kernels::Device>& Decoder::rank_device(int l, int r) const {
  return ranks_ > 1 ? place_.tp_devices[size_t(r)] : place_.layer_devices[size_t(l)];
}

// Rank r of n holds query heads [r·h/n, (r+1)·h/n) with their KV heads (GQA groups stay
// whole), the matching o_proj columns, and a 1/n slice of the MLP's intermediate units.
void Decoder::load_layer(WeightLoader& w, const std::string& p, int r, const std::shared_ptr<kernels::Device>& dev) {
  const int64_t H = cfg_.hidden, Q = cfg_.q_width(), KV = cfg_.kv_width(), F = cfg_.ffn, n = ranks_;
  const int64_t q0 = r * Q / n, qn = Q / n, k0 = r * KV / n, kn = KV / n, f0 = r * F / n, fn = F / n;
  Layer L;
  L.attn_norm = w.load(p + "input_layernorm.weight", {H}, dev);
  L.wq = w.load_matrix_rows(p + "self_attn.q_proj.weight", {Q, H}, q0, qn, dev);
  L.wk = w.load_matrix_rows(p + "self_attn.k_proj.weight", {KV, H}, k0, kn, dev);
  L.wv = w.load_matrix_rows(p + "self_attn.v_proj.weight", {KV, H}, k0, kn, dev);
  if (cfg_.qkv_bias) {
    L.bq = w.load_rows(p + "self_attn.q_proj.bias", {Q}, q0, qn, dev);
    L.bk = w.load_rows(p + "self_attn.k_proj.bias", {KV}, k0, kn, dev);
    L.bv = w.load_rows(p + "self_attn.v_proj.bias", {KV}, k0, kn, dev);
  }
  if (cfg_.qk_norm) {
    L.q_norm = w.load(p + "self_attn.q_norm.weight", {cfg_.head_dim}, dev);
    L.k_norm = w.load(p + "self_attn.k_norm.weight", {cfg_.head_dim}, dev);
  }
  L.wo = w.load_matrix_cols(p + "self_attn.o_proj.weight", {H, Q}, q0, qn, dev);
  L.mlp_norm = w.load(p + "post_attention_layernorm.weight", {H}, dev);
  L.w_gate = w.load_matrix_rows(p + "mlp.gate_proj.weight", {F, H}, f0, fn, dev);
  L.w_up = w.load_matrix_rows(p + "mlp.up_proj.weight", {F, H}, f0, fn, dev);
  L.w_down = w.load_matrix_cols(p + "mlp.down_proj.weight", {H, F}, f0, fn, dev);
  layers_.push_back(std::move(L));
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

std::shared_ptr<KvPool> Decoder::new_pool(int64_t n_blocks, bool prefix_cache) const {
  std::vector<std::shared_ptr<kernels::Device>> devs;
  for (int l = 0; l < cfg_.n_layers; ++l)
    for (int r = 0; r < ranks_; ++r) devs.push_back(rank_device(l, r));
  return std::make_shared<KvPool>(devs, ranks_, cfg_.kv_width() / ranks_, n_blocks, prefix_cache);
}

int64_t Decoder::block_bytes(const kernels::Device& dev) const {
  int64_t layers = 0;
  for (int l = 0; l < cfg_.n_layers; ++l)
    for (int r = 0; r < ranks_; ++r) layers += rank_device(l, r).get() == &dev;
  return layers * 2 * kBlockTokens * (cfg_.kv_width() / ranks_) * int64_t(kernels::dtype_size(dev.compute_dtype()));
}

std::unique_ptr<KvSequence> Decoder::new_cache(int64_t capacity) const {
  return std::make_unique<KvSequence>(new_pool(std::max<int64_t>(1, blocks_for(capacity)), false),
                                      std::max<int64_t>(capacity, 1));
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

void Decoder::check_batch(const Tensor& hidden, const std::vector<SeqSlice>& seqs) const {
  int64_t T = 0;
  for (const auto& s : seqs) {
    if (!s.cache) throw Error("decoder forward: sequence without a KV cache");
    if (!s.cache->reserve(s.n_tokens))
      throw Error("KV cache full: " + std::to_string(s.cache->blocks_needed(s.n_tokens)) + " more blocks needed, " +
                  std::to_string(s.cache->pool().blocks().available()) + " of " +
                  std::to_string(s.cache->pool().blocks().n_blocks()) + " free");
    T += s.n_tokens;
  }
  if (hidden.rows() != T || hidden.cols() != cfg_.hidden)
    throw Error("decoder forward: hidden " + hidden.describe() + " for " + std::to_string(T) + " tokens");
}

void Decoder::advance(const std::vector<SeqSlice>& seqs) {
  for (const auto& s : seqs) s.cache->advance(s.n_tokens);
}

Tensor Decoder::forward(Tensor hidden, const std::vector<SeqSlice>& seqs) const {
  check_batch(hidden, seqs);
  // The residual stream is updated in place: work on a copy, never the caller's tensor.
  const auto& dev = stages_.front().device;
  Tensor x = Tensor::empty(dev, dev->compute_dtype(), hidden.shape());
  kernels::copy_between(hidden, x);
  for (int s = 0; s < int(stages_.size()); ++s) x = forward_stage(s, std::move(x), seqs);
  advance(seqs);
  return to_device(x, place_.head_device);
}

// What every layer of a step needs besides the hidden rows, on one device: each row's
// position and pool row, and where each sequence's keys are. Sequences of one pool (the
// daemon's case) share one attention call; sequences of separate pools (tools, tests)
// get one call each.
struct Decoder::StepInputs {
  Tensor positions;
  std::vector<Tensor> rows;                     // per pool group: pool rows of its new tokens
  std::vector<kernels::AttentionLayout> layouts;
  std::vector<std::pair<int64_t, int64_t>> spans;   // per group: [first, count) of the step's rows
};

Decoder::StepInputs Decoder::step_inputs(const std::shared_ptr<kernels::Device>& dev,
                                         const std::vector<SeqSlice>& seqs) const {
  StepInputs in;
  std::vector<int32_t> pos;
  for (const auto& s : seqs)
    for (int64_t i = 0; i < s.n_tokens; ++i) pos.push_back(int32_t(s.cache->length() + i));
  in.positions = Tensor::from_host_i32(dev, {int64_t(pos.size())}, pos.data());
  bool one_pool = true;
  for (const auto& s : seqs) one_pool &= &s.cache->pool() == &seqs.front().cache->pool();
  int64_t row = 0;
  for (size_t i = 0; i < seqs.size();) {
    const size_t end = one_pool ? seqs.size() : i + 1;
    kernels::AttentionLayout lay;
    lay.block_rows = int32_t(kBlockTokens);
    std::vector<int32_t> rows;
    const int64_t first = row;
    for (; i < end; ++i) {
      const KvSequence& c = *seqs[i].cache;
      const int64_t past = c.length(), n_new = seqs[i].n_tokens;
      const int64_t q_begin = one_pool ? row : 0;
      lay.seqs.push_back({int32_t(q_begin), int32_t(n_new), int32_t(past + n_new), int32_t(past),
                          int32_t(lay.block_table.size())});
      const int64_t n_blocks = blocks_for(past + n_new);
      lay.block_table.insert(lay.block_table.end(), c.blocks().begin(), c.blocks().begin() + std::ptrdiff_t(n_blocks));
      for (int64_t t = 0; t < n_new; ++t) rows.push_back(c.row_of(past + t));
      row += n_new;
    }
    lay.upload(dev);
    in.rows.push_back(Tensor::from_host_i32(dev, {int64_t(rows.size())}, rows.data()));
    in.layouts.push_back(std::move(lay));
    in.spans.emplace_back(first, row - first);
  }
  return in;
}

Tensor Decoder::forward_stage(int stage, Tensor x, const std::vector<SeqSlice>& seqs) const {
  const DecoderStage& st = stages_.at(size_t(stage));
  std::vector<Tensor> xs;
  std::vector<StepInputs> inputs;
  for (int r = 0; r < ranks_; ++r) {   // one residual stream per rank (tensor parallel), else one
    const auto& dev = rank_device(st.first_layer, r);
    if (r == 0) {
      xs.push_back(to_device(x, dev));
    } else {
      xs.push_back(Tensor::empty(dev, dev->compute_dtype(), x.shape()));
      kernels::copy_between(xs.front(), xs.back());
    }
    inputs.push_back(step_inputs(dev, seqs));
  }
  for (int l = st.first_layer; l <= st.last_layer; ++l) run_layer(l, xs, inputs, seqs);
  return xs.front();
}

void Decoder::reduce_add(std::vector<Tensor>& x, std::vector<Tensor>& partial) const {
  if (ranks_ > 1) place_.comm->all_reduce_sum(partial);
  for (size_t r = 0; r < x.size(); ++r) x[r].device().ops().add(x[r], partial[r], x[r]);
}

void Decoder::run_layer(int l, std::vector<Tensor>& x, const std::vector<StepInputs>& in,
                        const std::vector<SeqSlice>& seqs) const {
  const int64_t T = x[0].rows(), H = cfg_.hidden, Q = cfg_.q_width() / ranks_, KV = cfg_.kv_width() / ranks_;
  const int64_t F = cfg_.ffn / ranks_;
  kernels::AttentionArgs args;
  args.n_heads = cfg_.n_heads / ranks_;
  args.n_kv_heads = cfg_.n_kv_heads / ranks_;
  args.head_dim = cfg_.head_dim;
  args.scale = float(1.0 / std::sqrt(double(cfg_.head_dim)));

  // Attention: each rank its heads, then o_proj's partial sums are reduced.
  std::vector<Tensor> o(static_cast<size_t>(ranks_)), n(static_cast<size_t>(ranks_));
  for (int r = 0; r < ranks_; ++r) {
    const Layer& L = layers_[size_t(l * ranks_ + r)];
    const auto& dev = rank_device(l, r);
    kernels::Ops& ops = dev->ops();
    const kernels::DType dt = dev->compute_dtype();
    const Tensor& inv_freq = inv_freq_[size_t(l * ranks_ + r)];
    n[r] = Tensor::empty(dev, dt, {T, H});
    ops.rms_norm(x[r], L.attn_norm, cfg_.rms_eps, n[r]);
    Tensor q = Tensor::empty(dev, dt, {T, Q}), k = Tensor::empty(dev, dt, {T, KV}), v = Tensor::empty(dev, dt, {T, KV});
    ops.linear(n[r], L.wq, cfg_.qkv_bias ? &L.bq : nullptr, q);
    ops.linear(n[r], L.wk, cfg_.qkv_bias ? &L.bk : nullptr, k);
    ops.linear(n[r], L.wv, cfg_.qkv_bias ? &L.bv : nullptr, v);
    if (cfg_.qk_norm) {  // per-head RMSNorm: rows of head_dim
      ops.rms_norm(q, L.q_norm, cfg_.rms_eps, q);
      ops.rms_norm(k, L.k_norm, cfg_.rms_eps, k);
    }
    const StepInputs& si = in[size_t(r)];
    ops.rope(q, si.positions, inv_freq, args.n_heads, cfg_.head_dim);
    ops.rope(k, si.positions, inv_freq, args.n_kv_heads, cfg_.head_dim);

    // New keys and values into their blocks, then one attention over every sequence of
    // the pool (one group in the daemon).
    Tensor attn = Tensor::empty(dev, dt, {T, Q});
    for (size_t g = 0; g < si.layouts.size(); ++g) {
      KvPool& pool = seqs[si.layouts.size() == 1 ? 0 : g].cache->pool();
      const auto [first, count] = si.spans[g];
      Tensor& kp = pool.k(l, r);
      Tensor& vp = pool.v(l, r);
      ops.write_rows(k.rows_view(first, count), si.rows[g], kp);
      ops.write_rows(v.rows_view(first, count), si.rows[g], vp);
      Tensor out = si.layouts.size() == 1 ? attn : attn.rows_view(first, count);
      ops.attention(si.layouts.size() == 1 ? q : q.rows_view(first, count), kp, vp, out, args, si.layouts[g]);
    }
    o[r] = Tensor::empty(dev, dt, {T, H});
    ops.linear(attn, L.wo, nullptr, o[r]);
  }
  reduce_add(x, o);

  // MLP: each rank its slice of the intermediate units, then down_proj's partial sums.
  for (int r = 0; r < ranks_; ++r) {
    const Layer& L = layers_[size_t(l * ranks_ + r)];
    const auto& dev = rank_device(l, r);
    kernels::Ops& ops = dev->ops();
    const kernels::DType dt = dev->compute_dtype();
    ops.rms_norm(x[r], L.mlp_norm, cfg_.rms_eps, n[r]);
    Tensor g = Tensor::empty(dev, dt, {T, F}), u = Tensor::empty(dev, dt, {T, F});
    ops.linear(n[r], L.w_gate, nullptr, g);
    ops.linear(n[r], L.w_up, nullptr, u);
    ops.silu_mul(g, u, g);
    ops.linear(g, L.w_down, nullptr, o[r]);
  }
  reduce_add(x, o);
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
