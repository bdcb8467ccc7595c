// Every way a checkpoint can be broken gets one clear error naming the file and,
// where there is one, the tensor; nothing half-loaded survives.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "kernels/device.h"
#include "model/causal_lm.h"
#include "util/error.h"
#include "util/golden.h"

using namespace omni;
namespace fs = std::filesystem;

namespace {

// A scratch copy of qwen2-tiny that a test may damage.
struct ScratchModel {
  fs::path dir;
  ScratchModel() {
    dir = fs::temp_directory_path() / ("omni-ckpt-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const char* f : {"config.json", "model.safetensors"})
      fs::copy_file(test::data(std::string("qwen2-tiny/") + f), dir / f);
    fs::permissions(dir / "model.safetensors", fs::perms::owner_write, fs::perm_options::add);
    fs::permissions(dir / "config.json", fs::perms::owner_write, fs::perm_options::add);
  }
  ~ScratchModel() { fs::remove_all(dir); }
  static int& counter() { static int c = 0; return c; }
  std::string st() const { return (dir / "model.safetensors").string(); }

  std::string read(const std::string& f) const {
    std::ifstream in(dir / f, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  void write(const std::string& f, const std::string& bytes) const {
    std::ofstream out(dir / f, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  // Rewrites the safetensors JSON header through `edit`, keeping the data section.
  template <class F> void edit_header(F edit) const {
    std::string b = read("model.safetensors");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(b[size_t(i)]);
    nlohmann::json h = nlohmann::json::parse(b.substr(8, n));
    edit(h);
    std::string hs = h.dump();
    std::string len(8, '\0');
    for (int i = 0; i < 8; ++i) len[size_t(i)] = char((hs.size() >> (8 * i)) & 0xff);
    write("model.safetensors", len + hs + b.substr(8 + n));
  }
  void edit_config(const std::function<void(nlohmann::json&)>& edit) const {
    nlohmann::json c = nlohmann::json::parse(read("config.json"));
    edit(c);
    write("config.json", c.dump());
  }
  void load() const {
    CausalLm::load(dir.string(), [](const LlmConfig& c) {
      return DecoderPlacement::single(kernels::make_device({}), c.n_layers);
    });
  }
};

}  // namespace

TEST_CASE("an intact copy loads", "[checkpoint]") {
  ScratchModel m;
  CHECK_NOTHROW(m.load());
}

TEST_CASE("missing folder and missing files are named", "[checkpoint]") {
  CHECK_THROWS_WITH(Checkpoint("/nonexistent/model"), Catch::Contains("/nonexistent/model") && Catch::Contains("not a model folder"));
  ScratchModel m;
  fs::remove(m.dir / "model.safetensors");
  CHECK_THROWS_WITH(m.load(), Catch::Contains("no model.safetensors"));
  ScratchModel m2;
  fs::remove(m2.dir / "config.json");
  CHECK_THROWS_WITH(m2.load(), Catch::Contains("config.json") && Catch::Contains("cannot open"));
}

TEST_CASE("a truncated safetensors file is refused", "[checkpoint]") {
  ScratchModel m;
  std::string b = m.read("model.safetensors");
  m.write("model.safetensors", b.substr(0, b.size() - 1000));
  CHECK_THROWS_WITH(m.load(), Catch::Contains(m.st()) && Catch::Contains("outside") && Catch::Contains("truncated"));
  m.write("model.safetensors", b.substr(0, 5));
  CHECK_THROWS_WITH(m.load(), Catch::Contains(m.st()) && Catch::Contains("truncated"));
  m.write("model.safetensors", b.substr(0, 100));
  CHECK_THROWS_WITH(m.load(), Catch::Contains(m.st()) && Catch::Contains("header length"));
}

TEST_CASE("a garbled header is refused", "[checkpoint]") {
  ScratchModel m;
  std::string b = m.read("model.safetensors");
  b[8] = '#';   // the header's opening brace
  m.write("model.safetensors", b);
  CHECK_THROWS_WITH(m.load(), Catch::Contains(m.st()) && Catch::Contains("garbled"));
}

TEST_CASE("offsets that lie are refused, naming the tensor", "[checkpoint]") {
  ScratchModel m;
  m.edit_header([](nlohmann::json& h) { h["model.norm.weight"]["data_offsets"][1] = 1ull << 40; });
  CHECK_THROWS_WITH(m.load(), Catch::Contains(m.st()) && Catch::Contains("model.norm.weight") && Catch::Contains("outside"));
  ScratchModel m2;
  m2.edit_header([](nlohmann::json& h) {
    auto& o = h["model.norm.weight"]["data_offsets"];
    o[1] = o[1].get<uint64_t>() - 2;
  });
  CHECK_THROWS_WITH(m2.load(), Catch::Contains("model.norm.weight") && Catch::Contains("bytes but its shape"));
  ScratchModel m3;
  m3.edit_header([](nlohmann::json& h) {
    h["model.norm.weight"]["data_offsets"] = h["model.layers.0.input_layernorm.weight"]["data_offsets"];
  });
  CHECK_THROWS_WITH(m3.load(), Catch::Contains("overlap"));
}

TEST_CASE("an unknown dtype is refused, naming the tensor", "[checkpoint]") {
  ScratchModel m;
  m.edit_header([](nlohmann::json& h) { h["model.norm.weight"]["dtype"] = "F8_E4M3"; });
  CHECK_THROWS_WITH(m.load(), Catch::Contains("model.norm.weight") && Catch::Contains("F8_E4M3"));
}

TEST_CASE("a missing tensor is named", "[checkpoint]") {
  ScratchModel m;
  m.edit_header([](nlohmann::json& h) { h.erase("model.layers.1.mlp.up_proj.weight"); });
  CHECK_THROWS_WITH(m.load(), Catch::Contains("missing tensor 'model.layers.1.mlp.up_proj.weight'") &&
                                  Catch::Contains("model.safetensors"));
}

TEST_CASE("a shape that disagrees with config.json is named", "[checkpoint]") {
  ScratchModel m;
  m.edit_config([](nlohmann::json& c) { c["intermediate_size"] = 96; });
  CHECK_THROWS_WITH(m.load(), Catch::Contains("mlp.gate_proj.weight") && Catch::Contains("has shape") &&
                                  Catch::Contains("[96, 64]"));
}

TEST_CASE("unknown architectures and bad configs are refused", "[checkpoint]") {
  ScratchModel m;
  m.edit_config([](nlohmann::json& c) { c["model_type"] = "gpt2"; });
  CHECK_THROWS_WITH(m.load(), Catch::Contains("config.json") && Catch::Contains("unsupported architecture") &&
                                  Catch::Contains("gpt2"));
  ScratchModel m2;
  m2.edit_config([](nlohmann::json& c) { c["num_key_value_heads"] = 3; });
  CHECK_THROWS_WITH(m2.load(), Catch::Contains("not a multiple of num_key_value_heads"));
  ScratchModel m3;
  m3.write("config.json", "{\"model_type\": \"qwen2\", ");
  CHECK_THROWS_WITH(m3.load(), Catch::Contains("config.json") && Catch::Contains("invalid JSON"));
  ScratchModel m4;
  m4.edit_config([](nlohmann::json& c) { c.erase("hidden_size"); });
  CHECK_THROWS_WITH(m4.load(), Catch::Contains("'hidden_size'"));
}

TEST_CASE("sharded checkpoints load through the index", "[checkpoint]") {
  // Split qwen2-tiny into two shards by rewriting headers over the same data.
  ScratchModel m;
  std::string b = m.read("model.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(b[size_t(i)]);
  nlohmann::json h = nlohmann::json::parse(b.substr(8, n));
  std::string data = b.substr(8 + n);
  nlohmann::json shard[2] = {nlohmann::json::object(), nlohmann::json::object()};
  std::string bytes[2];
  nlohmann::json index;
  int k = 0;
  for (auto it = h.begin(); it != h.end(); ++it, ++k) {
    if (it.key() == "__metadata__") continue;
    int s = k % 2;
    uint64_t a = it.value()["data_offsets"][0], e = it.value()["data_offsets"][1];
    nlohmann::json t = it.value();
    t["data_offsets"] = {bytes[s].size(), bytes[s].size() + (e - a)};
    bytes[s] += data.substr(a, e - a);
    shard[s][it.key()] = t;
    index["weight_map"][it.key()] = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
  }
  fs::remove(m.dir / "model.safetensors");
  for (int s = 0; s < 2; ++s) {
    std::string hs = shard[s].dump(), len(8, '\0');
    for (int i = 0; i < 8; ++i) len[size_t(i)] = char((hs.size() >> (8 * i)) & 0xff);
    m.write("model-0000" + std::to_string(s + 1) + "-of-00002.safetensors", len + hs + bytes[s]);
  }
  m.write("model.safetensors.index.json", index.dump());
  CHECK_NOTHROW(m.load());
  Checkpoint c(m.dir.string());
  CHECK(c.get("model.norm.weight").shape == std::vector<int64_t>{64});

  index["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors";
  m.write("model.safetensors.index.json", index.dump());
  CHECK_THROWS_WITH(m.load(), Catch::Contains("leaves the model folder"));
}
