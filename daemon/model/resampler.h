#pragma once
// The MiniCPM-V 2.6 perceiver resampler (`resampler.*`): one cross-attention of learned
// queries over the vision tower output of one piece, with a 2-D sin-cos position table
// added to the keys (spec 2.5). Written against kernels::Ops.
#include <memory>
#include <string>
#include <vector>

#include "kernels/tensor.h"
#include "model/weight_loader.h"

namespace omni {

// The resampler's 2-D sin-cos table for an (h × w) grid, row-major [h·w, embed_dim], float32
// as numpy computes it: D4 = embed_dim/4, ω_k = 1 / 10000^(k/D4) in float32; entry (y, x) =
// [sin(x·ω), cos(x·ω), sin(y·ω), cos(y·ω)] (the column first, then the row).
std::vector<float> resampler_pos_embed(int embed_dim, int h, int w);
// MiniCPM-V 4.5's 1-D temporal sin-cos table rows for `ids` [ids.size(), embed_dim], float32 as the
// released code computes it (sin half, then cos half).
std::vector<float> resampler_temporal_embed(int embed_dim, const std::vector<int32_t>& ids);

class Resampler {
 public:
  // embed_dim: the LLM width; kv_dim: the vision width; num_heads = embed_dim / 128 in 2.6.
  // Announces the tensors the constructor will load (see Decoder::plan_weights).
  static void plan_weights(WeightLoader& loader, const std::string& prefix);
  Resampler(WeightLoader& loader, int embed_dim, int kv_dim, int num_queries, int num_heads, const std::string& prefix,
            std::shared_ptr<kernels::Device> dev);

  int embed_dim() const { return embed_dim_; }
  int num_queries() const { return num_queries_; }

  // x: the tower output [tgt_h·tgt_w, kv_dim] of one piece (on this resampler's device).
  // Returns [num_queries, embed_dim] on the device.
  kernels::Tensor forward(const kernels::Tensor& x, int tgt_h, int tgt_w) const;
  // MiniCPM-V 4.5's temporal branch for one group of video frames (spec minicpmv.md, models-family.md 4.2):
  // xs[i] the tower output of frame i's piece [tgt_h·tgt_w, kv_dim]; keys k_i = LN_kv(kv_proj(x_i)) +
  // pos2d(tgt_h, tgt_w) + temporal(temporal_ids[i]), values LN_kv(kv_proj(x_i)), concatenated over the
  // group (frame-major) for one cross-attention of the queries. Returns [num_queries, embed_dim].
  kernels::Tensor forward_frames(const std::vector<kernels::Tensor>& xs, int tgt_h, int tgt_w,
                                 const std::vector<int32_t>& temporal_ids) const;

 private:
  int embed_dim_, kv_dim_, num_queries_, num_heads_;
  std::shared_ptr<kernels::Device> dev_;
  kernels::Tensor kv_proj_, ln_kv_w_, ln_kv_b_, wk_, bk_, wv_, bv_, wo_, bo_, ln_post_w_, ln_post_b_, proj_t_;
  kernels::Tensor q_;   // in_proj(ln_q(query)): the same for every piece, computed once
};

}  // namespace omni
