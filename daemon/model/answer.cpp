#include "model/answer.h"

#include <algorithm>

#include "kernels/ops.h"
#include "tokenizer/stream_decoder.h"
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

Answer answer(ChatModel& model, const std::vector<ImageInput>& images, const std::string& question,
              const AnswerOptions& opt, const std::function<void(const std::string&)>& on_text) {
  if (opt.max_tokens <= 0) throw Error("max_tokens must be positive");
  ChatPrompt prompt = model.prepare(images, question);
  kernels::Tensor emb = drop_pad_rows(model.embed_prompt(prompt, model.encode_images(prompt)), prompt.ids, opt.pad_id);
  const Decoder& dec = model.decoder();
  auto cache = dec.new_cache(emb.rows() + opt.max_tokens);
  std::vector<float> last = prefill(dec, *cache, emb, false);

  Answer a;
  tok::StreamDecoder stream(model.tokenizer());
  const std::vector<int32_t> stops = model.stop_ids();
  Sampler sampler(opt.sampling);
  bool stopped_by_string = false;
  auto on_token = [&](int32_t tok) {
    if (std::find(stops.begin(), stops.end(), tok) != stops.end()) return true;
    std::string piece = stream.push(tok);
    a.text += piece;
    for (const auto& s : opt.stop_strings) {
      auto pos = s.empty() ? std::string::npos : a.text.find(s);
      if (pos != std::string::npos) {
        // Emit only what precedes the stop string.
        const size_t before = a.text.size() - piece.size();
        if (pos > before && on_text) on_text(a.text.substr(before, pos - before));
        a.text.resize(pos);
        stopped_by_string = true;
        return false;
      }
    }
    if (on_text && !piece.empty()) on_text(piece);
    return true;
  };
  a.tokens = generate(dec, *cache, std::move(last), opt.max_tokens, sampler, stops, on_token);
  if (!stopped_by_string) {
    std::string tail = stream.finish();
    a.text += tail;
    if (on_text && !tail.empty()) on_text(tail);
  }
  const bool hit_stop = !a.tokens.empty() && std::find(stops.begin(), stops.end(), a.tokens.back()) != stops.end();
  a.finish_reason = hit_stop || stopped_by_string ? "stop" : "length";
  return a;
}

}  // namespace omni
