// bitsandbytes NF4 weights (checkpoint/bnb_nf4.h): every element of random weights, plain
// and nested, against tools/nf4_reference.py's torch formula bit for bit; and every way an
// NF4 checkpoint can be broken refused with the tensor named.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "kernels/device.h"
#include "model/omni_parts.h"
#include "model/weight_loader.h"
#include "util/error.h"
#include "util/golden.h"
#include "util/npy.h"
#include "util/safetensors_tensors.h"
#include "util/tiny_fixtures.h"

using namespace omni;
namespace fs = std::filesystem;

namespace {

const char* kWeights[] = {"plain.bf16.weight", "ragged.f16.weight", "nested.bf16.weight", "nested_ragged.f32.weight"};

// The view's elements as float32 bit patterns (bf16 and f16 widen exactly).
std::vector<uint32_t> view_bits(const TensorView& t) {
  std::vector<float> f(size_t(t.numel()));
  kernels::convert_to_f32(t.data, t.dtype, f.data(), f.size());
  std::vector<uint32_t> bits(f.size());
  std::memcpy(bits.data(), f.data(), f.size() * 4);
  return bits;
}

std::vector<uint32_t> npy_bits(const std::string& path) {
  NpyArray a = read_npy(path);
  REQUIRE(a.descr == "<f4");
  std::vector<uint32_t> bits(size_t(a.numel()));
  std::memcpy(bits.data(), a.bytes.data(), bits.size() * 4);
  return bits;
}

// A scratch copy of nf4-blocks whose tensors a test rewrites.
struct ScratchNf4 {
  fs::path dir;
  test::StTensors tensors = test::read_safetensors(test::data("nf4-blocks/model.safetensors"));
  nlohmann::json config = nlohmann::json::parse(test::slurp(test::data("nf4-blocks/config.json")));

