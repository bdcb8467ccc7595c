// libFuzzer target: bytes -> a host's omni_plugin_request (with its image array and
// stop strings) -> omni::plugin::read_request, and a host's omni_plugin_chat (its
// messages and their parts) -> omni::plugin::read_chat.
//
// The fuzzer plays the host: it declares arbitrary struct_size values (older, newer,
// ending inside a field, absurd) and owns exactly the memory those declarations imply,
// each struct in a heap block of its declared size, so AddressSanitizer reports any
// byte the reader takes beyond what the host declared. Pointer fields the host
// declares hold valid pointers (or NULL); a pointer field its struct_size cuts in half
// is left beyond the block, where the reader must not look. After an accepted read
// every pointer the reader hands back is touched: a mis-stepped image array or a
// half-read pointer is a crash here. Only std::bad_alloc may escape the reader.
// Run: fuzz_plugin_request -max_len=1024 -runs=200000
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../request_reader.h"

namespace {

// Larger than any struct of ours: a newer host's struct is this much bigger at most,
// so the blocks stay small while the reader still sees "newer than me".
constexpr uint32_t kNewerSlack = 64;

// A struct_size a host might declare: the plugin's own, an older host's (a multiple of
// 4 below it: every field boundary is one, and so are some insides of pointers), a newer
// host's, any byte up to that or, where the block need not hold it, anything at all.
uint32_t pick_declared(FuzzedDataProvider& in, std::size_t own, bool any) {
  const auto own32 = static_cast<uint32_t>(own);
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: return own32;
    case 1: return own32 - 4 * in.ConsumeIntegralInRange<uint32_t>(1, own32 / 4 - 1);
    case 2: return own32 + in.ConsumeIntegralInRange<uint32_t>(1, kNewerSlack);
    case 3: if (any) return in.ConsumeIntegral<uint32_t>(); [[fallthrough]];
    default: return in.ConsumeIntegralInRange<uint32_t>(0, own32 + kNewerSlack);
  }
}

// Bytes the host really has for a struct declaring `declared`: all of them, except that
// a huge declaration gets only what the reader may read (our sizeof) plus some.
std::size_t block_for(uint32_t declared, std::size_t own) {
  return std::max<std::size_t>(sizeof(uint32_t), std::min<std::size_t>(declared, own + kNewerSlack));
}

// A host fills its whole struct and then declares its size; bytes past the declared
// size are not the host's to give. So each struct is built whole here (fuzz bytes, then
// valid pointers) and only its first `block` bytes become host memory: a struct_size
// that cuts a pointer leaves the pointer's low half there, as in a real host.
template <typename T>
std::vector<unsigned char> whole(FuzzedDataProvider& in) {
  std::vector<unsigned char> v = in.ConsumeBytes<unsigned char>(sizeof(T) + kNewerSlack);
  v.resize(sizeof(T) + kNewerSlack);
  return v;
}

template <typename V>
void put(std::vector<unsigned char>& whole_struct, std::size_t off, V v) {
  std::memcpy(whole_struct.data() + off, &v, sizeof(V));
}

struct Host {
  std::vector<unsigned char> request;
  std::vector<unsigned char> images;
  std::vector<unsigned char> payload;  // image bytes
  std::vector<std::string> strings;    // prompt, paths, stop strings (reserved: no reallocation)
  std::vector<const char*> stop;
  std::vector<unsigned char> chat;
  std::vector<omni_plugin_message> messages;
  std::vector<std::vector<omni_plugin_message_part>> parts;   // one array per message
};

const char* keep(Host& h, std::string s) {
  h.strings.push_back(std::move(s));
  return h.strings.back().c_str();
}

std::vector<unsigned char> build_image(FuzzedDataProvider& in, Host& h, uint32_t declared) {
  std::vector<unsigned char> im = whole<omni_plugin_image>(in);
  put(im, offsetof(omni_plugin_image, struct_size), declared);
  put(im, offsetof(omni_plugin_image, data), in.ConsumeBool() ? nullptr : static_cast<const void*>(h.payload.data()));
  put(im, offsetof(omni_plugin_image, size), h.payload.size() - in.ConsumeIntegralInRange<std::size_t>(0, h.payload.size()));
  put(im, offsetof(omni_plugin_image, path), in.ConsumeBool() ? keep(h, in.ConsumeRandomLengthString(64)) : nullptr);
  return im;
}

