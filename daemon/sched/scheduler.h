#pragma once
// Continuous batching over one ChatModel. Requests wait in a bounded queue ("busy"
// when full, never an unbounded wait); admitted requests join one of the batch groups,
// and each step of a group runs ONE decoder forward for its batch: the new requests'
// prompts (prefill rows) together with one token of every running request. A request
// leaves its group as soon as it finishes, is cancelled or passes its deadline, and
// its KV blocks go back then.
//
// KV memory is one paged pool (model/kv_pool.h): a request takes blocks as it grows,
// nothing is reserved for max_tokens. When the pool runs dry, the most recently admitted
// request that is not in a step in flight is preempted: its blocks go back (the full
// ones stay cached), it returns to the front of the queue, and later it is recomputed
// (prompt plus what it generated, through the prefix cache where the blocks survived)
// and goes on where it stopped; its client sees only a delay. A prompt that can never
// fit in the pool is refused with the numbers.
//
// Prefix reuse: at admission a prompt's full blocks are looked up by their chained
// hashes (model/prefix_hash.h); the longest cached run is taken as the start of its
// sequence, only the rest is prefilled, and a picture whose rows are all in that run
// never reaches the vision tower.
//
// Pictures are decoded and sliced first, on a few decode threads (DecodePool), a few
// requests ahead of admission; a request whose pictures are not ready yet lets the ones
// behind it be admitted first, so a slow picture delays only its own request. Its
// cancel, its deadline and shutdown stop the decode (image::DecodeInterrupt).
// Admission runs on its own thread: the vision tower and the prompt embedding happen
// there, so a large picture does not hold up the decode steps of the requests already
// running (on a shared device they take turns, one picture piece at a time, in arrival
// order).
//
// Chunked prefill: a step carries at most max_batch_tokens rows. Running requests take
// one row each first; prompts fill what is left, oldest first, and a prompt longer than
// that is prefilled over several steps. A long prompt (a picture is hundreds of rows)
// thus delays the running streams by one chunk at a time, not by its whole length.
//
// Groups: one per pipeline stage (one without a pipeline). Their steps go through the
// PipelineRunner independently, so while stage 1 runs group 0's step, stage 0 already
// runs group 1's: with several requests in flight every stage stays busy.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "model/pipeline_runner.h"
#include "sched/decode_pool.h"
#include "sched/request.h"

namespace omni::sched {

struct SchedulerOptions {
  int max_active = 16;     // sequences decoding together
  int max_queue = 64;      // waiting requests before "busy"
  int max_context = 8192;  // prompt + generated tokens per request
  int max_batch_tokens = 512;   // rows per step (prefill chunks + one per running request)
  int64_t kv_blocks = 0;        // KV pool size in blocks; 0: max_active · max_context tokens
  bool prefix_cache = true;     // reuse cached prompt prefixes
  int decode_threads = 2;       // threads decoding pictures ahead of admission
};

struct Stats {
  uint32_t active = 0;
  uint32_t queued = 0;
  double tokens_per_s = 0;      // generated tokens over the last few seconds
  uint64_t completed = 0;
  uint64_t generated_tokens = 0;
  PipelineStats pipeline;       // stage occupancy (one stage without a pipeline)
  KvPoolStats kv;               // blocks and prefix-cache counters
  uint64_t preemptions = 0;
  uint32_t running = 0;         // requests holding KV blocks in a batch group now
  uint32_t max_running = 0;     // the most at once since start
};

class Scheduler {
 public:
  Scheduler(ChatModel& model, SchedulerOptions opt);
  // The pool the scheduler's sequences share (tests look at its blocks).
  const KvPool& kv_pool() const { return *pool_; }
  ~Scheduler();   // stops: remaining requests finish as "cancelled"

  // Queues a request; nullptr when the queue is full (the caller answers "busy").
  std::shared_ptr<Ticket> submit(Request r);
  Stats stats() const;
  // Stops admitting, lets running requests finish until `deadline`, cancels the rest.
  void drain(std::chrono::steady_clock::time_point deadline);

