#include "tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace omni::tok {

namespace {

bool has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw omni::Error(p.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const std::filesystem::path& p) {
  try {
    return nlohmann::json::parse(read_file(p));
  } catch (const nlohmann::json::exception& e) {
    throw omni::Error(p.string() + ": malformed JSON: " + e.what());
  }
}

// A config's chat_template is a string or a list of {"name", "template"}.
std::string pick_template(const nlohmann::json& t, const std::string& where) {
  if (t.is_string()) return t;
  if (t.is_array()) {
    for (const auto& e : t)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return e["template"];
  }
  throw omni::Error(where + ": chat_template is neither a string nor a list with a \"default\" template");
}

// The default system text of a ChatML template: the literal between
// "<|im_start|>system\n" and "<|im_end|>", when it is plain text. Every opening is tried:
// Qwen2.5's template (MiniCPM-o 2.6) opens a system turn for tools first, whose body is
// the messages' own, and only then writes its default.
std::string default_system(const std::string& t) {
  for (const char* open_c : {"<|im_start|>system\n", "<|im_start|>system\\n"}) {
    const std::string open = open_c;
    for (auto b = t.find(open); b != std::string::npos; b = t.find(open, b + open.size())) {
      const auto e = t.find("<|im_end|>", b + open.size());
      if (e == std::string::npos) break;
      const std::string body = t.substr(b + open.size(), e - b - open.size());
      if (body.find_first_of("{}'\"+") == std::string::npos) return body;
    }
  }
  return {};
}

std::string strip(std::string s, const char* chars) {
  const auto b = s.find_first_not_of(chars);
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(chars);
  return s.substr(b, e - b + 1);
}
std::string lstrip(const std::string& s, const char* chars) {
  const auto b = s.find_first_not_of(chars);
  return b == std::string::npos ? std::string() : s.substr(b);
}
std::string rstrip(const std::string& s, const char* chars) {
  const auto e = s.find_last_not_of(chars);
  return e == std::string::npos ? std::string() : s.substr(0, e + 1);
}
bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

}  // namespace

ChatTemplate ChatTemplate::from_model_dir(const std::string& dir) {
  const std::filesystem::path d(dir);
  const auto cfg_path = d / "tokenizer_config.json";
  nlohmann::json cfg = nlohmann::json::object();
  if (std::filesystem::exists(cfg_path)) cfg = read_json(cfg_path);
  std::string bos;
  if (cfg.contains("bos_token")) {
    const auto& b = cfg["bos_token"];
    if (b.is_string()) bos = b;
    else if (b.is_object() && b.contains("content") && b["content"].is_string()) bos = b["content"];
  }
  if (cfg.contains("chat_template") && !cfg["chat_template"].is_null())
    return from_template(pick_template(cfg["chat_template"], cfg_path.string()), bos, cfg_path.string());
  if (std::filesystem::exists(d / "chat_template.jinja"))
    return from_template(read_file(d / "chat_template.jinja"), bos, (d / "chat_template.jinja").string());
  if (std::filesystem::exists(d / "chat_template.json")) {
    const auto p = d / "chat_template.json";
    const auto j = read_json(p);
    if (!j.is_object() || !j.contains("chat_template")) throw omni::Error(p.string() + ": no \"chat_template\"");
    return from_template(pick_template(j["chat_template"], p.string()), bos, p.string());
  }
  throw omni::Error(cfg_path.string() + ": no chat_template (nor chat_template.jinja / chat_template.json in " + dir + ")");
}

ChatTemplate ChatTemplate::from_template(const std::string& t, const std::string& bos, const std::string& where) {
  ChatTemplate c;
  if (has(t, "<|im_start|>") && has(t, "<|im_end|>")) {
    if (has(t, "</think>") && has(t, "reasoning_content")) {
      c.kind_ = Kind::ChatMLQwen3;
      c.thinking_off_block_ = has(t, "enable_thinking is false");
      c.thinking_on_prefix_ = has(t, "enable_thinking is true");
    } else {
      c.kind_ = Kind::ChatML;
      c.default_system_ = default_system(t);
    }
    c.always_generation_prompt_ = !has(t, "add_generation_prompt");
    return c;
  }
  if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>") && has(t, "<|eot_id|>")) {
    c.kind_ = Kind::Llama3;
    if (has(t, "bos_token")) {
      if (bos.empty()) throw omni::Error(where + ": the Llama-3 chat template uses bos_token, but bos_token is not set");
      c.bos_ = bos;
    }
    c.trim_ = has(t, "| trim") || has(t, "|trim");
    c.always_generation_prompt_ = !has(t, "add_generation_prompt");
    return c;
  }
  throw omni::Error(where + ": chat_template not recognised (supported: ChatML as in MiniCPM-V 2.6/4.x and "
                    "Qwen2/Qwen3, and the Llama-3 header format of MiniCPM-Llama3-V 2.5)");
}

std::string ChatTemplate::name() const {
  switch (kind_) {
    case Kind::ChatML: return default_system_.empty() ? "chatml" : "chatml+system";
    case Kind::ChatMLQwen3: return "chatml-qwen3";
    case Kind::Llama3: return "llama3";
  }
  return {};
}