void build_images(FuzzedDataProvider& in, Host& h, std::size_t n) {
  // An array's elements sit one host sizeof apart: keep that stride allocatable.
  const uint32_t stride = pick_declared(in, sizeof(omni_plugin_image), n <= 1);
  const std::size_t element = n <= 1 ? block_for(stride, sizeof(omni_plugin_image)) : stride;
  h.images.assign(std::max<std::size_t>(sizeof(uint32_t), n * element), 0);
  for (std::size_t i = 0; i < n; ++i) {
    // A later element sometimes declares another layout than images[0].
    const bool other = i > 0 && in.ConsumeIntegralInRange<int>(0, 7) == 7;
    const std::vector<unsigned char> im = build_image(in, h, other ? in.ConsumeIntegral<uint32_t>() : stride);
    std::memcpy(h.images.data() + i * element, im.data(), std::min(element, im.size()));
  }
  // images[0] declares the stride: a struct_size field exists even where it declares
  // less than itself (elements of a stride under 4 overlap it).
  std::memcpy(h.images.data(), &stride, sizeof(stride));
}

void build_request(FuzzedDataProvider& in, Host& h) {
  const uint32_t declared = pick_declared(in, sizeof(omni_plugin_request), true);
  // FuzzedDataProvider yields a range's minimum once the input runs out, so each choice
  // below is written for a short input to build a request the reader accepts.
  const std::size_t n_images = (in.ConsumeIntegralInRange<std::size_t>(0, 4) + 1) % 5;
  const std::size_t n_stop = in.ConsumeIntegralInRange<std::size_t>(0, 3);
  const bool with_images = !in.ConsumeBool(), with_stop = in.ConsumeBool();
  const bool with_prompt = in.ConsumeIntegralInRange<int>(0, 7) != 7;  // its absence is one early refusal
  h.payload = in.ConsumeBytes<unsigned char>(in.ConsumeIntegralInRange<std::size_t>(1, 64));
  if (h.payload.empty()) h.payload.push_back(0);
  if (with_images) build_images(in, h, n_images);
  for (std::size_t i = 0; i < n_stop; ++i) h.stop.push_back(in.ConsumeBool() ? keep(h, in.ConsumeRandomLengthString(16)) : nullptr);
  const char* prompt = with_prompt ? keep(h, in.ConsumeRandomLengthString(64)) : nullptr;

  // Fuzz bytes for sampling floats (NaN included), counts and ids; then the pointers
  // and, where a pointer is given, its true count.
  std::vector<unsigned char> r = whole<omni_plugin_request>(in);
  put(r, offsetof(omni_plugin_request, struct_size), declared);
  put(r, offsetof(omni_plugin_request, prompt), prompt);
  put(r, offsetof(omni_plugin_request, images), with_images ? static_cast<const void*>(h.images.data()) : nullptr);
  if (with_images) put(r, offsetof(omni_plugin_request, n_images), n_images);
  put(r, offsetof(omni_plugin_request, stop), with_stop ? static_cast<const void*>(h.stop.data()) : nullptr);
  if (with_stop) put(r, offsetof(omni_plugin_request, n_stop), n_stop);
  r.resize(block_for(declared, sizeof(omni_plugin_request)));
  r.shrink_to_fit();  // the heap block ends where the host's bytes end: ASan sees any byte past it
  h.request = std::move(r);
}

