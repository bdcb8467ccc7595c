#pragma once
// The SigLIP "NaViT" vision tower of MiniCPM-V 2.6 (`vpm.*`), written against kernels::Ops.
// One normalised image piece at a time, without padding: the reference pads a batch of
// pieces and masks padded keys only, so the valid rows are the same (spec 2.4).
#include <memory>
#include <string>
#include <vector>

#include "kernels/tensor.h"
#include "model/vision_config.h"
#include "model/weight_loader.h"

namespace omni {

// Position ids of a (nb_h × nb_w) patch grid, row-major, as the reference computes them:
// torch float32 arange of fractional coordinates with step float32(1/nb), bucketized
// (right=True) against float32 arange(1/n, 1, 1/n) boundaries, n = patches_per_side;
// id = bucket_h · n + bucket_w.
std::vector<int32_t> navit_position_ids(int nb_h, int nb_w, int patches_per_side);

class VisionTower {
 public:
  // `prefix` is prepended to every tensor name ("vpm." inside MiniCPM-V, "" for a bare tower).
  // Announces the tensors the constructor will load (see Decoder::plan_weights).
  static void plan_weights(WeightLoader& loader, const VisionConfig& cfg, const std::string& prefix);
  VisionTower(WeightLoader& loader, const VisionConfig& cfg, const std::string& prefix,
              std::shared_ptr<kernels::Device> dev);

  const VisionConfig& config() const { return cfg_; }
  const std::shared_ptr<kernels::Device>& device() const { return dev_; }

  // pixels: one normalised piece, float32 [3, height, width] (C order) on the host; height and
  // width multiples of patch_size. Returns the post-layernorm last hidden state
  // [L, hidden] on the device, L = (height/patch)·(width/patch), patches row-major.
  kernels::Tensor encode(const std::vector<float>& pixels_chw, int height, int width) const;
  // MiniCPM-Llama3-V 2.5's vision call (MiniCpmvVersion::VisionInput::padded_strip): the
  // piece's patches, row-major, then zero patches up to `strip_patches`, run as one 1 x
  // strip_patches grid (position ids navit_position_ids(1, strip_patches, n)) with every
  // key attended. Returns [strip_patches, hidden]; rows past the piece's own patches are
  // what the reference computes for padding (its resampler masks them).
  kernels::Tensor encode_strip(const std::vector<float>& pixels_chw, int height, int width, int strip_patches) const;

 private:
  void check_piece(const std::vector<float>& pixels_chw, int height, int width) const;
  std::vector<float> gather_patches(const std::vector<float>& pixels_chw, int height, int width) const;
  // The tower over L patches [L, 3·patch²] with their position ids.
  kernels::Tensor run(const std::vector<float>& patches, const std::vector<int32_t>& ids, int64_t L) const;

  struct Layer {
    kernels::Tensor ln1_w, ln1_b, wq, bq, wk, bk, wv, bv, wo, bo, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
  };
  VisionConfig cfg_;
  std::shared_ptr<kernels::Device> dev_;
  kernels::Tensor patch_w_, patch_b_, pos_table_, post_ln_w_, post_ln_b_;
  std::vector<Layer> layers_;
};

}  // namespace omni
