#include "sched/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "kernels/ops.h"
#include "model/prefix_hash.h"
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
  std::unique_ptr<Generation> gen;
  std::unique_ptr<KvSequence> seq;
  PrefixHasher rows;                // every row's identity: the prompt's, then each generated token's
  kernels::Tensor prompt;           // the prompt's embeddings, kept for a recompute after preemption
  int64_t prompt_rows = 0;
  int64_t stale_rows = 0;           // prompt rows [0, stale_rows) may lack picture rows (tower skipped: reused)
  kernels::Tensor pending;          // rows still to prefill (the prompt's rest; after preemption, more)
  int64_t prefilled = 0;            // rows of `pending` already in the KV cache
  int64_t step_rows = 0;            // rows it has in its group's step now
  int64_t published = 0;            // blocks of seq offered to the prefix cache
  Result result;
  Clock::time_point queued_at, started_at, prefilled_at;
  bool done = false;
  bool counted = false;             // holds one of n_active_
  int group = 0;                    // the batch group it steps with
  bool in_flight = false;           // its group's step is in the pipeline: hands off
  uint64_t order = 0;               // admission order
};

Scheduler::Scheduler(ChatModel& model, SchedulerOptions opt) : model_(model), opt_(opt) {
  if (opt_.max_batch_tokens < 1) throw Error("scheduler: max_batch_tokens must be at least 1");
  const int64_t blocks = opt_.kv_blocks > 0 ? opt_.kv_blocks : int64_t(opt_.max_active) * blocks_for(opt_.max_context);
  pool_ = model_.decoder().new_pool(blocks, opt_.prefix_cache);
  runner_ = std::make_unique<PipelineRunner>(model_.decoder());
  groups_.resize(size_t(runner_->n_stages()));
  decoders_ = std::make_unique<DecodePool>(opt_.decode_threads);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_decoding_.store(true);   // decodes in progress stop at their next poll
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  decoders_.reset();   // joins; its jobs still reach mu_ and cv_
}

std::shared_ptr<Ticket> Scheduler::submit(Request r) {
  auto ticket = std::make_shared<Ticket>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || draining_ || int(queue_.size()) >= opt_.max_queue) return nullptr;
    Waiting w{std::move(r), ticket, Clock::now(), nullptr, nullptr};
    if (!w.req.images.empty()) w.decoding = std::make_shared<Decoding>();
    queue_.push_back(std::move(w));
    start_decodes_locked();
  }
  cv_.notify_all();
  return ticket;
}

Stats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s;
  s.active = n_active_.load();
  s.queued = 0;
  for (const auto& w : queue_) s.queued += w.resume ? 0 : 1;
  s.completed = completed_;
  s.generated_tokens = generated_;
  const auto now = Clock::now();
  uint64_t n = 0;
  for (const auto& [t, k] : recent_)
    if (now - t < std::chrono::seconds(5)) n += k;
  s.tokens_per_s = double(n) / 5.0;
  s.pipeline = runner_->stats();
  s.kv = pool_->blocks().stats();
  s.preemptions = preemptions_.load();
  s.running = running_.load();
  s.max_running = max_running_.load();
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
      if (Clock::now() > deadline) stop_decoding_.store(true);   // what still decodes ends as cancelled
      if (Clock::now() > deadline + std::chrono::seconds(1)) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Scheduler::finish(Active& a, FinishReason reason, ipc::ErrorCode code, const std::string& msg) {
  if (a.done) return;
  a.done = true;
  if (a.gen) {
    std::string tail = a.gen->end(reason);   // held-back text, unless it already ended or failed
    if (!tail.empty() && a.req.events.on_token) a.req.events.on_token(tail, -1);
  }
  const auto now = Clock::now();
  a.result.finish_reason = reason;
  a.result.error = code;
  a.result.error_message = msg;
  a.result.completion_tokens = a.gen ? uint32_t(a.gen->tokens().size()) : 0;
  if (a.started_at != Clock::time_point{}) a.result.queue_ms = ms_between(a.queued_at, a.started_at);
  if (a.prefilled_at != Clock::time_point{}) {
    a.result.prefill_ms = ms_between(a.started_at, a.prefilled_at);
    a.result.decode_ms = ms_between(a.prefilled_at, now);
  }
  a.result.total_ms = ms_between(a.queued_at, now);
  a.seq.reset();   // the KV blocks go back at once (full ones stay cached)
  a.pending = {};
  a.prompt = {};
  // Counted before on_done, so status and /metrics never lag the answer a client just got.
  if (a.counted) n_active_.fetch_sub(1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++completed_;
  }
  if (a.req.events.on_done) a.req.events.on_done(a.result);
  cv_.notify_all();   // a slot is free: the admission thread may take the next request
}

