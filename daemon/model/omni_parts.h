#pragma once
// MiniCPM-o checkpoints hold, beside the vision path (vpm.*, resampler.*) and the language
// model (llm.*), an audio encoder (apm.*, Whisper), its projection (audio_projection_layer.*)
// and a speech decoder (tts.*, ChatTTS). omnid runs pictures and text only: those tensors
// are named once in the log and never read, so no device holds them and the planner
// (plan/model_shape.h, counting from the config's LLM and vision fields) never counts them.
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"

namespace omni {

struct SkippedPart {
  std::string prefix;   // "apm."
  size_t tensors = 0;
  size_t bytes = 0;
};

struct OmniParts {
  std::vector<SkippedPart> skipped;   // in the order of kOmniSkippedPrefixes; parts absent from the file left out

  // Tallies the skipped parts of `ckpt` (a file without them has none).
  static OmniParts of(const Checkpoint& ckpt);
  // Refuses a MiniCPM-o config that omnid cannot run with its parts as they are:
  // init_vision false (no vision part to run pictures with), naming `source` and the field.
  static void check_config(const nlohmann::json& cfg, const std::string& source);
  // Whether `tensor` belongs to a skipped part.
  static bool is_skipped(const std::string& tensor);

  // "skipping audio/speech parts: apm.* (N tensors), audio_projection_layer.* (M tensors),
  // tts.* (K tensors), X.X MiB never loaded" (or "no audio/speech parts in the checkpoint").
  std::string summary() const;
  size_t tensors() const;
  size_t bytes() const;
};

// The prefixes of MiniCPM-o's audio and speech parts.
inline constexpr const char* kOmniSkippedPrefixes[] = {"apm.", "audio_projection_layer.", "tts."};

}  // namespace omni
