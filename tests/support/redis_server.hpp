#pragma once
// A private redis-server for tests of the Redis clip tier: a free loopback port (found by
// binding port 0), no persistence (--save "" --appendonly no), its files in a temporary
// directory. start() returns once it answers PING; kill() stops it at once (SIGKILL), as a
// crash would; start() again brings it back on the same port, empty. The destructor kills it.
//
// The binary is the redis-server CMake found (TALKSERVE_REDIS_SERVER, a compile definition of
// the test targets that use this file).
//
// Thread-safety: one test thread drives a RedisServer.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "support/temp_dir.hpp"

namespace talkserve::test {

class RedisServer {
 public:
  // Picks the port and starts the server. Throws std::runtime_error (with its log) if it does
  // not answer PING within `timeout`.
  explicit RedisServer(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  void start(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void kill();
  // SIGSTOP / SIGCONT: a Redis that accepts connections but never answers (a stall).
  void pause();
  void resume();
  bool running() const { return pid_ > 0; }

  std::uint16_t port() const { return port_; }
  // "redis://127.0.0.1:<port>/0"
  std::string url() const;
  // One PING on a fresh connection: true on +PONG within `timeout`.
  bool ping(std::chrono::milliseconds timeout = std::chrono::milliseconds(500)) const;
  // Sends one inline command ("DBSIZE", "FLUSHALL") and returns the raw reply line.
  std::string command(const std::string& inline_command) const;
  std::string log() const;

 private:
  TempDir dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace talkserve::test
