// The command-line contract: `omnid plan --json` from config.json alone, refusals with
// the numbers on stderr and a non-zero exit, and `omnid dump` over several devices
// writing what one device writes.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "util/golden.h"
#include "util/npy.h"

namespace fs = std::filesystem;

namespace {

struct Ran {
  int rc = -1;
  std::string out, err;
};

// Runs omnid with `args`, capturing stdout and stderr.
Ran omnid(const std::string& args) {
  const std::string bin = std::string(OMNI_BIN_DIR) + "/omnid";
  if (!fs::exists(bin)) FAIL(bin + " is missing: build the omnid target first");
  const fs::path err = fs::temp_directory_path() / ("omni_plan_err_" + std::to_string(::getpid()));
  Ran r;
  FILE* p = ::popen((bin + " " + args + " 2>" + err.string()).c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(err);
  r.err.assign(std::istreambuf_iterator<char>(f), {});
  fs::remove(err);
  return r;
}

}  // namespace

TEST_CASE("omnid plan --json prints the placement", "[plan][cli]") {
  const Ran r = omnid("plan --model " + omni::test::data("minicpmv26-tiny") +
                      " --devices cpu:0,cpu:1 --parallel pipeline --vision-device cpu:1 --max-memory cpu:0=64MiB,cpu:1=64MiB"
                      " --context 512 --json");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["parallel"] == "pipeline");
  REQUIRE(j["devices"].size() == 2);
  CHECK(j["devices"][0]["device"] == "cpu:0");
  CHECK(j["devices"][0]["layers"] == nlohmann::json::array({0, 0}));
  CHECK(j["devices"][1]["layers"] == nlohmann::json::array({1, 1}));
  const auto comps = j["devices"][1]["components"].get<std::vector<std::string>>();
  CHECK(std::count(comps.begin(), comps.end(), "vision") == 1);
  CHECK(std::count(comps.begin(), comps.end(), "lm_head") == 1);
  for (const auto& d : j["devices"]) {
    CHECK(d["weight_bytes"].get<int64_t>() > 0);
    CHECK(d["kv_bytes"].get<int64_t>() > 0);
    CHECK(d["free_after_load_bytes"].get<int64_t>() > 0);
    CHECK(d.contains("workspace_bytes"));
  }
  // use_multi_gpu = false keeps to the first device.
  const Ran one = omnid("plan --model " + omni::test::data("qwen2-tiny") + " --devices cpu:0,cpu:1 --use-multi-gpu false --json");
  REQUIRE(one.rc == 0);
  CHECK(nlohmann::json::parse(one.out)["devices"].size() == 1);
  // The KV cache in the blocks the daemon allocates: ceil(1000 / 16) = 63 blocks; qwen2-tiny
  // has 3 layers of 2 KV heads x 16 dims, fp32 on cpu: 2 x 63 x 16 x 32 x 3 x 4 bytes.
  const Ran kv = omnid("plan --model " + omni::test::data("qwen2-tiny") + " --devices cpu:0 --kv-cache-tokens 1000 --json");
  REQUIRE(kv.rc == 0);
  const auto kj = nlohmann::json::parse(kv.out);
  CHECK(kj["kv_cache"]["block_tokens"] == 16);
  CHECK(kj["kv_cache"]["blocks"] == 63);
  CHECK(kj["kv_cache"]["tokens"] == 1008);
  CHECK(kj["devices"][0]["kv_bytes"].get<int64_t>() == int64_t(2) * 63 * 16 * 32 * 3 * 4);
  const Ran table = omnid("plan --model " + omni::test::data("qwen2-tiny") + " --devices cpu:0,cpu:1 --parallel tensor");
  REQUIRE(table.rc == 0);
  CHECK_THAT(table.out, Catch::Contains("parallel: tensor"));
  CHECK_THAT(table.out, Catch::Contains(" blocks of 16 tokens"));
}

