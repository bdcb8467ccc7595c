// A broken tokenizer.json must give a clear error naming the file and the problem.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

using omni::tok::Tokenizer;
using Catch::Matchers::Contains;

namespace {

std::string tiny_dir() { return std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny"; }

nlohmann::json tiny_json() {
  std::ifstream in(tiny_dir() + "/tokenizer.json");
  return nlohmann::json::parse(in);
}

// Writes text as DIR/tokenizer.json in a fresh temporary folder; returns DIR.
std::string write_dir(const std::string& text) {
  static int n = 0;
  const auto dir = std::filesystem::temp_directory_path() / ("omni_tok_err_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << text;
  return dir.string();
}

void expect_error(const std::string& text, const std::string& what) {
  const auto dir = write_dir(text);
  try {
    Tokenizer::load(dir);
    FAIL("no error for: " << what);
  } catch (const omni::Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK_THAT(msg, Contains(dir + "/tokenizer.json"));
    CHECK_THAT(msg, Contains(what));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace

TEST_CASE("malformed tokenizer.json files give clear errors") {
  const std::string good = tiny_json().dump();
  SECTION("truncated JSON") { expect_error(good.substr(0, good.size() / 2), "malformed JSON"); }
  SECTION("missing model") {
    auto j = tiny_json();
    j.erase("model");
    expect_error(j.dump(), "no \"model\"");
  }
  SECTION("unknown model type") {
    auto j = tiny_json();
    j["model"]["type"] = "Unigram";
    expect_error(j.dump(), "unsupported model type \"Unigram\"");
  }
  SECTION("unknown pre-tokenizer") {
    auto j = tiny_json();
    j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Metaspace"}};
    expect_error(j.dump(), "unsupported pre-tokenizer type \"Metaspace\"");
  }
  SECTION("unknown normalizer") {
    auto j = tiny_json();
    j["normalizer"] = {{"type", "NFKC"}};
    expect_error(j.dump(), "unsupported normalizer type \"NFKC\"");
  }
  SECTION("merge with a token missing from the vocabulary") {
    auto j = tiny_json();
    j["model"]["merges"][3] = {"no_such_token", "x"};
    expect_error(j.dump(), "model.merges[3]");
  }
  SECTION("merge that is not a pair") {
    auto j = tiny_json();
    j["model"]["merges"][0] = "abc";
    expect_error(j.dump(), "model.merges[0]");
  }
  SECTION("merges not an array") {
    auto j = tiny_json();
    j["model"]["merges"] = 7;
    expect_error(j.dump(), "model.merges is missing or not an array");
  }
  SECTION("bad regex") {
    auto j = tiny_json();
    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
    expect_error(j.dump(), "regex does not compile");
  }
  SECTION("unsupported decoder") {
    auto j = tiny_json();
    j["decoder"] = {{"type", "WordPiece"}};
    expect_error(j.dump(), "unsupported decoder");
  }
}

TEST_CASE("a missing tokenizer.json is named") {
  try {
    Tokenizer::load("/nonexistent/dir");
    FAIL("no error");
  } catch (const omni::Error& e) {
    CHECK_THAT(std::string(e.what()), Contains("/nonexistent/dir/tokenizer.json: cannot open"));
  }
}
