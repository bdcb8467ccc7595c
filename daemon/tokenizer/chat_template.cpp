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
// "<|im_start|>system\n" and "<|im_end|>", when it is plain text.
std::string default_system(const std::string& t) {
  for (const char* open_c : {"<|im_start|>system\n", "<|im_start|>system\\n"}) {
    const std::string open = open_c;
    const auto b = t.find(open);
    if (b == std::string::npos) continue;
    const auto e = t.find("<|im_end|>", b + open.size());
    if (e == std::string::npos) continue;
    const std::string body = t.substr(b + open.size(), e - b - open.size());
    if (body.find_first_of("{}'\"+") == std::string::npos) return body;
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

std::string ChatTemplate::apply(const std::vector<ChatMessage>& msgs, bool add_generation_prompt,
                                std::optional<bool> enable_thinking) const {
  std::string out;
  const bool gen = add_generation_prompt || always_generation_prompt_;
  if (kind_ == Kind::Llama3) {
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (i == 0) out += bos_;
      out += "<|start_header_id|>" + msgs[i].role + "<|end_header_id|>\n\n";
      out += trim_ ? strip(msgs[i].content, " \t\n\r\f\v") : msgs[i].content;
      out += "<|eot_id|>";
    }
    if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
  }
  if (kind_ == Kind::ChatML) {
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (i == 0 && msgs[0].role != "system" && !default_system_.empty())
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      out += "<|im_start|>" + msgs[i].role + "\n" + msgs[i].content + "<|im_end|>\n";
    }
    if (gen) out += "<|im_start|>assistant\n";
    return out;
  }
  // Qwen3: the template's logic without tools.
  const size_t n = msgs.size();
  if (n && msgs[0].role == "system") out += "<|im_start|>system\n" + msgs[0].content + "<|im_end|>\n";
  size_t last_query = n ? n - 1 : 0;
  for (size_t k = n; k-- > 0;) {
    const auto& m = msgs[k];
    if (m.role == "user" && !(starts_with(m.content, "<tool_response>") && ends_with(m.content, "</tool_response>"))) {
      last_query = k;
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const auto& m = msgs[i];
    if (m.role == "user" || (m.role == "system" && i > 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string content = m.content, reasoning;
      const auto close = m.content.find("</think>");
      if (close != std::string::npos) {
        content = lstrip(m.content.substr(m.content.rfind("</think>") + 8), "\n");
        std::string before = rstrip(m.content.substr(0, close), "\n");
        const auto open = before.rfind("<think>");
        if (open != std::string::npos) before = before.substr(open + 7);
        reasoning = lstrip(before, "\n");
      }
      if (i > last_query && (i + 1 == n || !reasoning.empty()))
        out += "<|im_start|>assistant\n<think>\n" + strip(reasoning, "\n") + "\n</think>\n\n" + lstrip(content, "\n");
      else
        out += "<|im_start|>assistant\n" + content;
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || msgs[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (i + 1 == n || msgs[i + 1].role != "tool") out += "<|im_end|>\n";
    } else if (m.role != "system") {
      throw omni::Error("chat template chatml-qwen3: unsupported message role \"" + m.role + "\"");
    }
  }
  if (gen) {
    out += "<|im_start|>assistant\n";
    if (enable_thinking == false && thinking_off_block_) out += "<think>\n\n</think>\n\n";
    if (enable_thinking == true && thinking_on_prefix_) out += "<think>\n";
  }
  return out;
}

}  // namespace omni::tok