namespace {

// Builds a rendered prompt, remembering which bytes are literal text.
struct PromptWriter {
  RenderedPrompt r;
  void markup(std::string_view s) { r.text += s; }
  void literal(std::string_view s) {
    if (s.empty()) return;
    const size_t b = r.text.size();
    r.text += s;
    if (!r.literal.empty() && r.literal.back().second == b) r.literal.back().second = r.text.size();
    else r.literal.emplace_back(b, r.text.size());
  }
  void content(const std::vector<ContentPiece>& c) {
    for (const auto& p : c) p.literal ? literal(p.text) : markup(p.text);
  }
};

constexpr const char* kSpaces = " \t\n\r\f\v";

// Jinja's `| trim` on the concatenated pieces: whitespace of literal pieces at both ends
// (markup never starts or ends with whitespace it would be allowed to lose).
std::vector<ContentPiece> trimmed(std::vector<ContentPiece> c) {
  for (auto& p : c) {
    if (!p.literal) break;
    p.text = lstrip(p.text, kSpaces);
    if (!p.text.empty()) break;
  }
  for (auto it = c.rbegin(); it != c.rend(); ++it) {
    if (!it->literal) break;
    it->text = rstrip(it->text, kSpaces);
    if (!it->text.empty()) break;
  }
  return c;
}

std::string flat(const std::vector<ContentPiece>& c) {
  std::string s;
  for (const auto& p : c) s += p.text;
  return s;
}

}  // namespace

std::string ChatTemplate::apply(const std::vector<ChatMessage>& msgs, bool add_generation_prompt,
                                std::optional<bool> enable_thinking) const {
  std::vector<ChatTurn> turns;
  turns.reserve(msgs.size());
  for (const auto& m : msgs) turns.push_back({m.role, {{m.content, true}}});
  return render(turns, add_generation_prompt, enable_thinking).text;
}

RenderedPrompt ChatTemplate::render(const std::vector<ChatTurn>& msgs, bool add_generation_prompt,
                                    std::optional<bool> enable_thinking) const {
  PromptWriter out;
  const bool gen = add_generation_prompt || always_generation_prompt_;
  if (kind_ == Kind::Llama3) {
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (i == 0) out.markup(bos_);
      out.markup("<|start_header_id|>");
      out.literal(msgs[i].role);
      out.markup("<|end_header_id|>\n\n");
      out.content(trim_ ? trimmed(msgs[i].content) : msgs[i].content);
      out.markup("<|eot_id|>");
    }
    if (gen) out.markup("<|start_header_id|>assistant<|end_header_id|>\n\n");
    return std::move(out.r);
  }
  auto open_turn = [&](const std::string& role) {
    out.markup("<|im_start|>");
    out.literal(role);
    out.markup("\n");
  };
  if (kind_ == Kind::ChatML) {
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (i == 0 && msgs[0].role != "system" && !default_system_.empty())
        out.markup("<|im_start|>system\n" + default_system_ + "<|im_end|>\n");
      open_turn(msgs[i].role);
      out.content(msgs[i].content);
      out.markup("<|im_end|>\n");
    }
    if (gen) out.markup("<|im_start|>assistant\n");
    return std::move(out.r);
  }
  // Qwen3: the template's logic without tools.
  const size_t n = msgs.size();
  if (n && msgs[0].role == "system") {
    out.markup("<|im_start|>system\n");
    out.content(msgs[0].content);
    out.markup("<|im_end|>\n");
  }
  size_t last_query = n ? n - 1 : 0;
  for (size_t k = n; k-- > 0;) {
    const auto& m = msgs[k];
    const std::string text = flat(m.content);
    if (m.role == "user" && !(starts_with(text, "<tool_response>") && ends_with(text, "</tool_response>"))) {
      last_query = k;
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& m = msgs[i];
    if (m.role == "user" || (m.role == "system" && i > 0)) {
      open_turn(m.role);
      out.content(m.content);
      out.markup("<|im_end|>\n");
    } else if (m.role == "assistant") {
      for (const auto& p : m.content)
        if (!p.literal)
          throw omni::Error("chat template chatml-qwen3: pictures in assistant turns are not supported "
                            "(the template reads their text for reasoning blocks)",
                            ipc::ErrorCode::bad_message);
      const std::string text = flat(m.content);
      std::string content = text, reasoning;
      const auto close = text.find("</think>");
      if (close != std::string::npos) {
        content = lstrip(text.substr(text.rfind("</think>") + 8), "\n");
        std::string before = rstrip(text.substr(0, close), "\n");
        const auto open = before.rfind("<think>");
        if (open != std::string::npos) before = before.substr(open + 7);
        reasoning = lstrip(before, "\n");
      }
      if (i > last_query && (i + 1 == n || !reasoning.empty())) {
        out.markup("<|im_start|>assistant\n<think>\n");
        out.literal(strip(reasoning, "\n"));
        out.markup("\n</think>\n\n");
        out.literal(lstrip(content, "\n"));
      } else {
        out.markup("<|im_start|>assistant\n");
        out.literal(content);
      }
      out.markup("<|im_end|>\n");
    } else if (m.role == "tool") {
      if (i == 0 || msgs[i - 1].role != "tool") out.markup("<|im_start|>user");
      out.markup("\n<tool_response>\n");
      out.content(m.content);
      out.markup("\n</tool_response>");
      if (i + 1 == n || msgs[i + 1].role != "tool") out.markup("<|im_end|>\n");
    } else if (m.role != "system") {
      throw omni::Error("chat template chatml-qwen3: unsupported message role \"" + m.role + "\"",
                        ipc::ErrorCode::bad_message);
    }
  }
  if (gen) {
    out.markup("<|im_start|>assistant\n");
    if (enable_thinking == false && thinking_off_block_) out.markup("<think>\n\n</think>\n\n");
    if (enable_thinking == true && thinking_on_prefix_) out.markup("<think>\n");
  }
  return std::move(out.r);
}

}  // namespace omni::tok
