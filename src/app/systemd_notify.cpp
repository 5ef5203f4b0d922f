#include "systemd_notify.hpp"

#ifdef TALKSERVE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace talkserve::app {

#ifdef TALKSERVE_HAVE_SYSTEMD
void notify_ready() { sd_notify(0, "READY=1\nSTATUS=serving"); }
void notify_stopping() { sd_notify(0, "STOPPING=1\nSTATUS=draining"); }
void notify_status(const std::string& status) { sd_notify(0, ("STATUS=" + status).c_str()); }
void notify_watchdog() { sd_notify(0, "WATCHDOG=1"); }
std::optional<std::chrono::microseconds> watchdog_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) return std::chrono::microseconds(usec / 2);
  return std::nullopt;
}
#else
void notify_ready() {}
void notify_stopping() {}
void notify_status(const std::string&) {}
void notify_watchdog() {}
std::optional<std::chrono::microseconds> watchdog_interval() { return std::nullopt; }
#endif

}  // namespace talkserve::app
