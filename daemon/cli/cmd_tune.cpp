// omnid tune: loads the model in each candidate layout (1..N devices; pipeline and
// tensor parallel) on the real devices, times a prefill and decode steps, and
// recommends the fastest layout that fits (the decoder only: the vision tower runs once per
// picture wherever the plan puts it).
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/preflight.h"
#include "model/chat_model.h"
#include "plan/placement.h"
#include "util/error.h"

namespace omni {

namespace {

struct TuneArgs {
  std::string model;
  int prompt_tokens = 128;
  int decode_tokens = 32;
  int repeats = 3;
  bool json = false;
  DeviceOptions devices;
};

struct Result {
  std::string layout, devices, refused;
  double prefill_ms = 0, decode_ms = 0;   // best of the repeats; decode per token
  int decode_tokens = 0;
  double total_ms() const { return prefill_ms + decode_ms * decode_tokens; }   // one request: prompt, then the answer
};

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Times one layout: best-of-N prefill of the prompt, and per-token decode after it.
void measure(const Decoder& dec, const TuneArgs& a, Result& r) {
  std::vector<int32_t> ids;
  for (int i = 0; i < a.prompt_tokens; ++i) ids.push_back(int32_t((i * 7919 + 13) % dec.config().vocab));
  r.prefill_ms = r.decode_ms = 1e300;
  for (int rep = 0; rep < a.repeats; ++rep) {
    auto cache = dec.new_cache(a.prompt_tokens + a.decode_tokens);
    auto t0 = std::chrono::steady_clock::now();
    dec.logits(dec.forward(dec.embed(ids), {{cache.get(), int64_t(ids.size())}}).rows_view(int64_t(ids.size()) - 1, 1));
    r.prefill_ms = std::min(r.prefill_ms, ms_since(t0));
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < a.decode_tokens; ++i) dec.logits(dec.forward(dec.embed({ids[size_t(i)]}), {{cache.get(), 1}}));
    r.decode_ms = std::min(r.decode_ms, ms_since(t0) / std::max(1, a.decode_tokens));
  }
}

void run_tune(const TuneArgs& a) {
  check_model_and_plan(a.model, a.devices);
  const plan::ModelShape shape = plan::ModelShape::from_dir(a.model);
  const std::vector<kernels::DeviceId> all = a.devices.device_list();
  std::vector<Result> results;
  for (size_t n = 1; n <= all.size(); ++n) {
    for (const char* mode : {"single", "pipeline", "tensor"}) {
      if ((n == 1) != (std::string(mode) == "single")) continue;
      DeviceOptions o = a.devices;
      o.devices.clear();
      for (size_t i = 0; i < n; ++i) o.devices += (i ? "," : "") + all[i].str();
      o.use_multi_gpu = true;
      o.parallel = mode;
      o.split.clear();
      if (!o.vision_device.empty() && o.devices.find(o.vision_device) == std::string::npos) o.vision_device.clear();
      o.vision_devices.clear();   // the default copies for each device set: tune measures decoding
      Result r;
      r.decode_tokens = a.decode_tokens;
      r.layout = mode;
      r.devices = o.devices;
      try {
        const plan::Plan p = o.make_plan(shape);
        auto place = [&p](const LlmConfig&) { return plan::make_placement(p); };
        std::unique_ptr<CausalLm> lm;
        std::unique_ptr<ChatModel> chat;
        if (shape.vision) chat = ChatModel::load(a.model, place);
        else lm = CausalLm::load(a.model, place);
        measure(chat ? chat->decoder() : lm->decoder(), a, r);
      } catch (const std::exception& e) {
        r.refused = e.what();
      }
      spdlog::info("tune: {} over {}: {}", r.layout, r.devices,
                   r.refused.empty() ? std::to_string(r.total_ms()) + " ms" : "refused");
      results.push_back(r);
    }
  }
  // Candidates come simplest first (fewer devices, pipeline before tensor); a later one must
  // win by more than 5 % to be recommended, so timing noise does not buy extra devices.
  const Result* best = nullptr;
  for (const auto& r : results)
    if (r.refused.empty() && (!best || r.total_ms() < 0.95 * best->total_ms())) best = &r;
  if (a.json) {
    nlohmann::json j;
    j["prompt_tokens"] = a.prompt_tokens;
    j["decode_tokens"] = a.decode_tokens;
    j["candidates"] = nlohmann::json::array();
    for (const auto& r : results) {
      nlohmann::json c = {{"parallel", r.layout}, {"devices", r.devices}};
      if (r.refused.empty())
        c["prefill_ms"] = r.prefill_ms, c["decode_ms_per_token"] = r.decode_ms, c["total_ms"] = r.total_ms();
      else c["refused"] = r.refused;
      j["candidates"].push_back(c);
    }
    j["recommended"] = best ? nlohmann::json{{"parallel", best->layout}, {"devices", best->devices}} : nlohmann::json();
    std::printf("%s\n", j.dump(1).c_str());
  } else {
    std::printf("%-9s %-24s %14s %18s %16s\n", "parallel", "devices", "prefill (ms)", "decode (ms/token)",
                "total (ms)");
    for (const auto& r : results) {
      if (!r.refused.empty()) {
        std::string why = r.refused.substr(0, r.refused.find('\n'));
        std::printf("%-9s %-24s refused: %s\n", r.layout.c_str(), r.devices.c_str(), why.c_str());
        continue;
      }
      std::printf("%-9s %-24s %14.2f %18.3f %16.2f\n", r.layout.c_str(), r.devices.c_str(), r.prefill_ms, r.decode_ms,
                  r.total_ms());
    }
    if (best)
      std::printf("recommended: --parallel %s --devices %s (prompt %d tokens, then %d decode steps)\n",
                  best->layout.c_str(), best->devices.c_str(), a.prompt_tokens, a.decode_tokens);
  }
  if (!best) throw Error("tune: no layout fits on " + a.devices.devices);
}

}  // namespace

void add_tune_command(CLI::App& app) {
  auto a = std::make_shared<TuneArgs>();
  CLI::App* cmd = app.add_subcommand("tune", "Benchmark the candidate layouts on the devices and recommend the fastest");
  cmd->add_option("--model", a->model, "Checkpoint folder (Hugging Face layout)")->required();
  cmd->add_option("--prompt-tokens", a->prompt_tokens, "Prompt length timed")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  cmd->add_option("--decode-tokens", a->decode_tokens, "Decode steps timed")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  cmd->add_option("--repeats", a->repeats, "Best of this many runs")->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_flag("--json", a->json, "Print the results as JSON");
  a->devices.add_to(cmd);
  cmd->callback([a] { run_tune(*a); });
}

}  // namespace omni
