#pragma once
// A video attachment turned into the units the prompt and the vision tower take, as the
// released chat() sees a video: its encode_video's sampled frames, each sliced like a
// picture (video settings: max_slice_nums, no image ids), and for MiniCPM-V 4.5 packed into
// groups that share one placeholder and carry their frames' temporal ids (docs/video.md).
#include "image/decode.h"
#include "image/slicing.h"
#include "ipc/conversation.h"
#include "model/chat_model.h"
#include "model/minicpmv_version.h"
#include "video/video.h"

namespace omni {

// The release's video recipe with the request's settings over it (validated ranges:
// ipc::validate_conversation).
struct VideoSettings {
  bool grouped = false;
  double fps = 1;
  int max_frames = 64;
  int max_packing = 1;
  int max_slice_nums = 2;
};
VideoSettings video_settings(const VideoDefaults& release, const ipc::PromptOptions& options);

// Which frames the recipe takes from a video of `info` (video/sampling.h).
video::FrameSample sample_video(const video::VideoInfo& info, const VideoSettings& settings);

// Probes, samples, decodes and slices one video (video::VideoError for a bad one;
// image::DecodeInterrupted when `interrupted` stops it). `slice` is the checkpoint's slicing,
// its max_slice_nums replaced by the video's.
PreparedMedia prepare_video(const ImageInput& in, const VideoSettings& settings, image::SliceConfig slice,
                            const video::VideoLimits& limits, const image::DecodeInterrupt& interrupted);

}  // namespace omni
