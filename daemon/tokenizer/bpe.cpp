#include "tokenizer/bpe.h"

#include <queue>

#include "tokenizer/byte_level.h"
#include "util/error.h"

namespace omni::tok {

namespace {
constexpr size_t kCacheLimit = 200000;  // entries; the cache is dropped when it grows past this
constexpr size_t kCacheMaxWord = 256;   // longer words are rare and not worth keeping

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
}  // namespace

Bpe::Bpe(Bpe&& o) noexcept
    : tokens_(std::move(o.tokens_)),
      bytes_to_id_(std::move(o.bytes_to_id_)),
      byte_id_(o.byte_id_),
      merges_(std::move(o.merges_)),
      ignore_merges_(o.ignore_merges_) {}

Bpe Bpe::from_json(const nlohmann::json& m, const std::string& file) {
  if (!m.is_object()) throw omni::Error(file + ": \"model\" is missing or not an object");
  if (!m.contains("type") || !m["type"].is_string())
    throw omni::Error(file + ": \"model\" has no \"type\"");
  const std::string type = m["type"];
  if (type != "BPE") throw omni::Error(file + ": unsupported model type \"" + type + "\" (supported: BPE)");
  if (m.contains("dropout") && !m["dropout"].is_null()) throw omni::Error(file + ": BPE dropout is not supported");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(k) && m[k].is_string() && !m[k].get<std::string>().empty())
      throw omni::Error(file + ": BPE " + k + " is not supported");
  }
  if (m.value("byte_fallback", false)) throw omni::Error(file + ": BPE byte_fallback is not supported");

  Bpe b;
  b.ignore_merges_ = m.value("ignore_merges", false);
  if (!m.contains("vocab") || !m["vocab"].is_object()) throw omni::Error(file + ": model.vocab is missing or not an object");
  const auto& vocab = m["vocab"];
  b.tokens_.resize(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) throw omni::Error(file + ": model.vocab[\"" + it.key() + "\"] is not an integer id");
    const auto id = it.value().get<int64_t>();
    if (id < 0 || id > INT32_MAX) throw omni::Error(file + ": model.vocab[\"" + it.key() + "\"] has invalid id " + std::to_string(id));
    if (static_cast<size_t>(id) >= b.tokens_.size()) b.tokens_.resize(id + 1);
    b.tokens_[id] = it.key();
    auto bytes = byte_level_to_bytes(it.key());
    if (!bytes) continue;  // not a byte-level spelling (e.g. "<unk>"): never produced by merges
    b.bytes_to_id_.emplace(std::move(*bytes), static_cast<int32_t>(id));
  }
  for (int c = 0; c < 256; ++c) {
    const auto it = b.bytes_to_id_.find(std::string(1, static_cast<char>(c)));
    if (it == b.bytes_to_id_.end())
      throw omni::Error(file + ": model.vocab has no entry for byte " + std::to_string(c) + " (\"" +
                        bytes_to_byte_level(std::string(1, static_cast<char>(c))) + "\"); byte-level BPE needs all 256");
    b.byte_id_[c] = it->second;
  }

  if (!m.contains("merges") || !m["merges"].is_array()) throw omni::Error(file + ": model.merges is missing or not an array");
  const auto& merges = m["merges"];
  b.merges_.reserve(merges.size());
  int32_t rank = 0;
  for (const auto& e : merges) {
    std::string left, right;
    if (e.is_string()) {  // older format: "left right"
      const std::string s = e;
      const auto sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() || s.find(' ', sp + 1) != std::string::npos)
        throw omni::Error(file + ": model.merges[" + std::to_string(rank) + "] \"" + s + "\" is not two tokens separated by one space");
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      left = e[0];
      right = e[1];
    } else {
      throw omni::Error(file + ": model.merges[" + std::to_string(rank) + "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
    const auto lb = byte_level_to_bytes(left), rb = byte_level_to_bytes(right);
    auto find = [&](const std::optional<std::string>& bytes) -> int32_t {
      if (!bytes) return -1;
      const auto it = b.bytes_to_id_.find(*bytes);
      return it == b.bytes_to_id_.end() ? -1 : it->second;
    };
    const int32_t l = find(lb), r = find(rb);
    const int32_t merged = lb && rb ? find(*lb + *rb) : -1;
    if (l < 0 || r < 0 || merged < 0)
      throw omni::Error(file + ": model.merges[" + std::to_string(rank) + "] (\"" + left + "\", \"" + right +
                        "\") uses a token missing from model.vocab" + (l >= 0 && r >= 0 ? " (the merged token)" : ""));
    b.merges_.try_emplace(pair_key(l, r), rank, merged);  // the first (best) rank wins, as in HF
    ++rank;
  }
  return b;
}

void Bpe::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() == 1) { out.push_back(byte_id_[static_cast<unsigned char>(word[0])]); return; }
  if (ignore_merges_) {  // a word that is itself a vocabulary entry is taken whole
    const auto it = bytes_to_id_.find(word);
    if (it != bytes_to_id_.end()) { out.push_back(it->second); return; }
  }
  const bool cacheable = word.size() <= kCacheMaxWord;
  if (cacheable) {
    std::lock_guard lock(cache_mu_);
    const auto it = cache_.find(word);
    if (it != cache_.end()) { out.insert(out.end(), it->second.begin(), it->second.end()); return; }
  }
  const size_t start = out.size();
  merge(word, out);
  if (cacheable) {
    std::lock_guard lock(cache_mu_);
    if (cache_.size() >= kCacheLimit) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + start, out.end()));
  }
}

// The merge loop of HF's word.rs: repeatedly apply the best-ranked adjacent pair,
// leftmost first among equals, through a priority queue over a linked list.
void Bpe::merge(std::string_view word, std::vector<int32_t>& out) const {
  struct Sym { int32_t id; int32_t prev, next; bool alive; };
  struct Cand {
    int32_t rank, pos, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const int32_t n = static_cast<int32_t>(word.size());
  std::vector<Sym> sym(n);
  for (int32_t i = 0; i < n; ++i) sym[i] = {byte_id_[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> q;
  auto push = [&](int32_t pos) {
    const int32_t nx = sym[pos].next;
    if (nx < 0) return;
    const auto it = merges_.find(pair_key(sym[pos].id, sym[nx].id));
    if (it != merges_.end()) q.push({it->second.first, pos, it->second.second});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!q.empty()) {
    const Cand c = q.top();
    q.pop();
    Sym& s = sym[c.pos];
    if (!s.alive || s.next < 0) continue;
    const auto it = merges_.find(pair_key(s.id, sym[s.next].id));
    if (it == merges_.end() || it->second.second != c.merged) continue;  // stale entry
    Sym& r = sym[s.next];
    r.alive = false;
    s.id = c.merged;
    s.next = r.next;
    if (s.next >= 0) sym[s.next].prev = c.pos;
    if (s.prev >= 0) push(s.prev);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace omni::tok
