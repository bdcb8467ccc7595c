#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "util/error.h"

namespace omni::tok {

// One compiled, JIT-ed pattern. Matching uses per-thread match data and JIT stack.
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& file) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw omni::Error(file + ": pre-tokenizer regex does not compile at offset " + std::to_string(off) +
                        ": " + reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Isolated split: every match and every gap between matches is a piece.
  void split(std::string_view text, size_t base, std::vector<std::pair<size_t, size_t>>& out) const {
    struct Scratch {
      pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
      pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
      pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
      Scratch() { pcre2_jit_stack_assign(ctx, nullptr, stack); }
      ~Scratch() { pcre2_match_data_free(md); pcre2_jit_stack_free(stack); pcre2_match_context_free(ctx); }
    };
    thread_local Scratch s;
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0, last = 0;
    while (pos <= text.size()) {
      const int rc = pcre2_match(code_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, s.md, s.ctx);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        throw omni::Error(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(msg));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.md);
      const size_t b = ov[0], e = ov[1];
      if (e == b) {  // empty match: no piece; step over one code point
        if (b >= text.size()) break;
        pos = b + 1;
        while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
        continue;
      }
      if (b > last) out.emplace_back(base + last, b - last);
      out.emplace_back(base + b, e - b);
      pos = last = e;
    }
    if (last < text.size()) out.emplace_back(base + last, text.size() - last);
  }

 private:
  pcre2_code* code_ = nullptr;
};

namespace {

// Unicode White_Space, which is what Oniguruma's \s means.
constexpr const char* kWhiteSpaceSet =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// GPT-2's pattern, used by ByteLevel when use_regex is true.
constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

std::string quote_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string onig_to_pcre2(const std::string& p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[++i];
      if (n == 's') {
        out += in_class ? std::string(kWhiteSpaceSet) : "[" + std::string(kWhiteSpaceSet) + "]";
      } else if (n == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpaceSet) + "]";
      } else if (n == 'S') {
        throw omni::Error("regex uses \\S inside a character class, which is not supported: " + p);
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];  // a literal ']' first in a class
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j, const std::string& file) {
  PreTokenizer p;
  if (j.is_null()) throw omni::Error(file + ": \"pre_tokenizer\" is null; a ByteLevel pre-tokenizer is required");
  p.add(j, file);
  if (!p.byte_level_)
    throw omni::Error(file + ": the pre-tokenizer has no ByteLevel step; only byte-level BPE is supported");
  return p;
}

void PreTokenizer::add(const nlohmann::json& j, const std::string& file) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw omni::Error(file + ": a pre-tokenizer must be an object with a \"type\"");
  const std::string type = j["type"];
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      throw omni::Error(file + ": Sequence pre-tokenizer lacks a \"pretokenizers\" array");
    for (const auto& sub : j["pretokenizers"]) add(sub, file);
  } else if (type == "Split") {
    const std::string behavior = j.value("behavior", "");
    if (behavior != "Isolated")
      throw omni::Error(file + ": Split pre-tokenizer behavior \"" + behavior + "\" is not supported (only Isolated)");
    if (j.value("invert", false)) throw omni::Error(file + ": Split pre-tokenizer with invert=true is not supported");
    const auto& pat = j.contains("pattern") ? j["pattern"] : nlohmann::json();
    std::string regex;
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) regex = onig_to_pcre2(pat["Regex"]);
    else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) regex = quote_literal(pat["String"]);
    else throw omni::Error(file + ": Split pre-tokenizer lacks a \"pattern\" with \"Regex\" or \"String\"");
    steps_.push_back(std::make_shared<const Regex>(regex, file));
  } else if (type == "ByteLevel") {
    if (j.value("add_prefix_space", false)) {
      // HF prepends the space to each piece at this step; we support it only as the
      // first step, where that is the whole text.
      if (!steps_.empty())
        throw omni::Error(file + ": ByteLevel add_prefix_space after another pre-tokenizer is not supported");
      add_prefix_space_ = true;
    }
    if (j.value("use_regex", true)) steps_.push_back(std::make_shared<const Regex>(onig_to_pcre2(kGpt2Pattern), file));
    byte_level_ = true;
  } else {
    throw omni::Error(file + ": unsupported pre-tokenizer type \"" + type + "\" (supported: Split, ByteLevel, Sequence)");
  }
}

void PreTokenizer::split(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  const size_t first = out.size();
  if (steps_.empty()) {
    if (!text.empty()) out.emplace_back(0, text.size());
    return;
  }
  steps_[0]->split(text, 0, out);
  std::vector<std::pair<size_t, size_t>> next;
  for (size_t s = 1; s < steps_.size(); ++s) {
    next.clear();
    for (size_t k = first; k < out.size(); ++k)
      steps_[s]->split(text.substr(out[k].first, out[k].second), out[k].first, next);
    out.resize(first);
    out.insert(out.end(), next.begin(), next.end());
  }
}

}  // namespace omni::tok
