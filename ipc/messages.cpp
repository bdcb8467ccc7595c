#include "ipc/messages.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

namespace omni::ipc {

// ---------------------------------------------------------------- names
namespace {
constexpr const char* kCodeNames[] = {"ok",       "bad_frame", "too_large", "bad_message",
                                      "unsupported_version", "busy", "not_allowed", "bad_image",
                                      "internal", "not_ready", "unavailable", "timeout"};
constexpr const char* kReasonNames[] = {"stop", "length", "cancelled", "deadline", "error"};
}  // namespace

const char* error_code_name(ErrorCode c) noexcept {
  const auto i = static_cast<std::size_t>(c);
  return i < std::size(kCodeNames) ? kCodeNames[i] : "internal";
}

ErrorCode error_code_from_name(std::string_view s) noexcept {
  for (std::size_t i = 0; i < std::size(kCodeNames); ++i)
    if (s == kCodeNames[i]) return static_cast<ErrorCode>(i);
  return ErrorCode::internal;
}

const char* image_format_name(ImageFormat f) noexcept {
  switch (f) {
    case ImageFormat::encoded: return "encoded";
    case ImageFormat::rgb: return "rgb";
    case ImageFormat::video: return "video";
  }
  return "?";
}

const char* finish_reason_name(FinishReason r) noexcept {
  const auto i = static_cast<std::size_t>(r);
  return i < std::size(kReasonNames) ? kReasonNames[i] : "error";
}

const Value* Value::find(const std::string& key) const {
  const Map* m = map();
  if (!m) return nullptr;
  for (const auto& [k, v] : *m)
    if (k == key) return &v;
  return nullptr;
}

// ---------------------------------------------------------------- encoding
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void pack_str(Packer& p, std::string_view s) {
  p.pack_str(static_cast<uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void pack_value(Packer& p, const Value& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) p.pack_nil();
        else if constexpr (std::is_same_v<T, bool>) x ? p.pack_true() : p.pack_false();
        else if constexpr (std::is_same_v<T, int64_t>) p.pack_int64(x);
        else if constexpr (std::is_same_v<T, uint64_t>) p.pack_uint64(x);
        else if constexpr (std::is_same_v<T, double>) p.pack_double(x);
        else if constexpr (std::is_same_v<T, std::string>) pack_str(p, x);
        else if constexpr (std::is_same_v<T, Value::Array>) {
          p.pack_array(static_cast<uint32_t>(x.size()));
          for (const auto& e : x) pack_value(p, e);
        } else {
          p.pack_map(static_cast<uint32_t>(x.size()));
          for (const auto& [k, e] : x) {
            pack_str(p, k);
            pack_value(p, e);
          }
        }
      },
      v.v);
}

// Map writer: counts entries, patched through a two-pass approach (collect first).
struct MapOut {
  Packer& p;
  void key(const char* k) { pack_str(p, k); }
  void u64(const char* k, uint64_t v) { key(k); p.pack_uint64(v); }
  void i64(const char* k, int64_t v) { key(k); p.pack_int64(v); }
  void f64(const char* k, double v) { key(k); p.pack_double(v); }
  void b(const char* k, bool v) { key(k); v ? p.pack_true() : p.pack_false(); }
  void s(const char* k, std::string_view v) { key(k); pack_str(p, v); }
};

void pack_limits(Packer& p, const Limits& l) {
  p.pack_map(14);
  MapOut m{p};
  m.u64("max_frame_bytes", l.max_frame_bytes);
  m.u64("max_string_bytes", l.max_string_bytes);
  m.u64("max_bin_bytes", l.max_bin_bytes);
  m.u64("max_array_items", l.max_array_items);
  m.u64("max_map_entries", l.max_map_entries);
  m.u64("max_depth", l.max_depth);
  m.u64("max_fds_per_frame", l.max_fds_per_frame);
  m.u64("max_images", l.max_images);
  m.u64("max_image_bytes", l.max_image_bytes);
  m.u64("max_image_side", l.max_image_side);
  m.u64("max_video_bytes", l.max_video_bytes);
  m.u64("max_prompt_bytes", l.max_prompt_bytes);
  m.u64("max_stop_strings", l.max_stop_strings);
  m.u64("max_new_tokens", l.max_new_tokens);
}

