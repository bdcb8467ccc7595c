// libFuzzer target: bytes -> decode_image (format sniffed from the bytes: PNG, JPEG, WebP).
// Only DecodeError (the input is refused) and DecodeInterrupted may escape the decoders;
// anything else (crash, other exception, leak, OOM, a sanitizer report) is a finding. Each
// input is decoded twice: freely, then with an interrupt that stops after a number of polls
// taken from the input, so the stop paths (longjmp out of libjpeg and libpng, the WebP
// incremental decoder) are fuzzed too. Limits are small so one input stays in the malloc limit.
// Long runs: build/bin/fuzz_image_decode -max_len=65536 -malloc_limit_mb=512 -timeout=10 \
//   -seed_inputs=tests/data/image/jpeg_gray.jpg,... CORPUS_DIR
#include <cstddef>
#include <cstdint>

#include "image/decode.h"

namespace {

void decode(const uint8_t* data, size_t size, const omni::image::DecodeInterrupt& interrupted) {
  omni::image::DecodeLimits lim;
  lim.max_pixels = 1 << 20;
  lim.min_side = 1;
  lim.max_decode_work = 64ull << 20;  // a few dozen full-size scans: the work limit is reached
  try {
    (void)omni::image::decode_image(data, size, lim, "fuzz", interrupted);
  } catch (const omni::image::DecodeError&) {
  } catch (const omni::image::DecodeInterrupted&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  decode(data, size, {});
  const int stop_after = size ? data[size - 1] % 64 : 0;
  int polls = 0;
  decode(data, size, [&polls, stop_after] { return ++polls > stop_after; });
  return 0;
}