bool Scheduler::samples(const Active& a) {
  return !a.pending.defined() || a.prefilled + a.step_rows == a.pending.rows();
}

void Scheduler::prune() {
  active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& a) { return a->done; }), active_.end());
  running_.store(uint32_t(active_.size()));
}

image::DecodeInterrupt Scheduler::decode_interrupt(std::shared_ptr<Ticket> ticket,
                                                   std::optional<Clock::time_point> deadline) {
  return [this, ticket = std::move(ticket), deadline] {
    return stop_decoding_.load() || ticket->cancelled() || (deadline && Clock::now() > *deadline);
  };
}

void Scheduler::start_decodes_locked() {
  constexpr int kAheadPerThread = 2;
  int in_progress = 0;
  for (const auto& w : queue_) in_progress += w.decoding && w.decoding->started ? 1 : 0;
  for (auto& w : queue_) {
    if (in_progress >= kAheadPerThread * decoders_->threads()) break;
    if (!w.decoding || w.decoding->started) continue;
    w.decoding->started = true;
    ++in_progress;
    // The job owns what it reads: the pictures' bytes are kept alive by their inputs.
    decoders_->post([this, d = w.decoding, images = w.req.images, prompt_options = w.req.prompt,
                     interrupted = decode_interrupt(w.ticket, w.req.deadline)] {
      std::vector<PreparedMedia> out;
      std::exception_ptr error;
      try {
        out = model_.prepare_images(images, prompt_options, interrupted);
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        d->images = std::move(out);
        d->error = error;
        d->done = true;
      }
      cv_.notify_all();
    });
  }
}

void Scheduler::admit_loop() {
  for (;;) {
    Waiting w;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // n_active_ counts requests being prepared too; a preempted request keeps its slot.
      // A request whose pictures are still decoding lets the ones behind it go first.
      auto next = queue_.end();
      cv_.wait(lock, [&] {
        if (stopping_) return true;
        const int n = int(n_active_.load());
        next = std::find_if(queue_.begin(), queue_.end(),
                            [&](const Waiting& q) { return q.admissible(n, opt_.max_active); });
        return next != queue_.end();
      });
      if (stopping_) return;
      w = std::move(*next);
      queue_.erase(next);
      if (!w.resume) n_active_.fetch_add(1);
      start_decodes_locked();
    }
    const bool resumed = w.resume != nullptr;
    std::unique_ptr<Active> a = prepare(std::move(w));
    if (!a) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (resumed) ready_.push_front(std::move(a));   // a preempted request goes first
      else ready_.push_back(std::move(a));
      ++ready_pushes_;
    }
    cv_.notify_all();
  }
}

std::vector<Sha256> Scheduler::prefix_hashes(Active& a) {
  // Whole blocks only, and never the last row: its logits are needed.
  const int64_t full = (a.rows.rows() - 1) / kBlockTokens;
  if (!pool_->blocks().prefix_cache() || full <= 0) return {};
  const auto& all = a.rows.block_hashes(full);
  return {all.begin(), all.begin() + std::ptrdiff_t(full)};
}

int64_t Scheduler::cached_rows(Active& a) {
  return pool_->blocks().cached_prefix(prefix_hashes(a)) * kBlockTokens;
}

int64_t Scheduler::reuse_prefix(Active& a) {
  if (!a.seq) a.seq = std::make_unique<KvSequence>(pool_, opt_.max_context);
  std::vector<int32_t> hit = pool_->blocks().match(prefix_hashes(a));
  a.published = int64_t(hit.size());
  a.seq->adopt_prefix(std::move(hit));
  return a.seq->length();
}

