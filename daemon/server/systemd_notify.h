#pragma once
// systemd's readiness protocol (Type=notify): READY=1 once serving, STOPPING=1 when
// draining, WATCHDOG=1 pings at half the unit's WatchdogSec. No-ops outside systemd.
#include <atomic>
#include <string>
#include <thread>

namespace omni::server {

void notify_systemd(const std::string& state);

class Watchdog {
 public:
  Watchdog();    // starts pinging when $WATCHDOG_USEC is set for this process
  ~Watchdog();

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace omni::server
