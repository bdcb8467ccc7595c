// The goldens with weight matrices kept as bf16 and as Q8_0 on the cpu device
// (--cpu-weights, kernels/cpu_weights.h), against the float32 reference path.
//   bf16: the tiny checkpoints are stored in bf16, so the weights are the reference's own;
//         only the order of float sums differs (row dots vs sgemm).
//   int8: the error Q8_0 adds is predicted by an emulation: the same checkpoint with every
//         matrix rounded through Q8_0 (tests/util/q8_0_reference.h) and written as float32,
//         run on the float32 path. The int8 engine must compute what the emulation does;
//         docs/cpu-weights.md lists the error both show against transformers.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "kernels/device.h"
#include "model/answer.h"
#include "model/causal_lm.h"
#include "model/chat_model.h"
#include "util/npy.h"
#include "util/q8_0_reference.h"
#include "util/tiny_fixtures.h"

using namespace omni;
using kernels::CpuWeights;
namespace fs = std::filesystem;

namespace {

// One cpu device with a budget of its own, so what loading charged to it can be read back.
constexpr size_t kBudget = size_t(1) << 30;

CausalLm::PlaceFn on_cpu(CpuWeights w) {
  return [w](const LlmConfig& c) {
    return DecoderPlacement::single(kernels::make_device({kernels::DeviceId::Kind::CPU, 0}, kBudget, w), c.n_layers);
  };
}

size_t loaded_bytes(const Decoder& dec) { return kBudget - dec.placement().embed_device->free_memory(); }

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The tensors the model loads as weight matrices (WeightLoader::load_matrix in
// daemon/model/decoder.cpp, vision_tower.cpp, resampler.cpp).
bool is_matrix(const std::string& name) {
  for (const char* t : {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight", "out_proj.weight", "gate_proj.weight",
                        "up_proj.weight", "down_proj.weight", "fc1.weight", "fc2.weight", "kv_proj.weight", "in_proj_weight",
                        "embed_tokens.weight", "lm_head.weight"})
    if (ends_with(name, t)) return true;
  return false;
}

// A copy of checkpoint folder `src` whose matrices went through Q8_0 and back, every tensor
// written as float32. resampler.proj is used transposed (x @ proj), so its blocks run down
// its columns.
std::string emulated_q8_0_checkpoint(const std::string& src) {
  const fs::path dir = fs::temp_directory_path() / ("omni-q8emul-" + std::to_string(::getpid()) + "-" + fs::path(src).filename().string());
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(src))
    if (e.is_regular_file() && e.path().extension() != ".safetensors") fs::copy_file(e.path(), dir / e.path().filename());
  Checkpoint ck(src);
  nlohmann::json header;
  std::vector<std::vector<float>> data;
  uint64_t off = 0;
  for (const std::string& name : ck.names()) {
    const TensorView& t = ck.get(name);
    std::vector<float> v(size_t(t.numel()));
    kernels::convert_to_f32(t.data, t.dtype, v.data(), v.size());
    if (t.shape.size() == 2 && is_matrix(name)) {
      for (int64_t r = 0; r < t.shape[0]; ++r) test::q8_0_round_trip(v.data() + r * t.shape[1], t.shape[1]);
    } else if (ends_with(name, "resampler.proj")) {
      const int64_t R = t.shape[0], C = t.shape[1];
      std::vector<float> col(static_cast<size_t>(R));
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t r = 0; r < R; ++r) col[size_t(r)] = v[size_t(r * C + c)];
        test::q8_0_round_trip(col.data(), R);
        for (int64_t r = 0; r < R; ++r) v[size_t(r * C + c)] = col[size_t(r)];
      }
    }
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {off, off + v.size() * 4}}};
    off += v.size() * 4;
    data.push_back(std::move(v));
  }
  std::ofstream f(dir / "model.safetensors", std::ios::binary);
  const std::string hs = header.dump();
  const uint64_t hl = hs.size();
  f.write(reinterpret_cast<const char*>(&hl), 8);
  f << hs;
  for (const auto& v : data) f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));   // names() order, as the offsets
  return dir.string();
}

struct Outcome {
  std::vector<float> logits;    // over the golden prompt
  std::vector<int32_t> greedy;  // as the golden's greedy continuation
  size_t loaded = 0;            // bytes the model took on the device, before any cache
};

Outcome run_decoder(const std::string& dir, const std::string& golden_dir, const CausalLm::PlaceFn& place) {
  auto lm = CausalLm::load(dir, place);
  const Decoder& dec = lm->decoder();
  const std::vector<int32_t> ids = read_npy(golden_dir + "/golden_input_ids.npy").as_int32();
  Outcome o;
  o.loaded = loaded_bytes(dec);
  auto cache = dec.new_cache(int64_t(ids.size()));
  o.logits = prefill(dec, *cache, dec.embed(ids), true);
  const size_t n = read_npy(golden_dir + "/golden_greedy_from_40.npy").as_int32().size();
  std::vector<int32_t> first = drop_pad_tokens(std::vector<int32_t>(ids.begin(), ids.begin() + 40), 0);
  auto c2 = dec.new_cache(40 + int64_t(n));
  SamplingParams g;
  g.greedy = true;
  o.greedy = generate(dec, *c2, prefill(dec, *c2, dec.embed(first), false), int(n), g, {});
  return o;
}

