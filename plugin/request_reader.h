// plugin/request_reader.h - reads a host's omni_plugin_request and its image array.
//
// The host's structs may come from an older or a newer header than the plugin's, so
// each is read only as far as its struct_size declares, and the image array is stepped
// through by the size its elements declare, never by the plugin's own sizeof. The
// reader knows neither the SDK nor the daemon (it opens no file and no socket), so the
// libFuzzer target plugin/fuzz/fuzz_request.cpp drives it directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ipc/conversation.h"
#include "omni_plugin.h"

namespace omni::plugin {

/// A host request as the plugin understood it. Fields the host's struct_size does not
/// reach keep request_init's / image_init's defaults. Pointers still point into the
/// host's memory (the prompt, image bytes and paths, the stop array and its strings).
struct HostRequest {
  omni_plugin_request request;
  std::vector<omni_plugin_image> images;
};

/// request_init's defaults: struct_size = sizeof, max_tokens 256, the model's sampling
/// defaults (negative floats, OMNI_PLUGIN_TOP_K_MODEL_DEFAULT), everything else zero.
void init_request(omni_plugin_request& r) noexcept;
/// image_init's defaults: struct_size = sizeof, everything else zero (encoded format).
void init_image(omni_plugin_image& im) noexcept;

/// Read and check `in`. Returns OMNI_PLUGIN_OK with `out` filled, or
/// OMNI_PLUGIN_E_INVALID_ARG with `error` naming the field (e.g.
/// "request.images[1].struct_size 28 ends inside request.images[1].path (bytes 24..32)").
/// Refused: a NULL request; a struct_size below 8 or ending inside a field; image
/// elements that disagree on struct_size; a missing prompt; a NULL images/stop array
/// or stop string; an image with neither data nor path, data without size, an unknown
/// format, a path image that is not encoded; a NaN or infinite sampling value.
/// Throws only std::bad_alloc.
/// `prompt_required` false (chat): request.prompt may be NULL.
int32_t read_request(const omni_plugin_request* in, HostRequest& out, std::string& error,
                     bool prompt_required = true);

/// A host conversation as the plugin understood it.
struct HostChat {
  std::vector<ipc::Turn> turns;
  std::string system;
  ipc::PromptOptions options;
};

/// chat_init's defaults: struct_size = sizeof, use_image_id and enable_thinking -1.
void init_chat(omni_plugin_chat& c) noexcept;

/// Read and check `in` (declared size as for requests); parts refer to `n_images`
/// pictures. Refused: NULL, a bad struct_size, no messages, more than 1024 messages or
/// parts in one message, an unknown role, NULL parts, a picture index out of range.
int32_t read_chat(const omni_plugin_chat* in, std::size_t n_images, HostChat& out, std::string& error);

}  // namespace omni::plugin