  ScratchNf4() {
    static int counter = 0;
    dir = fs::temp_directory_path() / ("omni-nf4-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~ScratchNf4() { fs::remove_all(dir); }

  nlohmann::json state(const std::string& w) const {
    return nlohmann::json::parse(tensors.at(w + ".quant_state.bitsandbytes__nf4").data);
  }
  void set_state(const std::string& w, const std::string& bytes) {
    test::StTensor& e = tensors.at(w + ".quant_state.bitsandbytes__nf4");
    e.data = bytes;
    e.shape = {int64_t(bytes.size())};
  }
  std::string open() const {
    test::write_safetensors((dir / "model.safetensors").string(), tensors);
    std::ofstream(dir / "config.json", std::ios::trunc) << config.dump();
    Checkpoint ck(dir.string());
    for (const char* w : kWeights) ck.get(w);
    return "opened";
  }
};

}  // namespace

TEST_CASE("NF4 weights dequantize like bitsandbytes, every block", "[nf4]") {
  Checkpoint ck(test::data("nf4-blocks"));
  REQUIRE(ck.nf4_weights().size() == 4);
  for (const char* w : kWeights) {
    INFO(w);
    const Checkpoint::Bytes b = ck.bytes(w);
    const TensorView& t = ck.get(w);
    CHECK(b.view == t.bytes);
    CHECK_FALSE(t.file_backed);
    const std::vector<uint32_t> want = npy_bits(test::data(std::string("nf4-blocks/") + w + ".npy"));
    REQUIRE(size_t(t.numel()) == want.size());
    const std::vector<uint32_t> got = view_bits(t);
    size_t differ = 0, first = want.size();
    for (size_t i = 0; i < want.size(); ++i)
      if (got[i] != want[i] && differ++ == 0) first = i;
    INFO("first difference at element " << first);
    CHECK(differ == 0);
  }
  // In the files: the codes (four bits a weight) as the tensor itself, and with the scales
  // and the tables for the whole weight.
  CHECK(ck.bytes("plain.bf16.weight").file == 48 * 40 / 2);
  CHECK(ck.bytes("plain.bf16.weight.absmax").file == 30 * 4);
  CHECK(ck.bytes("plain.bf16.weight").view == 48 * 40 * 2);
  for (const Nf4Weight* w : ck.nf4_weights()) {
    if (w->name == "plain.bf16.weight") CHECK(w->file_bytes() == 48 * 40 / 2 + 30 * 4 + 16 * 4);
    if (w->name == "nested.bf16.weight") CHECK(w->file_bytes() == 96 * 200 / 2 + 300 + 2 * 4 + 16 * 4 + 256 * 4);
  }
  CHECK(ck.get("plain.bf16.weight").dtype == kernels::DType::BF16);
  CHECK(ck.get("ragged.f16.weight").dtype == kernels::DType::F16);
  CHECK(ck.get("nested_ragged.f32.weight").dtype == kernels::DType::F32);
  CHECK(ck.get("nested.bf16.weight", {96, 200}).shape == std::vector<int64_t>{96, 200});
  CHECK_THROWS_WITH(ck.get("nested.bf16.weight", {200, 96}), Catch::Contains("nested.bf16.weight") &&
                                                                 Catch::Contains("[96, 200]"));
}

TEST_CASE("a released NF4 weight is dequantized again, and a copy handed out outlives it", "[nf4]") {
  Checkpoint ck(test::data("nf4-blocks"));
  const TensorView first = ck.get("nested.bf16.weight");   // holds the buffer through owner
  const std::vector<uint32_t> before = view_bits(first);
  ck.release("nested.bf16.weight");
  CHECK(view_bits(first) == before);
  const TensorView& again = ck.get("nested.bf16.weight");
  CHECK(again.data != nullptr);
  CHECK(view_bits(again) == before);
}

TEST_CASE("an intact NF4 scratch copy opens", "[nf4]") {
  ScratchNf4 m;
  CHECK(m.open() == "opened");
}

TEST_CASE("NF4: a missing scale or table is refused, naming it", "[nf4]") {
  for (const char* part : {".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map"}) {
    ScratchNf4 m;
    const std::string w = std::string(part).rfind(".nested", 0) == 0 ? "nested.bf16.weight" : "plain.bf16.weight";
    m.tensors.erase(w + part);
    CHECK_THROWS_WITH(m.open(), Catch::Contains("missing tensor '" + w + part + "'"));
  }
}

TEST_CASE("NF4: a quant state that is not JSON, or lacks a field, is refused, naming it", "[nf4]") {
  ScratchNf4 m;
  m.set_state("plain.bf16.weight", "{\"quant_type\": \"nf4\", \"blocksize\"");
  CHECK_THROWS_WITH(m.open(), Catch::Contains("plain.bf16.weight.quant_state.bitsandbytes__nf4") &&
                                  Catch::Contains("not JSON"));
  ScratchNf4 m2;
  nlohmann::json s = m2.state("ragged.f16.weight");
  s.erase("blocksize");
  m2.set_state("ragged.f16.weight", s.dump());
  CHECK_THROWS_WITH(m2.open(), Catch::Contains("ragged.f16.weight.quant_state") && Catch::Contains("blocksize"));
  ScratchNf4 m3;
  s = m3.state("ragged.f16.weight");
  s["dtype"] = "int8";
  m3.set_state("ragged.f16.weight", s.dump());
  CHECK_THROWS_WITH(m3.open(), Catch::Contains("ragged.f16.weight.quant_state") && Catch::Contains("'int8'"));
}

TEST_CASE("NF4: fp4 weights are refused, naming the tensor", "[nf4]") {
  ScratchNf4 m;   // the quant state's key names fp4
  auto node = m.tensors.extract("plain.bf16.weight.quant_state.bitsandbytes__nf4");
  node.key() = "plain.bf16.weight.quant_state.bitsandbytes__fp4";
  m.tensors.insert(std::move(node));
  CHECK_THROWS_WITH(m.open(), Catch::Contains("plain.bf16.weight.quant_state.bitsandbytes__fp4") &&
                                  Catch::Contains("'fp4' is not supported"));
  ScratchNf4 m2;  // or only its JSON does
  nlohmann::json s = m2.state("plain.bf16.weight");
  s["quant_type"] = "fp4";
  m2.set_state("plain.bf16.weight", s.dump());
  CHECK_THROWS_WITH(m2.open(), Catch::Contains("plain.bf16.weight.quant_state") && Catch::Contains("'fp4'"));
  ScratchNf4 m3;  // or config.json does
  m3.config["quantization_config"]["bnb_4bit_quant_type"] = "fp4";
  CHECK_THROWS_WITH(m3.open(), Catch::Contains("config.json") && Catch::Contains("fp4"));
}

TEST_CASE("NF4: codes or scales that do not match the quant state's shape are refused, naming the tensor", "[nf4]") {
  ScratchNf4 m;
  nlohmann::json s = m.state("plain.bf16.weight");
  s["shape"] = {48, 41};
  m.set_state("plain.bf16.weight", s.dump());
  CHECK_THROWS_WITH(m.open(), Catch::Contains("NF4 weight 'plain.bf16.weight'") && Catch::Contains("[48, 41]"));
  ScratchNf4 m2;   // one scale short
  auto& a = m2.tensors.at("ragged.f16.weight.absmax");
  a.data.resize(a.data.size() - 4);
  a.shape = {a.shape[0] - 1};
  CHECK_THROWS_WITH(m2.open(), Catch::Contains("ragged.f16.weight.absmax") && Catch::Contains("elements"));
  ScratchNf4 m3;   // nested codes stored as F32
  auto& q = m3.tensors.at("nested.bf16.weight.absmax");
  q.dtype = "F32";
  q.data.resize(q.data.size() * 4);
  CHECK_THROWS_WITH(m3.open(), Catch::Contains("nested.bf16.weight.absmax") && Catch::Contains("must be U8"));
  ScratchNf4 m4;   // packed codes in another storage dtype
  auto& p = m4.tensors.at("plain.bf16.weight");
  p.dtype = "F16";
  p.shape = {p.shape[0] / 2, 1};
  CHECK_THROWS_WITH(m4.open(), Catch::Contains("NF4 weight 'plain.bf16.weight'") && Catch::Contains("not U8"));
}

TEST_CASE("NF4: a quant_map other than the NF4 table is refused", "[nf4]") {
  ScratchNf4 m;
  auto& t = m.tensors.at("plain.bf16.weight.quant_map");
  const float v = 0.5f;
  std::memcpy(t.data.data() + 4 * 3, &v, 4);
  CHECK_THROWS_WITH(m.open(), Catch::Contains("plain.bf16.weight.quant_map") && Catch::Contains("not the NF4 table"));
}

TEST_CASE("NF4: a U8 tensor without a quant state is not handed out as weights", "[nf4]") {
  ScratchNf4 m;
  m.tensors.erase("plain.bf16.weight.quant_state.bitsandbytes__nf4");
  CHECK_THROWS_WITH(m.open(), Catch::Contains("'plain.bf16.weight' is U8") &&
                                  Catch::Contains("plain.bf16.weight.quant_state.bitsandbytes__nf4"));
}

TEST_CASE("quantization the engine cannot run is refused from config.json", "[nf4]") {
  ScratchNf4 m;
  m.config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
  CHECK_THROWS_WITH(m.open(), Catch::Contains("config.json") && Catch::Contains("'gptq' is not supported"));
  ScratchNf4 m2;
  m2.config["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}};
  CHECK_THROWS_WITH(m2.open(), Catch::Contains("config.json") && Catch::Contains("8-bit"));
}

namespace {

std::vector<float> reference(const std::string& w) {
  return read_npy(test::data("nf4-blocks/" + w + ".npy")).as_float();
}

}  // namespace

TEST_CASE("the loader releases an NF4 weight's host copy once all of it is on its device", "[nf4][loader]") {
  Checkpoint ck(test::data("nf4-blocks"));
  WeightLoader w(ck);
  auto dev = kernels::make_device({});   // f32 weights: converted, the copy is not kept
  w.plan("plain.bf16.weight");
  CHECK(ck.held_bytes() == 0);           // planning reads sizes only
  kernels::Tensor t = w.load_matrix("plain.bf16.weight", {48, 40}, dev);
  CHECK(ck.held_bytes() == 0);
  CHECK(t.to_host() == reference("plain.bf16.weight"));

  // In two shards (tensor parallelism): held until the last shard is loaded.
  kernels::Tensor top = w.load_matrix_rows("nested.bf16.weight", {96, 200}, 0, 48, dev);
  CHECK(ck.held_bytes() == 96 * 200 * 2);
  kernels::Tensor bottom = w.load_matrix_rows("nested.bf16.weight", {96, 200}, 48, 48, dev);
  CHECK(ck.held_bytes() == 0);
  std::vector<float> both = top.to_host(), rest = bottom.to_host();
  both.insert(both.end(), rest.begin(), rest.end());
  CHECK(both == reference("nested.bf16.weight"));
}

TEST_CASE("a device tensor adopting an NF4 weight's host copy keeps it after the release", "[nf4][loader]") {
  Checkpoint ck(test::data("nf4-blocks"));
  WeightLoader w(ck);
  auto dev = kernels::make_device({}, 0, kernels::CpuWeights::BF16);   // the weight's own dtype: adopted
  const void* copy = ck.get("nested.bf16.weight").data;   // dequantized now; the loader takes this copy
  kernels::Tensor t = w.load_matrix("nested.bf16.weight", {96, 200}, dev);
  CHECK(ck.held_bytes() == 0);
  CHECK(t.dtype() == kernels::DType::BF16);
  CHECK(t.raw() == copy);   // adopted, not copied
  kernels::Tensor again = w.load_matrix("nested.bf16.weight", {96, 200}, dev);   // dequantized anew
  CHECK(t.to_host() == reference("nested.bf16.weight"));
  CHECK(again.to_host() == reference("nested.bf16.weight"));
}

TEST_CASE("load progress counts NF4 weights at their dequantized size and ends at 100 %", "[nf4][loader]") {
  Checkpoint ck(test::data("nf4-blocks"));
  LoadProgress last;
  WeightLoader w(ck, [&](const LoadProgress& p) { last = p; });
  w.plan("plain.bf16.weight");
  w.plan("ragged.f16.weight");
  auto dev = kernels::make_device({});
  w.load_matrix("plain.bf16.weight", {48, 40}, dev);
  w.load_matrix("ragged.f16.weight", {37, 7}, dev);
  CHECK(last.total_bytes == 48 * 40 * 2 + 37 * 7 * 2);
  CHECK(last.done_bytes == last.total_bytes);
  CHECK(last.done_tensors == 2);
  CHECK(last.total_tensors == 2);
}

TEST_CASE("MiniCPM-o's skipped parts, NF4 in an int4 release, are tallied without dequantizing", "[nf4]") {
  // model/omni_parts: apm.* and tts.* are never loaded; their size comes from the headers.
  ScratchNf4 m;
  test::StTensors apm;
  size_t file_bytes = 0;
  for (const auto& [name, t] : m.tensors) {
    apm["apm." + name] = t;
    file_bytes += t.data.size();
  }
  test::write_safetensors((m.dir / "model.safetensors").string(), apm);
  std::ofstream(m.dir / "config.json", std::ios::trunc) << m.config.dump();
  Checkpoint ck(m.dir.string());
  REQUIRE(ck.nf4_weights().size() == 4);
  const OmniParts parts = OmniParts::of(ck);
  REQUIRE(parts.skipped.size() == 1);
  CHECK(parts.skipped[0].tensors == m.tensors.size());
  CHECK(parts.skipped[0].bytes == file_bytes);
  CHECK(ck.held_bytes() == 0);
}
