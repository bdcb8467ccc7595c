#pragma once
// Chat prompts. Rather than run Jinja, we recognise the templates of the
// checkpoints we support and render them natively:
//   chatml          <|im_start|>role\ncontent<|im_end|>\n (MiniCPM-V 2.6 / 4.x, Qwen2)
//   chatml+system   the same, adding a default system turn when the first message is
//                   not a system one (the text is taken from the template)
//   chatml-qwen3    Qwen3's template: <think> blocks of past assistant turns dropped
//   llama3          <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
//                   with BOS first (MiniCPM-Llama3-V 2.5)
// Anything else is refused with a clear error.
#include <optional>
#include <string>
#include <vector>

namespace omni::tok {

struct ChatMessage {
  std::string role, content;
};

// A turn's content in pieces: a client's text (literal: tokenized without matching
// special tokens) or markup the caller puts there itself (a picture's placeholder).
struct ContentPiece {
  std::string text;
  bool literal = true;
};
struct ChatTurn {
  std::string role;
  std::vector<ContentPiece> content;
};

// A rendered prompt and where the turns' literal text lies in it (sorted [begin, end)
// byte ranges, for Tokenizer::encode).
struct RenderedPrompt {
  std::string text;
  std::vector<std::pair<size_t, size_t>> literal;
};

class ChatTemplate {
 public:
  // Reads chat_template (and bos_token) from DIR/tokenizer_config.json, or
  // DIR/chat_template.jinja / DIR/chat_template.json when the config has none.
  static ChatTemplate from_model_dir(const std::string& dir);
  // `where` names the source in error messages.
  static ChatTemplate from_template(const std::string& jinja, const std::string& bos_token, const std::string& where);

  // enable_thinking: what Qwen3-style templates test after the generation prompt (false:
  // an empty <think></think> block follows, true: "<think>\n"); unset, or a template
  // without that switch, adds nothing, as the Jinja would with the variable undefined.
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                    std::optional<bool> enable_thinking = std::nullopt) const;
  // The same for turns in pieces, keeping track of the literal text. A content's pieces
  // are concatenated as they are (chat() joins a turn's items with "\n": the caller puts
  // those in). Qwen3's reasoning split reads assistant text only: an assistant turn with
  // markup pieces is refused there.
  RenderedPrompt render(const std::vector<ChatTurn>& turns, bool add_generation_prompt,
                        std::optional<bool> enable_thinking = std::nullopt) const;
  std::string name() const;

 private:
  enum class Kind { ChatML, ChatMLQwen3, Llama3 };
  Kind kind_ = Kind::ChatML;
  std::string default_system_;  // ChatML: empty when the template adds none
  std::string bos_;             // Llama-3: prepended when the template uses bos_token
  bool trim_ = false;           // Llama-3: content | trim
  bool always_generation_prompt_ = false;
  bool thinking_off_block_ = false;   // "enable_thinking is false" -> <think>\n\n</think>\n\n
  bool thinking_on_prefix_ = false;   // "enable_thinking is true"  -> <think>\n (MiniCPM-V 4.5)
};

}  // namespace omni::tok
