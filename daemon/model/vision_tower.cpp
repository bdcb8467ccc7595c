#include "model/vision_tower.h"

#include <cmath>

#include "kernels/ops.h"
#include "util/error.h"

namespace omni {

using kernels::Tensor;

namespace {

// torch.arange(start, end, step) with a float32 result on the CPU: the element count is
// ceil((end - start) / step) in double; elements are start + step·i in double, rounded to
// float. The kernel's vectorised path (AVX2: 8 lanes, two vectors per iteration over the
// leading multiple of 16 elements) rounds the vector's base element to float first and
// adds k·step to it; the tail runs the scalar path.
std::vector<float> torch_arange_f32(double start, double end, double step) {
  const int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  std::vector<float> out(size_t(std::max<int64_t>(n, 0)));
  constexpr int64_t V = 8;
  const int64_t vec_end = n / (2 * V) * (2 * V);
  for (int64_t b = 0; b < vec_end; b += V) {
    const float base = static_cast<float>(start + step * double(b));
    for (int64_t k = 0; k < V; ++k) out[size_t(b + k)] = static_cast<float>(double(base) + double(k) * step);
  }
  for (int64_t i = vec_end; i < n; ++i) out[size_t(i)] = static_cast<float>(start + step * double(i));
  return out;
}

std::vector<int32_t> buckets(int nb, const std::vector<float>& boundaries) {
  // `1 / nb_patches` divides an integer tensor: reciprocal in float32.
  const double step = double(1.0f / float(nb));
  std::vector<float> frac = torch_arange_f32(0.0, 1.0 - 1e-6, step);
  if (int64_t(frac.size()) != nb)
    throw Error("vision position ids: arange gave " + std::to_string(frac.size()) + " coordinates for " +
                std::to_string(nb) + " patches");
  std::vector<int32_t> out(frac.size());
  for (size_t i = 0; i < frac.size(); ++i) {
    int32_t c = 0;  // bucketize(right=True): number of boundaries <= x
    for (float b : boundaries) c += b <= frac[i] ? 1 : 0;
    out[i] = c;
  }
  return out;
}

}  // namespace

std::vector<int32_t> navit_position_ids(int nb_h, int nb_w, int patches_per_side) {
  if (nb_h <= 0 || nb_w <= 0 || patches_per_side <= 0)
    throw Error("vision position ids: bad grid " + std::to_string(nb_h) + "x" + std::to_string(nb_w));
  const double inv = 1.0 / double(patches_per_side);
  const std::vector<float> boundaries = torch_arange_f32(inv, 1.0, inv);
  const std::vector<int32_t> bh = buckets(nb_h, boundaries), bw = buckets(nb_w, boundaries);
  std::vector<int32_t> ids;
  ids.reserve(size_t(nb_h) * size_t(nb_w));
  for (int32_t h : bh)
    for (int32_t w : bw) ids.push_back(h * patches_per_side + w);
  return ids;
}

void VisionTower::plan_weights(WeightLoader& w, const VisionConfig& cfg, const std::string& prefix) {
  const std::string e = prefix + "embeddings.", enc = prefix + "encoder.layers.";
  w.plan(e + "patch_embedding.weight");
  w.plan(e + "patch_embedding.bias");
  w.plan(e + "position_embedding.weight");
  for (int l = 0; l < cfg.n_layers; ++l) {
    const std::string p = enc + std::to_string(l) + ".";
    for (const char* n : {"layer_norm1.weight", "layer_norm1.bias", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
                          "self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight",
                          "self_attn.v_proj.bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
                          "layer_norm2.weight", "layer_norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
                          "mlp.fc2.bias"})
      w.plan(p + n);
  }
  w.plan(prefix + "post_layernorm.weight");
  w.plan(prefix + "post_layernorm.bias");
}

VisionTower::VisionTower(WeightLoader& w, const VisionConfig& cfg, const std::string& prefix,
                         std::shared_ptr<kernels::Device> dev)
    : cfg_(cfg), dev_(std::move(dev)) {
  if (!dev_) throw Error("vision tower: no device");
  const int64_t H = cfg_.hidden, F = cfg_.ffn, P = cfg_.patch_size;
  const std::string e = prefix + "embeddings.", enc = prefix + "encoder.layers.";

  plan_weights(w, cfg_, prefix);

  // Conv2d(3 → H, kernel = stride = P) is a linear over patches flattened as (c, ky, kx).
  patch_w_ = w.load(e + "patch_embedding.weight", {H, 3, P, P}, dev_).reshape({H, 3 * P * P});
  patch_b_ = w.load(e + "patch_embedding.bias", {H}, dev_);
  pos_table_ = w.load(e + "position_embedding.weight", {cfg_.num_positions(), H}, dev_);
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string p = enc + std::to_string(l) + ".";
    Layer L;
    L.ln1_w = w.load(p + "layer_norm1.weight", {H}, dev_);
    L.ln1_b = w.load(p + "layer_norm1.bias", {H}, dev_);
    L.wq = w.load_matrix(p + "self_attn.q_proj.weight", {H, H}, dev_);
    L.bq = w.load(p + "self_attn.q_proj.bias", {H}, dev_);
    L.wk = w.load_matrix(p + "self_attn.k_proj.weight", {H, H}, dev_);
    L.bk = w.load(p + "self_attn.k_proj.bias", {H}, dev_);
    L.wv = w.load_matrix(p + "self_attn.v_proj.weight", {H, H}, dev_);
    L.bv = w.load(p + "self_attn.v_proj.bias", {H}, dev_);
    L.wo = w.load_matrix(p + "self_attn.out_proj.weight", {H, H}, dev_);
    L.bo = w.load(p + "self_attn.out_proj.bias", {H}, dev_);
    L.ln2_w = w.load(p + "layer_norm2.weight", {H}, dev_);
    L.ln2_b = w.load(p + "layer_norm2.bias", {H}, dev_);
    L.fc1_w = w.load_matrix(p + "mlp.fc1.weight", {F, H}, dev_);
    L.fc1_b = w.load(p + "mlp.fc1.bias", {F}, dev_);
    L.fc2_w = w.load_matrix(p + "mlp.fc2.weight", {H, F}, dev_);
    L.fc2_b = w.load(p + "mlp.fc2.bias", {H}, dev_);
    layers_.push_back(std::move(L));
  }
  post_ln_w_ = w.load(prefix + "post_layernorm.weight", {H}, dev_);
  post_ln_b_ = w.load(prefix + "post_layernorm.bias", {H}, dev_);
}