std::unique_ptr<Scheduler::Active> Scheduler::prepare(Waiting w) {
  const auto& place = model_.decoder().placement();
  kernels::Device& embed_dev = *place.embed_device;
  kernels::Device& vision_dev = place.vision_device ? *place.vision_device : embed_dev;
  std::unique_ptr<Active> a = std::move(w.resume);
  const bool resumed = a != nullptr;
  if (!a) {
    a = std::make_unique<Active>();
    a->req = std::move(w.req);
    a->ticket = std::move(w.ticket);
    a->queued_at = w.queued_at;
    a->started_at = Clock::now();
    a->counted = true;   // holds the n_active_ slot taken by admit_loop
  }
  if (a->ticket->cancelled()) {
    finish(*a, FinishReason::cancelled);
    return nullptr;
  }
  if (a->req.deadline && Clock::now() > *a->req.deadline) {
    finish(*a, FinishReason::deadline);
    return nullptr;
  }
  try {
    if (resumed) {
      resume(*a);
      return a;
    }
    const AnswerOptions& o = a->req.options;
    std::vector<PreparedMedia> pictures;
    if (w.decoding) {
      if (w.decoding->error) std::rethrow_exception(w.decoding->error);
      pictures = std::move(w.decoding->images);
    }
    ChatPrompt prompt = model_.prepare_prompt(std::move(pictures), a->req.messages, a->req.prompt);
    a->rows = PrefixHasher::for_prompt(prompt, o.pad_id.value_or(model_.pad_id()));
    const int64_t n = a->rows.rows();
    if (n == 0) throw Error("the prompt holds only padding tokens", ipc::ErrorCode::bad_message);
    a->result.prompt_tokens = uint32_t(n);
    for (const auto& b : prompt.bounds) a->result.image_tokens += uint32_t(b.second - b.first);
    if (o.max_tokens_fits_context && n < opt_.max_context && n + o.max_tokens > opt_.max_context)
      a->req.options.max_tokens = int(opt_.max_context - n);
    if (n + a->req.options.max_tokens > opt_.max_context)
      throw Error("prompt of " + std::to_string(n) + " tokens plus max_tokens " + std::to_string(o.max_tokens) +
                      " exceeds the context of " + std::to_string(opt_.max_context),
                  ipc::ErrorCode::too_large);
    a->gen = std::make_unique<Generation>(&model_.tokenizer(), generation_options(model_, o));
    if (blocks_for(n + 1) > pool_->blocks().n_blocks()) {
      finish(*a, FinishReason::error, ipc::ErrorCode::too_large,
             "prompt of " + std::to_string(n) + " tokens needs " + std::to_string(blocks_for(n + 1)) +
                 " KV blocks; the KV cache holds " + std::to_string(pool_->tokens()) + " tokens (" +
                 std::to_string(pool_->blocks().n_blocks()) + " blocks of " + std::to_string(kBlockTokens) + ")");
      return nullptr;
    }
    // A picture whose rows all lie in the cached prefix needs no tower run. The blocks are
    // taken only when the request joins a batch (take_ready): should they be evicted
    // meanwhile, it comes back here to have the picture embedded after all.
    const int64_t start = cached_rows(*a);
    const std::vector<int64_t> ends = a->rows.image_ends();
    std::vector<bool> skip(ends.size(), false);
    for (size_t i = 0; i < ends.size(); ++i)
      if (ends[i] > 0 && ends[i] <= start) {
        skip[i] = true;
        a->stale_rows = std::max(a->stale_rows, ends[i]);
      }
    // Device work shares the devices with the pipeline's stage threads: take turns.
    // The vision device is taken one picture piece at a time, so decode steps on it
    // get their turns in between.
    std::vector<std::shared_ptr<const VisionEmbeds>> vision =
        model_.encode_images(prompt, &vision_dev.exec_mutex(), &skip, decode_interrupt(a->ticket, a->req.deadline));
    {
      std::lock_guard<kernels::TurnLock> lock(embed_dev.exec_mutex());
      a->prompt = drop_pad_rows(model_.embed_prompt(prompt, vision), prompt.ids, o.pad_id.value_or(model_.pad_id()));
    }
    a->prompt_rows = n;
    return a;
  } catch (const image::DecodeInterrupted&) {
    // Stopped for its cancel or deadline, or for shutdown (which cancels what is left).
    const bool late = a->req.deadline && Clock::now() > *a->req.deadline && !a->ticket->cancelled();
    finish(*a, late ? FinishReason::deadline : FinishReason::cancelled);
    return nullptr;
  } catch (const Error& e) {   // image::DecodeError is bad_image; a too-long prompt too_large; ...
    finish(*a, FinishReason::error, resumed ? ipc::ErrorCode::internal : e.code(), e.what());
    return nullptr;
  } catch (const ipc::IpcError& e) {   // the conversation's shape (ipc::validate_conversation)
    finish(*a, FinishReason::error, resumed ? ipc::ErrorCode::internal : e.code(), e.what());
    return nullptr;
  } catch (const std::exception& e) {
    finish(*a, FinishReason::error, ipc::ErrorCode::internal, e.what());
    return nullptr;
  }
}

