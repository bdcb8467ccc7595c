// TurnLock: threads sharing a device get it in the order they asked, and a thread that
// lets go and asks again at once (the picture encoder, piece after piece) goes behind
// those already waiting instead of starving them.
#include <catch2/catch.hpp>

#include <mutex>
#include <thread>
#include <vector>

#include "kernels/turn_lock.h"

using omni::kernels::TurnLock;

namespace {
void wait_for_waiters(const TurnLock& t, uint64_t n) {
  while (t.waiting() < n) std::this_thread::yield();
}
}  // namespace

TEST_CASE("turns are given in the order they were asked for", "[kernels][turns]") {
  TurnLock turns;
  std::mutex order_mu;
  std::vector<int> order;
  auto take = [&](int who) {
    std::lock_guard<TurnLock> l(turns);
    std::lock_guard<std::mutex> o(order_mu);
    order.push_back(who);
  };
  turns.lock();
  std::vector<std::thread> ts;
  for (int i = 1; i <= 4; ++i) {
    ts.emplace_back(take, i);
    wait_for_waiters(turns, uint64_t(i));   // thread i is queued before thread i+1 starts
  }
  CHECK(turns.waiting() == 4);
  turns.unlock();
  for (auto& t : ts) t.join();
  CHECK(order == std::vector<int>{1, 2, 3, 4});
  CHECK(turns.waiting() == 0);
}

TEST_CASE("letting go and asking again goes behind the threads already waiting", "[kernels][turns]") {
  TurnLock turns;
  std::mutex order_mu;
  std::vector<int> order;
  auto note = [&](int who) {
    std::lock_guard<std::mutex> o(order_mu);
    order.push_back(who);
  };
  turns.lock();   // piece 1 of a picture
  note(0);
  std::thread step([&] {   // a decode step arrives meanwhile
    std::lock_guard<TurnLock> l(turns);
    note(1);
  });
  wait_for_waiters(turns, 1);
  turns.unlock();
  turns.lock();   // piece 2 at once
  note(0);
  turns.unlock();
  step.join();
  CHECK(order == std::vector<int>{0, 1, 0});
}
