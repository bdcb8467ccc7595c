#include "sched/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "kernels/ops.h"
#include "tokenizer/stream_decoder.h"
#include "util/error.h"

namespace omni::sched {

using Clock = std::chrono::steady_clock;

namespace {
constexpr int64_t kMinPromptRows = 16;
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
  int64_t prefilled = 0;            // rows of `pending` already in the KV cache
  int64_t step_rows = 0;            // rows it has in its group's step now
  int32_t last_token = -1;
  std::vector<int32_t> generated;
  std::string text;                 // answer so far, for stop strings
  Result result;
  Clock::time_point queued_at, started_at, prefilled_at;
  bool done = false;
  bool counted = false;             // holds one of n_active_
  int group = 0;                    // the batch group it steps with
  bool in_flight = false;           // its group's step is in the pipeline: hands off
};

Scheduler::Scheduler(ChatModel& model, SchedulerOptions opt) : model_(model), opt_(opt) {
  if (opt_.max_batch_tokens < 1) throw Error("scheduler: max_batch_tokens must be at least 1");
  runner_ = std::make_unique<PipelineRunner>(model_.decoder());
  groups_.resize(size_t(runner_->n_stages()));
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
  s.pipeline = runner_->stats();
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++completed_;
  }
  cv_.notify_all();   // a slot is free: the admission thread may take the next request
}

bool Scheduler::samples(const Active& a) {
  return !a.pending.defined() || a.prefilled + a.step_rows == a.pending.rows();
}

void Scheduler::prune() {
  active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& a) { return a->done; }), active_.end());
}

void Scheduler::admit_loop() {
  for (;;) {
    Waiting w;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // n_active_ counts requests being prepared too: the KV cache is budgeted for max_active.
      cv_.wait(lock, [&] { return stopping_ || (!queue_.empty() && int(n_active_.load()) < opt_.max_active); });
      if (stopping_) return;
      w = std::move(queue_.front());
      queue_.pop_front();
      n_active_.fetch_add(1);
    }
    std::unique_ptr<Active> a = prepare(std::move(w));
    if (!a) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.push_back(std::move(a));
    }
    cv_.notify_all();
  }
}

std::unique_ptr<Scheduler::Active> Scheduler::prepare(Waiting w) {
  const auto& place = model_.decoder().placement();
  kernels::Device& embed_dev = *place.embed_device;
  kernels::Device& vision_dev = place.vision_device ? *place.vision_device : embed_dev;
  auto a = std::make_unique<Active>();
  a->req = std::move(w.req);
  a->ticket = std::move(w.ticket);
  a->queued_at = w.queued_at;
  a->started_at = Clock::now();
  a->counted = true;   // holds the n_active_ slot taken by admit_loop
  if (a->ticket->cancelled()) {
    finish(*a, "cancelled");
    return nullptr;
  }
  try {
    const AnswerOptions& o = a->req.options;
    if (o.max_tokens <= 0) throw Error("max_tokens must be positive");
    a->sampler = std::make_unique<Sampler>(o.sampling);
    ChatPrompt prompt = model_.prepare(a->req.images, a->req.question);
    // Device work shares the devices with the pipeline's stage threads: take turns.
    // The vision device is taken one picture piece at a time, so decode steps on it
    // get their turns in between.
    std::vector<std::shared_ptr<const VisionEmbeds>> vision = model_.encode_images(prompt, &vision_dev.exec_mutex());
    {
      std::lock_guard<kernels::TurnLock> lock(embed_dev.exec_mutex());
      a->pending = drop_pad_rows(model_.embed_prompt(prompt, vision), prompt.ids, o.pad_id);
    }
    a->result.prompt_tokens = uint32_t(a->pending.rows());
    for (const auto& b : prompt.bounds) a->result.image_tokens += uint32_t(b.second - b.first);
    const int64_t need = a->pending.rows() + o.max_tokens;
    if (need > opt_.max_context)
      throw Error("prompt of " + std::to_string(a->pending.rows()) + " tokens plus max_tokens " +
                  std::to_string(o.max_tokens) + " exceeds the context of " + std::to_string(opt_.max_context));
    a->cache = model_.decoder().new_cache(need);
    a->stream = std::make_unique<tok::StreamDecoder>(model_.tokenizer());
    return a;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    // Image errors name the picture first (image/decode.h).
    bool image_error = false;
    for (const auto& im : a->req.images) image_error |= what.rfind(im.name, 0) == 0;
    finish(*a, "error", image_error ? "bad_image" : "bad_request", what);
    return nullptr;
  }
}

void Scheduler::take_ready() {
  std::deque<std::unique_ptr<Active>> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready.swap(ready_);
  }
  for (auto& a : ready) {
    // Join the group with the fewest members, so the stages get batches of equal size.
    std::vector<int> load(groups_.size(), 0);
    for (const auto& b : active_) ++load[size_t(b->group)];
    a->group = int(std::min_element(load.begin(), load.end()) - load.begin());
    active_.push_back(std::move(a));
  }
}

