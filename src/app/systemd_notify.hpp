#pragma once
// sd_notify(3) when built with libsystemd; no-ops otherwise (and when not run by systemd).

#include <chrono>
#include <optional>
#include <string>

namespace talkserve::app {

void notify_ready();
void notify_stopping();
void notify_status(const std::string& status);
void notify_watchdog();
// The watchdog ping interval systemd asks for (half of WatchdogSec), if any.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace talkserve::app
