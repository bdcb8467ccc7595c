#include "model/causal_lm.h"

#include <algorithm>

#include "util/error.h"

namespace omni {

std::unique_ptr<CausalLm> CausalLm::load(const std::string& dir, const PlaceFn& place, ProgressFn progress) {
  std::unique_ptr<CausalLm> m(new CausalLm());
  m->ckpt_ = std::make_unique<Checkpoint>(dir);
  LlmConfig cfg = LlmConfig::from_json(m->ckpt_->config(), dir + "/config.json");
  WeightLoader loader(*m->ckpt_, std::move(progress));
  m->decoder_ = std::make_unique<Decoder>(loader, cfg, "", place(cfg));
  return m;
}

std::vector<int32_t> drop_pad_tokens(const std::vector<int32_t>& ids, int32_t pad_id) {
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (int32_t id : ids)
    if (pad_id < 0 || id != pad_id) out.push_back(id);
  return out;
}

std::vector<float> prefill(const Decoder& dec, KvSequence& cache, const kernels::Tensor& embeds, bool all_rows) {
  const int64_t T = embeds.rows();
  if (T == 0) throw Error("empty prompt");
  kernels::Tensor h = dec.forward(embeds, {{&cache, T}});
  return dec.logits(all_rows ? h : h.rows_view(T - 1, 1));
}

void decode(const Decoder& dec, KvSequence& cache, std::vector<float> logits, Generation& gen,
            const std::function<void(const std::string&)>& on_text) {
  const int V = dec.config().vocab;
  if (logits.size() < size_t(V)) throw Error("decode: logits row shorter than the vocabulary");
  const float* last = logits.data() + logits.size() - size_t(V);
  for (;;) {
    std::string piece = gen.next(last, V);
    if (!piece.empty() && on_text) on_text(piece);
    if (gen.finished()) return;
    if (cache.length() >= cache.capacity()) {
      piece = gen.end(FinishReason::length);
      if (!piece.empty() && on_text) on_text(piece);
      return;
    }
    kernels::Tensor h = dec.forward(dec.embed({gen.last_token()}), {{&cache, 1}});
    logits = dec.logits(h);
    last = logits.data();
  }
}

std::vector<int32_t> generate(const Decoder& dec, KvSequence& cache, std::vector<float> logits, int max_tokens,
                              const SamplingParams& sampling, const std::vector<int32_t>& stop_ids) {
  GenerationOptions o;
  o.sampling = sampling;
  o.max_tokens = max_tokens;
  o.stop_ids = stop_ids;
  Generation gen(nullptr, std::move(o));
  decode(dec, cache, std::move(logits), gen);
  return gen.tokens();
}

}  // namespace omni
