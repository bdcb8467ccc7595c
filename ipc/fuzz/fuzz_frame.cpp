// libFuzzer target: bytes -> FrameReader -> decode_message. Only IpcError may escape
// the library; anything else (crash, other exception, leak, OOM) is a finding.
// Build with clang: cmake -DCMAKE_CXX_COMPILER=clang++ ..., run:
//   fuzz_ipc_frame -max_len=4096 -malloc_limit_mb=256 -runs=200000
#include <cstddef>
#include <cstdint>

#include "ipc/frame.h"
#include "ipc/messages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  omni::ipc::Limits lim;
  lim.max_frame_bytes = 64 * 1024;
  // Raw payload path.
  try {
    (void)omni::ipc::decode_payload(std::span(data, size), size ? data[0] % 3 : 0, lim);
  } catch (const omni::ipc::IpcError&) {
  }
  // Framed stream path, fed in two chunks.
  try {
    omni::ipc::FrameReader r(lim);
    const size_t half = size / 2;
    r.feed(std::span(data, half));
    r.feed(std::span(data + half, size - half));
    while (auto f = r.next()) {
      try {
        auto m = omni::ipc::decode_message(*f, lim);
        (void)omni::ipc::encode_message(m);
      } catch (const omni::ipc::IpcError&) {
      }
    }
  } catch (const omni::ipc::IpcError&) {
  }
  return 0;
}
