// Tokenizer throughput: encodes several MB of mixed text (the golden and corpus
// strings of tests/data: English prose, code, JSON, CJK, Arabic, Cyrillic, emoji,
// binary junk...) line by line and reports MB/s. Not a test.
//   bench_tokenizer MODEL_DIR DATA_DIR [MB] [--write-text FILE]
// --write-text saves the exact text so that the peer (tools/tokenizer_peer.js bench)
// can be timed on the same input; bench/run_tokenizer_bench.sh runs both.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

std::vector<std::string> load_strings(const std::string& data_dir) {
  std::vector<std::string> out;
  for (const char* f : {"/tokenizer-qwen3/golden_encodings.json", "/tokenizer-llama3/golden_encodings.json",
                        "/tokenizer-corpus/qwen3.json"}) {
    std::ifstream in(data_dir + f);
    if (!in) { std::fprintf(stderr, "cannot open %s%s\n", data_dir.c_str(), f); std::exit(1); }
    for (const auto& e : nlohmann::json::parse(in)) out.push_back(e["text"]);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_tokenizer MODEL_DIR DATA_DIR [MB] [--write-text FILE]\n");
    return 2;
  }
  const std::string model = argv[1], data = argv[2];
  double mb = 8;
  std::string write_to;
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--write-text" && i + 1 < argc) write_to = argv[++i];
    else mb = std::stod(a);
  }
  // Lines of mixed text: each source string becomes one or more lines.
  const auto strings = load_strings(data);
  std::string text;
  for (size_t k = 0; text.size() < mb * 1e6; ++k) {
    text += strings[k % strings.size()];
    text += '\n';
  }
  if (!write_to.empty()) std::ofstream(write_to, std::ios::binary) << text;
  std::vector<std::string_view> lines;
  for (size_t b = 0; b < text.size();) {
    const size_t e = text.find('\n', b);
    lines.emplace_back(std::string_view(text).substr(b, e - b + 1));
    b = e + 1;
  }

  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const auto tok = omni::tok::Tokenizer::load(model);
  const double load_s = std::chrono::duration<double>(clock::now() - t0).count();
  double best = 1e30;
  size_t tokens = 0;
  for (int rep = 0; rep < 3; ++rep) {  // the first pass also fills the BPE cache; report the best
    const auto t1 = clock::now();
    tokens = 0;
    for (auto l : lines) tokens += tok.encode(l).size();
    best = std::min(best, std::chrono::duration<double>(clock::now() - t1).count());
  }
  std::printf("{\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.4f, \"mb_per_s\": %.2f, \"load_seconds\": %.3f}\n",
              text.size(), tokens, best, text.size() / 1e6 / best, load_s);
  return 0;
}