void pack(Packer& p, const Hello& h) {
  p.pack_map(4);
  MapOut m{p};
  m.s("type", "hello");
  m.u64("proto_major", h.proto_major);
  m.u64("proto_minor", h.proto_minor);
  m.s("client", h.client);
}
void pack(Packer& p, const HelloOk& h) {
  p.pack_map(6);
  MapOut m{p};
  m.s("type", "hello_ok");
  m.u64("proto_major", h.proto_major);
  m.u64("proto_minor", h.proto_minor);
  m.s("server_version", h.server_version);
  m.s("model", h.model);
  m.key("limits");
  pack_limits(p, h.limits);
}
void pack(Packer& p, const Generate& g) {
  const bool conv = !g.messages.empty();
  const auto& o = g.options;
  p.pack_map(8 + uint32_t(!g.system.empty()) + uint32_t(o.max_slice_nums.has_value()) +
             uint32_t(o.use_image_id.has_value()) + uint32_t(o.enable_thinking.has_value()) +
             uint32_t(o.video_fps.has_value()) + uint32_t(o.video_max_frames.has_value()) +
             uint32_t(o.video_max_packing.has_value()) + uint32_t(o.video_max_slice_nums.has_value()));
  MapOut m{p};
  m.s("type", "generate");
  m.u64("id", g.id);
  if (conv) {
    m.key("messages");
    p.pack_array(static_cast<uint32_t>(g.messages.size()));
    for (const auto& t : g.messages) {
      p.pack_map(2);
      m.s("role", role_name(t.role));
      m.key("content");
      p.pack_array(static_cast<uint32_t>(t.parts.size()));
      for (const auto& part : t.parts) {
        p.pack_map(1);
        if (part.is_image()) m.u64(part.video ? "video" : "image", uint64_t(part.image));
        else m.s("text", part.text);
      }
    }
  } else {
    m.s("prompt", g.prompt);
  }
  if (!g.system.empty()) m.s("system", g.system);
  if (o.max_slice_nums) m.u64("max_slice_nums", *o.max_slice_nums);
  if (o.use_image_id) m.b("use_image_id", *o.use_image_id);
  if (o.enable_thinking) m.b("enable_thinking", *o.enable_thinking);
  if (o.video_fps) m.f64("video_fps", *o.video_fps);
  if (o.video_max_frames) m.u64("video_max_frames", *o.video_max_frames);
  if (o.video_max_packing) m.u64("video_max_packing", *o.video_max_packing);
  if (o.video_max_slice_nums) m.u64("video_max_slice_nums", *o.video_max_slice_nums);
  m.key("images");
  p.pack_array(static_cast<uint32_t>(g.images.size()));
  for (const auto& im : g.images) {
    const bool rgb = im.format == ImageFormat::rgb;
    p.pack_map(rgb ? 5 : 3);
    m.u64("fd", im.fd_index);
    m.u64("size", im.size);
    m.s("format", image_format_name(im.format));
    if (rgb) {
      m.u64("width", im.width);
      m.u64("height", im.height);
    }
  }
  m.u64("max_tokens", g.max_tokens);
  m.key("sampling");
  const auto& sp = g.sampling;
  p.pack_map(2 + uint32_t(sp.temperature.has_value()) + uint32_t(sp.top_k.has_value()) +
             uint32_t(sp.top_p.has_value()) + uint32_t(sp.repetition_penalty.has_value()));
  if (sp.temperature) m.f64("temperature", *sp.temperature);
  if (sp.top_k) m.u64("top_k", *sp.top_k);
  if (sp.top_p) m.f64("top_p", *sp.top_p);
  if (sp.repetition_penalty) m.f64("repetition_penalty", *sp.repetition_penalty);
  m.u64("seed", g.sampling.seed);
  m.b("greedy", g.sampling.greedy);
  m.key("stop");
  p.pack_array(static_cast<uint32_t>(g.stop.size()));
  for (const auto& s : g.stop) pack_str(p, s);
  m.u64("deadline_ms", g.deadline_ms);
}
void pack(Packer& p, const Token& t) {
  p.pack_map(4);
  MapOut m{p};
  m.s("type", "token");
  m.u64("id", t.id);
  m.s("text", t.text);
  m.i64("token", t.token);
}
void pack(Packer& p, const Done& d) {
  const bool err = d.reason == FinishReason::error;
  p.pack_map(err ? 9 : 7);
  MapOut m{p};
  m.s("type", "done");
  m.u64("id", d.id);
  m.s("reason", finish_reason_name(d.reason));
  m.u64("prompt_tokens", d.prompt_tokens);
  m.u64("completion_tokens", d.completion_tokens);
  m.u64("image_tokens", d.image_tokens);
  m.key("timings");
  p.pack_map(4);
  m.f64("queue_ms", d.timings.queue_ms);
  m.f64("prefill_ms", d.timings.prefill_ms);
  m.f64("decode_ms", d.timings.decode_ms);
  m.f64("total_ms", d.timings.total_ms);
  if (err) {
    m.s("error_code", error_code_name(d.error_code == ErrorCode::ok ? ErrorCode::internal : d.error_code));
    m.s("error_message", d.error_message);
  }
}
void pack(Packer& p, const Cancel& c) {
  p.pack_map(2);
  MapOut m{p};
  m.s("type", "cancel");
  m.u64("id", c.id);
}
void pack(Packer& p, const StatusRequest& s) {
  p.pack_map(2);
  MapOut m{p};
  m.s("type", "status_request");
  m.u64("id", s.id);
}
void pack(Packer& p, const Status& s) {
  p.pack_map(7);
  MapOut m{p};
  m.s("type", "status");
  m.u64("id", s.id);
  m.s("model", s.model);
  m.u64("queue_depth", s.queue_depth);
  m.u64("active_requests", s.active_requests);
  m.f64("tokens_per_s", s.tokens_per_s);
  m.key("details");
  pack_value(p, s.details.is_nil() ? Value(Value::Map{}) : s.details);
}
void pack(Packer& p, const ErrorMsg& e) {
  p.pack_map(4);
  MapOut m{p};
  m.s("type", "error");
  m.u64("id", e.id);
  m.s("code", error_code_name(e.code));
  m.s("message", e.message);
}

}  // namespace