void VisionTower::check_piece(const std::vector<float>& pixels, int height, int width) const {
  const int P = cfg_.patch_size;
  if (height <= 0 || width <= 0 || height % P || width % P)
    throw Error("vision tower: image piece " + std::to_string(height) + "x" + std::to_string(width) +
                " (HxW) is not a positive multiple of the patch size " + std::to_string(P));
  if (pixels.size() != size_t(3) * size_t(height) * size_t(width))
    throw Error("vision tower: got " + std::to_string(pixels.size()) + " pixel values for a 3x" +
                std::to_string(height) + "x" + std::to_string(width) + " piece (expected " +
                std::to_string(size_t(3) * size_t(height) * size_t(width)) + ")");
}

std::vector<float> VisionTower::gather_patches(const std::vector<float>& pixels, int height, int width) const {
  const int P = cfg_.patch_size, gh = height / P, gw = width / P;
  const int64_t L = int64_t(gh) * gw, K = 3 * int64_t(P) * P;
  // Patches row-major over the grid, each flattened as (c, ky, kx).
  std::vector<float> patches(size_t(L * K));
  for (int ph = 0; ph < gh; ++ph)
    for (int pw = 0; pw < gw; ++pw) {
      float* dst = patches.data() + (int64_t(ph) * gw + pw) * K;
      for (int c = 0; c < 3; ++c)
        for (int ky = 0; ky < P; ++ky) {
          const float* src = pixels.data() + (size_t(c) * height + size_t(ph) * P + ky) * width + size_t(pw) * P;
          for (int kx = 0; kx < P; ++kx) *dst++ = src[kx];
        }
    }
  return patches;
}

