#include "model/prefix_hash.h"

#include <cstring>

#include "model/chat_model.h"
#include "model/kv_pool.h"
#include "util/error.h"

namespace omni {

PrefixHasher::PrefixHasher(std::vector<Sha256> image_digests) : images_(std::move(image_digests)) {}

PrefixHasher PrefixHasher::for_prompt(const ChatPrompt& p, int32_t pad_id) {
  std::vector<Sha256> digests;
  for (const auto& im : p.images)
    digests.push_back(sha256(reinterpret_cast<const uint8_t*>(im.cache_key.data()), im.cache_key.size()));
  PrefixHasher h(std::move(digests));
  // Which picture each placeholder run belongs to: pictures' pieces in order (chat_model.h).
  std::vector<int32_t> run_image;
  for (size_t i = 0; i < p.images.size(); ++i) run_image.insert(run_image.end(), p.images[i].runs(), int32_t(i));
  if (run_image.size() != p.bounds.size())
    throw Error("prefix hash: " + std::to_string(p.bounds.size()) + " placeholder runs for " +
                std::to_string(run_image.size()) + " picture pieces");
  std::vector<int32_t> image_rows(p.images.size(), 0);
  size_t run = 0;
  for (int64_t i = 0; i < int64_t(p.ids.size()); ++i) {
    while (run < p.bounds.size() && i >= p.bounds[run].second) ++run;
    const int32_t id = p.ids[size_t(i)];
    if (pad_id >= 0 && id == pad_id) continue;
    if (run < p.bounds.size() && i >= p.bounds[run].first) {
      const int32_t im = run_image[run];
      h.rows_.push_back({id, im, image_rows[size_t(im)]++});
    } else {
      h.rows_.push_back({id, -1, 0});
    }
  }
  return h;
}

const std::vector<Sha256>& PrefixHasher::block_hashes(int64_t n) {
  if (n * kBlockTokens > rows()) throw Error("prefix hash: block " + std::to_string(n) + " is not full");
  std::vector<uint8_t> buf;
  while (int64_t(hashes_.size()) < n) {
    const int64_t b = int64_t(hashes_.size());
    buf.clear();
    if (b > 0) buf.insert(buf.end(), hashes_.back().begin(), hashes_.back().end());
    for (int64_t i = b * kBlockTokens; i < (b + 1) * kBlockTokens; ++i) {
      const RowKey& r = rows_[size_t(i)];
      uint8_t word[4];
      if (r.image < 0) {
        buf.push_back('T');
        std::memcpy(word, &r.token, 4);
        buf.insert(buf.end(), word, word + 4);
      } else {
        buf.push_back('I');
        const Sha256& d = images_.at(size_t(r.image));
        buf.insert(buf.end(), d.begin(), d.end());
        std::memcpy(word, &r.row, 4);
        buf.insert(buf.end(), word, word + 4);
      }
    }
    hashes_.push_back(sha256(buf.data(), buf.size()));
  }
  return hashes_;
}

std::vector<int64_t> PrefixHasher::image_ends() const {
  std::vector<int64_t> end(images_.size(), 0);
  for (int64_t i = 0; i < rows(); ++i)
    if (rows_[size_t(i)].image >= 0) end[size_t(rows_[size_t(i)].image)] = i + 1;
  return end;
}

}  // namespace omni
