// The `omnid tokenize` contract: TEXTS.json (array of strings) -> RESULT.json
// (array of {"ids", "decoded"}), ids as Hugging Face gives them without BOS.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace {

std::string omnid() {
  const std::string bin = std::string(OMNI_BIN_DIR) + "/omnid";
  if (!std::filesystem::exists(bin)) FAIL(bin + " is missing: build the omnid target first");
  return bin;
}

}  // namespace

TEST_CASE("omnid tokenize reproduces the golden prompt ids of the tiny MiniCPM-V 2.6") {
  const std::string bin = omnid();
  const std::string model = std::string(OMNI_TEST_DATA) + "/minicpmv26-tiny";
  const auto tmp = std::filesystem::temp_directory_path() / ("omni_cli_tok_" + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  std::ifstream g(model + "/case_small/golden_prompt.json");
  const auto golden = nlohmann::json::parse(g);
  const nlohmann::json texts = {golden["text"], "", "plain text, no specials"};
  std::ofstream(tmp / "in.json") << texts.dump();

  const std::string cmd = bin + " tokenize --model " + model + " --in " + (tmp / "in.json").string() + " --out " +
                          (tmp / "out.json").string();
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream r(tmp / "out.json");
  const auto result = nlohmann::json::parse(r);
  REQUIRE(result.is_array());
  REQUIRE(result.size() == 3);
  CHECK(result[0]["ids"] == golden["ids"]);
  CHECK(result[0]["decoded"] == golden["text"]);
  CHECK(result[1]["ids"].empty());
  CHECK(result[1]["decoded"] == "");
  CHECK(result[2]["decoded"] == "plain text, no specials");

  // A bad model folder fails with a non-zero exit status.
  const std::string bad = bin + " tokenize --model " + tmp.string() + " --in " + (tmp / "in.json").string() + " --out " +
                          (tmp / "x.json").string() + " 2>/dev/null";
  CHECK(std::system(bad.c_str()) != 0);
  std::filesystem::remove_all(tmp);
}
