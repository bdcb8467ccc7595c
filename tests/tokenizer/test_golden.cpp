// Ids must equal Hugging Face's for every string of the golden sets; decoding must
// give back the NFC of the input.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <atomic>
#include <fstream>
#include <thread>

#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer.h"

using omni::tok::Tokenizer;

namespace {

nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

// The real tokenizer files are fetched, not committed: fail loudly when absent.
std::string cache_dir(const std::string& name) {
  const std::string dir = std::string(OMNI_TEST_CACHE) + "/" + name;
  if (!std::filesystem::exists(dir + "/tokenizer.json"))
    FAIL(dir + "/tokenizer.json is missing: run scripts/fetch_test_data.sh");
  return dir;
}

void check_golden(const Tokenizer& tok, const std::string& golden_file, bool check_nfc) {
  const auto golden = load_json(golden_file);
  REQUIRE(golden.size() > 0);
  size_t mismatches = 0;
  for (size_t i = 0; i < golden.size(); ++i) {
    const std::string text = golden[i]["text"];
    const auto want = golden[i]["ids"].get<std::vector<int32_t>>();
    const auto got = tok.encode(text);
    if (got != want) {
      ++mismatches;
      UNSCOPED_INFO("ids differ for string #" << i << ": " << nlohmann::json(text).dump());
    }
    const std::string decoded = tok.decode(want);
    CHECK(decoded == golden[i]["decoded"].get<std::string>());
    if (check_nfc) CHECK(decoded == omni::tok::nfc(text));
  }
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("qwen3 tokenizer reproduces HF ids for every golden string") {
  const auto tok = Tokenizer::load(cache_dir("qwen3"));
  check_golden(tok, std::string(OMNI_TEST_DATA) + "/tokenizer-qwen3/golden_encodings.json", true);
}

TEST_CASE("llama3 tokenizer reproduces HF ids for every golden string") {
  const auto tok = Tokenizer::load(cache_dir("llama3"));
  // Llama-3 has no normalizer: decoding gives the input back unchanged.
  check_golden(tok, std::string(OMNI_TEST_DATA) + "/tokenizer-llama3/golden_encodings.json", false);
}

TEST_CASE("tiny MiniCPM-V 2.6 tokenizer reproduces the golden prompt ids") {
  const std::string dir = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny";
  const auto tok = Tokenizer::load(dir);
  for (const char* c : {"case_small", "case_wide"}) {
    INFO(c);
    const auto g = load_json(dir + "/" + c + "/golden_prompt.json");
    const std::string text = g["text"];
    const auto want = g["ids"].get<std::vector<int32_t>>();
    CHECK(tok.encode(text) == want);
    CHECK(tok.decode(want) == text);
  }
}

TEST_CASE("special tokens, bos/eos and token lookups") {
  const auto tok = Tokenizer::load(cache_dir("qwen3"));
  REQUIRE(tok.token_id("<|im_start|>") == 151644);
  CHECK(tok.eos_id() == tok.token_id("<|im_end|>"));
  CHECK_FALSE(tok.bos_id().has_value());
  CHECK(tok.vocab_size() == 151669);
  CHECK(tok.token_text(151644) == "<|im_start|>");
  CHECK(tok.is_special(151644));
  CHECK_FALSE(tok.is_special(151667));  // <think> is added but not special
  CHECK(tok.token_text(tok.encode(" hello")[0]) == "\xC4\xA0hello");  // "Ġhello"
  const auto ids = tok.encode("a<|im_start|>b<think>");
  REQUIRE(ids.size() == 4);
  CHECK(ids[1] == 151644);
  CHECK(ids[3] == 151667);
  CHECK(tok.decode(ids) == "a<|im_start|>b<think>");
  CHECK(tok.encode("").empty());
  CHECK(tok.decode({}).empty());
  CHECK(tok.decode({999999999, -5}).empty());  // ids without a token decode to nothing, as in HF

  const auto llama = Tokenizer::load(cache_dir("llama3"));
  CHECK(llama.bos_id() == 128000);
  CHECK(llama.eos_id() == 128001);
  CHECK(llama.encode("<|begin_of_text|>hi") == std::vector<int32_t>{128000, 6151});
}

TEST_CASE("decoding ill-formed UTF-8 replaces maximal subparts like Rust's from_utf8_lossy") {
  const auto tok = Tokenizer::load(cache_dir("qwen3"));
  // Single raw bytes, looked up through their byte-level spelling.
  auto byte = [&](unsigned char b) { return *tok.token_id(omni::tok::bytes_to_byte_level(std::string(1, static_cast<char>(b)))); };
  // E2 82 AC is '€'; E2 82 then 'A' is one maximal subpart, then 'A'; FF is one.
  CHECK(tok.decode({byte(0xE2), byte(0x82), byte(0xAC)}) == "\xE2\x82\xAC");
  CHECK(tok.decode({byte(0xE2), byte(0x82), byte('A')}) == "\xEF\xBF\xBD" "A");
  CHECK(tok.decode({byte(0xFF), byte(0xE2)}) == "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("encoding from several threads at once gives the same ids") {
  const auto tok = Tokenizer::load(cache_dir("qwen3"));
  const auto golden = load_json(std::string(OMNI_TEST_DATA) + "/tokenizer-qwen3/golden_encodings.json");
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> want;
  for (const auto& g : golden) {
    texts.push_back(g["text"]);
    want.push_back(g["ids"].get<std::vector<int32_t>>());
  }
  std::atomic<int> bad{0};
  auto work = [&] {
    for (int rep = 0; rep < 3; ++rep)
      for (size_t i = 0; i < texts.size(); ++i)
        if (tok.encode(texts[i]) != want[i]) ++bad;
  };
  std::thread a(work), b(work), c(work);
  a.join();
  b.join();
  c.join();
  CHECK(bad == 0);
}
