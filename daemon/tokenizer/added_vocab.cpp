#include "tokenizer/added_vocab.h"

#include <algorithm>

#include "util/error.h"

namespace omni::tok {

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
}  // namespace

AddedVocab AddedVocab::from_json(const nlohmann::json& arr, const std::string& file) {
  AddedVocab v;
  if (arr.is_null()) return v;
  if (!arr.is_array()) throw omni::Error(file + ": \"added_tokens\" is not an array");
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto& e = arr[i];
    const std::string where = file + ": added_tokens[" + std::to_string(i) + "]";
    if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() || !e.contains("content") ||
        !e["content"].is_string())
      throw omni::Error(where + " lacks an integer \"id\" or a string \"content\"");
    AddedToken t;
    t.content = e["content"];
    const auto id = e["id"].get<int64_t>();
    if (id < 0 || id > INT32_MAX) throw omni::Error(where + " has invalid id " + std::to_string(id));
    if (t.content.empty()) throw omni::Error(where + " has empty content");
    t.id = static_cast<int32_t>(id);
    t.special = e.value("special", false);
    t.normalized = e.value("normalized", !t.special);
    t.lstrip = e.value("lstrip", false);
    t.rstrip = e.value("rstrip", false);
    if (e.value("single_word", false)) throw omni::Error(where + " (\"" + t.content + "\") uses single_word, which is not supported");
    (t.normalized ? v.any_normalized_ : v.any_raw_) = true;
    v.tokens_.push_back(std::move(t));
  }
  for (uint32_t i = 0; i < v.tokens_.size(); ++i)
    v.by_first_byte_[static_cast<unsigned char>(v.tokens_[i].content[0])].push_back(i);
  for (auto& list : v.by_first_byte_)
    std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) { return v.tokens_[a].content.size() > v.tokens_[b].content.size(); });
  return v;
}

void AddedVocab::split(std::string_view text, bool normalized, std::vector<Segment>& out,
                       const std::vector<std::pair<size_t, size_t>>* literal) const {
  size_t last = 0;  // end of the previous token
  size_t span = 0;  // first literal range that does not end before pos
  for (size_t pos = 0; pos < text.size();) {
    const auto& cands = by_first_byte_[static_cast<unsigned char>(text[pos])];
    if (literal)
      while (span < literal->size() && (*literal)[span].second <= pos) ++span;
    // A special token may not overlap literal text: [pos, pos + size) against the next range.
    auto in_literal = [&](size_t size) {
      return literal && span < literal->size() && (*literal)[span].first < pos + size;
    };
    const AddedToken* hit = nullptr;
    for (uint32_t k : cands) {
      const auto& t = tokens_[k];
      if (t.normalized == normalized && text.compare(pos, t.content.size(), t.content) == 0 &&
          !(t.special && in_literal(t.content.size()))) {
        hit = &t;
        break;
      }
    }
    if (!hit) { ++pos; continue; }
    size_t b = pos, e = pos + hit->content.size();
    if (hit->lstrip) while (b > last && is_space(text[b - 1])) --b;
    if (hit->rstrip) while (e < text.size() && is_space(text[e])) ++e;
    if (b > last) out.push_back({-1, last, b - last});
    out.push_back({hit->id, b, e - b});
    pos = last = e;
  }
  if (last < text.size()) out.push_back({-1, last, text.size() - last});
}

}  // namespace omni::tok
