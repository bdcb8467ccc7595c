#include "model/answer.h"

#include "kernels/ops.h"
#include "util/error.h"

namespace omni {

kernels::Tensor drop_pad_rows(const kernels::Tensor& embeds, const std::vector<int32_t>& ids, int32_t pad_id) {
  const int64_t kept = int64_t(drop_pad_tokens(ids, pad_id).size());
  if (kept == int64_t(ids.size())) return embeds;
  if (kept == 0) throw Error("the prompt holds only padding tokens");
  kernels::Tensor out = kernels::Tensor::empty(embeds.device_ptr(), embeds.dtype(), {kept, embeds.cols()});
  int64_t r = 0;
  for (int64_t i = 0; i < int64_t(ids.size()); ++i) {
    if (ids[size_t(i)] == pad_id) continue;
    kernels::Tensor dst = out.rows_view(r++, 1);
    embeds.device().ops().copy(embeds.rows_view(i, 1), dst);
  }
  return out;
}

GenerationOptions generation_options(const ChatModel& model, const AnswerOptions& opt) {
  GenerationOptions g;
  g.sampling = opt.sampling;
  g.max_tokens = opt.max_tokens;
  g.stop_ids = model.stop_ids();
  g.stop_strings = opt.stop_strings;
  return g;
}

Answer answer(ChatModel& model, const std::vector<ImageInput>& images, const std::string& question,
              const AnswerOptions& opt, const std::function<void(const std::string&)>& on_text) {
  Generation gen(&model.tokenizer(), generation_options(model, opt));
  ChatPrompt prompt = model.prepare(images, question, opt.prompt);
  kernels::Tensor emb = drop_pad_rows(model.embed_prompt(prompt, model.encode_images(prompt)), prompt.ids, opt.pad_id.value_or(model.pad_id()));
  const Decoder& dec = model.decoder();
  auto cache = dec.new_cache(emb.rows() + opt.max_tokens);
  decode(dec, *cache, prefill(dec, *cache, emb, false), gen, on_text);
  return {gen.text(), gen.tokens(), gen.reason()};
}

}  // namespace omni
