// omnid tokenize: encodes a JSON array of strings with a checkpoint's tokenizer and
// writes [{"ids": [...], "decoded": "..."}] in the same order. No BOS is added,
// special tokens in the text are matched, and decoding keeps them.
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace omni {

namespace {

struct TokenizeArgs {
  std::string model, in, out;
};

void run_tokenize(const TokenizeArgs& a) {
  std::ifstream in(a.in, std::ios::binary);
  if (!in) throw Error(a.in + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json texts;
  try {
    texts = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(a.in + ": malformed JSON: " + e.what());
  }
  if (!texts.is_array()) throw Error(a.in + ": expected a JSON array of strings");
  for (size_t i = 0; i < texts.size(); ++i)
    if (!texts[i].is_string()) throw Error(a.in + ": element " + std::to_string(i) + " is not a string");

  const auto tok = tok::Tokenizer::load(a.model);
  nlohmann::json result = nlohmann::json::array();
  for (const auto& t : texts) {
    const auto ids = tok.encode(t.get<std::string>());
    result.push_back({{"ids", ids}, {"decoded", tok.decode(ids)}});
  }
  std::ofstream out(a.out, std::ios::binary);
  if (!out) throw Error(a.out + ": cannot create");
  out << result.dump() << '\n';
  if (!out.flush()) throw Error(a.out + ": write failed");
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand("tokenize", "Encode a JSON array of strings with a checkpoint's tokenizer");
  cmd->add_option("--model", args->model, "Checkpoint folder holding tokenizer.json")->required();
  cmd->add_option("--in", args->in, "JSON array of strings")->required();
  cmd->add_option("--out", args->out, "Result: array of {\"ids\", \"decoded\"}")->required();
  cmd->callback([args] { run_tokenize(*args); });
}

}  // namespace omni
