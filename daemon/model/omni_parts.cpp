#include "model/omni_parts.h"

#include <cstdio>

#include "util/error.h"

namespace omni {

bool OmniParts::is_skipped(const std::string& tensor) {
  for (const char* p : kOmniSkippedPrefixes)
    if (tensor.rfind(p, 0) == 0) return true;
  return false;
}

OmniParts OmniParts::of(const Checkpoint& ckpt) {
  std::vector<SkippedPart> parts;
  for (const char* p : kOmniSkippedPrefixes) parts.push_back({p, 0, 0});
  for (const std::string& name : ckpt.names())
    for (SkippedPart& part : parts)
      if (name.rfind(part.prefix, 0) == 0) {
        part.tensors += 1;
        part.bytes += ckpt.bytes(name).file;   // the header's size: the data is not touched (NF4 parts stay packed)
        break;
      }
  OmniParts out;
  for (SkippedPart& part : parts)
    if (part.tensors) out.skipped.push_back(std::move(part));
  return out;
}

void OmniParts::check_config(const nlohmann::json& cfg, const std::string& source) {
  // modeling_minicpmo.py builds vpm/resampler only when init_vision is true (its default).
  if (cfg.contains("init_vision") && cfg["init_vision"].is_boolean() && !cfg["init_vision"].get<bool>())
    throw Error(source + ": init_vision is false: a MiniCPM-o without its vision part cannot run here "
                         "(omnid runs MiniCPM-o for pictures and text; audio is not supported)");
}

size_t OmniParts::tensors() const {
  size_t n = 0;
  for (const auto& p : skipped) n += p.tensors;
  return n;
}

size_t OmniParts::bytes() const {
  size_t n = 0;
  for (const auto& p : skipped) n += p.bytes;
  return n;
}

std::string OmniParts::summary() const {
  if (skipped.empty()) return "no audio/speech parts in the checkpoint";
  std::string s = "skipping audio/speech parts:";
  for (size_t i = 0; i < skipped.size(); ++i)
    s += (i ? ", " : " ") + skipped[i].prefix + "* (" + std::to_string(skipped[i].tensors) + " tensors)";
  char mib[64];
  std::snprintf(mib, sizeof mib, ", %.1f MiB never loaded", double(bytes()) / (1 << 20));
  return s + mib;
}

}  // namespace omni
