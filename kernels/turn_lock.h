#pragma once
// A first-come, first-served mutex. Threads that share a device take turns on it: the
// scheduler's admission thread encoding a picture piece by piece and the pipeline's
// stage threads. std::mutex makes no promise of order, and a thread that unlocks and
// locks again at once (one piece after another) usually wins, which would starve the
// decode steps for a whole picture. Here every lock() waits behind earlier ones.
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace omni::kernels {

class TurnLock {
 public:
  void lock() {
    std::unique_lock<std::mutex> l(mu_);
    const uint64_t mine = next_++;
    cv_.wait(l, [&] { return serving_ == mine; });
  }
  void unlock() {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++serving_;
    }
    cv_.notify_all();
  }
  // Threads waiting for their turn (not counting the holder); for tests and metrics.
  uint64_t waiting() const {
    std::lock_guard<std::mutex> l(mu_);
    return next_ - serving_ - (next_ > serving_ ? 1 : 0);
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_ = 0;      // the ticket the next lock() draws
  uint64_t serving_ = 0;   // the ticket whose turn it is
};

}  // namespace omni::kernels