void Scheduler::resume(Active& a) {
  if (a.stale_rows == 0 || cached_rows(a) >= a.stale_rows) return;
  // The reused picture rows were evicted meanwhile: embed the prompt whole after all.
  const auto& place = model_.decoder().placement();
  kernels::Device& embed_dev = *place.embed_device;
  kernels::Device& vision_dev = place.vision_device ? *place.vision_device : embed_dev;
  // Rare (evicted between admission and joining): decoded here, not on the pool, but
  // interruptible like there.
  ChatPrompt prompt =
      model_.prepare_prompt(model_.prepare_images(a.req.images, a.req.prompt, decode_interrupt(a.ticket, a.req.deadline)),
                            a.req.messages, a.req.prompt);
  auto vision = model_.encode_images(prompt, &vision_dev.exec_mutex(), nullptr, decode_interrupt(a.ticket, a.req.deadline));
  std::lock_guard<kernels::TurnLock> lock(embed_dev.exec_mutex());
  a.prompt = drop_pad_rows(model_.embed_prompt(prompt, vision), prompt.ids,
                           a.req.options.pad_id.value_or(model_.pad_id()));
  a.stale_rows = 0;
}

void Scheduler::set_pending(Active& a, int64_t start) {
  const int64_t total = a.rows.rows(), P = a.prompt_rows;   // prompt + every token sampled so far
  a.prefilled = 0;
  if (total == P) {
    a.pending = a.prompt.rows_view(start, P - start);
    return;
  }
  // Recomputing after preemption: the prompt's rest, then the generated tokens.
  const Decoder& dec = model_.decoder();
  const auto& edev = dec.placement().embed_device;
  std::lock_guard<kernels::TurnLock> lock(edev->exec_mutex());
  kernels::Tensor rows = kernels::Tensor::empty(edev, edev->compute_dtype(), {total - start, dec.config().hidden});
  int64_t at = 0;
  if (start < P) {
    kernels::Tensor dst = rows.rows_view(0, P - start);
    kernels::copy_between(a.prompt.rows_view(start, P - start), dst);
    at = P - start;
  }
  const std::vector<int32_t>& gen = a.gen->tokens();
  std::vector<int32_t> ids(gen.begin() + std::ptrdiff_t(std::max<int64_t>(start - P, 0)), gen.end());
  if (!ids.empty()) {
    kernels::Tensor dst = rows.rows_view(at, int64_t(ids.size()));
    kernels::copy_between(dec.embed(ids), dst);
  }
  a.pending = rows;
}

void Scheduler::take_ready() {
  // In order: a request whose rows do not fit in the free blocks waits (and so do the
  // ones behind it), unless nothing runs, when it joins and preemption sorts it out.
  bool running = !active_.empty();
  for (;;) {
    std::unique_ptr<Active> a;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ready_.empty()) break;
      a = std::move(ready_.front());
      ready_.pop_front();
    }
    if (a->ticket->cancelled() || (a->req.deadline && Clock::now() > *a->req.deadline)) {
      finish(*a, a->ticket->cancelled() ? FinishReason::cancelled : FinishReason::deadline);
      continue;
    }
    const int64_t total = a->rows.rows();
    try {
      const int64_t start = reuse_prefix(*a);
      if (start < a->stale_rows) {   // picture rows it counted on were evicted: embed them first
        spdlog::debug("request {}: cached picture rows were evicted, embedding them", a->req.id);
        a->seq->release();
        send_back(std::move(a));
        continue;
      }
      const int64_t need = a->seq->blocks_needed(total - start) + 1;
      if (running && need > pool_->blocks().available()) {
        spdlog::debug("request {} waits for {} KV blocks ({} free)", a->req.id, need, pool_->blocks().available());
        a->seq->release();
        {
          std::lock_guard<std::mutex> lock(mu_);
          ready_.push_front(std::move(a));
        }
        finish_abandoned_ready();
        break;
      }
      if (a->order == 0) pool_->blocks().count_lookup(total, start);   // a recompute is not a lookup
      set_pending(*a, start);
    } catch (const std::exception& e) {
      // Nothing here should throw; if it does, this request ends and the others go on.
      spdlog::error("request {}: joining the batch failed: {}", a->req.id, e.what());
      if (a->seq) a->seq->release();
      finish(*a, FinishReason::error, ipc::ErrorCode::internal, e.what());
      continue;
    }
    running = true;
    // Join the group with the fewest members, so the stages get batches of equal size.
    std::vector<int> load(groups_.size(), 0);
    for (const auto& b : active_) ++load[size_t(b->group)];
    a->group = int(std::min_element(load.begin(), load.end()) - load.begin());
    if (a->order == 0) a->order = ++admitted_;
    active_.push_back(std::move(a));
  }
  running_.store(uint32_t(active_.size()));
  if (running_.load() > max_running_.load()) max_running_.store(running_.load());
}

