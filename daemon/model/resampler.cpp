#include "model/resampler.h"

#include <cmath>

#include "kernels/ops.h"
#include "util/error.h"

namespace omni {

using kernels::Tensor;

std::vector<float> resampler_pos_embed(int embed_dim, int h, int w) {
  if (embed_dim <= 0 || embed_dim % 4) throw Error("resampler: embed_dim " + std::to_string(embed_dim) + " is not a multiple of 4");
  const int D4 = embed_dim / 4;
  std::vector<float> omega(static_cast<size_t>(D4));
  for (int k = 0; k < D4; ++k) {
    // numpy float32: omega = arange(D4) / D4; omega = 1 / 10000**omega
    const float e = float(k) / float(D4);
    omega[size_t(k)] = 1.0f / std::pow(10000.0f, e);
  }
  std::vector<float> out(size_t(h) * size_t(w) * size_t(embed_dim));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float* row = out.data() + (size_t(y) * size_t(w) + size_t(x)) * size_t(embed_dim);
      for (int k = 0; k < D4; ++k) {
        const float ax = float(x) * omega[size_t(k)], ay = float(y) * omega[size_t(k)];
        row[k] = float(std::sin(double(ax)));
        row[D4 + k] = float(std::cos(double(ax)));
        row[2 * D4 + k] = float(std::sin(double(ay)));
        row[3 * D4 + k] = float(std::cos(double(ay)));
      }
    }
  return out;
}

void check_temporal_id(int32_t id) {
  if (id > kMaxTemporalId)
    throw Error("resampler: temporal id " + std::to_string(id) + " is beyond " + std::to_string(kMaxTemporalId) +
                " (0.1 s units)");
}

std::vector<float> resampler_temporal_embed(int embed_dim, const std::vector<int32_t>& ids) {
  if (embed_dim <= 0 || embed_dim % 2)
    throw Error("resampler: temporal table width " + std::to_string(embed_dim) + " is not even");
  for (int32_t id : ids) check_temporal_id(id);
  const int D2 = embed_dim / 2;
  std::vector<float> omega(static_cast<size_t>(D2));
  for (int k = 0; k < D2; ++k) {
    // numpy float32: omega = arange(D2) / D2; omega = 1 / 10000**omega. The power is rounded
    // from double (correctly rounded, not powf's ~1 ULP): an angle t·ω carries t times the
    // error of ω, and t reaches 10^5 here where the 2-D table's stays below 100.
    const float e = float(k) / float(D2);
    omega[size_t(k)] = 1.0f / float(std::pow(10000.0, double(e)));
  }
  std::vector<float> out(ids.size() * size_t(embed_dim), 0.0f);
  for (size_t r = 0; r < ids.size(); ++r) {
    if (ids[r] < 0) continue;   // a still picture: no temporal term
    float* row = out.data() + r * size_t(embed_dim);
    const float t = float(ids[r]);   // exact: ids are far below 2^24
    for (int k = 0; k < D2; ++k) {
      const float a = t * omega[size_t(k)];   // the float32 outer product (einsum)
      row[k] = float(std::sin(double(a)));
      row[D2 + k] = float(std::cos(double(a)));
    }
  }
  return out;
}

void Resampler::plan_weights(WeightLoader& w, const std::string& prefix) {
  for (const char* n : {"query", "kv_proj.weight", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
                        "attn.out_proj.bias", "ln_q.weight", "ln_q.bias", "ln_kv.weight", "ln_kv.bias", "ln_post.weight",
                        "ln_post.bias", "proj"})
    w.plan(prefix + n);
}

