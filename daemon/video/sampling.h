#pragma once
// Which frames of a video the released MiniCPM-V code samples (its `encode_video`), as pure
// functions of the frame count and frame rate, so they are tested without a video.
#include <cstdint>
#include <vector>

namespace omni::video {

// Empty `indices` where the released code raises instead (a 2.6 step round(fps / choose_fps) of
// 0, a 4.5 choose_frames of 0: clips under about 0.5 s or below 0.5 fps), for no frames, a
// non-finite or non-positive fps, and (4.5) over 10 million 0.1 s steps (11.5 days of video,
// far past VideoLimits::max_duration_s): callers refuse an empty sample.
struct FrameSample {
  // Non-decreasing frame indices. Repeats happen when a clip has fewer frames than the rule
  // samples (4.5 at a frame rate below choose_fps): the released code then feeds the same frame
  // twice, and so do we.
  std::vector<int64_t> indices;
  std::vector<int32_t> temporal_ids;   // 4.5: one per index, the frame's time in 0.1 s units; 2.6: empty
  int packing = 1;                     // 4.5: frames per group (the last group may be shorter)
};

// MiniCPM-V 2.6 (docs/minicpm_v2dot6_en.md "Video understanding"): every round(fps / choose_fps)-th
// frame, then uniform_sample to max_frames when more.
FrameSample sample_frames_v26(int64_t frame_count, double fps, double choose_fps = 1, int max_frames = 64);

// MiniCPM-V 4.5 (model card encode_video): packing 1 while choose_fps·int(duration) <= max_frames,
// otherwise ceil(duration·choose_fps / max_frames) capped at max_packing; uniform sampling of the
// frames; temporal ids the nearest 0.1 s step (an exact tie broken as the released code's
// scipy cKDTree breaks it, see sampling.cpp). `force_packing` > 0 overrides packing (capped).
FrameSample sample_frames_v45(int64_t frame_count, double fps, double choose_fps = 3, int max_frames = 180,
                              int max_packing = 3, int force_packing = 0);

}  // namespace omni::video
