#pragma once
// The vision tower and resampler of a MiniCPM-V model on one device or on several: each
// device holds a copy of both (the planner budgets them, plan/plan.h "vision_copy"), and
// the resampler calls of a request's pictures, or of a video's frames, are shared out
// among the copies and run at once, one thread per extra device. A unit's rows land at
// its own place in the caller's host buffer, so the result is in order whichever copy ran
// it, and is the same bit for bit as on one device: every unit runs the same ops on its
// own, and the CPU kernels compute each output row alike for any thread count
// (tests/model/test_vision_devices.cpp checks both).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "image/decode.h"
#include "image/image.h"
#include "kernels/turn_lock.h"
#include "model/vision_config.h"
#include "model/weight_loader.h"

namespace omni {

class VisionTower;
class Resampler;

// One resampler call: a piece of a picture (or of a MiniCPM-V 2.6 video frame), or the
// same piece of every frame of a MiniCPM-V 4.5 frame group with the frames' temporal ids.
struct VisionUnit {
  std::vector<const image::Image*> pieces;            // one, or one per frame
  const std::vector<int32_t>* temporal_ids = nullptr;  // set: a frame group (Resampler::forward_frames)
  float* out = nullptr;                                // query_num x embed_dim floats on the host
  // > 0: the tower runs the piece as a strip this many patches long (MiniCPM-Llama3-V 2.5,
  // VisionTower::encode_strip), and the resampler reads the piece's own rows of it.
  int strip_patches = 0;
};

class VisionEncoder {
 public:
  struct Shape {
    int embed_dim = 0;   // the LLM width (resampler output)
    int query_num = 0;   // resampler rows per unit
    int patch_size = 0;  // pieces are multiples of it
  };
  // Normalised pixels [3, H, W] of one piece (ChatModel::piece_pixels).
  using PixelFn = std::function<std::vector<float>(const image::Image&)>;

  // Announces the tensors every copy loads (once: the loader counts a tensor's bytes once
  // however many devices load it, so progress runs to 100 % once).
  static void plan_weights(WeightLoader& loader, const VisionConfig& vc, const std::string& tower_prefix,
                           const std::string& resampler_prefix);
  // Loads a copy on each of `devices` (distinct; the first is the primary).
  VisionEncoder(WeightLoader& loader, const VisionConfig& vc, const std::string& tower_prefix,
                const std::string& resampler_prefix, Shape shape, PixelFn pixels,
                std::vector<std::shared_ptr<kernels::Device>> devices);
  ~VisionEncoder();

  size_t copies() const { return copies_.size(); }
  const std::shared_ptr<kernels::Device>& device(size_t i) const;
  const Shape& shape() const { return shape_; }

  // The units of one picture or frame group (pieces slice-major, as PreparedImage holds
  // them: piece g of frames 0..n-1, then g+1), writing to `out` [runs x query_num, embed_dim].
  static std::vector<VisionUnit> units_of(const std::vector<image::Image>& pieces,
                                          const std::vector<int32_t>& temporal_ids, float* out, size_t rows_per_unit);

  // Runs every unit, each on one copy: with one copy in order on the calling thread (as
  // ChatModel always did); else taken from a shared queue by the calling thread (the
  // primary) and one thread per other copy. `turns`: the primary's device lock, taken per
  // tower or resampler call so that decode steps sharing the device get turns between
  // them; when set, the other copies take their own device's exec_mutex() the same way.
  // An exception stops the copies after their current unit and is rethrown here once all
  // have stopped. `interrupted` is polled before every unit (a long video's cancel, deadline
  // or the daemon's shutdown): true stops the run with image::DecodeInterrupted.
  void run(const std::vector<VisionUnit>& units, kernels::TurnLock* turns = nullptr,
           const image::DecodeInterrupt& interrupted = {}) const;

 private:
  struct Copy;
  void encode(const Copy& c, const VisionUnit& u, kernels::TurnLock* turns) const;

  Shape shape_;
  PixelFn pixels_;
  std::vector<std::unique_ptr<Copy>> copies_;
};

}  // namespace omni