TEST_CASE("omnid plan refuses with the numbers on stderr", "[plan][cli][errors]") {
  Ran r = omnid("plan --model " + omni::test::data("qwen2-tiny") + " --devices cpu:0,cpu:1 --max-memory cpu:0=8KiB,cpu:1=8KiB");
  CHECK(r.rc != 0);
  CHECK_THAT(r.err, Catch::Contains("does not fit"));
  CHECK_THAT(r.err, Catch::Contains("available 8.0 KiB"));
  r = omnid("plan --model " + omni::test::data("qwen2-tiny") + " --devices cpu:0,cpu:1,cpu:2 --parallel tensor");
  CHECK(r.rc != 0);
  CHECK_THAT(r.err, Catch::Contains("must both divide by 3"));
  r = omnid("plan --model " + omni::test::data("qwen2-tiny") + " --devices cpu:0,tpu:1");
  CHECK(r.rc != 0);
  CHECK_THAT(r.err, Catch::Contains("unknown device 'tpu:1'"));
  r = omnid("plan --model " + omni::test::data("qwen2-tiny") + " --devices cpu:0,cpu:1 --split 1,1,1");
  CHECK(r.rc != 0);
  CHECK_THAT(r.err, Catch::Contains("split has 3 weights for 2 devices"));
}

TEST_CASE("omnid dump over several devices writes what one device writes", "[plan][cli]") {
  const std::string model = omni::test::data("llama-tiny");
  const fs::path tmp = fs::temp_directory_path() / ("omni_plan_dump_" + std::to_string(::getpid()));
  auto dump = [&](const std::string& name, const std::string& flags) {
    const Ran r = omnid("dump --model " + model + " --tokens 5,17,99,3,250,41,7 --generate 6 --out " +
                        (tmp / name).string() + " " + flags);
    INFO(r.err);
    REQUIRE(r.rc == 0);
  };
  dump("one", "--devices cpu:0");
  dump("pipe", "--devices cpu:0,cpu:1,cpu:2 --parallel pipeline");
  dump("tensor", "--devices cpu:0,cpu:1 --parallel tensor");
  const auto logits = [&](const std::string& n) { return omni::read_npy((tmp / n / "logits.npy").string()).as_float(); };
  const auto gen = [&](const std::string& n) { return omni::read_npy((tmp / n / "generated.npy").string()).as_int32(); };
  CHECK(omni::test::rel_error(logits("pipe"), logits("one")) <= 1e-6);
  CHECK(omni::test::rel_error(logits("tensor"), logits("one")) <= 1e-5);
  CHECK(gen("pipe") == gen("one"));
  CHECK(gen("tensor") == gen("one"));
  fs::remove_all(tmp);
}

TEST_CASE("omnid plan counts a checkpoint's NF4 weights and what dequantizing them costs", "[plan][cli][nf4]") {
  // tests/data/qwen2-tiny-nf4: 3 layers x 7 linears NF4 (tools/make_nf4_tiny.py), 18 tensors left bf16.
  const Ran r = omnid("plan --model " + omni::test::data("qwen2-tiny-nf4") + " --devices cpu:0 --context 256 --json");
  INFO(r.err);
  REQUIRE(r.rc == 0);
  const auto q = nlohmann::json::parse(r.out)["quantization"];
  CHECK(q["format"] == "bitsandbytes-nf4");
  CHECK(q["nf4_tensors"] == 21);
  CHECK(q["tensors"] == 39);
  CHECK(q["dequantized_dtype"] == "BF16");
  CHECK(q["dequantized_bytes"] == 3 * (64 * 64 * 2 + 32 * 64 * 2 + 160 * 64 * 3) * 2);
  CHECK(q["largest_dequantized_bytes"] == 160 * 64 * 2);
  CHECK(q["file_bytes"].get<int64_t>() < q["dequantized_bytes"].get<int64_t>() / 3);

  const Ran t = omnid("plan --model " + omni::test::data("qwen2-tiny-nf4") + " --devices cpu:0 --context 256");
  REQUIRE(t.rc == 0);
  CHECK_THAT(t.out, Catch::Contains("quantized: 21 of 39 tensors bitsandbytes NF4") && Catch::Contains("BF16"));

  // An unquantized checkpoint says so in JSON and adds nothing to the table.
  const Ran u = omnid("plan --model " + omni::test::data("qwen2-tiny") + " --devices cpu:0 --context 256 --json");
  REQUIRE(u.rc == 0);
  CHECK(nlohmann::json::parse(u.out)["quantization"]["nf4_tensors"] == 0);
  CHECK_THAT(omnid("plan --model " + omni::test::data("qwen2-tiny") + " --devices cpu:0 --context 256").out,
             !Catch::Contains("quantized"));
}
