// libFuzzer target: bytes -> probe_video, then decode_frames of the first and last frames,
// with small limits so one input stays in the malloc limit. Only VideoError (the input is
// refused) and image::DecodeInterrupted may escape; anything else (a crash, another exception,
// a leak, a sanitizer report in our code) is a finding. FFmpeg itself is not instrumented: this
// fuzzes our I/O callbacks, limits and frame conversion around it.
// Long runs: build/bin/fuzz_video_decode -max_len=65536 -malloc_limit_mb=1024 -timeout=10 CORPUS_DIR
#include <cstddef>
#include <cstdint>

#include "video/video.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  omni::video::VideoLimits lim;
  lim.max_frame_pixels = 1 << 20;
  lim.max_frames = 4096;
  lim.max_frames_decoded = 4096;
  lim.min_side = 1;
  const int stop_after = size ? data[size - 1] % 256 : 0;
  int polls = 0;
  const omni::image::DecodeInterrupt interrupted = [&] { return ++polls > stop_after + 64; };
  try {
    const auto info = omni::video::probe_video(data, size, lim, "fuzz", interrupted);
    (void)omni::video::decode_frames(data, size, {0, info.frame_count - 1}, lim, "fuzz", interrupted);
  } catch (const omni::video::VideoError&) {
  } catch (const omni::image::DecodeInterrupted&) {
  }
  return 0;
}