Tensor VisionTower::encode(const std::vector<float>& pixels, int height, int width) const {
  check_piece(pixels, height, width);
  const int P = cfg_.patch_size, gh = height / P, gw = width / P;
  return run(gather_patches(pixels, height, width), navit_position_ids(gh, gw, cfg_.patches_per_side()),
             int64_t(gh) * gw);
}

Tensor VisionTower::encode_strip(const std::vector<float>& pixels, int height, int width, int strip_patches) const {
  check_piece(pixels, height, width);
  const int P = cfg_.patch_size;
  const int64_t L = int64_t(height / P) * (width / P), K = 3 * int64_t(P) * P;
  if (strip_patches < L)
    throw Error("vision tower: a strip of " + std::to_string(strip_patches) + " patches cannot hold a piece of " +
                std::to_string(L));
  std::vector<float> patches = gather_patches(pixels, height, width);
  patches.resize(size_t(strip_patches) * size_t(K), 0.0f);   // padding: zero pixels, as pad_sequence writes
  return run(patches, navit_position_ids(1, strip_patches, cfg_.patches_per_side()), strip_patches);
}

Tensor VisionTower::run(const std::vector<float>& patches, const std::vector<int32_t>& ids, int64_t L) const {
  const int P = cfg_.patch_size;
  const int64_t H = cfg_.hidden, K = 3 * int64_t(P) * P;

  kernels::Ops& ops = dev_->ops();
  const kernels::DType dt = dev_->compute_dtype();
  Tensor t_patches = Tensor::from_host(dev_, dt, {L, K}, patches.data());
  Tensor t_ids = Tensor::from_host_i32(dev_, {L}, ids.data());
  Tensor x = Tensor::empty(dev_, dt, {L, H});
  ops.linear(t_patches, patch_w_, &patch_b_, x);
  Tensor pe = Tensor::empty(dev_, dt, {L, H});
  ops.embedding(pos_table_, t_ids, pe);
  ops.add(x, pe, x);

  kernels::AttentionArgs args;
  args.n_heads = cfg_.n_heads;
  args.n_kv_heads = cfg_.n_heads;
  args.head_dim = cfg_.head_dim();
  args.scale = float(1.0 / std::sqrt(double(cfg_.head_dim())));
  args.causal_offset = -1;

  Tensor n = Tensor::empty(dev_, dt, {L, H});
  Tensor q = Tensor::empty(dev_, dt, {L, H}), k = Tensor::empty(dev_, dt, {L, H}), v = Tensor::empty(dev_, dt, {L, H});
  Tensor attn = Tensor::empty(dev_, dt, {L, H}), o = Tensor::empty(dev_, dt, {L, H});
  Tensor m = Tensor::empty(dev_, dt, {L, int64_t(cfg_.ffn)});
  for (const Layer& Ly : layers_) {
    ops.layer_norm(x, Ly.ln1_w, Ly.ln1_b, cfg_.layer_norm_eps, n);
    ops.linear(n, Ly.wq, &Ly.bq, q);
    ops.linear(n, Ly.wk, &Ly.bk, k);
    ops.linear(n, Ly.wv, &Ly.bv, v);
    ops.attention(q, k, v, attn, args);
    ops.linear(attn, Ly.wo, &Ly.bo, o);
    ops.add(x, o, x);
    ops.layer_norm(x, Ly.ln2_w, Ly.ln2_b, cfg_.layer_norm_eps, n);
    ops.linear(n, Ly.fc1_w, &Ly.fc1_b, m);
    ops.gelu_tanh(m);
    ops.linear(m, Ly.fc2_w, &Ly.fc2_b, o);
    ops.add(x, o, x);
  }
  Tensor out = Tensor::empty(dev_, dt, {L, H});
  ops.layer_norm(x, post_ln_w_, post_ln_b_, cfg_.layer_norm_eps, out);
  return out;
}

}  // namespace omni