Resampler::Resampler(WeightLoader& w, int embed_dim, int kv_dim, int num_queries, int num_heads,
                     const std::string& prefix, std::shared_ptr<kernels::Device> dev)
    : embed_dim_(embed_dim), kv_dim_(kv_dim), num_queries_(num_queries), num_heads_(num_heads), dev_(std::move(dev)) {
  if (!dev_) throw Error("resampler: no device");
  if (embed_dim <= 0 || kv_dim <= 0 || num_queries <= 0 || num_heads <= 0 || embed_dim % num_heads || embed_dim % 4)
    throw Error("resampler: bad dimensions (embed_dim " + std::to_string(embed_dim) + ", kv_dim " + std::to_string(kv_dim) +
                ", queries " + std::to_string(num_queries) + ", heads " + std::to_string(num_heads) + ")");
  const int64_t D = embed_dim, KV = kv_dim, Q = num_queries;
  plan_weights(w, prefix);

  Tensor query = w.load(prefix + "query", {Q, D}, dev_);
  kv_proj_ = w.load_matrix(prefix + "kv_proj.weight", {D, KV}, dev_);
  // in_proj rows: [0, D) = W_q, [D, 2D) = W_k, [2D, 3D) = W_v; the bias likewise.
  Tensor in_w = w.load_matrix(prefix + "attn.in_proj_weight", {3 * D, D}, dev_);
  Tensor in_b = w.load(prefix + "attn.in_proj_bias", {3 * D}, dev_);
  wk_ = in_w.rows_view(D, D);
  wv_ = in_w.rows_view(2 * D, D);
  bk_ = in_b.rows_view(D, D);
  bv_ = in_b.rows_view(2 * D, D);
  wo_ = w.load_matrix(prefix + "attn.out_proj.weight", {D, D}, dev_);
  bo_ = w.load(prefix + "attn.out_proj.bias", {D}, dev_);
  Tensor ln_q_w = w.load(prefix + "ln_q.weight", {D}, dev_), ln_q_b = w.load(prefix + "ln_q.bias", {D}, dev_);
  ln_kv_w_ = w.load(prefix + "ln_kv.weight", {D}, dev_);
  ln_kv_b_ = w.load(prefix + "ln_kv.bias", {D}, dev_);
  ln_post_w_ = w.load(prefix + "ln_post.weight", {D}, dev_);
  ln_post_b_ = w.load(prefix + "ln_post.bias", {D}, dev_);

  // proj is applied as x @ proj (stored [in, out]); keep its transpose to use linear.
  const kernels::DType dt = dev_->compute_dtype();
  {
    Tensor proj = w.load(prefix + "proj", {D, D}, dev_);
    std::vector<float> p = proj.to_host(), t(p.size());
    for (int64_t i = 0; i < D; ++i)
      for (int64_t j = 0; j < D; ++j) t[size_t(j * D + i)] = p[size_t(i * D + j)];
    proj_t_ = Tensor::from_host(dev_, dev_->weight_dtype(w.released_dtype(prefix + "proj")), {D, D}, t.data());   // a matrix too
  }

  // The queries do not depend on the piece: q = ln_q(query) W_qᵀ + b_q, once.
  kernels::Ops& ops = dev_->ops();
  Tensor qn = Tensor::empty(dev_, dt, {Q, D});
  ops.layer_norm(query, ln_q_w, ln_q_b, 1e-6f, qn);
  q_ = Tensor::empty(dev_, dt, {Q, D});
  Tensor wq = in_w.rows_view(0, D), bq = in_b.rows_view(0, D);
  ops.linear(qn, wq, &bq, q_);
}

Tensor Resampler::forward(const Tensor& x, int tgt_h, int tgt_w) const {
  // A still picture is a group of one frame without a temporal term (the official code's
  // id −1), so both calls share attend() and a picture's result is what it always was.
  return attend({x}, tgt_h, tgt_w, {-1});
}

Tensor Resampler::forward_frames(const std::vector<Tensor>& xs, int tgt_h, int tgt_w,
                                 const std::vector<int32_t>& temporal_ids) const {
  if (xs.empty()) throw Error("resampler: a frame group has no frames");
  if (temporal_ids.size() != xs.size())
    throw Error("resampler: a group of " + std::to_string(xs.size()) + " frames has " +
                std::to_string(temporal_ids.size()) + " temporal ids");
  for (int32_t id : temporal_ids) check_temporal_id(id);
  return attend(xs, tgt_h, tgt_w, temporal_ids);
}

