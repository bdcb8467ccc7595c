#pragma once
// The MiniCPM-V 2.6 perceiver resampler (`resampler.*`): one cross-attention of learned
// queries over the vision tower output of one piece, with a 2-D sin-cos position table
// added to the keys (spec 2.5); MiniCPM-V 4.5 adds a temporal table for groups of video
// frames (forward_frames). Written against kernels::Ops.
#include <cstdint>
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
// MiniCPM-V 4.5's 1-D temporal sin-cos table: rows for `ids`, [ids.size(), embed_dim], float32 as
// the released code computes it in numpy float32: D2 = embed_dim/2, ω_k = 1 / 10000^(k/D2), row t =
// [sin(t·ω), cos(t·ω)] (the sin half, then the cos half). Computed per row, so any id up to
// kMaxTemporalId works (the official table is 72000 rows, regrown on demand with the same formula).
// An id < 0 (the official −1: a still picture) gives a zero row. Throws for ids > kMaxTemporalId or an
// odd embed_dim.
std::vector<float> resampler_temporal_embed(int embed_dim, const std::vector<int32_t>& ids);
// Ids are a frame's time in 0.1 s units: 10^6 is almost 28 hours of video, and far below 2^24, where
// float32 would stop holding the id exactly.
inline constexpr int32_t kMaxTemporalId = 1'000'000;
// Throws for an id resampler_temporal_embed does not take.
void check_temporal_id(int32_t id);

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
  // xs[i] the tower output of frame i's piece [tgt_h·tgt_w, kv_dim] (every frame of a group has the
  // same grid); keys k_i = LN_kv(kv_proj(x_i)) + pos2d(tgt_h, tgt_w) + temporal(temporal_ids[i]), values
  // LN_kv(kv_proj(x_i)) (no table), concatenated over the group frame-major for one cross-attention of
  // the queries, then ln_post and proj. Returns [num_queries, embed_dim]. A one-frame group with an id
  // < 0 is exactly forward(). Throws for no frames, an input of the wrong shape or device, an id count
  // other than the frame count, or an id > kMaxTemporalId.
  kernels::Tensor forward_frames(const std::vector<kernels::Tensor>& xs, int tgt_h, int tgt_w,
                                 const std::vector<int32_t>& temporal_ids) const;

 private:
  int embed_dim_, kv_dim_, num_queries_, num_heads_;
  std::shared_ptr<kernels::Device> dev_;
  kernels::Tensor kv_proj_, ln_kv_w_, ln_kv_b_, wk_, bk_, wv_, bv_, wo_, bo_, ln_post_w_, ln_post_b_, proj_t_;
  kernels::Tensor q_;   // in_proj(ln_q(query)): the same for every piece, computed once

  // forward and forward_frames after their checks: ids[i] < 0 means no temporal term for frame i.
  kernels::Tensor attend(const std::vector<kernels::Tensor>& xs, int tgt_h, int tgt_w,
                         const std::vector<int32_t>& ids) const;
};

}  // namespace omni
