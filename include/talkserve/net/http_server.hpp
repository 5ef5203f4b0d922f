#pragma once
// The HTTP/1.1 + WebSocket listener on Boost.Beast. One coroutine per connection; a small
// pool of I/O threads runs them. Heavy work never runs here.
//
// Two ways to run it. Given only `ioc` (run by any number of threads), each connection gets
// its own strand on it. Given `connection_contexts` as well (each run by exactly one thread),
// accepted connections are dealt to them in turn and live there for good: one thread per
// connection without a strand, so a request's handlers never hop threads and a thread never
// wakes another to run them (on a loaded 2-core box those wake-ups cost more than the
// request itself).
//
// Lifecycle: start() binds and begins accepting; begin_drain() stops accepting, closes idle
// keep-alive connections and asks WebSocket handlers to finish (close code 1001 once the
// grace period ends); wait_idle() waits for in-flight requests; stop() closes everything.
//
// Thread-safety: start/begin_drain/wait_idle/stop from one control thread; stats from any.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "talkserve/net/http_config.hpp"
#include "talkserve/net/router.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}

namespace talkserve::net {

// The gateway's verdict on a request, produced by the AdmissionHook before the handler runs.
struct AdmissionDecision {
  int status = 200;  // 200 = admitted; else 401, 429, 503 ...
  std::string message;
  std::string code;        // OpenAI error code string, e.g. "invalid_api_key"
  int retry_after_s = 0;   // > 0 adds Retry-After
  int priority = 1;
  std::string principal;
  std::shared_ptr<void> permit;  // released when the request ends
};

using AdmissionHook = std::function<AdmissionDecision(const Request&, const Route&)>;

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& ioc, HttpConfig config, const Router& router,
             obs::MetricsRegistry& metrics, AdmissionHook admission = {},
             std::vector<boost::asio::io_context*> connection_contexts = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Returns the bound port. Throws std::runtime_error on failure.
  uint16_t start();
  void begin_drain();
  // Loads [http] tls_cert / tls_key again from the same paths (certificate rotation, on
  // SIGHUP): handshakes from now on use the new pair, established connections keep theirs.
  // False when the listener does not speak TLS. Throws std::invalid_argument (as at start-up)
  // when the files do not load or do not match; the pair in use then stays.
  bool reload_tls();
  // Waits until no request is in flight or `grace` has passed. True when idle.
  bool wait_idle(std::chrono::milliseconds grace);
  // Closes every connection (WebSockets with 1001 going away).
  void stop();
  // Waits until every connection has closed or `timeout` has passed. True when none is left.
  bool wait_closed(std::chrono::milliseconds timeout);

  std::size_t in_flight() const;
  std::size_t connections() const;
  bool draining() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace talkserve::net
