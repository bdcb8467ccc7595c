// ipc/limits.h - limits applied to everything read from a peer.
//
// The server advertises its Limits in hello_ok; the SDK uses them to refuse
// oversized requests locally. All are enforced before allocation.
#pragma once

#include <cstdint>

namespace omni::ipc {

struct Limits {
  uint32_t max_frame_bytes = 1u << 20;        // payload bytes after the 4-byte length
  uint32_t max_string_bytes = 256u << 10;     // any msgpack str
  uint32_t max_bin_bytes = 64u << 10;         // any msgpack bin (ext is always refused)
  uint32_t max_array_items = 1024;            // any msgpack array
  uint32_t max_map_entries = 64;              // any msgpack map
  uint32_t max_depth = 8;                     // nesting of arrays/maps
  uint32_t max_fds_per_frame = 8;             // SCM_RIGHTS descriptors per frame
  uint32_t max_images = 8;                    // images per generate
  uint64_t max_image_bytes = 64ull << 20;     // bytes of one image memfd
  uint32_t max_image_side = 8192;             // rgb width/height
  uint64_t max_video_bytes = 256ull << 20;    // bytes of one video memfd (1.2)
  uint32_t max_prompt_bytes = 64u << 10;      // prompt text
  uint32_t max_stop_strings = 16;             // stop strings per generate
  uint32_t max_new_tokens = 4096;             // max_tokens upper bound
};

}  // namespace omni::ipc
