#pragma once
// Starting the real talkserve binary for a test: where things are, the arguments every test
// server gets (loopback, ephemeral port, the fetched models), and small polling helpers.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

#include "support/http_client.hpp"
#include "support/prometheus.hpp"
#include "support/server_process.hpp"

namespace talkserve::itest {

// $TALKSERVE_BINARY_DIR/bin/talkserve (else the build tree this test was configured in).
std::string talkserve_binary();
// $TALKSERVE_MODELS_DIR, else <source>/models.
std::string models_dir();
// $TALKSERVE_SHARED_DIR, else $TALKSERVE_SOURCE_DIR/../shared.
std::string shared_dir();
std::string read_file(const std::filesystem::path& path);

using TempDir = talkserve::test::TempDir;

// --set http.host=127.0.0.1 --set http.port=0 --set server.models_dir=<models_dir()>
// --set http.static_dir="" (so unknown paths are 404, not files) --set llm.threads=1.
std::vector<std::string> base_args();

// Polls `done` every `interval` until it is true or `timeout` passes; returns its last value.
bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(10));

// A talkserve process listening on a loopback port, killed (if still running) on destruction.
class Talkserve {
 public:
  struct Options {
    std::vector<std::string> args;  // added after base_args()
    EnvVars env;
    bool wait_ready = true;  // wait for GET /readyz == 200 (models loaded)
    std::chrono::milliseconds startup_timeout{30'000};
  };
  Talkserve();
  explicit Talkserve(Options options);
  // Options that only start the process and wait for its listening line, not for /readyz.
  static Options not_waiting_for_ready() {
    Options o;
    o.wait_ready = false;
    return o;
  }
  explicit Talkserve(std::vector<std::string> args);

  ServerProcess& process() { return *process_; }
  const std::filesystem::path& cache_dir() const { return cache_dir_.path(); }
  const std::string& host() const { return process_->host(); }
  std::uint16_t port() const { return process_->port(); }
  // A client with the given per-operation timeout.
  HttpClient client(std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  // GET /metrics, parsed.
  MetricsText metrics() const;
  std::string diagnostics() const { return process_->diagnostics(); }

 private:
  // Each server gets its own clip cache (the cache locks its directory).
  TempDir cache_dir_;
  std::unique_ptr<ServerProcess> process_;
};

// Sends `raw_request` (a whole HTTP/1.1 request) on `clients` connections, waits until the
// server counts them all in flight, then closes every connection before any answer: clients
// that hang up on requests the server is still working on. Returns once they are closed.
void abandon_requests(const Talkserve& server, const std::string& raw_request, int clients);

// Polls GET /readyz until it answers 200. Throws std::runtime_error (with the server's stderr)
// when the process exits or `timeout` passes first.
void wait_ready(ServerProcess& server, std::chrono::milliseconds timeout);

}  // namespace talkserve::itest