const char* message_type(const Message& m) noexcept {
  static constexpr const char* kNames[] = {"hello", "hello_ok", "generate", "token", "done",
                                           "cancel", "status_request", "status", "error"};
  return kNames[m.index()];
}

std::vector<uint8_t> encode_payload(const Message& msg) {
  msgpack::sbuffer buf;
  Packer p(buf);
  std::visit([&](const auto& x) { pack(p, x); }, msg);
  const auto* d = reinterpret_cast<const uint8_t*>(buf.data());
  return std::vector<uint8_t>(d, d + buf.size());
}

std::vector<uint8_t> encode_message(const Message& msg) {
  msgpack::sbuffer buf;
  Packer p(buf);
  std::visit([&](const auto& x) { pack(p, x); }, msg);
  return encode_frame(std::span(reinterpret_cast<const uint8_t*>(buf.data()), buf.size()));
}

// ---------------------------------------------------------------- decoding
namespace {

[[noreturn]] void bad(const std::string& field, const std::string& what) {
  throw IpcError(ErrorCode::bad_message, field + ": " + what);
}

// msgpack-c leaves ptr null for an empty string; a view compares it without handing
// null to memcmp (undefined even for size 0).
std::string_view key_of(const msgpack::object& k) {
  return k.via.str.size ? std::string_view(k.via.str.ptr, k.via.str.size) : std::string_view();
}

class Fields {
 public:
  Fields(const msgpack::object& o, std::string ctx) : ctx_(std::move(ctx)) {
    if (o.type != msgpack::type::MAP) bad(ctx_, "expected map");
    map_ = &o.via.map;
    for (uint32_t i = 0; i < map_->size; ++i) {
      const auto& k = map_->ptr[i].key;
      if (k.type != msgpack::type::STR) continue;  // non-string keys are ignored
      for (uint32_t j = 0; j < i; ++j) {
        const auto& k2 = map_->ptr[j].key;
        if (k2.type == msgpack::type::STR && key_of(k2) == key_of(k))
          bad(ctx_ + "." + std::string(k.via.str.ptr, k.via.str.size), "duplicate key");
      }
    }
  }
  std::string name(const char* k) const { return ctx_ + "." + k; }

