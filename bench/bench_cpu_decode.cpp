// omnid's side of the CPU benchmark (bench/run_cpu_bench.sh; llama.cpp's side is
// bench/cpu_peer/llama_cpp_bench.mjs): one checkpoint loaded the way omnid loads it onto one
// cpu device with its weights kept as --cpu-weights says, a prompt prefilled, then a greedy
// decode, through the engine's own CausalLm::load, prefill() and generate().
//
//   bench_cpu_decode --model DIR [--cpu-weights f32|bf16|int8] [--threads N] [--prompt 512] [--decode 64]
//
// Prints one JSON line:
//   {"engine":"omnid","weights":..,"threads":..,"load_s":..,"prefill_tok_s":..,"decode_tok_s":..,
//    "peak_rss_bytes":..,"baseline_rss_bytes":..,"weight_bytes":..,"version":..}
// weight_bytes: what the cpu device charged for the model after loading (its allocations and
// the checkpoint bytes it reads in place from the memory map), before any KV cache.
// baseline_rss_bytes: VmRSS before loading; peak_rss_bytes: VmHWM at the end (mapped
// checkpoint pages that were read count, as they do for llama.cpp's mapped GGUF).
// first_tokens: the first 16 greedy picks, which llama.cpp's side prints too: on the same
// weights the two should mostly agree (exactly only where no two logits are close).
//
// What is timed matches llama.cpp's side: "prefill" is the prompt as one forward with the
// logits of its last row only (what generation needs: no logits for the other rows are
// computed, as llama.cpp computes none), "decode" the `decode` forwards of one token after
// it, each with its logits row and a greedy pick. generate() also picks the first token from
// the prefill's logits, which llama.cpp's side counts in its prefill: one argmax over the
// vocabulary, microseconds against a forward. load_s covers the checkpoint and the KV cache
// (llama.cpp's covers the model and its context). The prompt's ids are the peer's:
// (i * 7919 + 13) % 151643, no special token.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_threads.h"
#include "kernels/cpu/openmp_wait_policy.h"
#include "kernels/cpu_weights.h"
#include "kernels/device.h"
#include "model/causal_lm.h"

using namespace omni;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

// A "Vm...:  N kB" line of /proc/self/status, in bytes (0 when absent).
size_t proc_status_bytes(const std::string& field) {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind(field + ":", 0) == 0) return size_t(std::strtoull(line.c_str() + field.size() + 1, nullptr, 10)) * 1024;
  return 0;
}

struct Options {
  std::string model;
  kernels::CpuWeights weights = kernels::CpuWeights::F32;
  int threads = 1, prompt = 512, decode = 64;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "bench_cpu_decode: %s\nusage: bench_cpu_decode --model DIR [--cpu-weights f32|bf16|int8] "
               "[--threads N] [--prompt 512] [--decode 64]\n",
               why.c_str());
  std::exit(2);
}

int positive(const std::string& key, const std::string& value) {
  const int n = std::atoi(value.c_str());
  if (n < 1) usage(key + " wants a count >= 1, not '" + value + "'");
  return n;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string key = argv[i];
    if (i + 1 >= argc) usage("option " + key + " has no value");
    const std::string value = argv[i + 1];
    if (key == "--model") o.model = value;
    else if (key == "--cpu-weights") o.weights = kernels::parse_cpu_weights(value);
    else if (key == "--threads") o.threads = positive(key, value);
    else if (key == "--prompt") o.prompt = positive(key, value);
    else if (key == "--decode") o.decode = positive(key, value);
    else usage("unknown option " + key);
  }
  if (o.model.empty()) usage("--model DIR is required");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  kernels::brief_openmp_spin_by_default(argv);   // as omnid does
  try {
    const Options o = parse(argc, argv);
    const size_t baseline_rss = proc_status_bytes("VmRSS");
    kernels::set_cpu_threads(o.threads);

    auto t0 = Clock::now();
    auto dev = kernels::make_device({}, 0, o.weights);
    auto lm = CausalLm::load(o.model, [&](const LlmConfig& c) { return DecoderPlacement::single(dev, c.n_layers); });
    const size_t weight_bytes = dev->total_memory() - dev->free_memory();
    const Decoder& dec = lm->decoder();
    auto cache = dec.new_cache(int64_t(o.prompt) + o.decode + 1);
    const double load_s = secs(t0);

    std::vector<int32_t> prompt(size_t(o.prompt));
    for (int i = 0; i < o.prompt; ++i) prompt[size_t(i)] = int32_t((int64_t(i) * 7919 + 13) % 151643 % dec.config().vocab);
    t0 = Clock::now();
    std::vector<float> last = prefill(dec, *cache, dec.embed(prompt), false);
    const double prefill_s = secs(t0);

    SamplingParams greedy;
    greedy.greedy = true;
    t0 = Clock::now();
    // decode + 1 tokens: the first comes from the prefill's logits, each other from one forward.
    const std::vector<int32_t> out = generate(dec, *cache, std::move(last), o.decode + 1, greedy, {});
    const double decode_s = secs(t0);
    if (out.size() != size_t(o.decode) + 1)
      throw std::runtime_error("generated " + std::to_string(out.size()) + " tokens, wanted " +
                               std::to_string(o.decode + 1));

    const nlohmann::json line = {{"engine", "omnid"},
                                 {"weights", std::string(kernels::to_string(o.weights))},
                                 {"threads", kernels::cpu_threads()},
                                 {"prompt", o.prompt},
                                 {"decode", o.decode},
                                 {"load_s", load_s},
                                 {"prefill_tok_s", o.prompt / prefill_s},
                                 {"decode_tok_s", o.decode / decode_s},
                                 {"peak_rss_bytes", proc_status_bytes("VmHWM")},
                                 {"baseline_rss_bytes", baseline_rss},
                                 {"weight_bytes", weight_bytes},
                                 {"version", "omnid (this build)"},
                                 {"first_tokens", std::vector<int32_t>(out.begin(), out.begin() + std::min<size_t>(16, out.size()))}};
    std::printf("%s\n", line.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cpu_decode: %s\n", e.what());
    return 1;
  }
}
