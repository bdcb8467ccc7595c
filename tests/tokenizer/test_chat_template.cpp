// Chat templates are recognised from tokenizer_config.json and rendered natively.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "tokenizer/chat_template.h"
#include "util/error.h"

using omni::tok::ChatMessage;
using omni::tok::ChatTemplate;
using Catch::Matchers::Contains;

TEST_CASE("MiniCPM-V 2.6 ChatML with default system turn reproduces the golden prompt") {
  const std::string dir = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny";
  const auto t = ChatTemplate::from_model_dir(dir);
  CHECK(t.name() == "chatml+system");
  std::ifstream in(dir + "/case_small/golden_prompt.json");
  const auto g = nlohmann::json::parse(in);
  const std::string user =
      "<image_id>0</image_id><image><unk><unk><unk><unk><unk><unk><unk><unk><unk><unk><unk><unk><unk><unk><unk><unk>"
      "</image>\nDescribe the colours.";
  CHECK(t.apply({{"user", user}}, true) == g["text"].get<std::string>());
  // An explicit system message replaces the default one.
  CHECK(t.apply({{"system", "S"}, {"user", "U"}}, false) == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
}

TEST_CASE("Qwen3 ChatML template") {
  const std::string dir = std::string(OMNI_TEST_CACHE) + "/qwen3";
  if (!std::filesystem::exists(dir + "/tokenizer_config.json")) FAIL(dir + "/tokenizer_config.json is missing: run scripts/fetch_test_data.sh");
  const auto t = ChatTemplate::from_model_dir(dir);
  CHECK(t.name() == "chatml-qwen3");
  CHECK(t.apply({{"user", "hi"}}, true) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  // Past reasoning is dropped from assistant turns before the last user turn.
  CHECK(t.apply({{"system", "S"}, {"user", "a"}, {"assistant", "<think>\nr\n</think>\n\nA"}, {"user", "b"}}, true) ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
        "<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n");
  // The final assistant turn (a prefill) gets an explicit think block.
  CHECK(t.apply({{"user", "a"}, {"assistant", "A"}}, false) ==
        "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA<|im_end|>\n");
  // enable_thinking=False (what MiniCPM-V 4.5's chat() passes): an empty think block.
  CHECK(t.apply({{"user", "hi"}}, true, false) ==
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // Qwen3's template has no enable_thinking-true branch: nothing is added, as in Jinja.
  CHECK(t.apply({{"user", "hi"}}, true, true) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  CHECK(t.apply({{"user", "hi"}}, false, false) == "<|im_start|>user\nhi<|im_end|>\n");
}

TEST_CASE("MiniCPM-V 4.5's template opens a think block when thinking is asked for") {
  // The generation-prompt tail of MiniCPM-V 4.5's tokenizer_config.json chat_template.
  const auto t = ChatTemplate::from_template(
      "{%- for message in messages %}{%- if message.role == 'user' %}{{- '<|im_start|>' + message.role + '\\n' + "
      "message.content + '<|im_end|>\\n' }}{%- elif '</think>' in message.content %}{% set reasoning_content = '' %}"
      "{%- endif %}{%- endfor %}"
      "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
      "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
      "{%- if enable_thinking is defined and enable_thinking is true %}{{- '<think>\\n' }}{%- endif %}{%- endif %}",
      "", "test");
  CHECK(t.name() == "chatml-qwen3");
  CHECK(t.apply({{"user", "x"}}, true, true) == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n<think>\n");
  CHECK(t.apply({{"user", "x"}}, true, false) ==
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  CHECK(t.apply({{"user", "x"}}, true) == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("Llama-3 header template (MiniCPM-Llama3-V 2.5)") {
  const std::string dir = std::string(OMNI_TEST_CACHE) + "/llama3";
  if (!std::filesystem::exists(dir + "/tokenizer_config.json")) FAIL(dir + "/tokenizer_config.json is missing: run scripts/fetch_test_data.sh");
  const auto t = ChatTemplate::from_model_dir(dir);
  CHECK(t.name() == "llama3");
  CHECK(t.apply({{"system", "S"}, {"user", "  hi \n"}}, true) ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_CASE("plain ChatML without a default system turn") {
  const auto t = ChatTemplate::from_template(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
      "", "test");
  CHECK(t.name() == "chatml");
  CHECK(t.apply({{"user", "x"}}, false) == "<|im_start|>user\nx<|im_end|>\n");
  CHECK(t.apply({{"user", "x"}}, true) == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("an unknown chat template is a clear error") {
  try {
    ChatTemplate::from_template("{{ bos_token }}{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", "<s>", "cfg.json");
    FAIL("no error");
  } catch (const omni::Error& e) {
    CHECK_THAT(std::string(e.what()), Contains("cfg.json: chat_template not recognised"));
  }
}
