#include "model/pipeline_runner.h"

#include <algorithm>

#include <chrono>

#include "kernels/ops.h"

namespace omni {

using kernels::Tensor;

PipelineRunner::PipelineRunner(const Decoder& dec) : dec_(dec) {
  const int n = n_stages();
  stats_.busy_seconds.assign(size_t(n), 0.0);
  if (n < 2) return;
  for (int s = 0; s < n; ++s) queues_.push_back(std::make_unique<Queue>());
  for (int s = 0; s < n; ++s) threads_.emplace_back([this, s] { worker(s); });
}

PipelineRunner::~PipelineRunner() {
  // Stage by stage: once stage s has drained and exited, nothing more reaches stage s+1.
  for (size_t s = 0; s < threads_.size(); ++s) {
    {
      std::lock_guard<std::mutex> lock(queues_[s]->mu);
      queues_[s]->stopping = true;
    }
    queues_[s]->cv.notify_all();
    threads_[s].join();
  }
}

void PipelineRunner::submit(std::shared_ptr<PipelineJob> job, Done done) {
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    ++stats_.jobs;
    stats_.max_in_flight = std::max(stats_.max_in_flight, ++in_flight_);
  }
  Item item{std::move(job), std::move(done)};
  try {
    dec_.check_batch(item.job->hidden, item.job->seqs);
  } catch (...) {
    item.job->error = std::current_exception();
    complete(item);
    return;
  }
  if (queues_.empty()) {   // one stage: inline
    if (run_stage(0, item)) complete(item);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(queues_[0]->mu);
    queues_[0]->items.push_back(std::move(item));
  }
  queues_[0]->cv.notify_one();
}

void PipelineRunner::worker(int stage) {
  Queue& q = *queues_[size_t(stage)];
  const bool last = stage + 1 == n_stages();
  for (;;) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(q.mu);
      q.cv.wait(lock, [&] { return q.stopping || !q.items.empty(); });
      if (q.items.empty()) return;   // stopping and drained
      item = std::move(q.items.front());
      q.items.pop_front();
    }
    if (!run_stage(stage, item)) continue;   // failed: already completed
    if (last) {
      complete(item);
      continue;
    }
    Queue& next = *queues_[size_t(stage) + 1];
    {
      std::lock_guard<std::mutex> lock(next.mu);
      next.items.push_back(std::move(item));
    }
    next.cv.notify_one();
  }
}

bool PipelineRunner::run_stage(int stage, Item& item) {
  PipelineJob& job = *item.job;
  const auto& stages = dec_.stages();
  const auto t0 = std::chrono::steady_clock::now();
  mark_busy(stage, 0, +1);
  try {
    const auto& dev = stages[size_t(stage)].device;
    const bool last = stage + 1 == int(stages.size());
    {
      // A tensor-parallel stage issues work on every rank's device: hold them all (in rank
      // order; no other thread holds two), or the picture encoder could share one meanwhile.
      std::vector<std::unique_lock<kernels::TurnLock>> locks;
      const auto& tp = dec_.placement().tp_devices;
      if (tp.size() > 1) {
        std::vector<kernels::Device*> taken;
        for (const auto& d : tp)
          if (std::find(taken.begin(), taken.end(), d.get()) == taken.end()) {
            taken.push_back(d.get());
            locks.emplace_back(d->exec_mutex());
          }
      } else {
        locks.emplace_back(dev->exec_mutex());
      }
      job.hidden = dec_.forward_stage(stage, std::move(job.hidden), job.seqs);
      if (last && job.logit_rows.empty()) {   // only prompt chunks: nothing to score
        job.hidden = {};
      } else if (last) {   // keep only the rows whose logits are wanted
        Tensor sel = Tensor::empty(dev, job.hidden.dtype(), {int64_t(job.logit_rows.size()), job.hidden.cols()});
        for (size_t i = 0; i < job.logit_rows.size(); ++i) {
          Tensor dst = sel.rows_view(int64_t(i), 1);
          dev->ops().copy(job.hidden.rows_view(job.logit_rows[i], 1), dst);
        }
        job.hidden = sel;
      }
      dev->synchronize();   // the next stage (or the head device) reads this from another thread
    }
    if (last) {   // caches advance, then the logits on the head device (Decoder::logits moves the rows there)
      Decoder::advance(job.seqs);
      std::lock_guard<kernels::TurnLock> lock(dec_.placement().head_device->exec_mutex());
      if (!job.logit_rows.empty()) job.logits = dec_.logits(job.hidden);   // none: only prompt chunks
      job.hidden = {};
    }
  } catch (...) {
    job.error = std::current_exception();
    job.hidden = {};
  }
  mark_busy(stage, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), -1);
  if (job.error) {
    complete(item);
    return false;
  }
  return true;
}

void PipelineRunner::complete(Item& item) {
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    --in_flight_;
  }
  item.done(item.job);
}

void PipelineRunner::mark_busy(int stage, double seconds, int delta) {
  std::lock_guard<std::mutex> lock(stats_mu_);
  busy_ += delta;
  stats_.max_busy_stages = std::max(stats_.max_busy_stages, busy_);
  stats_.busy_seconds[size_t(stage)] += seconds;
}

PipelineStats PipelineRunner::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

}  // namespace omni
