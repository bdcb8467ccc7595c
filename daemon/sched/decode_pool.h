#pragma once
// A few threads that decode requests' pictures before admission, so a slow picture (a
// large or hostile JPEG) delays only its own request, not the admission of the others.
// Jobs run in the order posted; the destructor runs what is left (the scheduler makes
// those stop at once through their interrupt) and joins.
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace omni::sched {

class DecodePool {
 public:
  explicit DecodePool(int threads);
  ~DecodePool();
  DecodePool(const DecodePool&) = delete;
  DecodePool& operator=(const DecodePool&) = delete;

  void post(std::function<void()> job);
  int threads() const { return int(workers_.size()); }

 private:
  void work();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace omni::sched
