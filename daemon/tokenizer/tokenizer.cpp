#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace omni::tok {

struct Tokenizer::Impl {
  Normalizer normalizer;
  PreTokenizer pretokenizer;
  AddedVocab added;
  Bpe bpe;
  std::vector<std::string> text;    // token text by id, as spelled in tokenizer.json
  std::vector<std::string> bytes;   // what each id decodes to
  std::vector<bool> special;
  std::unordered_map<std::string, int32_t> ids;
  std::optional<int32_t> bos, eos;

  // allow_special false: normalized special tokens are not matched (text that overlaps
  // literal ranges, whose offsets normalization does not keep).
  void encode_text(std::string_view text, std::vector<int32_t>& out, bool allow_special = true) const;
  std::vector<int32_t> encode(std::string_view text, const std::vector<std::pair<size_t, size_t>>* literal) const;
};

namespace {

nlohmann::json read_json(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw omni::Error(file + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw omni::Error(file + ": malformed JSON: " + e.what());
  }
}

// HF's ByteLevel decoder: a token made only of byte-level code points stands for
// those bytes; any other token (e.g. one with a real space) stands for itself.
std::string decoded_bytes(const std::string& token) {
  auto b = byte_level_to_bytes(token);
  return b ? std::move(*b) : token;
}

// tokenizer_config.json names tokens either as a string or as {"content": ...}.
std::optional<std::string> config_token(const nlohmann::json& cfg, const char* key, const std::string& file) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw omni::Error(file + ": \"" + key + "\" is neither a string nor an object with \"content\"");
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& model_dir) {
  const auto dir = std::filesystem::path(model_dir);
  const auto cfg = dir / "tokenizer_config.json";
  return load_files((dir / "tokenizer.json").string(), std::filesystem::exists(cfg) ? cfg.string() : std::string());
}

