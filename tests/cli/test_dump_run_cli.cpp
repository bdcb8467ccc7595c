// The `omnid dump` and `omnid run` contracts, and the one-message, non-zero exit for a
// broken checkpoint.
#include <catch2/catch.hpp>

#include <filesystem>

#include "run_command.h"
#include "util/npy.h"

using omni::test::bin;
using omni::test::run_command;
namespace fs = std::filesystem;

namespace {
std::string data(const std::string& rel) { return std::string(OMNI_TEST_DATA) + "/" + rel; }
}  // namespace

TEST_CASE("omnid dump --tokens writes logits.npy and generated.npy", "[cli]") {
  const fs::path out = fs::temp_directory_path() / ("omni-dump-" + std::to_string(::getpid()));
  auto r = run_command(bin("omnid") + " dump --model " + data("llama-tiny") + " --tokens 5,6,7,8 --out " +
                       out.string() + " --generate 5");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto logits = omni::read_npy((out / "logits.npy").string());
  CHECK(logits.descr == "<f4");
  CHECK(logits.shape == std::vector<int64_t>{4, 512});
  auto gen = omni::read_npy((out / "generated.npy").string());
  CHECK(gen.descr == "<i4");
  CHECK(gen.shape == std::vector<int64_t>{5});
  fs::remove_all(out);
}

TEST_CASE("omnid dump --image --text writes the vision intermediates", "[cli]") {
  const fs::path out = fs::temp_directory_path() / ("omni-dumpv-" + std::to_string(::getpid()));
  auto r = run_command(bin("omnid") + " dump --model " + data("minicpmv26-tiny") + " --image " +
                       data("minicpmv26-tiny/case_wide/image.png") + " --text 'What is here?' --out " + out.string() +
                       " --generate 3");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  for (const char* f : {"prompt.json", "slices.json", "pixels_0.npy", "pixels_6.npy", "vision_embeds.npy", "logits.npy",
                        "generated.npy"})
    CHECK(fs::exists(out / f));
  CHECK(omni::read_npy((out / "vision_embeds.npy").string()).shape == std::vector<int64_t>{7, 16, 256});
  fs::remove_all(out);
}

TEST_CASE("a broken checkpoint exits non-zero with one message naming file and tensor", "[cli]") {
  const fs::path dir = fs::temp_directory_path() / ("omni-broken-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(data("qwen2-tiny/config.json"), dir / "config.json");
  {
    std::ifstream in(data("qwen2-tiny/model.safetensors"), std::ios::binary);
    std::string b(std::istreambuf_iterator<char>(in), {});
    std::ofstream(dir / "model.safetensors", std::ios::binary) << b.substr(0, b.size() / 2);
  }
  auto r = run_command(bin("omnid") + " dump --model " + dir.string() + " --tokens 1,2 --out " + (dir / "o").string());
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::StartsWith("omnid: error: ") && Catch::Contains("model.safetensors") &&
                        Catch::Contains("tensor '"));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK_FALSE(fs::exists(dir / "o" / "logits.npy"));
  fs::remove_all(dir);
}

TEST_CASE("omnid run prints the answer and refuses bad pictures clearly", "[cli]") {
  auto ok = run_command(bin("omnid") + " run --model " + data("minicpmv26-tiny") + " --image " +
                        data("minicpmv26-tiny/case_small/image.png") + " --greedy --max-tokens 4 'What?'");
  INFO(ok.err);
  CHECK(ok.exit_code == 0);
  CHECK_FALSE(ok.out.empty());
  CHECK(ok.out.back() == '\n');

  const fs::path junk = fs::temp_directory_path() / ("omni-junk-" + std::to_string(::getpid()) + ".png");
  std::ofstream(junk) << "definitely not a picture";
  auto bad = run_command(bin("omnid") + " run --model " + data("minicpmv26-tiny") + " --image " + junk.string() +
                         " --greedy --max-tokens 4 'What?'");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.err, Catch::Contains(junk.string()));
  fs::remove(junk);
}
