// The shapes demo model (models/shapes, trained by tools/shapes/train.py) answers committed
// pictures through the engine: `omnid run --greedy` must give the expected one-word answer.
// The pictures and answers come from tools/shapes/evaluate.py --write-cases (generator seed
// never used in training). See docs/demo-model.md.
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "cli/run_command.h"
#include "util/skip.h"

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

using omni::test::shell_quote;

// stdout of the command (trimmed); rc receives the exit status.
std::string run(const std::string& cmd, int& rc) {
  const auto r = omni::test::run_command(cmd);
  rc = r.exit_code;
  return omni::test::trimmed(r.out);
}

// Runs every committed case through `omnid run` with `flags` added; the engine's answer must
// be the PyTorch model's, and all but one must be right.
void answers_committed_pictures(const std::string& flags) {
  const std::string data = std::string(OMNI_TEST_DATA) + "/shapes";
  const std::string model = std::string(OMNI_TEST_DATA) + "/../../models/shapes";
  const std::string bin = std::string(OMNI_BIN_DIR) + "/omnid";
  REQUIRE(exists(model + "/model.safetensors"));
  REQUIRE(exists(model + "/config.json"));
  if (!exists(bin)) {
    OMNI_SKIP("omnid not built at " << bin);
  }
  std::ifstream in(data + "/cases.json");
  REQUIRE(in.good());
  const nlohmann::json cases = nlohmann::json::parse(in);
  REQUIRE(cases.size() >= 10);
  int right = 0;
  for (const auto& c : cases) {
    const std::string image = data + "/" + c.at("image").get<std::string>();
    const std::string question = c.at("question").get<std::string>();
    const std::string expected = c.at("answer").get<std::string>();
    const std::string pytorch = c.value("pytorch", expected);  // the PyTorch model's own answer
    const std::string cmd = "OMNI_LOG_LEVEL=warn " + shell_quote(bin) + " run --model " + shell_quote(model) +
                            " --image " + shell_quote(image) + " --greedy --max-tokens 16 " + flags + " " + shell_quote(question);
    int rc = 0;
    const std::string got = run(cmd, rc);
    INFO((flags.empty() ? "" : flags + ": ") << c.at("image").get<std::string>() << ": " << question << " expected '" << expected << "', PyTorch '"
                                          << pytorch << "', engine '" << got << "'");
    CHECK(rc == 0);
    CHECK(got == pytorch);  // the engine computes what the training script's model computes
    if (got != expected) WARN("wrong answer (the model is right on about 97 % of fresh pictures)");
    if (rc == 0 && got == expected) ++right;
  }
  // The committed model is right on about 97 % of fresh pictures (docs/demo-model.md) and on all 12
  // of these; chance is about 30 %. Allow one miss so that a retrained model of the same quality passes.
  CHECK(right + 1 >= int(cases.size()));
}

}  // namespace

TEST_CASE("shapes demo model answers the committed pictures through omnid run") { answers_committed_pictures(""); }

// The demo checkpoint is float32: bf16 rounds its matrices, int8 makes Q8_0 blocks of them
// (kernels/cpu_weights.h); the answers must not change.
TEST_CASE("shapes demo model answers the same with bf16 and int8 weights on the cpu", "[cpu_weights]") {
  answers_committed_pictures("--cpu-weights bf16");
  answers_committed_pictures("--cpu-weights int8");
}

TEST_CASE("shapes demo model folder is complete and small") {
  const std::string model = std::string(OMNI_TEST_DATA) + "/../../models/shapes";
  for (const char* f : {"config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
                        "model.safetensors"}) {
    INFO(f);
    CHECK(exists(model + "/" + f));
  }
  struct stat st;
  REQUIRE(::stat((model + "/model.safetensors").c_str(), &st) == 0);
  CHECK(st.st_size <= 20 * 1000 * 1000);
}
