#pragma once
// Wires the modules into a running server: metrics, gateway, router, services, listener,
// I/O threads, signals, systemd notification, and the drain-then-stop shutdown.

#include <memory>

#include "talkserve/app/config.hpp"

namespace talkserve::app {

class ServerApp {
 public:
  explicit ServerApp(AppConfig config);
  ~ServerApp();
  // Runs until SIGTERM/SIGINT; returns the process exit status.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace talkserve::app
