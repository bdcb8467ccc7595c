#pragma once
// Resampler outputs of recently seen pictures, keyed by the SHA-256 of the encoded
// bytes plus the slicing settings, so a second question about the same picture does
// not run the vision tower again. Least recently used entries go first once the byte
// bound is reached. Thread-safe: the daemon's clients share one cache.
#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace omni {

struct VisionEmbeds {
  int pieces = 0;
  int rows_per_piece = 0;   // query_num
  int width = 0;            // LLM hidden size
  std::vector<float> data;  // [pieces * rows_per_piece, width]
};

class VisionCache {
 public:
  explicit VisionCache(size_t max_bytes) : max_bytes_(max_bytes) {}
  std::shared_ptr<const VisionEmbeds> find(const std::string& key);
  void insert(const std::string& key, std::shared_ptr<const VisionEmbeds> value);
  size_t bytes() const;
  size_t entries() const;
  size_t hits() const { return hits_; }
  size_t misses() const { return misses_; }

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const VisionEmbeds>>;
  mutable std::mutex mu_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::atomic<size_t> hits_{0}, misses_{0};   // read by status without the lock
  std::list<Entry> lru_;   // front: most recent
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace omni
