#pragma once
// State shared by the listener and its connections (internal to src/net).

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace boost::asio::ssl {
class context;
}

#include "talkserve/net/http_server.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::net {

// A live connection or WebSocket session, as the server sees it during shutdown.
class LiveConnection {
 public:
  virtual ~LiveConnection() = default;
  // Draining started: close if idle between requests; WebSockets are told to wind down.
  virtual void on_drain() = 0;
  // Grace period over: close now (WebSockets with 1001 going away).
  virtual void force_close() = 0;
};

struct ServerState {
  ServerState(HttpConfig c, const Router& r, obs::MetricsRegistry& m, AdmissionHook a)
      : config(std::move(c)), router(r), metrics(m), admission(std::move(a)) {}

  const HttpConfig config;
  // Set when the listener speaks TLS ([http] tls_cert / tls_key); shared by all handshakes.
  // Replaced by reload_tls (SIGHUP): a handshake takes the current one with tls_context().
  // Contexts replaced by a reload are kept (retired_tls) so that no connection's SSL object
  // can outlive the asio context it was made from; a reload is an operator's act, so the list
  // stays a handful of entries.
  bool tls_enabled = false;
  std::shared_ptr<boost::asio::ssl::context> tls_context() const {
    std::lock_guard lock(tls_mutex);
    return tls;
  }
  void set_tls_context(std::shared_ptr<boost::asio::ssl::context> next) {
    std::lock_guard lock(tls_mutex);
    if (tls) retired_tls.push_back(std::move(tls));
    tls = std::move(next);
  }
  const Router& router;
  obs::MetricsRegistry& metrics;
  const AdmissionHook admission;

  std::atomic<bool> draining{false};
  std::atomic<std::size_t> in_flight{0};

  // The series each (route, status) pair records into, looked up in the registry once: the
  // registry call builds label sets and takes its own lock, too slow for every request.
  struct RouteSeries {
    obs::Counter* requests = nullptr;
    obs::Histogram* duration = nullptr;
  };
  std::mutex series_mutex;
  std::unordered_map<std::string, RouteSeries> series;

  mutable std::mutex tls_mutex;
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::vector<std::shared_ptr<boost::asio::ssl::context>> retired_tls;

  std::mutex mutex;
  std::condition_variable idle_cv;
  std::unordered_map<uint64_t, std::weak_ptr<LiveConnection>> live;
  uint64_t next_id = 1;

  uint64_t add(std::weak_ptr<LiveConnection> c) {
    std::lock_guard lock(mutex);
    auto id = next_id++;
    live.emplace(id, std::move(c));
    return id;
  }
  void remove(uint64_t id) {
    std::lock_guard lock(mutex);
    live.erase(id);
    idle_cv.notify_all();
  }
  void request_started() { in_flight.fetch_add(1); }
  void request_finished() {
    if (in_flight.fetch_sub(1) == 1) {
      std::lock_guard lock(mutex);
      idle_cv.notify_all();
    }
  }
  // Records talkserve_http_requests_total and the duration histogram.
  void record(const std::string& route, unsigned code, double seconds);
};

// Runs one accepted TCP connection until it closes.
void start_connection(std::shared_ptr<ServerState> state, boost::asio::ip::tcp::socket socket);

}  // namespace talkserve::net
