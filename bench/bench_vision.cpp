// Video frames through the vision tower and resampler on one cpu device against several
// (model/vision_encoder.h: the frames shared among copies on cpu:0, cpu:1, ...), on a
// synthetic SigLIP-shaped tower with random bf16 weights written to a temporary folder.
// Each row encodes the same frames; the rows are compared with the first (bit equality
// needs the same threads per device: docs/parallelism.md). Prints a table.
//
//   bench_vision [frames=64] [side=224] [hidden=384] [layers=6] [reps=3]
// side: the frame's width and height in pixels (a multiple of 14: one piece per frame, as a
// MiniCPM-V 2.6 video frame). The rows use omnid's default threads (kernels/cpu/cpu_threads.h:
// the cores shared among the cpu devices), then one device at one thread for scale and two
// devices at the one-device thread count (the same bits as one device).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "checkpoint/checkpoint.h"
#include "image/normalize.h"
#include "kernels/cpu/cpu_threads.h"
#include "kernels/cpu/openmp_wait_policy.h"
#include "kernels/device.h"
#include "random_safetensors.h"
#include "model/vision_encoder.h"

using namespace omni;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kPatch = 14, kImageSize = 980, kEmbed = 512, kQueries = 64;

void write_checkpoint(const std::filesystem::path& dir, int H, int L) {
  std::filesystem::create_directories(dir);
  const int F = H * 4, pps = kImageSize / kPatch, D = kEmbed;
  nlohmann::json cfg = {{"hidden_size", H},           {"intermediate_size", F}, {"num_attention_heads", H / 64},
                        {"num_hidden_layers", L},     {"patch_size", kPatch},   {"image_size", kImageSize}};
  std::ofstream(dir / "config.json") << cfg.dump();
  std::vector<std::pair<std::string, std::vector<int64_t>>> ts = {
      {"vpm.embeddings.patch_embedding.weight", {H, 3, kPatch, kPatch}},
      {"vpm.embeddings.patch_embedding.bias", {H}},
      {"vpm.embeddings.position_embedding.weight", {pps * pps, H}},
      {"vpm.post_layernorm.weight", {H}},
      {"vpm.post_layernorm.bias", {H}}};
  for (int l = 0; l < L; ++l) {
    const std::string p = "vpm.encoder.layers." + std::to_string(l) + ".";
    for (const char* n : {"layer_norm1", "layer_norm2"}) {
      ts.push_back({p + n + ".weight", {H}});
      ts.push_back({p + n + ".bias", {H}});
    }
    for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      ts.push_back({p + "self_attn." + n + ".weight", {H, H}});
      ts.push_back({p + "self_attn." + n + ".bias", {H}});
    }
    ts.push_back({p + "mlp.fc1.weight", {F, H}});
    ts.push_back({p + "mlp.fc1.bias", {F}});
    ts.push_back({p + "mlp.fc2.weight", {H, F}});
    ts.push_back({p + "mlp.fc2.bias", {H}});
  }
  const std::string r = "resampler.";
  for (auto t : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"query", {kQueries, D}}, {"kv_proj.weight", {D, H}}, {"attn.in_proj_weight", {3 * D, D}},
           {"attn.in_proj_bias", {3 * D}}, {"attn.out_proj.weight", {D, D}}, {"attn.out_proj.bias", {D}},
           {"ln_q.weight", {D}}, {"ln_q.bias", {D}}, {"ln_kv.weight", {D}}, {"ln_kv.bias", {D}},
           {"ln_post.weight", {D}}, {"ln_post.bias", {D}}, {"proj", {D, D}}})
    ts.push_back({r + t.first, t.second});
  omni::bench::write_random_bf16_safetensors(dir / "model.safetensors", ts);
}

std::vector<image::Image> frames(int n, int side) {
  std::vector<image::Image> out(static_cast<size_t>(n));
  std::mt19937 rng(7);
  for (auto& im : out) {
    im.width = im.height = side;
    im.rgb.resize(size_t(side) * size_t(side) * 3);
    for (auto& b : im.rgb) b = uint8_t(rng() & 0xff);
  }
  return out;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den > 0 ? num / den : num;
}

}  // namespace

int main(int argc, char** argv) {
  kernels::brief_openmp_spin_by_default(argv);   // as omnid does
  const int n_frames = argc > 1 ? std::atoi(argv[1]) : 64, side = argc > 2 ? std::atoi(argv[2]) : 224;
  const int H = argc > 3 ? std::atoi(argv[3]) : 384, L = argc > 4 ? std::atoi(argv[4]) : 6;
  const int reps = argc > 5 ? std::max(1, std::atoi(argv[5])) : 3;
  if (side % kPatch || H % 64) {
    std::fprintf(stderr, "side must be a multiple of %d and hidden of 64\n", kPatch);
    return 2;
  }
  const auto dir = std::filesystem::temp_directory_path() / "omni-bench-vision";
  write_checkpoint(dir, H, L);
  Checkpoint ckpt(dir.string());
  const VisionConfig vc = VisionConfig::from_json(ckpt.config(), dir.string() + "/config.json");
  const std::vector<image::Image> px = frames(n_frames, side);
  std::printf("tower: hidden %d, %d layers, ffn %d; resampler %d queries x %d; %d frames of %dx%d (%d patches each)\n",
              H, L, 4 * H, kQueries, kEmbed, n_frames, side, side, (side / kPatch) * (side / kPatch));
  std::printf("%-22s %-8s %-10s %-10s %-10s %s\n", "devices", "threads", "seconds", "frames/s", "speedup", "max rel diff");

  struct Row {
    int devices, threads;
  };
  // omnid's defaults for one device and for two; one device at one thread (what each of the
  // two copies gets); two devices at the one-device thread count (bit-equal to the first row).
  const int all = kernels::default_cpu_threads(1);
  const std::vector<Row> rows = {{1, all}, {2, kernels::default_cpu_threads(2)}, {1, 1}, {2, all}};
  std::vector<float> first;
  double base = 0;
  for (const Row& row : rows) {
    kernels::set_cpu_threads(row.threads);
    std::vector<std::shared_ptr<kernels::Device>> devs;
    std::string names;
    for (int i = 0; i < row.devices; ++i) {
      devs.push_back(kernels::make_device({kernels::DeviceId::Kind::CPU, i}));
      names += (i ? "," : "") + devs.back()->id().str();
    }
    WeightLoader loader(ckpt);
    VisionEncoder enc(loader, vc, "vpm.", "resampler.", {kEmbed, kQueries, kPatch},
                      [](const image::Image& im) { return image::normalize_chw(im, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}); },
                      devs);
    std::vector<float> out(size_t(n_frames) * kQueries * kEmbed);
    std::vector<VisionUnit> units;
    for (int i = 0; i < n_frames; ++i) units.push_back({{&px[size_t(i)]}, nullptr, out.data() + size_t(i) * kQueries * kEmbed});
    enc.run({units.front()});   // warm: first-touch of the scratch, OpenBLAS's threads
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      enc.run(units);
      t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    const double med = t[t.size() / 2];
    if (first.empty()) first = out, base = med;
    std::printf("%-22s %-8d %-10.3f %-10.1f %-10.2f %.2g%s\n", names.c_str(), row.threads, med, n_frames / med, base / med,
                max_rel_diff(out, first), out == first ? " (bit-equal)" : "");
  }
  std::filesystem::remove_all(dir);
  return 0;
}
