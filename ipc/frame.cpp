#include "ipc/frame.h"

#include <string>

namespace omni::ipc {

std::vector<uint8_t> encode_frame(std::span<const uint8_t> payload) {
  if (payload.size() > 0xffffffffu) throw IpcError(ErrorCode::too_large, "frame payload exceeds 4 GiB");
  const auto n = static_cast<uint32_t>(payload.size());
  std::vector<uint8_t> out;
  out.reserve(kFrameHeaderBytes + payload.size());
  out.push_back(static_cast<uint8_t>(n >> 24));
  out.push_back(static_cast<uint8_t>(n >> 16));
  out.push_back(static_cast<uint8_t>(n >> 8));
  out.push_back(static_cast<uint8_t>(n));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::size_t FrameReader::pending_fds() const noexcept {
  std::size_t n = 0;
  for (const auto& b : batches_) n += b.fds.size();
  return n;
}

void FrameReader::feed(std::span<const uint8_t> data, std::vector<UniqueFd> fds) {
  if (failed_) throw IpcError(ErrorCode::bad_frame, "stream already failed");
  const uint64_t begin = stream_end_;
  // Compact consumed bytes before growing.
  if (pos_ > 0 && (pos_ >= buf_.size() / 2 || pos_ > (1u << 16))) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }
  buf_.insert(buf_.end(), data.begin(), data.end());
  stream_end_ += data.size();
  if (!fds.empty()) {
    if (data.empty()) {
      failed_ = true;
      throw IpcError(ErrorCode::bad_frame, "descriptors received without data");
    }
    // One batch belongs to one frame (the last that starts in its bytes), so the limit
    // is per batch. Batches of frames read but not yet taken are bounded apart: a reader
    // that takes complete frames after every feed holds at most the batch of the frame
    // in progress and of the one starting after it.
    if (fds.size() > limits_.max_fds_per_frame) {
      failed_ = true;
      batches_.clear();  // closes them
      throw IpcError(ErrorCode::too_large, "too many descriptors in one frame: " + std::to_string(fds.size()) +
                                               " > " + std::to_string(limits_.max_fds_per_frame));
    }
    if (fds.size() + pending_fds() > 2 * std::size_t(limits_.max_fds_per_frame)) {
      failed_ = true;
      batches_.clear();
      throw IpcError(ErrorCode::too_large, "descriptors of more than two frames waiting: " +
                                               std::to_string(fds.size() + pending_fds()) + " > " +
                                               std::to_string(2 * std::size_t(limits_.max_fds_per_frame)));
    }
    batches_.push_back(FdBatch{begin, stream_end_, std::move(fds)});
  }
}

std::optional<Frame> FrameReader::next() {
  if (failed_) throw IpcError(ErrorCode::bad_frame, "stream already failed");
  const std::size_t avail = buf_.size() - pos_;
  if (avail < kFrameHeaderBytes) return std::nullopt;
  const uint8_t* h = buf_.data() + pos_;
  const uint32_t len = (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | uint32_t{h[3]};
  if (len == 0) {
    failed_ = true;
    batches_.clear();
    throw IpcError(ErrorCode::bad_frame, "zero-length frame");
  }
  if (len > limits_.max_frame_bytes) {
    failed_ = true;
    batches_.clear();
    throw IpcError(ErrorCode::too_large, "frame length " + std::to_string(len) + " exceeds limit " +
                                             std::to_string(limits_.max_frame_bytes));
  }
  if (avail < kFrameHeaderBytes + len) return std::nullopt;

  const uint64_t fs = stream_pos_;
  const uint64_t fe = fs + kFrameHeaderBytes + len;
  Frame f;
  // Attribute descriptors: a batch belongs to the last frame that starts inside
  // the chunk it arrived with.
  while (!batches_.empty()) {
    FdBatch& b = batches_.front();
    if (b.begin > fs) {
      if (b.begin < fe && b.end <= fe) {
        failed_ = true;
        batches_.clear();
        throw IpcError(ErrorCode::bad_frame, "descriptors received in the middle of a frame");
      }
      break;  // for a later frame
    }
    if (b.end <= fs) {
      failed_ = true;
      batches_.clear();
      throw IpcError(ErrorCode::bad_frame, "descriptors not attached to any frame start");
    }
    // b.begin <= fs < b.end: this frame starts in the chunk.
    if (fe < b.end) break;  // another frame starts later in the same chunk
    for (auto& fd : b.fds) f.fds.push_back(std::move(fd));
    batches_.pop_front();
    break;
  }
  f.payload.assign(h + kFrameHeaderBytes, h + kFrameHeaderBytes + len);
  pos_ += kFrameHeaderBytes + len;
  stream_pos_ = fe;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return f;
}

namespace {

// Allocation-free pre-pass over untrusted msgpack.
struct LimitVisitor : msgpack::v2::null_visitor {
  const Limits& lim;
  std::size_t len;
  uint32_t depth = 0;
  ErrorCode code = ErrorCode::ok;
  std::string why;
  LimitVisitor(const Limits& l, std::size_t n) : lim(l), len(n) {}

  bool fail(ErrorCode c, std::string w) {
    if (code == ErrorCode::ok) {
      code = c;
      why = std::move(w);
    }
    return false;
  }
  bool visit_str(const char*, uint32_t size) {
    if (size > lim.max_string_bytes)
      return fail(ErrorCode::too_large, "string of " + std::to_string(size) + " bytes exceeds limit " +
                                            std::to_string(lim.max_string_bytes));
    return true;
  }
  bool visit_bin(const char*, uint32_t size) {
    if (size > lim.max_bin_bytes)
      return fail(ErrorCode::too_large, "bin of " + std::to_string(size) + " bytes exceeds limit");
    return true;
  }
  bool visit_ext(const char*, uint32_t) { return fail(ErrorCode::bad_frame, "msgpack ext types are not accepted"); }
  bool start_array(uint32_t n) {
    if (++depth > lim.max_depth) return fail(ErrorCode::too_large, "nesting deeper than " + std::to_string(lim.max_depth));
    if (n > lim.max_array_items || n > len)
      return fail(ErrorCode::too_large, "array of " + std::to_string(n) + " items exceeds limit " +
                                            std::to_string(lim.max_array_items));
    return true;
  }
  bool end_array() {
    --depth;
    return true;
  }
  bool start_map(uint32_t n) {
    if (++depth > lim.max_depth) return fail(ErrorCode::too_large, "nesting deeper than " + std::to_string(lim.max_depth));
    if (n > lim.max_map_entries || uint64_t{n} * 2 > len)
      return fail(ErrorCode::too_large, "map of " + std::to_string(n) + " entries exceeds limit " +
                                            std::to_string(lim.max_map_entries));
    return true;
  }
  bool end_map() {
    --depth;
    return true;
  }
  void parse_error(size_t, size_t) { fail(ErrorCode::bad_frame, "malformed msgpack"); }
  void insufficient_bytes(size_t, size_t) { fail(ErrorCode::bad_frame, "truncated msgpack"); }
};

}  // namespace

msgpack::object_handle unpack_payload(std::span<const uint8_t> payload, const Limits& limits) {
  if (payload.empty()) throw IpcError(ErrorCode::bad_frame, "empty payload");
  if (payload.size() > limits.max_frame_bytes) throw IpcError(ErrorCode::too_large, "payload exceeds frame limit");
  const char* data = reinterpret_cast<const char*>(payload.data());
  // The first byte must be a map header (fixmap 0x80-0x8f, map16 0xde, map32 0xdf).
  const uint8_t b0 = payload[0];
  if (!((b0 >= 0x80 && b0 <= 0x8f) || b0 == 0xde || b0 == 0xdf))
    throw IpcError(ErrorCode::bad_frame, "payload is not a msgpack map");
  LimitVisitor v(limits, payload.size());
  std::size_t off = 0;
  bool ok = false;
  try {
    ok = msgpack::v2::parse(data, payload.size(), off, v);
  } catch (const std::exception& e) {
    throw IpcError(ErrorCode::bad_frame, std::string("malformed msgpack: ") + e.what());
  }
  if (!ok) {
    if (v.code == ErrorCode::ok) throw IpcError(ErrorCode::bad_frame, "malformed msgpack");
    throw IpcError(v.code, v.why);
  }
  if (off != payload.size()) throw IpcError(ErrorCode::bad_frame, "trailing bytes after the msgpack map");
  const msgpack::unpack_limit ul(limits.max_array_items, limits.max_map_entries, limits.max_string_bytes,
                                 limits.max_bin_bytes, 0, limits.max_depth);
  try {
    std::size_t off2 = 0;
    auto oh = msgpack::unpack(data, payload.size(), off2, nullptr, nullptr, ul);
    if (oh.get().type != msgpack::type::MAP) throw IpcError(ErrorCode::bad_frame, "payload is not a msgpack map");
    return oh;
  } catch (const IpcError&) {
    throw;
  } catch (const msgpack::size_overflow& e) {
    throw IpcError(ErrorCode::too_large, std::string("msgpack limit exceeded: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw IpcError(ErrorCode::too_large, "msgpack allocation failed");
  } catch (const std::exception& e) {
    throw IpcError(ErrorCode::bad_frame, std::string("malformed msgpack: ") + e.what());
  }
}

}  // namespace omni::ipc
