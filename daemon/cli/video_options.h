#pragma once
// The --video files and video sampling flags of `omnid run` and `omnid dump`, read before
// the model loads (each file checked and read; a bad flag is a usage error, exit 2).
#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ipc/conversation.h"
#include "model/chat_model.h"

namespace omni {

struct VideoOptions {
  std::vector<std::string> files;
  std::optional<double> fps;
  std::optional<uint32_t> max_frames, max_packing, max_slice_nums;

  void add_to(CLI::App* cmd);
  // Puts the flags into `prompt` (checked as the daemon checks a request's).
  void apply(ipc::PromptOptions& prompt) const;
  // The files read as video attachments, bounded by `limits`.
  std::vector<ImageInput> read(const video::VideoLimits& limits) const;
};

}  // namespace omni