void Scheduler::finish_abandoned_ready() {
  // Requests queued behind one that waits for blocks may be cancelled or past their
  // deadline meanwhile: they end now, not when the blocks come.
  std::vector<std::unique_ptr<Active>> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    for (auto it = ready_.begin(); it != ready_.end();) {
      const Active& r = **it;
      if (r.ticket->cancelled() || (r.req.deadline && now > *r.req.deadline)) {
        gone.push_back(std::move(*it));
        it = ready_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& r : gone) finish(*r, r->ticket->cancelled() ? FinishReason::cancelled : FinishReason::deadline);
}

void Scheduler::send_back(std::unique_ptr<Active> a) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Waiting w;
    w.queued_at = a->queued_at;
    w.resume = std::move(a);
    queue_.push_front(std::move(w));
  }
  cv_.notify_all();
}

void Scheduler::preempt(Active& a) {
  a.seq.reset();   // full blocks stay cached: the recompute may find them
  a.pending = {};
  a.prefilled = a.step_rows = a.published = 0;
  preemptions_.fetch_add(1);
  spdlog::info("request {} preempted after {} tokens: the KV cache is full", a.req.id, a.gen->tokens().size());
  auto it = std::find_if(active_.begin(), active_.end(), [&](const auto& p) { return p.get() == &a; });
  std::unique_ptr<Active> owned = std::move(*it);
  active_.erase(it);
  running_.store(uint32_t(active_.size()));
  send_back(std::move(owned));
}

