#include "server/systemd_notify.h"

#include <chrono>
#include <cstdlib>

#if defined(OMNI_HAVE_SYSTEMD)
#include <systemd/sd-daemon.h>
#endif

namespace omni::server {

void notify_systemd(const std::string& state) {
#if defined(OMNI_HAVE_SYSTEMD)
  sd_notify(0, state.c_str());
#else
  (void)state;
#endif
}

Watchdog::Watchdog() {
#if defined(OMNI_HAVE_SYSTEMD)
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  thread_ = std::thread([this, usec] {
    const auto period = std::chrono::microseconds(usec / 2);
    auto next = std::chrono::steady_clock::now();
    while (!stop_.load()) {
      if (std::chrono::steady_clock::now() >= next) {
        sd_notify(0, "WATCHDOG=1");
        next += period;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
#endif
}

Watchdog::~Watchdog() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

}  // namespace omni::server