  const msgpack::object* get(const char* key) const {
    const std::size_t n = std::strlen(key);
    for (uint32_t i = 0; i < map_->size; ++i) {
      const auto& k = map_->ptr[i].key;
      if (k.type == msgpack::type::STR && key_of(k) == std::string_view(key, n))
        return &map_->ptr[i].val;
    }
    return nullptr;
  }
  const msgpack::object& req(const char* key) const {
    const auto* o = get(key);
    if (!o) bad(name(key), "missing required field");
    return *o;
  }

  uint64_t u64(const msgpack::object& o, const char* key) const {
    if (o.type != msgpack::type::POSITIVE_INTEGER) bad(name(key), "expected unsigned integer");
    return o.via.u64;
  }
  uint64_t u64(const char* key) const { return u64(req(key), key); }
  uint64_t u64(const char* key, uint64_t def) const {
    const auto* o = get(key);
    return o ? u64(*o, key) : def;
  }
  uint32_t u32(const char* key, std::optional<uint32_t> def = std::nullopt) const {
    const auto* o = get(key);
    if (!o) {
      if (!def) bad(name(key), "missing required field");
      return *def;
    }
    const uint64_t v = u64(*o, key);
    if (v > 0xffffffffu) bad(name(key), "value out of range");
    return static_cast<uint32_t>(v);
  }
  int64_t i64(const char* key, int64_t def) const {
    const auto* o = get(key);
    if (!o) return def;
    if (o->type == msgpack::type::NEGATIVE_INTEGER) return o->via.i64;
    if (o->type == msgpack::type::POSITIVE_INTEGER) {
      if (o->via.u64 > static_cast<uint64_t>(INT64_MAX)) bad(name(key), "value out of range");
      return static_cast<int64_t>(o->via.u64);
    }
    bad(name(key), "expected integer");
  }
  double f64(const char* key, double def) const {
    const auto* o = get(key);
    if (!o) return def;
    double v = 0;
    switch (o->type) {
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64: v = o->via.f64; break;
      case msgpack::type::POSITIVE_INTEGER: v = static_cast<double>(o->via.u64); break;
      case msgpack::type::NEGATIVE_INTEGER: v = static_cast<double>(o->via.i64); break;
      default: bad(name(key), "expected number");
    }
    if (!std::isfinite(v)) bad(name(key), "expected finite number");
    return v;
  }
  bool boolean(const char* key, bool def) const {
    const auto* o = get(key);
    if (!o) return def;
    if (o->type != msgpack::type::BOOLEAN) bad(name(key), "expected boolean");
    return o->via.boolean;
  }
  static std::string as_str(const msgpack::object& o, const std::string& field, std::size_t max) {
    if (o.type != msgpack::type::STR) bad(field, "expected string");
    if (o.via.str.size > max) throw IpcError(ErrorCode::too_large, field + ": string too long");
    return std::string(o.via.str.ptr, o.via.str.size);
  }
  std::string str(const char* key, std::size_t max) const { return as_str(req(key), name(key), max); }
  std::string str(const char* key, std::size_t max, const std::string& def) const {
    const auto* o = get(key);
    return o ? as_str(*o, name(key), max) : def;
  }
  const msgpack::object_array* array(const char* key) const {  // optional
    const auto* o = get(key);
    if (!o) return nullptr;
    if (o->type != msgpack::type::ARRAY) bad(name(key), "expected array");
    return &o->via.array;
  }

