#include "sched/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "kernels/ops.h"
#include "tokenizer/stream_decoder.h"
#include "util/error.h"

namespace omni::sched {

using Clock = std::chrono::steady_clock;

namespace {
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
}  // namespace

struct Scheduler::Active {
  Request req;
  std::shared_ptr<Ticket> ticket;
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<tok::StreamDecoder> stream;
  kernels::Tensor pending;          // prompt embeddings until the prefill has run
  int32_t last_token = -1;
  std::vector<int32_t> generated;
  std::string text;                 // answer so far, for stop strings
  Result result;
  Clock::time_point queued_at, started_at, prefilled_at;
  bool done = false;
  bool counted = false;             // holds one of n_active_
};

Scheduler::Scheduler(ChatModel& model, SchedulerOptions opt) : model_(model), opt_(opt) {
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<Ticket> Scheduler::submit(Request r) {
  auto ticket = std::make_shared<Ticket>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || draining_ || int(queue_.size()) >= opt_.max_queue) return nullptr;
    queue_.push_back({std::move(r), ticket, Clock::now()});
  }
  cv_.notify_all();
  return ticket;
}

Stats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s;
  s.active = n_active_.load();
  s.queued = uint32_t(queue_.size());
  s.completed = completed_;
  s.generated_tokens = generated_;
  const auto now = Clock::now();
  uint64_t n = 0;
  for (const auto& [t, k] : recent_)
    if (now - t < std::chrono::seconds(5)) n += k;
  s.tokens_per_s = double(n) / 5.0;
  return s;
}

void Scheduler::drain(Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
    drain_deadline_ = deadline;
  }
  cv_.notify_all();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty() && n_active_.load() == 0) return;
      if (Clock::now() > deadline + std::chrono::seconds(1)) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Scheduler::finish(Active& a, const std::string& reason, const std::string& code, const std::string& msg) {
  if (a.done) return;
  a.done = true;
  if (a.stream && reason != "error") {
    std::string tail = a.stream->finish();
    if (!tail.empty() && a.req.events.on_token) a.req.events.on_token(tail, -1);
  }
  const auto now = Clock::now();
  a.result.finish_reason = reason;
  a.result.error_code = code;
  a.result.error_message = msg;
  a.result.completion_tokens = uint32_t(a.generated.size());
  if (a.started_at != Clock::time_point{}) a.result.queue_ms = ms_between(a.queued_at, a.started_at);
  if (a.prefilled_at != Clock::time_point{}) {
    a.result.prefill_ms = ms_between(a.started_at, a.prefilled_at);
    a.result.decode_ms = ms_between(a.prefilled_at, now);
  }
  a.result.total_ms = ms_between(a.queued_at, now);
  a.cache.reset();   // the KV cache goes back at once
  a.pending = {};
  if (a.counted) n_active_.fetch_sub(1);   // before on_done, so status never lags the answer
  if (a.req.events.on_done) a.req.events.on_done(a.result);
  std::lock_guard<std::mutex> lock(mu_);
  ++completed_;
}

void Scheduler::admit(std::vector<std::unique_ptr<Active>>& fresh) {
  for (;;) {
    Waiting w;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty() || int(active_.size() + fresh.size()) >= opt_.max_active) return;
      w = std::move(queue_.front());
      queue_.pop_front();
    }
    auto a = std::make_unique<Active>();
    a->req = std::move(w.req);
    a->ticket = std::move(w.ticket);
    a->queued_at = w.queued_at;
    a->started_at = Clock::now();
    n_active_.fetch_add(1);
    a->counted = true;
    if (a->ticket->cancelled()) {
      finish(*a, "cancelled");
      continue;
    }
    try {
      const AnswerOptions& o = a->req.options;
      if (o.max_tokens <= 0) throw Error("max_tokens must be positive");
      a->sampler = std::make_unique<Sampler>(o.sampling);
      ChatPrompt prompt = model_.prepare(a->req.images, a->req.question);
      auto vision = model_.encode_images(prompt);
      a->pending = drop_pad_rows(model_.embed_prompt(prompt, vision), prompt.ids, o.pad_id);
      a->result.prompt_tokens = uint32_t(a->pending.rows());
      for (const auto& b : prompt.bounds) a->result.image_tokens += uint32_t(b.second - b.first);
      const int64_t need = a->pending.rows() + o.max_tokens;
      if (need > opt_.max_context)
        throw Error("prompt of " + std::to_string(a->pending.rows()) + " tokens plus max_tokens " +
                    std::to_string(o.max_tokens) + " exceeds the context of " + std::to_string(opt_.max_context));
      a->cache = model_.decoder().new_cache(need);
      a->stream = std::make_unique<tok::StreamDecoder>(model_.tokenizer());
      fresh.push_back(std::move(a));
    } catch (const std::exception& e) {
      const std::string what = e.what();
      // Image errors name the picture first (image/decode.h).
      bool image_error = false;
      for (const auto& im : a->req.images) image_error |= what.rfind(im.name, 0) == 0;
      finish(*a, "error", image_error ? "bad_image" : "bad_request", what);
    }
  }
}

