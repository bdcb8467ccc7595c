#include "cli/video_options.h"

#include "cli/preflight.h"
#include "cli/read_file.h"
#include "util/error.h"

namespace omni {

void VideoOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--video", files, "A video (MP4, WebM, Matroska, AVI); repeat for several, after the pictures");
  cmd->add_option("--video-fps", fps, "Frames sampled per second (default: the release's: 2.6 1, 4.5 3)");
  cmd->add_option("--video-max-frames", max_frames, "Frames at most (4.5: frame groups; default 2.6 64, 4.5 180)");
  cmd->add_option("--video-max-packing", max_packing, "MiniCPM-V 4.5: frames per group at most, 1-6 (default 3)");
  cmd->add_option("--video-max-slice-nums", max_slice_nums, "Slices per frame (default 2.6 2, 4.5 1)");
}

void VideoOptions::apply(ipc::PromptOptions& prompt) const {
  prompt.video_fps = fps;
  prompt.video_max_frames = max_frames;
  prompt.video_max_packing = max_packing;
  prompt.video_max_slice_nums = max_slice_nums;
  // The same ranges a request's settings must meet (ipc::validate_conversation).
  as_usage_error("--video", [&] { ipc::validate_conversation(ipc::single_turn(0, "?"), 0, prompt); });
}

std::vector<ImageInput> VideoOptions::read(const video::VideoLimits& limits) const {
  std::vector<ImageInput> out;
  for (const auto& path : files) {
    check_readable_file(path, "--video");
    as_usage_error("--video", [&] {
      out.push_back(ImageInput::from_bytes(path, read_file_bytes(path, limits.max_encoded_bytes)));
      out.back().video = true;
    });
  }
  return out;
}

}  // namespace omni
