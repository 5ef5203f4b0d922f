#pragma once
// A part of the server that owns resident models and routes (the LLM, speech, avatar stages).
// ServerApp registers its routes before listening, starts it (model loading may take a while
// and happens off the I/O threads), asks it whether it is ready, and stops it on shutdown.

#include <string>

namespace talkserve::net {
class Router;
}

namespace talkserve::app {

class Service {
 public:
  virtual ~Service() = default;
  virtual std::string name() const = 0;
  // Called once, before the listener starts. Must not block.
  virtual void register_routes(net::Router& router) = 0;
  // Loads models and starts executors. Runs on a start-up thread; throws on failure.
  virtual void start() = 0;
  // True once start() has completed and the service can take work.
  virtual bool ready() const = 0;
  // Stop taking new work; let queued and running work finish.
  virtual void drain() {}
  // Cancel what is left and join threads. Called after the grace period.
  virtual void stop() = 0;
};

}  // namespace talkserve::app