// A chat of a declared size: messages of fuzzed roles, parts text or a picture index
// (some out of range), NULL arrays now and then.
void build_chat(FuzzedDataProvider& in, Host& h) {
  const uint32_t declared = pick_declared(in, sizeof(omni_plugin_chat), true);
  const std::size_t n_messages = in.ConsumeIntegralInRange<std::size_t>(0, 4);
  h.parts.resize(n_messages);
  for (std::size_t i = 0; i < n_messages; ++i) {
    const std::size_t n_parts = in.ConsumeIntegralInRange<std::size_t>(0, 3);
    for (std::size_t k = 0; k < n_parts; ++k) {
      omni_plugin_message_part part{};
      if (in.ConsumeBool()) part.text = keep(h, in.ConsumeRandomLengthString(32));
      else part.image = in.ConsumeIntegralInRange<uint32_t>(0, 6);
      h.parts[i].push_back(part);
    }
    omni_plugin_message m{};
    m.role = in.ConsumeIntegralInRange<uint32_t>(0, 3);
    m.parts = in.ConsumeIntegralInRange<int>(0, 7) == 7 ? nullptr : h.parts[i].data();
    m.n_parts = n_parts;
    h.messages.push_back(m);
  }
  std::vector<unsigned char> c = whole<omni_plugin_chat>(in);
  put(c, offsetof(omni_plugin_chat, struct_size), declared);
  put(c, offsetof(omni_plugin_chat, messages), n_messages ? static_cast<const void*>(h.messages.data()) : nullptr);
  put(c, offsetof(omni_plugin_chat, n_messages), n_messages);
  put(c, offsetof(omni_plugin_chat, system), in.ConsumeBool() ? keep(h, in.ConsumeRandomLengthString(16)) : nullptr);
  c.resize(block_for(declared, sizeof(omni_plugin_chat)));
  c.shrink_to_fit();
  h.chat = std::move(c);
}

void use_chat(const omni::plugin::HostChat& c, std::size_t n_images, std::size_t n_messages) {
  volatile unsigned sink = 0;
  if (c.turns.size() != n_messages) __builtin_trap();
  for (const auto& t : c.turns)
    for (const auto& p : t.parts) {
      if (p.is_image() && std::size_t(p.image) >= n_images) __builtin_trap();
      sink = sink + static_cast<unsigned>(p.text.size());
    }
  sink = sink + static_cast<unsigned>(c.system.size());
}

// Touch everything an accepted request points at, and check what the reader promises.
void use(const omni::plugin::HostRequest& r) {
  volatile unsigned sink = 0;
  if (!r.request.prompt) __builtin_trap();
  sink = sink + static_cast<unsigned>(std::strlen(r.request.prompt));
  if (!std::isfinite(r.request.temperature) || !std::isfinite(r.request.top_p) ||
      !std::isfinite(r.request.repetition_penalty))
    __builtin_trap();
  for (std::size_t i = 0; i < r.request.n_stop; ++i) sink = sink + static_cast<unsigned>(std::strlen(r.request.stop[i]));
  if (r.images.size() != r.request.n_images) __builtin_trap();
  for (const omni_plugin_image& im : r.images) {
    if (im.data) {
      for (std::size_t k = 0; k < im.size; ++k) sink = sink + static_cast<const unsigned char*>(im.data)[k];
    } else if (im.path) {
      sink = sink + static_cast<unsigned>(std::strlen(im.path));
    } else {
      __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Host h;
  h.strings.reserve(64);  // c_str() pointers handed out must stay valid
  build_request(in, h);
  build_chat(in, h);
  omni::plugin::HostRequest out;
  std::string error;
  try {
    const int32_t rc = omni::plugin::read_request(reinterpret_cast<const omni_plugin_request*>(h.request.data()), out, error);
    if (rc == OMNI_PLUGIN_OK) use(out);
    else if (rc != OMNI_PLUGIN_E_INVALID_ARG || error.empty()) __builtin_trap();
    omni::plugin::HostChat chat;
    const std::size_t n_images = in.ConsumeIntegralInRange<std::size_t>(0, 4);
    const int32_t cc = omni::plugin::read_chat(reinterpret_cast<const omni_plugin_chat*>(h.chat.data()), n_images, chat, error);
    if (cc == OMNI_PLUGIN_OK) use_chat(chat, n_images, h.messages.size());
    else if (cc != OMNI_PLUGIN_E_INVALID_ARG || error.empty()) __builtin_trap();
  } catch (const std::bad_alloc&) {
  }
  return 0;
}
