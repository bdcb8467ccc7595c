// The "corpus that hurts" (tools/gen_tokenizer_corpus.py): CJK, Arabic, Korean,
// emoji sequences, decomposed accents, whitespace runs, code, inline special tokens,
// random code points. Expected ids come from the peer (@lenml/tokenizers); entries
// where the peer is known to differ from Hugging Face carry "hf_ids" (what HF gives,
// and what we must give) and a "note".
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer.h"

using omni::tok::Tokenizer;

namespace {

void check_corpus(const std::string& model) {
  const std::string dir = std::string(OMNI_TEST_CACHE) + "/" + model;
  if (!std::filesystem::exists(dir + "/tokenizer.json")) FAIL(dir + "/tokenizer.json is missing: run scripts/fetch_test_data.sh");
  const auto tok = Tokenizer::load(dir);
  std::ifstream in(std::string(OMNI_TEST_DATA) + "/tokenizer-corpus/" + model + ".json");
  REQUIRE(in.good());
  const auto corpus = nlohmann::json::parse(in);
  REQUIRE(corpus.size() >= 200);
  size_t bad_ids = 0, bad_text = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto& e = corpus[i];
    const std::string text = e["text"];
    const auto want = (e.contains("hf_ids") ? e["hf_ids"] : e["ids"]).get<std::vector<int32_t>>();
    const auto got = tok.encode(text);
    if (got != want) {
      ++bad_ids;
      UNSCOPED_INFO("ids differ for #" << i << " " << nlohmann::json(text).dump() << "\n  got  " << nlohmann::json(got).dump()
                                       << "\n  want " << nlohmann::json(want).dump());
    }
    const std::string expect_text = model == "llama3" ? text : omni::tok::nfc(text);
    if (tok.decode(got) != expect_text) {
      ++bad_text;
      UNSCOPED_INFO("decode(encode(x)) != x for #" << i << " " << nlohmann::json(text).dump());
    }
  }
  CHECK(bad_ids == 0);
  CHECK(bad_text == 0);
}

}  // namespace

TEST_CASE("qwen3: corpus that hurts") { check_corpus("qwen3"); }
TEST_CASE("llama3: corpus that hurts") { check_corpus("llama3"); }