 private:
  struct Active;
  // A waiting request's pictures, decoded on the pool (fields under mu_).
  struct Decoding {
    bool started = false, done = false;
    std::vector<PreparedMedia> images;
    std::exception_ptr error;        // image::DecodeError, image::DecodeInterrupted, ...
  };
  struct Waiting {
    Request req;
    std::shared_ptr<Ticket> ticket;
    std::chrono::steady_clock::time_point queued_at;
    std::unique_ptr<Active> resume;   // a preempted request to recompute (req and ticket are in it)
    std::shared_ptr<Decoding> decoding;   // set when it has pictures
    // Admission may take it: its pictures are decoded (or it has none), and there is a slot.
    bool admissible(int n_active, int max_active) const {
      return (resume || n_active < max_active) && (!decoding || decoding->done);
    }
  };
  struct Group {
    std::vector<Active*> in_job;                 // members whose step is in flight
    std::shared_ptr<PipelineJob> finished;       // set by the runner (under mu_)
    bool in_flight = false;
  };
  void loop();
  void admit_loop();                             // the admission thread
  // Starts decoding the pictures of the first waiting requests, a few ahead of
  // admission (bounded: decoded pictures wait in memory). Under mu_.
  void start_decodes_locked();
  // True once the request is cancelled or past its deadline, or the scheduler stops.
  image::DecodeInterrupt decode_interrupt(std::shared_ptr<Ticket> ticket,
                                          std::optional<std::chrono::steady_clock::time_point> deadline);
  std::unique_ptr<Active> prepare(Waiting w);    // null when it failed (already answered)
  // Embeds a returning request's prompt again when the picture rows it skipped are gone.
  void resume(Active& a);
  std::vector<Sha256> prefix_hashes(Active& a);   // its full blocks but the last row's
  int64_t cached_rows(Active& a);                 // rows of its start now cached (nothing taken)
  int64_t reuse_prefix(Active& a);                // takes them into a.seq; returns its length
  // The rows to prefill from `start`: the prompt's rest, and after preemption the tokens
  // generated so far.
  void set_pending(Active& a, int64_t start);
  void send_back(std::unique_ptr<Active> a);      // to the front of the queue (admission)
  void take_ready();
  void finish_abandoned_ready();                  // cancelled or expired requests in ready_ end
  void launch(int group);                        // one step of the group's idle members
  // Blocks for every member's rows this step, preempting when the pool is dry; members
  // that cannot get theirs this step are left out.
  void reserve_blocks(std::vector<Active*>& members);
  void preempt(Active& a);
  void publish_blocks(Active& a);
  void collect(int group, const PipelineJob& job);
  void finish(Active& a, FinishReason reason, ipc::ErrorCode code = ipc::ErrorCode::ok, const std::string& msg = "");
  void prune();
  // Whether its current step ends with a token to sample (not a partial prompt chunk).
  static bool samples(const Active& a);

  ChatModel& model_;
  SchedulerOptions opt_;
  std::shared_ptr<KvPool> pool_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Waiting> queue_;
  std::deque<std::unique_ptr<Active>> ready_;     // prepared, waiting to join a group (under mu_)
  std::vector<std::unique_ptr<Active>> active_;   // scheduler thread only
  std::unique_ptr<PipelineRunner> runner_;
  std::vector<Group> groups_;                     // in_job/in_flight: scheduler thread only
  int n_finished_ = 0;                            // groups with a finished job (under mu_)
  uint64_t ready_pushes_ = 0, ready_seen_ = 0;    // requests put in ready_ (under mu_)
  bool blocks_short_ = false;                     // a member waits for blocks held in flight (scheduler thread)
  std::atomic<uint32_t> n_active_{0};              // admitted (preparing, ready or active), not finished
  bool stopping_ = false, draining_ = false;
  std::chrono::steady_clock::time_point drain_deadline_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint32_t>> recent_;   // tokens per step
  uint64_t completed_ = 0, generated_ = 0;
  uint64_t admitted_ = 0;                          // admission order (preemption picks the newest)
  std::atomic<uint64_t> preemptions_{0};
  std::atomic<bool> stop_decoding_{false};          // shutdown, or the drain's deadline passed
  std::unique_ptr<DecodePool> decoders_;
  std::atomic<uint32_t> running_{0}, max_running_{0};
  std::thread thread_;
};

}  // namespace omni::sched