Outcome run_minicpmv(const std::string& dir, const std::string& golden_dir, const CausalLm::PlaceFn& place) {
  auto m = ChatModel::load(dir, place);
  const size_t loaded = loaded_bytes(m->decoder());   // the decoder's device holds the vision parts too
  const std::string c = golden_dir + "/case_wide";
  ChatPrompt p = m->prepare({test::tiny_picture("case_wide")}, test::slurp(c + "/question.txt"));
  auto vision = m->encode_images(p);
  const Decoder& dec = m->decoder();
  kernels::Tensor emb = m->embed_prompt(p, vision);
  Outcome o;
  o.loaded = loaded;
  auto cache = dec.new_cache(emb.rows());
  o.logits = prefill(dec, *cache, emb, true);
  const size_t n = read_npy(c + "/golden_greedy.npy").as_int32().size();
  kernels::Tensor gen_emb = drop_pad_rows(emb, p.ids, 0);
  auto gc = dec.new_cache(gen_emb.rows() + int64_t(n));
  SamplingParams g;
  g.greedy = true;
  o.greedy = generate(dec, *gc, prefill(dec, *gc, gen_emb, false), int(n), g, {});
  return o;
}

void check_model(const std::string& name, bool chat) {
  const std::string dir = test::data(name);
  auto run = [&](const std::string& d, CpuWeights w) {
    return chat ? run_minicpmv(d, dir, on_cpu(w)) : run_decoder(d, dir, on_cpu(w));
  };
  const std::vector<float> golden =
      read_npy(dir + (chat ? "/case_wide/golden_logits.npy" : "/golden_logits.npy")).as_float();
  const std::vector<int32_t> golden_greedy =
      read_npy(dir + (chat ? "/case_wide/golden_greedy.npy" : "/golden_greedy_from_40.npy")).as_int32();
  const Outcome f32 = run(dir, CpuWeights::F32), bf16 = run(dir, CpuWeights::BF16), int8 = run(dir, CpuWeights::Int8);
  const std::string emul_dir = emulated_q8_0_checkpoint(dir);
  const Outcome emul = run(emul_dir, CpuWeights::F32);
  fs::remove_all(emul_dir);

  const double bf16_vs_f32 = test::rel_error(bf16.logits, f32.logits), bf16_vs_golden = test::rel_error(bf16.logits, golden);
  const double int8_vs_emul = test::rel_error(int8.logits, emul.logits), int8_vs_golden = test::rel_error(int8.logits, golden);
  const double emul_vs_golden = test::rel_error(emul.logits, golden);
  INFO(name << ": bf16 vs f32 " << bf16_vs_f32 << ", bf16 vs transformers " << bf16_vs_golden << "; int8 vs emulation "
            << int8_vs_emul << ", int8 vs transformers " << int8_vs_golden << ", emulation vs transformers " << emul_vs_golden);
  // The matrices really are kept narrower: bf16 half of float32's bytes, Q8_0 34 per 32
  // weights (norms, biases and position tables stay float32).
  INFO("bytes on the device: f32 " << f32.loaded << ", bf16 " << bf16.loaded << ", int8 " << int8.loaded);
  CHECK(double(bf16.loaded) <= 0.6 * double(f32.loaded));
  CHECK(double(int8.loaded) <= 0.35 * double(f32.loaded));
  CHECK(bf16_vs_f32 <= 1e-5);     // the same weights, sums in another order
  CHECK(bf16_vs_golden <= 1e-3);  // the acceptance bound (the f32 path holds 1e-4 on decoders)
  CHECK(bf16.greedy == golden_greedy);
  CHECK(int8_vs_emul <= 1e-5);    // the engine computes what Q8_0 rounding predicts
  CHECK(int8_vs_golden <= 1.05 * emul_vs_golden + 1e-5);
  CHECK(emul_vs_golden > 1e-4);   // and the rounding is really there
  WARN(name << ": logits relative error vs transformers: f32 " << test::rel_error(f32.logits, golden) << ", bf16 "
            << bf16_vs_golden << ", int8 " << int8_vs_golden << " (emulation " << emul_vs_golden << ")");
}

}  // namespace

TEST_CASE("bf16 and int8 weights: qwen2-tiny", "[cpu_weights][golden]") { check_model("qwen2-tiny", false); }
TEST_CASE("bf16 and int8 weights: qwen3-tiny", "[cpu_weights][golden]") { check_model("qwen3-tiny", false); }
TEST_CASE("bf16 and int8 weights: llama-tiny", "[cpu_weights][golden]") { check_model("llama-tiny", false); }
TEST_CASE("bf16 and int8 weights: MiniCPM-V 2.6 tiny, picture and prompt", "[cpu_weights][golden][minicpmv]") {
  check_model("minicpmv26-tiny", true);
}