void Scheduler::reserve_blocks(std::vector<Active*>& members) {
  for (size_t i = 0; i < members.size(); ++i) {
    Active* m = members[i];
    if (!m) continue;
    if (m->seq->length() + m->step_rows > m->seq->capacity()) {   // the whole pool is smaller than its context
      finish(*m, FinishReason::length);
      members[i] = nullptr;
      continue;
    }
    bool got = false;
    while (!(got = m->seq->reserve(m->step_rows))) {
      // The most recently admitted request that is not in a step in flight gives way.
      Active* victim = nullptr;
      for (const auto& b : active_)
        if (!b->done && !b->in_flight && (!victim || b->order > victim->order)) victim = b.get();
      if (!victim) break;
      const bool self = victim == m;
      if (self && int64_t(m->seq->blocks().size()) + pool_->blocks().available() >= pool_->blocks().n_blocks())
        break;   // nobody else holds a block: it alone outgrows the pool
      if (self && std::any_of(active_.begin(), active_.end(), [&](const auto& b) {
            return !b->done && b->in_flight && b->order > m->order;
          }))
        break;   // a newer request should give way, but it is in a step in flight: wait for it
      for (auto& x : members)
        if (x == victim) x = nullptr;
      preempt(*victim);
      if (self) break;
    }
    if (got || !members[i]) continue;
    // Nothing left to preempt. A request that alone outgrows the pool ends here.
    if (int64_t(m->seq->blocks().size()) + pool_->blocks().available() >= pool_->blocks().n_blocks())
      finish(*m, FinishReason::length);
    else blocks_short_ = true;   // it waits for blocks held by steps in flight
    members[i] = nullptr;
  }
  members.erase(std::remove(members.begin(), members.end(), nullptr), members.end());
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
    if (a->ticket->cancelled()) finish(*a, FinishReason::cancelled);
    else if (a->req.deadline && now > *a->req.deadline) finish(*a, FinishReason::deadline);
    else if (drain_over) finish(*a, FinishReason::cancelled);
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
  reserve_blocks(members);
  prune();
  if (members.empty()) return;

  auto job = std::make_shared<PipelineJob>();
  int64_t rows = 0;
  std::vector<int32_t> decode_ids;   // running members come first: one embedding for all of them
  for (Active* a : members) {
    job->seqs.push_back({a->seq.get(), a->step_rows});
    rows += a->step_rows;
    if (!a->pending.defined()) decode_ids.push_back(a->gen->last_token());
  }
  try {
    const auto& edev = dec.placement().embed_device;
    std::lock_guard<kernels::TurnLock> lock(edev->exec_mutex());
    job->hidden = kernels::Tensor::empty(edev, edev->compute_dtype(), {rows, dec.config().hidden});
    int64_t r = 0;
    if (!decode_ids.empty()) {
      kernels::Tensor dst = job->hidden.rows_view(0, int64_t(decode_ids.size()));
      kernels::copy_between(dec.embed(decode_ids), dst);
    }
    for (Active* a : members) {
      if (a->pending.defined()) {
        kernels::Tensor dst = job->hidden.rows_view(r, a->step_rows);
        kernels::copy_between(a->pending.rows_view(a->prefilled, a->step_rows), dst);
      }
      r += a->step_rows;
      if (samples(*a)) job->logit_rows.push_back(r - 1);   // a partial prompt chunk needs no logits
    }
  } catch (const std::exception& e) {
    spdlog::error("batch step failed: {}", e.what());
    for (Active* a : members) finish(*a, FinishReason::error, ipc::ErrorCode::internal, e.what());
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

void Scheduler::publish_blocks(Active& a) {
  if (!pool_->blocks().prefix_cache() || !a.seq) return;
  const int64_t full = a.seq->length() / kBlockTokens;
  if (full <= a.published) return;
  const auto& hashes = a.rows.block_hashes(full);
  for (int64_t b = a.published; b < full; ++b) pool_->blocks().publish(a.seq->blocks()[size_t(b)], hashes[size_t(b)]);
  a.published = full;
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
    for (Active* a : members) finish(*a, FinishReason::error, ipc::ErrorCode::internal, what);
    prune();
    return;
  }
  const int V = model_.decoder().config().vocab;
  uint32_t produced = 0;
  size_t row = 0;   // logit rows exist only for members that sample (see launch)
  for (Active* m : members) {
    Active& a = *m;
    const bool sample = samples(a);
    if (a.pending.defined()) {
      a.prefilled += a.step_rows;
      if (!sample) {   // more of the prompt next step
        publish_blocks(a);
        continue;
      }
      a.pending = {};
      if (a.prefilled_at == Clock::time_point{}) a.prefilled_at = Clock::now();
    }
    std::string piece = a.gen->next(job.logits.data() + row++ * size_t(V), V);
    const int32_t tok = a.gen->last_token();
    a.rows.push_token(tok);   // its row, once it is fed back
    ++produced;
    if (!piece.empty() && a.req.events.on_token) a.req.events.on_token(piece, a.gen->finished() ? -1 : tok);
    publish_blocks(a);
    if (a.gen->finished()) finish(a, a.gen->reason());
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
    ready &= !blocks_short_;   // they wait for blocks that steps in flight hold
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!ready)
        cv_.wait_for(lock, std::chrono::milliseconds(50),
                     [&] { return stopping_ || n_finished_ > 0 || ready_pushes_ != ready_seen_; });
      ready_seen_ = ready_pushes_;
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
      if (job) {
        blocks_short_ = false;
        collect(int(g), *job);
      }
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
  std::deque<std::unique_ptr<Active>> ready;
  std::deque<Waiting> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready.swap(ready_);
    left.swap(queue_);
  }
  for (auto& a : ready) finish(*a, FinishReason::cancelled);
  for (auto& a : active_) finish(*a, FinishReason::cancelled);
  active_.clear();
  for (auto& w : left) {
    if (w.resume) {
      finish(*w.resume, FinishReason::cancelled);
      continue;
    }
    Active a;
    a.req = std::move(w.req);
    a.queued_at = w.queued_at;
    finish(a, FinishReason::cancelled);
  }
}

}  // namespace omni::sched