Tokenizer Tokenizer::load_files(const std::string& file, const std::string& config_file) {
  const auto j = read_json(file);
  if (!j.is_object()) throw omni::Error(file + ": top level is not a JSON object");
  if (!j.contains("model")) throw omni::Error(file + ": no \"model\" section");
  auto impl = std::make_shared<Impl>(Impl{
      Normalizer::from_json(j.value("normalizer", nlohmann::json()), file),
      PreTokenizer::from_json(j.value("pre_tokenizer", nlohmann::json()), file),
      AddedVocab::from_json(j.value("added_tokens", nlohmann::json()), file),
      Bpe::from_json(j["model"], file),
      {}, {}, {}, {}, {}, {}});
  const auto dec = j.value("decoder", nlohmann::json());
  if (!dec.is_object() || dec.value("type", "") != "ByteLevel")
    throw omni::Error(file + ": unsupported decoder " + (dec.is_null() ? std::string("null") : dec.dump()) +
                      " (supported: ByteLevel)");

  auto& im = *impl;
  im.text = im.bpe.tokens();
  for (const auto& t : im.added.tokens())
    if (static_cast<size_t>(t.id) >= im.text.size()) im.text.resize(t.id + 1);
  im.bytes.resize(im.text.size());
  im.special.assign(im.text.size(), false);
  for (size_t id = 0; id < im.text.size(); ++id) {
    if (im.text[id].empty()) continue;
    im.bytes[id] = decoded_bytes(im.text[id]);
    im.ids.emplace(im.text[id], static_cast<int32_t>(id));
  }
  for (const auto& t : im.added.tokens()) {  // added tokens override the model's entry
    im.text[t.id] = t.content;
    im.bytes[t.id] = decoded_bytes(t.content);
    im.special[t.id] = t.special;
    im.ids[t.content] = t.id;
  }

  if (!config_file.empty()) {
    const auto cfg = read_json(config_file);
    if (!cfg.is_object()) throw omni::Error(config_file + ": top level is not a JSON object");
    auto resolve = [&](const char* key) -> std::optional<int32_t> {
      const auto name = config_token(cfg, key, config_file);
      if (!name) return std::nullopt;
      const auto it = im.ids.find(*name);
      if (it == im.ids.end()) throw omni::Error(config_file + ": " + key + " \"" + *name + "\" is not in the vocabulary");
      return it->second;
    };
    im.bos = resolve("bos_token");
    im.eos = resolve("eos_token");
  }
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

void Tokenizer::Impl::encode_text(std::string_view raw, std::vector<int32_t>& out, bool allow_special) const {
  std::string normalized;
  normalizer.apply(raw, normalized);
  std::vector<Segment> segs;
  const std::vector<std::pair<size_t, size_t>> all = {{0, normalized.size()}};
  if (added.has(true)) added.split(normalized, true, segs, allow_special ? nullptr : &all);
  else segs.push_back({-1, 0, normalized.size()});
  std::vector<std::pair<size_t, size_t>> pieces;
  std::string prefixed;
  for (const auto& s : segs) {
    if (s.id >= 0) { out.push_back(s.id); continue; }
    std::string_view text = std::string_view(normalized).substr(s.offset, s.length);
    if (pretokenizer.add_prefix_space() && !text.empty() && text[0] != ' ') {
      prefixed = " ";
      prefixed += text;
      text = prefixed;
    }
    pieces.clear();
    pretokenizer.split(text, pieces);
    for (const auto& [off, len] : pieces) bpe.encode_word(text.substr(off, len), out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const { return impl_->encode(text, nullptr); }

std::vector<int32_t> Tokenizer::encode(std::string_view text, const std::vector<std::pair<size_t, size_t>>& literal) const {
  for (size_t i = 0; i < literal.size(); ++i)
    if (literal[i].first > literal[i].second || literal[i].second > text.size() ||
        (i && literal[i].first < literal[i - 1].second))
      throw omni::Error("tokenizer: literal ranges are not sorted, disjoint and inside the text");
  return impl_->encode(text, &literal);
}

std::vector<int32_t> Tokenizer::Impl::encode(std::string_view text,
                                             const std::vector<std::pair<size_t, size_t>>* literal) const {
  std::string fixed;
  std::vector<std::pair<size_t, size_t>> moved;   // `literal` in `fixed`'s offsets
  if (!is_valid_utf8(text)) {
    // Repaired piece by piece so the ranges keep pointing at the same characters.
    size_t at = 0;
    auto repair = [&](size_t end) {
      append_utf8_lossy(text.substr(at, end - at), fixed);
      at = end;
    };
    if (literal)
      for (const auto& [b, e] : *literal) {
        repair(b);
        const size_t nb = fixed.size();
        repair(e);
        moved.emplace_back(nb, fixed.size());
      }
    repair(text.size());
    text = fixed;
    if (literal) literal = &moved;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  auto overlaps = [&](size_t b, size_t e) {
    if (!literal) return false;
    for (const auto& r : *literal)
      if (r.first < e && b < r.second) return true;
    return false;
  };
  if (!added.has(false)) {
    encode_text(text, out, !overlaps(0, text.size()));
    return out;
  }
  std::vector<Segment> segs;
  added.split(text, false, segs, literal);
  for (const auto& s : segs) {
    if (s.id >= 0) out.push_back(s.id);
    else encode_text(text.substr(s.offset, s.length), out, !overlaps(s.offset, s.offset + s.length));
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string raw;
  for (int32_t id : ids) raw += token_bytes(id);
  std::string out;
  out.reserve(raw.size());
  append_utf8_lossy(raw, out);
  return out;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  const auto it = impl_->ids.find(std::string(token));
  if (it == impl_->ids.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::token_text(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->text.size()) return {};
  return impl_->text[id];
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->bytes.size()) return {};
  return impl_->bytes[id];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special.size() && impl_->special[id];
}

size_t Tokenizer::vocab_size() const { return impl_->text.size(); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

}  // namespace omni::tok