Tensor Resampler::attend(const std::vector<Tensor>& xs, int tgt_h, int tgt_w, const std::vector<int32_t>& ids) const {
  if (tgt_h <= 0 || tgt_w <= 0)
    throw Error("resampler: bad patch grid " + std::to_string(tgt_h) + "x" + std::to_string(tgt_w));
  const int64_t L = int64_t(tgt_h) * tgt_w, D = embed_dim_, Q = num_queries_, n = int64_t(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    const std::string which = n > 1 ? " (frame " + std::to_string(i) + ")" : "";
    if (!x.defined()) throw Error("resampler: input" + which + " is empty");
    if (x.ndim() != 2 || x.rows() != L || x.cols() != kv_dim_)
      throw Error("resampler: input " + x.describe() + which + " does not match a " + std::to_string(tgt_h) + "x" +
                  std::to_string(tgt_w) + " grid of width " + std::to_string(kv_dim_));
    if (&x.device() != dev_.get())
      throw Error("resampler: input " + x.describe() + which + " is not on the resampler's device");
  }
  kernels::Ops& ops = dev_->ops();
  const kernels::DType dt = dev_->compute_dtype();

  // Frame i owns rows [i·L, (i+1)·L) of kv, k and v: the frame-major order of the official
  // batch_infer path. (Attention does not depend on the order of the key/value pairs, only
  // on k and v rows staying paired.)
  Tensor kv = Tensor::empty(dev_, dt, {n * L, D}), kvn = Tensor::empty(dev_, dt, {n * L, D});
  for (int64_t i = 0; i < n; ++i) {
    Tensor kv_i = kv.rows_view(i * L, L);
    ops.linear(xs[size_t(i)], kv_proj_, nullptr, kv_i);
  }
  ops.layer_norm(kv, ln_kv_w_, ln_kv_b_, 1e-6f, kvn);
  const std::vector<float> pos = resampler_pos_embed(embed_dim_, tgt_h, tgt_w);
  Tensor t_pos = Tensor::from_host(dev_, dt, {L, D}, pos.data());
  for (int64_t i = 0; i < n; ++i) {
    Tensor kvn_i = kvn.rows_view(i * L, L), kv_i = kv.rows_view(i * L, L);
    ops.add(kvn_i, t_pos, kv_i);   // keys see the position, values do not
  }

  // Keys: (kvn + pos + temporal_i) W_kᵀ + b_k. The temporal row is the same for all L rows of
  // frame i, so it enters as a per-frame bias b_k + W_k·temporal_i (one row through the
  // projection) instead of an [L, D] table per frame; a frame without one (id < 0) uses b_k
  // itself, which keeps a still picture's keys exactly the 2.6 computation.
  Tensor k = Tensor::empty(dev_, dt, {n * L, D}), v = Tensor::empty(dev_, dt, {n * L, D});
  for (int64_t i = 0; i < n; ++i) {
    Tensor kv_i = kv.rows_view(i * L, L), k_i = k.rows_view(i * L, L);
    const int32_t id = ids[size_t(i)];
    if (id < 0) {
      ops.linear(kv_i, wk_, &bk_, k_i);
      continue;
    }
    const std::vector<float> t = resampler_temporal_embed(embed_dim_, {id});
    Tensor t_row = Tensor::from_host(dev_, dt, {1, D}, t.data()), bias = Tensor::empty(dev_, dt, {1, D});
    ops.linear(t_row, wk_, &bk_, bias);
    const Tensor b = bias.reshape({D});
    ops.linear(kv_i, wk_, &b, k_i);
  }
  ops.linear(kvn, wv_, &bv_, v);

  kernels::AttentionArgs args;
  args.n_heads = num_heads_;
  args.n_kv_heads = num_heads_;
  args.head_dim = embed_dim_ / num_heads_;
  args.scale = float(1.0 / std::sqrt(double(args.head_dim)));
  args.causal_offset = -1;
  Tensor attn = Tensor::empty(dev_, dt, {Q, D}), o = Tensor::empty(dev_, dt, {Q, D});
  ops.attention(q_, k, v, attn, args);
  ops.linear(attn, wo_, &bo_, o);
  ops.layer_norm(o, ln_post_w_, ln_post_b_, 1e-6f, attn);
  Tensor y = Tensor::empty(dev_, dt, {Q, D});
  ops.linear(attn, proj_t_, nullptr, y);
  return y;
}

}  // namespace omni