void Scheduler::step(std::vector<std::unique_ptr<Active>>& fresh) {
  const Decoder& dec = model_.decoder();
  const auto now = Clock::now();
  // Leave the batch at once when cancelled or past the deadline.
  for (auto* list : {&active_, &fresh})
    for (auto& a : *list) {
      if (a->ticket->cancelled()) finish(*a, "cancelled");
      else if (a->req.deadline && now > *a->req.deadline) finish(*a, "deadline");
      else if (draining_ && now > drain_deadline_) finish(*a, "cancelled");
    }
  auto prune = [](std::vector<std::unique_ptr<Active>>& v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](const auto& a) { return a->done; }), v.end());
  };
  prune(active_);
  prune(fresh);
  for (auto& a : fresh) active_.push_back(std::move(a));
  fresh.clear();
  if (active_.empty()) return;

  // One batch: prompts of new requests, one token of the others.
  std::vector<SeqSlice> seqs;
  int64_t rows = 0;
  for (auto& a : active_) {
    const int64_t n = a->pending.defined() ? a->pending.rows() : 1;
    seqs.push_back({a->cache.get(), n});
    rows += n;
  }
  try {
    const auto& edev = dec.placement().embed_device;
    kernels::Tensor hidden = kernels::Tensor::empty(edev, edev->compute_dtype(), {rows, dec.config().hidden});
    std::vector<int64_t> last_rows;
    int64_t r = 0;
    for (auto& a : active_) {
      kernels::Tensor src = a->pending.defined() ? a->pending : dec.embed({a->last_token});
      kernels::Tensor dst = hidden.rows_view(r, src.rows());
      kernels::copy_between(src, dst);
      r += src.rows();
      last_rows.push_back(r - 1);
    }
    kernels::Tensor out = dec.forward(hidden, seqs);
    kernels::Tensor sel = kernels::Tensor::empty(out.device_ptr(), out.dtype(), {int64_t(last_rows.size()), out.cols()});
    for (size_t i = 0; i < last_rows.size(); ++i) {
      kernels::Tensor dst = sel.rows_view(int64_t(i), 1);
      out.device().ops().copy(out.rows_view(last_rows[i], 1), dst);
    }
    std::vector<float> logits = dec.logits(sel);
    const int V = dec.config().vocab;
    const std::vector<int32_t> stops = model_.stop_ids();
    uint32_t produced = 0;
    for (size_t i = 0; i < active_.size(); ++i) {
      Active& a = *active_[i];
      if (a.pending.defined()) {
        a.pending = {};
        a.prefilled_at = Clock::now();
      }
      const int32_t tok = a.sampler->next(logits.data() + i * size_t(V), V, a.generated);
      a.generated.push_back(tok);
      a.last_token = tok;
      ++produced;
      if (std::find(stops.begin(), stops.end(), tok) != stops.end()) {
        finish(a, "stop");
        continue;
      }
      std::string piece = a.stream->push(tok);
      a.text += piece;
      bool stopped = false;
      for (const auto& s : a.req.options.stop_strings) {
        const size_t pos = s.empty() ? std::string::npos : a.text.find(s);
        if (pos == std::string::npos) continue;
        const size_t before = a.text.size() - piece.size();
        piece = pos > before ? a.text.substr(before, pos - before) : "";
        stopped = true;
        break;
      }
      if (!piece.empty() && a.req.events.on_token) a.req.events.on_token(piece, tok);
      if (stopped) {
        a.stream.reset();   // nothing after the stop string
        finish(a, "stop");
      } else if (int(a.generated.size()) >= a.req.options.max_tokens) {
        finish(a, "length");
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    generated_ += produced;
    recent_.emplace_back(Clock::now(), produced);
    while (!recent_.empty() && Clock::now() - recent_.front().first > std::chrono::seconds(10)) recent_.pop_front();
  } catch (const std::exception& e) {
    spdlog::error("batch step failed: {}", e.what());
    for (auto& a : active_) finish(*a, "error", "internal", e.what());
  }
  prune(active_);
}

void Scheduler::loop() {
  std::vector<std::unique_ptr<Active>> fresh;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(50),
                   [&] { return stopping_ || !queue_.empty() || !active_.empty(); });
      if (stopping_) break;
    }
    admit(fresh);
    step(fresh);
  }
  // Stopping: everything still here ends as cancelled.
  for (auto& a : active_) finish(*a, "cancelled");
  active_.clear();
  std::deque<Waiting> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(queue_);
  }
  for (auto& w : left) {
    Active a;
    a.req = std::move(w.req);
    a.queued_at = w.queued_at;
    finish(a, "cancelled");
  }
}

}  // namespace omni::sched
