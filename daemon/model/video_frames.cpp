#include "model/video_frames.h"

#include <string>

#include "model/sha256.h"
#include "util/error.h"

namespace omni {

VideoSettings video_settings(const VideoDefaults& release, const ipc::PromptOptions& o) {
  VideoSettings s;
  s.grouped = release.grouped;
  s.fps = o.video_fps.value_or(release.fps);
  s.max_frames = int(o.video_max_frames.value_or(uint32_t(release.max_frames)));
  s.max_packing = release.grouped ? int(o.video_max_packing.value_or(uint32_t(release.max_packing))) : 1;
  s.max_slice_nums = int(o.video_max_slice_nums.value_or(uint32_t(release.max_slice_nums)));
  return s;
}

video::FrameSample sample_video(const video::VideoInfo& info, const VideoSettings& s) {
  if (s.grouped) return video::sample_frames_v45(info.frame_count, info.fps, s.fps, s.max_frames, s.max_packing);
  return video::sample_frames_v26(info.frame_count, info.fps, s.fps, s.max_frames);
}

namespace {

// A frame's identity for the vision cache: its decoded pixels and size, so the same clip
// (or the same frames in another container) skips the tower, whatever its bytes.
Sha256 frame_digest(const image::Image& f) {
  Sha256Stream h;
  const int32_t dims[2] = {f.width, f.height};
  h.update(reinterpret_cast<const uint8_t*>(dims), sizeof dims);
  h.update(f.rgb.data(), f.rgb.size());
  return h.finish();
}

std::string slice_key(const image::SliceConfig& slice) {
  return std::to_string(slice.scale_resolution) + "/" + std::to_string(slice.max_slice_nums) + "/" +
         std::to_string(slice.slice_mode);
}

}  // namespace

PreparedMedia prepare_video(const ImageInput& in, const VideoSettings& settings, image::SliceConfig slice,
                            const video::VideoLimits& limits, const image::DecodeInterrupt& interrupted) {
  slice.max_slice_nums = settings.max_slice_nums;
  VideoSampling sampling;
  sampling.name = in.name;
  sampling.max_slice_nums = settings.max_slice_nums;
  sampling.info = video::probe_video(in.data, in.size, limits, in.name, interrupted);
  sampling.sample = sample_video(sampling.info, settings);
  const video::FrameSample& sample = sampling.sample;
  if (sample.indices.empty())
    throw video::VideoError(in.name + ": no frame is sampled from " + std::to_string(sampling.info.frame_count) +
                            " frames at " + std::to_string(sampling.info.fps) + " fps");
  // One decoded frame per sampled index, in order (a sample may name a frame twice, a clip
  // shorter than the frames asked for: decode_frames then gives it again, converted once).
  std::vector<image::SlicedImage> sliced;
  std::vector<Sha256> digests;
  sliced.reserve(sample.indices.size());
  video::decode_frames(
      in.data, in.size, sample.indices, limits, in.name,
      [&](video::Frame&& f) {   // sliced at once: only the pieces are kept, never every full frame
        digests.push_back(frame_digest(f.rgb));
        sliced.push_back(image::slice_image(f.rgb, slice));
      },
      interrupted);

  PreparedMedia out;
  const size_t n = sample.indices.size();
  const size_t group = settings.grouped ? size_t(std::max(1, sample.packing)) : 1;
  for (size_t first = 0; first < n; first += group) {
    const size_t last = std::min(n, first + group);
    PreparedImage unit;
    const size_t pieces = sliced[first].pieces.size();
    unit.sliced.grid = sliced[first].grid;
    Sha256Stream key;
    for (size_t k = first; k < last; ++k) {
      if (sliced[k].pieces.size() != pieces)
        throw video::VideoError(in.name + ": frame " + std::to_string(sample.indices[k]) +
                                " is sliced unlike the first of its group (the frame size changed)");
      key.update(digests[k].data(), digests[k].size());
      if (settings.grouped) {
        unit.temporal_ids.push_back(sample.temporal_ids[k]);
        const int32_t id = sample.temporal_ids[k];
        key.update(reinterpret_cast<const uint8_t*>(&id), sizeof id);
      }
    }
    // Slice-major: piece g of every frame of the group, then g + 1 (PreparedImage).
    for (size_t g = 0; g < pieces; ++g)
      for (size_t k = first; k < last; ++k) unit.sliced.pieces.push_back(std::move(sliced[k].pieces[g]));
    unit.cache_key = "video/" + to_hex(key.finish()) + "/" + slice_key(slice) + (settings.grouped ? "/g" : "");
    out.units.push_back(std::move(unit));
  }
  out.video = std::move(sampling);
  return out;
}

}  // namespace omni