 private:
  std::string ctx_;
  const msgpack::object_map* map_ = nullptr;
};

Value to_value(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return Value();
    case msgpack::type::BOOLEAN: return Value(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER: return Value(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return Value(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return Value(o.via.f64);
    case msgpack::type::STR: return Value(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN: return Value(std::string(o.via.bin.ptr, o.via.bin.size));
    case msgpack::type::ARRAY: {
      Value::Array a;
      a.reserve(o.via.array.size);
      for (uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(to_value(o.via.array.ptr[i]));
      return Value(std::move(a));
    }
    case msgpack::type::MAP: {
      Value::Map m;
      m.reserve(o.via.map.size);
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& k = o.via.map.ptr[i].key;
        if (k.type != msgpack::type::STR) continue;
        m.emplace_back(std::string(k.via.str.ptr, k.via.str.size), to_value(o.via.map.ptr[i].val));
      }
      return Value(std::move(m));
    }
    default: return Value();
  }
}

uint64_t req_id(const Fields& f, bool nonzero) {
  const uint64_t id = f.u64("id");
  if (nonzero && id == 0) bad(f.name("id"), "must be non-zero");
  return id;
}

Limits decode_limits(const msgpack::object& o) {
  Fields f(o, "hello_ok.limits");
  Limits d;
  Limits l;
  l.max_frame_bytes = f.u32("max_frame_bytes", d.max_frame_bytes);
  l.max_string_bytes = f.u32("max_string_bytes", d.max_string_bytes);
  l.max_bin_bytes = f.u32("max_bin_bytes", d.max_bin_bytes);
  l.max_array_items = f.u32("max_array_items", d.max_array_items);
  l.max_map_entries = f.u32("max_map_entries", d.max_map_entries);
  l.max_depth = f.u32("max_depth", d.max_depth);
  l.max_fds_per_frame = f.u32("max_fds_per_frame", d.max_fds_per_frame);
  l.max_images = f.u32("max_images", d.max_images);
  l.max_image_bytes = f.u64("max_image_bytes", d.max_image_bytes);
  l.max_image_side = f.u32("max_image_side", d.max_image_side);
  l.max_video_bytes = f.u64("max_video_bytes", d.max_video_bytes);
  l.max_prompt_bytes = f.u32("max_prompt_bytes", d.max_prompt_bytes);
  l.max_stop_strings = f.u32("max_stop_strings", d.max_stop_strings);
  l.max_new_tokens = f.u32("max_new_tokens", d.max_new_tokens);
  return l;
}

Generate decode_generate(const Fields& f, std::size_t nfds, const Limits& lim, uint64_t* rid) {
  Generate g;
  g.id = req_id(f, true);
  if (rid) *rid = g.id;
  if (const auto* a = f.array("messages")) {
    if (f.get("prompt")) bad(f.name("prompt"), "not allowed with messages");
    if (a->size == 0) bad("generate.messages", "empty");
    if (a->size > kMaxTurns) throw IpcError(ErrorCode::too_large, "generate.messages: more than " + std::to_string(kMaxTurns) + " turns");
    uint64_t text_bytes = 0;
    for (uint32_t i = 0; i < a->size; ++i) {
      const std::string ctx = "generate.messages[" + std::to_string(i) + "]";
      Fields tf(a->ptr[i], ctx);
      Turn t;
      const std::string role = tf.str("role", 16);
      if (auto r = role_from_name(role)) t.role = *r;
      else bad(tf.name("role"), "expected \"system\", \"user\" or \"assistant\"");
      const auto* parts = tf.array("content");
      if (!parts) bad(tf.name("content"), "missing required field");
      if (parts->size > kMaxPartsPerTurn)
        throw IpcError(ErrorCode::too_large, tf.name("content") + ": more than " + std::to_string(kMaxPartsPerTurn) + " parts");
      for (uint32_t k = 0; k < parts->size; ++k) {
        Fields pf(parts->ptr[k], ctx + ".content[" + std::to_string(k) + "]");
        const bool has_text = pf.get("text") != nullptr, has_image = pf.get("image") != nullptr,
                   has_video = pf.get("video") != nullptr;
        if (int(has_text) + int(has_image) + int(has_video) != 1)
          bad(pf.name("text"), "a part has exactly one of \"text\", \"image\" and \"video\"");
        if (has_text) {
          t.parts.push_back(TurnPart::of_text(pf.str("text", lim.max_prompt_bytes)));
          text_bytes += t.parts.back().text.size();
          if (text_bytes > lim.max_prompt_bytes)
            throw IpcError(ErrorCode::too_large, pf.name("text") + ": the messages' text exceeds max_prompt_bytes");
        } else {
          const char* key = has_video ? "video" : "image";
          const uint32_t idx = pf.u32(key);
          if (idx >= lim.max_images) bad(pf.name(key), "index out of range");
          t.parts.push_back(has_video ? TurnPart::of_video(int32_t(idx)) : TurnPart::of_image(int32_t(idx)));
        }
      }
      g.messages.push_back(std::move(t));
    }
  } else {
    g.prompt = f.str("prompt", lim.max_prompt_bytes);
  }
  g.system = f.str("system", lim.max_prompt_bytes, "");
  if (f.get("max_slice_nums")) {
    g.options.max_slice_nums = f.u32("max_slice_nums");
    if (*g.options.max_slice_nums < 1 || *g.options.max_slice_nums > kMaxSliceNums)
      bad(f.name("max_slice_nums"), "must be in 1.." + std::to_string(kMaxSliceNums));
  }
  if (f.get("use_image_id")) g.options.use_image_id = f.boolean("use_image_id", false);
  if (f.get("enable_thinking")) g.options.enable_thinking = f.boolean("enable_thinking", false);
  if (f.get("video_fps")) g.options.video_fps = f.f64("video_fps", 0);
  if (f.get("video_max_frames")) g.options.video_max_frames = f.u32("video_max_frames");
  if (f.get("video_max_packing")) g.options.video_max_packing = f.u32("video_max_packing");
  if (f.get("video_max_slice_nums")) g.options.video_max_slice_nums = f.u32("video_max_slice_nums");
  if (const auto* a = f.array("images")) {
    if (a->size > lim.max_images)
      throw IpcError(ErrorCode::too_large, "generate.images: more than " + std::to_string(lim.max_images) + " images");
    std::vector<bool> used(nfds, false);
    for (uint32_t i = 0; i < a->size; ++i) {
      const std::string ctx = "generate.images[" + std::to_string(i) + "]";
      Fields im(a->ptr[i], ctx);
      ImageRef r;
      r.fd_index = im.u32("fd");
      if (r.fd_index >= nfds) bad(im.name("fd"), "index " + std::to_string(r.fd_index) + " but frame carries " + std::to_string(nfds) + " descriptors");
      if (used[r.fd_index]) bad(im.name("fd"), "descriptor referenced twice");
      used[r.fd_index] = true;
      r.size = im.u64("size");
      if (r.size == 0) bad(im.name("size"), "must be non-zero");
      const std::string fmt = im.str("format", 16);
      const bool video = fmt == "video";
      if (r.size > (video ? lim.max_video_bytes : lim.max_image_bytes))
        throw IpcError(ErrorCode::too_large, im.name("size") + (video ? ": video exceeds max_video_bytes"
                                                                      : ": image exceeds max_image_bytes"));
      if (video) {
        r.format = ImageFormat::video;
      } else if (fmt == "encoded") {
        r.format = ImageFormat::encoded;
      } else if (fmt == "rgb") {
        r.format = ImageFormat::rgb;
        r.width = im.u32("width");
        r.height = im.u32("height");
        if (r.width == 0 || r.width > lim.max_image_side) bad(im.name("width"), "out of range");
        if (r.height == 0 || r.height > lim.max_image_side) bad(im.name("height"), "out of range");
        if (uint64_t{r.width} * r.height * 3 != r.size) bad(im.name("size"), "must equal width*height*3 for rgb");
      } else {
        bad(im.name("format"), "expected \"encoded\", \"rgb\" or \"video\"");
      }
      g.images.push_back(r);
    }
  }
  if (g.images.size() != nfds) bad("generate.images", "frame carries descriptors not referenced by any image");
  g.max_tokens = f.u32("max_tokens", 256);
  if (g.max_tokens == 0 || g.max_tokens > lim.max_new_tokens)
    bad(f.name("max_tokens"), "must be in 1.." + std::to_string(lim.max_new_tokens));
  if (const auto* s = f.get("sampling")) {
    Fields sf(*s, "generate.sampling");
    auto& sp = g.sampling;
    // Absent fields stay unset: the server fills in the model's defaults.
    if (sf.get("temperature")) {
      sp.temperature = sf.f64("temperature", 0);
      if (!(*sp.temperature >= 0 && *sp.temperature <= 100)) bad(sf.name("temperature"), "must be in [0, 100]");
    }
    if (sf.get("top_k")) sp.top_k = sf.u32("top_k", 0);
    if (sf.get("top_p")) {
      sp.top_p = sf.f64("top_p", 1);
      if (!(*sp.top_p > 0 && *sp.top_p <= 1)) bad(sf.name("top_p"), "must be in (0, 1]");
    }
    if (sf.get("repetition_penalty")) {
      sp.repetition_penalty = sf.f64("repetition_penalty", 1);
      if (!(*sp.repetition_penalty > 0 && *sp.repetition_penalty <= 100))
        bad(sf.name("repetition_penalty"), "must be in (0, 100]");
    }
    sp.seed = sf.u64("seed", sp.seed);
    sp.greedy = sf.boolean("greedy", sp.greedy);
  }
  if (const auto* a = f.array("stop")) {
    if (a->size > lim.max_stop_strings) throw IpcError(ErrorCode::too_large, "generate.stop: too many stop strings");
    for (uint32_t i = 0; i < a->size; ++i) {
      auto s = Fields::as_str(a->ptr[i], "generate.stop[" + std::to_string(i) + "]", 1024);
      if (s.empty()) bad("generate.stop[" + std::to_string(i) + "]", "empty stop string");
      g.stop.push_back(std::move(s));
    }
  }
  g.deadline_ms = f.u32("deadline_ms", 0);
  // The conversation's shape, so a client learns of a bad picture reference or a
  // misplaced system turn from the error it gets here, naming the field.
  check_conversation(g);
  return g;
}

}  // namespace

std::vector<bool> video_attachments(const Generate& g) {
  std::vector<bool> v(g.images.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = g.images[i].format == ImageFormat::video;
  return v;
}

void check_conversation(const Generate& g) {
  const std::vector<Turn> turns = g.messages.empty() ? single_turn(g.images.size(), g.prompt, video_attachments(g))
                                                     : g.messages;
  try {
    validate_conversation(turns, g.images.size(), g.options);
  } catch (const IpcError& e) {
    throw IpcError(e.code(), std::string("generate.") + e.what());
  }
  for (size_t t = 0; t < turns.size(); ++t)
    for (size_t k = 0; k < turns[t].parts.size(); ++k) {
      const TurnPart& part = turns[t].parts[k];
      if (!part.is_image()) continue;
      const bool is_video = g.images[size_t(part.image)].format == ImageFormat::video;
      if (part.video != is_video)
        bad("generate.messages[" + std::to_string(t) + "].content[" + std::to_string(k) + "]",
            std::string("images[") + std::to_string(part.image) + "] is " + (is_video ? "a video" : "a picture") +
                ": refer to it with {\"" + (is_video ? "video" : "image") + "\": " + std::to_string(part.image) + "}");
    }
  if (!g.system.empty() && !g.messages.empty() && g.messages.front().role == Role::system)
    bad("generate.system", "the messages already start with a system turn");
}

std::vector<Turn> generate_turns(const Generate& g) {
  std::vector<Turn> turns = g.messages.empty() ? single_turn(g.images.size(), g.prompt, video_attachments(g)) : g.messages;
  if (!g.system.empty()) turns.insert(turns.begin(), Turn{Role::system, {TurnPart::of_text(g.system)}});
  return turns;
}

Message decode_payload(std::span<const uint8_t> payload, std::size_t nfds, const Limits& lim, uint64_t* rid) {
  if (rid) *rid = 0;
  auto oh = unpack_payload(payload, lim);
  Fields f(oh.get(), "message");
  const std::string type = f.str("type", 64);
  const Fields m(oh.get(), type);
  if (type != "generate" && nfds != 0)
    bad(type, "descriptors are only allowed with generate");
  // Request id first, so that the error reply can be addressed; only for the types that
  // carry one from a client: an unknown type's "id" names no request (docs/protocol.md §3).
  static constexpr std::string_view kWithId[] = {"generate", "cancel", "status_request"};   // a client's
  const bool with_id = std::find(std::begin(kWithId), std::end(kWithId), type) != std::end(kWithId);
  if (rid && with_id) {
    if (const auto* o = m.get("id"); o && o->type == msgpack::type::POSITIVE_INTEGER) *rid = o->via.u64;
  }
  if (type == "hello") {
    Hello h;
    h.proto_major = m.u32("proto_major");
    h.proto_minor = m.u32("proto_minor");
    h.client = m.str("client", 256, "");
    return h;
  }
  if (type == "hello_ok") {
    HelloOk h;
    h.proto_major = m.u32("proto_major");
    h.proto_minor = m.u32("proto_minor");
    h.server_version = m.str("server_version", 256);
    h.model = m.str("model", 1024);
    if (const auto* l = m.get("limits")) h.limits = decode_limits(*l);
    return h;
  }
  if (type == "generate") return decode_generate(m, nfds, lim, rid);
  if (type == "token") {
    Token t;
    t.id = req_id(m, true);
    t.text = m.str("text", lim.max_string_bytes);
    t.token = m.i64("token", -1);
    return t;
  }
  if (type == "done") {
    Done d;
    d.id = req_id(m, true);
    const std::string r = m.str("reason", 32);
    bool found = false;
    for (int i = 0; i <= static_cast<int>(FinishReason::error); ++i)
      if (r == kReasonNames[i]) {
        d.reason = static_cast<FinishReason>(i);
        found = true;
      }
    if (!found) bad(m.name("reason"), "unknown finish reason \"" + r + "\"");
    d.prompt_tokens = m.u32("prompt_tokens", 0);
    d.completion_tokens = m.u32("completion_tokens", 0);
    d.image_tokens = m.u32("image_tokens", 0);
    if (const auto* t = m.get("timings")) {
      Fields tf(*t, "done.timings");
      d.timings.queue_ms = tf.f64("queue_ms", 0);
      d.timings.prefill_ms = tf.f64("prefill_ms", 0);
      d.timings.decode_ms = tf.f64("decode_ms", 0);
      d.timings.total_ms = tf.f64("total_ms", 0);
    }
    if (d.reason == FinishReason::error) d.error_code = error_code_from_name(m.str("error_code", 64, "internal"));
    d.error_message = m.str("error_message", lim.max_string_bytes, "");
    return d;
  }
  if (type == "cancel") return Cancel{req_id(m, true)};
  if (type == "status_request") return StatusRequest{m.u64("id", 0)};
  if (type == "status") {
    Status s;
    s.id = m.u64("id", 0);
    s.model = m.str("model", 1024);
    s.queue_depth = m.u32("queue_depth");
    s.active_requests = m.u32("active_requests");
    s.tokens_per_s = m.f64("tokens_per_s", 0);
    if (const auto* d = m.get("details")) s.details = to_value(*d);
    return s;
  }
  if (type == "error") {
    ErrorMsg e;
    e.id = m.u64("id", 0);
    e.code = error_code_from_name(m.str("code", 64));
    e.message = m.str("message", lim.max_string_bytes);
    return e;
  }
  throw IpcError(ErrorCode::bad_message, "message.type: unknown message type \"" + type + "\"");
}

Message decode_message(const Frame& frame, const Limits& limits, uint64_t* request_id) {
  return decode_payload(frame.payload, frame.fds.size(), limits, request_id);
}

}  // namespace omni::ipc
