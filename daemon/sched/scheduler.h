#pragma once
// Continuous batching over one ChatModel. Requests wait in a bounded queue ("busy"
// when full, never an unbounded wait); each step admits waiting requests up to the
// active limit and runs ONE decoder forward for the whole batch: the new requests'
// prompts (prefill rows) together with one token of every running request. A request
// leaves the batch as soon as it finishes, is cancelled or passes its deadline, and
// its KV cache is freed then.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "sched/request.h"

namespace omni::sched {

struct SchedulerOptions {
  int max_active = 16;     // sequences decoding together
  int max_queue = 64;      // waiting requests before "busy"
  int max_context = 8192;  // prompt + generated tokens per request
};

struct Stats {
  uint32_t active = 0;
  uint32_t queued = 0;
  double tokens_per_s = 0;      // generated tokens over the last few seconds
  uint64_t completed = 0;
  uint64_t generated_tokens = 0;
};

class Scheduler {
 public:
  Scheduler(ChatModel& model, SchedulerOptions opt);
  ~Scheduler();   // stops: remaining requests finish as "cancelled"

  // Queues a request; nullptr when the queue is full (the caller answers "busy").
  std::shared_ptr<Ticket> submit(Request r);
  Stats stats() const;
  // Stops admitting, lets running requests finish until `deadline`, cancels the rest.
  void drain(std::chrono::steady_clock::time_point deadline);

 private:
  struct Active;
  void loop();
  void admit(std::vector<std::unique_ptr<Active>>& fresh);
  void step(std::vector<std::unique_ptr<Active>>& fresh);
  void finish(Active& a, const std::string& reason, const std::string& code = "", const std::string& msg = "");

  ChatModel& model_;
  SchedulerOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  struct Waiting {
    Request req;
    std::shared_ptr<Ticket> ticket;
    std::chrono::steady_clock::time_point queued_at;
  };
  std::deque<Waiting> queue_;
  std::vector<std::unique_ptr<Active>> active_;   // scheduler thread only
  std::atomic<uint32_t> n_active_{0};
  bool stopping_ = false, draining_ = false;
  std::chrono::steady_clock::time_point drain_deadline_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint32_t>> recent_;   // tokens per step
  uint64_t completed_ = 0, generated_ = 0;
  std::thread thread_;
};

}  // namespace omni::sched
