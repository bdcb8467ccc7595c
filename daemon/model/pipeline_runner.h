#pragma once
// Runs decoder forwards as a pipeline: one thread per stage, each taking jobs from its
// queue in order, so while stage s works on one job, stage s+1 works on the job before.
// The scheduler keeps one batch of sequences in flight per stage (vLLM's "virtual
// engines"), so with several requests every stage stays busy instead of waiting for the
// others. With a single stage (one device, tensor parallel) a job runs inline, in the
// submitting thread, exactly as Decoder::forward would.
//
// Each stage holds its device's exec_mutex while it issues work, so stages sharing a
// device (cuda:0,cuda:0) and the scheduler thread (vision tower, embeddings) take turns.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/tensor.h"
#include "model/decoder.h"

namespace omni {

struct PipelineJob {
  kernels::Tensor hidden;              // [rows, hidden], handed over: stages update it in place
  std::vector<SeqSlice> seqs;          // their caches advance when the last stage is done
  std::vector<int64_t> logit_rows;     // rows whose logits the submitter wants
  // Results, set before `done` is called:
  std::vector<float> logits;           // [logit_rows.size(), vocab]
  std::exception_ptr error;            // set instead when any stage threw
};

struct PipelineStats {
  uint64_t jobs = 0;
  int max_in_flight = 0;               // jobs submitted and not yet done, high-water mark
  int max_busy_stages = 0;             // stages computing at the same instant, high-water mark
  std::vector<double> busy_seconds;    // per stage
};

class PipelineRunner {
 public:
  using Done = std::function<void(const std::shared_ptr<PipelineJob>&)>;

  explicit PipelineRunner(const Decoder& dec);
  ~PipelineRunner();   // lets queued jobs finish, then joins the stage threads
  PipelineRunner(const PipelineRunner&) = delete;
  PipelineRunner& operator=(const PipelineRunner&) = delete;

  int n_stages() const { return int(dec_.stages().size()); }
  // Runs `job` through every stage; `done` is called exactly once, from the last stage's
  // thread (inline with one stage), after the job's results are set; it must not throw.
  // A failing forward does not throw here either: the error lands in job->error.
  void submit(std::shared_ptr<PipelineJob> job, Done done);
  PipelineStats stats() const;

 private:
  struct Item {
    std::shared_ptr<PipelineJob> job;
    Done done;
  };
  struct Queue {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Item> items;
    bool stopping = false;
  };
  void worker(int stage);
  // One stage of `item` (and, after the last, the logits); true when the item moves on.
  bool run_stage(int stage, Item& item);
  void complete(Item& item);
  void mark_busy(int stage, double seconds, int delta);

  const Decoder& dec_;
  std::vector<std::unique_ptr<Queue>> queues_;   // one per stage (none with one stage)
  std::vector<std::thread> threads_;
  mutable std::mutex stats_mu_;
  PipelineStats stats_;
  int in_flight_ = 0, busy_ = 0;
};

}  // namespace omni
