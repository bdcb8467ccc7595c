// omnid dump: runs a checkpoint on given tokens and writes what it computed as .npy
// files, for comparison with reference implementations.
#include <filesystem>
#include <sstream>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "model/causal_lm.h"
#include "util/error.h"
#include "util/npy.h"

namespace omni {

namespace {

std::vector<int32_t> parse_tokens(const std::string& s) {
  std::vector<int32_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      long v = std::stol(item, &used);
      if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
      out.push_back(int32_t(v));
    } catch (const std::exception&) {
      throw Error("--tokens: '" + item + "' is not a token id");
    }
  }
  if (out.empty()) throw Error("--tokens: no token ids given");
  return out;
}

struct DumpArgs {
  std::string model, tokens, out;
  int generate = 0;
  int pad_id = 0;
  DeviceOptions devices;
};

void run_dump(const DumpArgs& a) {
  std::vector<int32_t> ids = parse_tokens(a.tokens);
  std::filesystem::create_directories(a.out);
  auto lm = CausalLm::load(a.model, a.devices.placer(), log_progress(a.model));
  const Decoder& dec = lm->decoder();
  auto cache = dec.new_cache(int64_t(ids.size()));
  std::vector<float> logits = prefill(dec, *cache, dec.embed(ids), true);
  write_npy(a.out + "/logits.npy", logits.data(), {int64_t(ids.size()), dec.config().vocab});
  if (a.generate > 0) {
    // As transformers' generate() with pad_token_id: pad tokens in the prompt are padding.
    std::vector<int32_t> prompt = drop_pad_tokens(ids, a.pad_id);
    if (prompt.empty()) throw Error("--tokens: the prompt holds only pad tokens (--pad-id " + std::to_string(a.pad_id) + ")");
    auto gen_cache = dec.new_cache(int64_t(prompt.size()) + a.generate + 1);
    SamplingParams greedy;
    greedy.greedy = true;
    Sampler s(greedy);
    std::vector<float> last = prefill(dec, *gen_cache, dec.embed(prompt), false);
    std::vector<int32_t> gen = generate(dec, *gen_cache, std::move(last), a.generate, s, {});
    write_npy(a.out + "/generated.npy", gen.data(), {int64_t(gen.size())});
  }
}

}  // namespace

void add_dump_command(CLI::App& app) {
  auto a = std::make_shared<DumpArgs>();
  CLI::App* cmd = app.add_subcommand("dump", "Run a checkpoint on given tokens and write logits (and greedy tokens) as .npy");
  cmd->add_option("--model", a->model, "Checkpoint folder (Hugging Face layout)")->required();
  cmd->add_option("--tokens", a->tokens, "Comma-separated prompt token ids")->required();
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_option("--generate", a->generate, "Greedy tokens to generate after the prompt")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--pad-id", a->pad_id,
                  "Prompt tokens with this id are padding for --generate, as in transformers' generate(pad_token_id=...); -1: none")
      ->capture_default_str();
  a->devices.add_to(cmd);
  cmd->callback([a] { run_dump(*a); });
}

}  // namespace omni