void Scheduler::launch(int g) {
  const Decoder& dec = model_.decoder();
  const auto now = Clock::now();
  bool drain_over = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    drain_over = draining_ && now > drain_deadline_;
  }
  // Leave the batch at once when cancelled or past the deadline.
  for (auto& a : active_) {
    if (a->group != g || a->done) continue;
    if (a->ticket->cancelled()) finish(*a, "cancelled");
    else if (a->req.deadline && now > *a->req.deadline) finish(*a, "deadline");
    else if (drain_over) finish(*a, "cancelled");
  }
  prune();
  // One batch: one token of every running request, then prompt chunks in arrival order
  // within max_batch_tokens, but at least kMinPromptRows so a prompt always advances even
  // when the running requests fill the budget.
  std::vector<Active*> members;
  int64_t budget = opt_.max_batch_tokens;
  for (auto& a : active_)
    if (a->group == g && !a->pending.defined()) {
      a->step_rows = 1;
      members.push_back(a.get());
      --budget;
    }
  budget = std::max<int64_t>(budget, kMinPromptRows);
  for (auto& a : active_) {
    if (a->group != g || !a->pending.defined() || budget == 0) continue;
    a->step_rows = std::min(budget, a->pending.rows() - a->prefilled);
    budget -= a->step_rows;
    members.push_back(a.get());
  }
  if (members.empty()) return;

  auto job = std::make_shared<PipelineJob>();
  int64_t rows = 0;
  for (Active* a : members) {
    job->seqs.push_back({a->cache.get(), a->step_rows});
    rows += a->step_rows;
  }
  try {
    const auto& edev = dec.placement().embed_device;
    std::lock_guard<kernels::TurnLock> lock(edev->exec_mutex());
    job->hidden = kernels::Tensor::empty(edev, edev->compute_dtype(), {rows, dec.config().hidden});
    int64_t r = 0;
    for (Active* a : members) {
      kernels::Tensor src = a->pending.defined() ? a->pending.rows_view(a->prefilled, a->step_rows)
                                                 : dec.embed({a->last_token});
      kernels::Tensor dst = job->hidden.rows_view(r, src.rows());
      kernels::copy_between(src, dst);
      r += src.rows();
      if (samples(*a)) job->logit_rows.push_back(r - 1);   // a partial prompt chunk needs no logits
    }
  } catch (const std::exception& e) {
    spdlog::error("batch step failed: {}", e.what());
    for (Active* a : members) finish(*a, "error", "internal", e.what());
    prune();
    return;
  }
  for (Active* a : members) a->in_flight = true;
  groups_[size_t(g)].in_job = members;
  groups_[size_t(g)].in_flight = true;
  runner_->submit(job, [this, g](const std::shared_ptr<PipelineJob>& done) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      groups_[size_t(g)].finished = done;
      ++n_finished_;
    }
    cv_.notify_all();
  });
}

void Scheduler::collect(int g, const PipelineJob& job) {
  Group& grp = groups_[size_t(g)];
  std::vector<Active*> members = std::move(grp.in_job);
  grp.in_job.clear();
  grp.in_flight = false;
  for (Active* a : members) a->in_flight = false;
  if (job.error) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(job.error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("batch step failed: {}", what);
    for (Active* a : members) finish(*a, "error", "internal", what);
    prune();
    return;
  }
  const int V = model_.decoder().config().vocab;
  const std::vector<int32_t> stops = model_.stop_ids();
  uint32_t produced = 0;
  size_t row = 0;   // logit rows exist only for members that sample (see launch)
  for (Active* m : members) {
    Active& a = *m;
    const bool sample = samples(a);
    if (a.pending.defined()) {
      a.prefilled += a.step_rows;
      if (!sample) continue;   // more of the prompt next step
      a.pending = {};
      a.prefilled_at = Clock::now();
    }
    const int32_t tok = a.sampler->next(job.logits.data() + row++ * size_t(V), V, a.generated);
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    generated_ += produced;
    recent_.emplace_back(Clock::now(), produced);
    while (!recent_.empty() && Clock::now() - recent_.front().first > std::chrono::seconds(10)) recent_.pop_front();
  }
  prune();
}

void Scheduler::loop() {
  std::thread admission([this] { admit_loop(); });
  for (;;) {
    bool ready = false;   // an idle group with members can step at once
    for (const auto& a : active_) ready |= !a->in_flight && !groups_[size_t(a->group)].in_flight;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!ready)
        cv_.wait_for(lock, std::chrono::milliseconds(50),
                     [&] { return stopping_ || n_finished_ > 0 || !ready_.empty(); });
      if (stopping_) break;
    }
    take_ready();
    for (size_t g = 0; g < groups_.size(); ++g) {
      std::shared_ptr<PipelineJob> job;
      {
        std::lock_guard<std::mutex> lock(mu_);
        job = std::move(groups_[g].finished);
        if (job) --n_finished_;
      }
      if (job) collect(int(g), *job);
    }
    for (size_t g = 0; g < groups_.size(); ++g)
      if (!groups_[g].in_flight) launch(int(g));
  }
  cv_.notify_all();
  admission.join();   // it finishes the request it is preparing, then sees stopping_
  // Stopping: let the steps in the pipeline land (they write the caches), then
  // everything still here ends as cancelled.
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      for (const auto& g : groups_)
        if (g.in_flight && !g.finished) return false;
      return true;
    });
  }
  take_ready();
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
