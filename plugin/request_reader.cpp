#include "request_reader.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>

namespace omni::plugin {

namespace {

// Where one field of a struct lies: [begin, end) bytes from the struct's start.
struct FieldSpan {
  const char* name;
  std::size_t begin, end;
};

#define OMNI_FIELD(T, f) FieldSpan{#f, offsetof(T, f), offsetof(T, f) + sizeof(T::f)}

// Every field in layout order: a declared size may end between two of them (an older
// header) but never inside one, where the plugin would take half a pointer for one.
constexpr std::array kRequestFields = {
    OMNI_FIELD(omni_plugin_request, struct_size), OMNI_FIELD(omni_plugin_request, max_tokens),
    OMNI_FIELD(omni_plugin_request, prompt),      OMNI_FIELD(omni_plugin_request, images),
    OMNI_FIELD(omni_plugin_request, n_images),    OMNI_FIELD(omni_plugin_request, temperature),
    OMNI_FIELD(omni_plugin_request, top_p),       OMNI_FIELD(omni_plugin_request, repetition_penalty),
    OMNI_FIELD(omni_plugin_request, top_k),       OMNI_FIELD(omni_plugin_request, seed),
    OMNI_FIELD(omni_plugin_request, greedy),      OMNI_FIELD(omni_plugin_request, deadline_ms),
    OMNI_FIELD(omni_plugin_request, stop),        OMNI_FIELD(omni_plugin_request, n_stop),
    OMNI_FIELD(omni_plugin_request, request_id),
};

constexpr std::array kImageFields = {
    OMNI_FIELD(omni_plugin_image, struct_size), OMNI_FIELD(omni_plugin_image, format),
    OMNI_FIELD(omni_plugin_image, data),        OMNI_FIELD(omni_plugin_image, size),
    OMNI_FIELD(omni_plugin_image, path),        OMNI_FIELD(omni_plugin_image, width),
    OMNI_FIELD(omni_plugin_image, height),
};

constexpr std::array kChatFields = {
    OMNI_FIELD(omni_plugin_chat, struct_size), OMNI_FIELD(omni_plugin_chat, max_slice_nums),
    OMNI_FIELD(omni_plugin_chat, messages),    OMNI_FIELD(omni_plugin_chat, n_messages),
    OMNI_FIELD(omni_plugin_chat, system),      OMNI_FIELD(omni_plugin_chat, use_image_id),
    OMNI_FIELD(omni_plugin_chat, enable_thinking), OMNI_FIELD(omni_plugin_chat, video_max_frames),
    OMNI_FIELD(omni_plugin_chat, video_max_packing), OMNI_FIELD(omni_plugin_chat, video_max_slice_nums),
    OMNI_FIELD(omni_plugin_chat, video_fps_milli),
};

#undef OMNI_FIELD

// struct_size and the field after it: the oldest layout either struct ever had.
constexpr uint32_t kMinStructSize = 2 * sizeof(uint32_t);

static_assert(kRequestFields.back().end == sizeof(omni_plugin_request), "kRequestFields lists every field");
static_assert(kImageFields.back().end == sizeof(omni_plugin_image), "kImageFields lists every field");
static_assert(kChatFields.back().end == sizeof(omni_plugin_chat), "kChatFields lists every field");

int32_t invalid(std::string& error, std::string msg) {
  error = std::move(msg);
  return OMNI_PLUGIN_E_INVALID_ARG;
}

// The leading struct_size of a host struct, read bytewise: the host's struct may be of
// another layout than ours, and an array element need not be aligned for ours.
uint32_t declared_size(const void* host_struct) noexcept {
  uint32_t n;
  std::memcpy(&n, host_struct, sizeof(n));
  return n;
}

// "" when `declared` is a layout the plugin can read, else why not.
std::string check_declared_size(const std::string& what, uint32_t declared, std::span<const FieldSpan> fields) {
  if (declared < kMinStructSize)
    return what + ".struct_size " + std::to_string(declared) + " is below the smallest layout (" +
           std::to_string(kMinStructSize) + " bytes)";
  for (const FieldSpan& f : fields)
    if (declared > f.begin && declared < f.end)
      return what + ".struct_size " + std::to_string(declared) + " ends inside " + what + "." + f.name + " (bytes " +
             std::to_string(f.begin) + ".." + std::to_string(f.end) + ")";
  return {};
}

// Copy what the host declared over `out` (already holding the defaults); the fields of
// a newer host beyond our sizeof are not ours to read.
template <typename T>
void copy_declared(const void* host_struct, uint32_t declared, T& out) noexcept {
  std::memcpy(&out, host_struct, std::min<std::size_t>(declared, sizeof(T)));
}

// Sampling values must be finite: NaN fails every range test, so without this check it
// would silently fall through to "the model's default".
int32_t check_sampling(const omni_plugin_request& r, std::string& error) {
  const std::pair<const char*, float> fields[] = {
      {"temperature", r.temperature}, {"top_p", r.top_p}, {"repetition_penalty", r.repetition_penalty}};
  for (const auto& [name, v] : fields)
    if (!std::isfinite(v))
      return invalid(error, std::string("request.") + name + " is " + std::to_string(v) +
                                ": sampling values must be finite (negative means the model's default)");
  return OMNI_PLUGIN_OK;
}

int32_t check_image(const omni_plugin_image& im, const std::string& what, std::string& error) {
  if (im.data) {
    if (im.size == 0) return invalid(error, what + ".data is set but " + what + ".size is 0");
    if (im.format != OMNI_PLUGIN_IMAGE_RGB && im.format != OMNI_PLUGIN_IMAGE_ENCODED && im.format != OMNI_PLUGIN_IMAGE_VIDEO)
      return invalid(error, what + ".format " + std::to_string(im.format) + " is unknown");
  } else if (im.path) {
    if (im.format != OMNI_PLUGIN_IMAGE_ENCODED && im.format != OMNI_PLUGIN_IMAGE_VIDEO)
      return invalid(error, what + ".format must be OMNI_PLUGIN_IMAGE_ENCODED or OMNI_PLUGIN_IMAGE_VIDEO for a path");
  } else {
    return invalid(error, what + " has neither data nor path");
  }
  return OMNI_PLUGIN_OK;
}

// The array's stride is the size its elements declare (the host's sizeof, which may be
// an older or newer one than ours), so every element must declare the same.
// Bounds on what a garbage request can make the reader walk: far above any real request
// (the daemon takes 8 pictures and 16 stop strings by default) and any real struct.
constexpr std::size_t kMaxImages = 1024, kMaxStops = 1024;
constexpr uint32_t kMaxStructBytes = 4096;

int32_t read_images(const omni_plugin_request& r, HostRequest& out, std::string& error) {
  if (r.n_images == 0) return OMNI_PLUGIN_OK;
  if (r.n_images > kMaxImages)
    return invalid(error, "request.n_images " + std::to_string(r.n_images) + " is over " + std::to_string(kMaxImages));
  if (!r.images) return invalid(error, "request.images is NULL but request.n_images is " + std::to_string(r.n_images));
  const auto* base = reinterpret_cast<const unsigned char*>(r.images);
  const uint32_t stride = declared_size(base);
  if (std::string why = check_declared_size("request.images[0]", stride, kImageFields); !why.empty())
    return invalid(error, std::move(why));
  if (stride > kMaxStructBytes)
    return invalid(error, "request.images[0].struct_size " + std::to_string(stride) + " is over " +
                              std::to_string(kMaxStructBytes) + " bytes: not an image struct");
  for (std::size_t i = 0; i < r.n_images; ++i) {
    const unsigned char* element = base + i * stride;
    const std::string what = "request.images[" + std::to_string(i) + "]";
    const uint32_t declared = declared_size(element);
    if (declared != stride)
      return invalid(error, what + ".struct_size " + std::to_string(declared) + " differs from request.images[0]'s " +
                                std::to_string(stride) + ": one array has one layout");
    omni_plugin_image im;
    init_image(im);
    copy_declared(element, declared, im);
    if (const int32_t st = check_image(im, what, error); st != OMNI_PLUGIN_OK) return st;
    out.images.push_back(im);
  }
  return OMNI_PLUGIN_OK;
}

int32_t check_stop(const omni_plugin_request& r, std::string& error) {
  if (r.n_stop && !r.stop) return invalid(error, "request.stop is NULL but request.n_stop is " + std::to_string(r.n_stop));
  if (r.n_stop > kMaxStops)
    return invalid(error, "request.n_stop " + std::to_string(r.n_stop) + " is over " + std::to_string(kMaxStops));
  for (std::size_t i = 0; i < r.n_stop; ++i)
    if (!r.stop[i]) return invalid(error, "request.stop[" + std::to_string(i) + "] is NULL");
  return OMNI_PLUGIN_OK;
}

}  // namespace

void init_request(omni_plugin_request& r) noexcept {
  std::memset(&r, 0, sizeof(r));
  r.struct_size = sizeof(r);
  r.max_tokens = 256;
  r.temperature = -1.0f;  // the model's defaults, filled in by the daemon
  r.top_p = -1.0f;
  r.repetition_penalty = -1.0f;
  r.top_k = OMNI_PLUGIN_TOP_K_MODEL_DEFAULT;
}

void init_image(omni_plugin_image& im) noexcept {
  std::memset(&im, 0, sizeof(im));
  im.struct_size = sizeof(im);
}

int32_t read_request(const omni_plugin_request* in, HostRequest& out, std::string& error, bool prompt_required) {
  init_request(out.request);
  out.images.clear();
  if (!in) return invalid(error, "request is NULL");
  const uint32_t declared = declared_size(in);
  if (std::string why = check_declared_size("request", declared, kRequestFields); !why.empty())
    return invalid(error, std::move(why));
  copy_declared(in, declared, out.request);
  const omni_plugin_request& r = out.request;
  if (!r.prompt && prompt_required) return invalid(error, "request.prompt is required");
  if (const int32_t st = check_sampling(r, error); st != OMNI_PLUGIN_OK) return st;
  if (const int32_t st = check_stop(r, error); st != OMNI_PLUGIN_OK) return st;
  return read_images(r, out, error);
}

void init_chat(omni_plugin_chat& c) noexcept {
  std::memset(&c, 0, sizeof(c));
  c.struct_size = sizeof(c);
  c.use_image_id = -1;
  c.enable_thinking = -1;
}

int32_t read_chat(const omni_plugin_chat* in, std::size_t n_images, HostChat& out, std::string& error) {
  out = HostChat{};
  if (!in) return invalid(error, "chat is NULL");
  const uint32_t declared = declared_size(in);
  if (std::string why = check_declared_size("chat", declared, kChatFields); !why.empty())
    return invalid(error, std::move(why));
  omni_plugin_chat c;
  init_chat(c);
  copy_declared(in, declared, c);
  constexpr std::size_t kMaxMessages = 1024, kMaxParts = 1024;
  if (c.n_messages == 0 || !c.messages) return invalid(error, "chat.messages is required (NULL or n_messages 0)");
  if (c.n_messages > kMaxMessages)
    return invalid(error, "chat.n_messages " + std::to_string(c.n_messages) + " is over " + std::to_string(kMaxMessages));
  for (std::size_t i = 0; i < c.n_messages; ++i) {
    const omni_plugin_message& m = c.messages[i];
    const std::string what = "chat.messages[" + std::to_string(i) + "]";
    ipc::Turn t;
    switch (m.role) {
      case OMNI_PLUGIN_ROLE_SYSTEM: t.role = ipc::Role::system; break;
      case OMNI_PLUGIN_ROLE_USER: t.role = ipc::Role::user; break;
      case OMNI_PLUGIN_ROLE_ASSISTANT: t.role = ipc::Role::assistant; break;
      default: return invalid(error, what + ".role " + std::to_string(m.role) + " is not an OMNI_PLUGIN_ROLE_*");
    }
    if (m.n_parts > kMaxParts)
      return invalid(error, what + ".n_parts " + std::to_string(m.n_parts) + " is over " + std::to_string(kMaxParts));
    if (m.n_parts && !m.parts) return invalid(error, what + ".parts is NULL but n_parts is " + std::to_string(m.n_parts));
    for (std::size_t k = 0; k < m.n_parts; ++k) {
      const omni_plugin_message_part& part = m.parts[k];
      if (part.text) {
        t.parts.push_back(ipc::TurnPart::of_text(part.text));
      } else if (part.image < n_images) {
        t.parts.push_back(ipc::TurnPart::of_image(int32_t(part.image)));
      } else {
        return invalid(error, what + ".parts[" + std::to_string(k) + "].image " + std::to_string(part.image) + " of " +
                                  std::to_string(n_images) + " request.images");
      }
    }
    out.turns.push_back(std::move(t));
  }
  if (c.system) out.system = c.system;
  if (c.max_slice_nums) out.options.max_slice_nums = c.max_slice_nums;
  if (c.use_image_id >= 0) out.options.use_image_id = c.use_image_id != 0;
  if (c.enable_thinking >= 0) out.options.enable_thinking = c.enable_thinking != 0;
  if (c.video_max_frames) out.options.video_max_frames = c.video_max_frames;
  if (c.video_max_packing) out.options.video_max_packing = c.video_max_packing;
  if (c.video_max_slice_nums) out.options.video_max_slice_nums = c.video_max_slice_nums;
  if (c.video_fps_milli) out.options.video_fps = c.video_fps_milli / 1000.0;
  return OMNI_PLUGIN_OK;
}

}  // namespace omni::plugin
