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

std::vector<float> prefill(const Decoder& dec, KvCache& cache, const kernels::Tensor& embeds, bool all_rows) {
  const int64_t T = embeds.rows();
  if (T == 0) throw Error("empty prompt");
  kernels::Tensor h = dec.forward(embeds, {{&cache, T}});
  return dec.logits(all_rows ? h : h.rows_view(T - 1, 1));
}

std::vector<int32_t> generate(const Decoder& dec, KvCache& cache, std::vector<float> logits, int max_tokens,
                              Sampler& sampler, const std::vector<int32_t>& stop_ids,
                              const std::function<bool(int32_t)>& on_token, std::vector<int32_t> history) {
  const int V = dec.config().vocab;
  if (logits.size() < size_t(V)) throw Error("generate: logits row shorter than the vocabulary");
  std::vector<int32_t> out;
  const float* last = logits.data() + logits.size() - size_t(V);
  for (int i = 0; i < max_tokens; ++i) {
    int32_t tok = sampler.next(last, V, history);
    out.push_back(tok);
    history.push_back(tok);
    bool go_on = on_token ? on_token(tok) : true;
    if (std::find(stop_ids.begin(), stop_ids.end(), tok) != stop_ids.end() || !go_on || i + 1 == max_tokens) break;
    if (cache.length() >= cache.capacity()) break;
    kernels::Tensor h = dec.forward(dec.embed({tok}), {{&cache, 1}});
    logits = dec.logits(h);
    last = logits.data();
  }
  return out;
}

}  // namespace omni
