#pragma once
// Which frames of a video the released MiniCPM-V code samples (its `encode_video`), as pure
// functions of the frame count and frame rate, so they are tested without a video.
#include <cstdint>
#include <vector>

namespace omni::video {

struct FrameSample {
  std::vector<int64_t> indices;        // ascending frame indices
  std::vector<int32_t> temporal_ids;   // 4.5: one per index, the frame's time in 0.1 s units; 2.6: empty
  int packing = 1;                     // 4.5: frames per group (the last group may be shorter)
};

// MiniCPM-V 2.6 (docs/minicpm_v2dot6_en.md "Video understanding"): every round(fps / choose_fps)-th
// frame, then uniform_sample to max_frames when more.
FrameSample sample_frames_v26(int64_t frame_count, double fps, double choose_fps = 1, int max_frames = 64);

// MiniCPM-V 4.5 (model card encode_video): packing 1 while choose_fps·int(duration) <= max_frames,
// otherwise ceil(duration·choose_fps / max_frames) capped at max_packing; uniform sampling of the
// frames; temporal ids the nearest 0.1 s step. `force_packing` > 0 overrides packing (capped).
FrameSample sample_frames_v45(int64_t frame_count, double fps, double choose_fps = 3, int max_frames = 180,
                              int max_packing = 3, int force_packing = 0);

}  // namespace omni::video
