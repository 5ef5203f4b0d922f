#pragma once
// The disconnect storm: many clients start streams, and once each has its first bytes they all
// go away at the same moment, abruptly (SO_LINGER 0 then close: the server sees a TCP RST, not a
// clean shutdown). Half are streamed chat completions, half GET /v1/stream sessions with a
// typed turn running. Then /metrics is polled until every gauge of server_gauges.hpp is back
// at rest; the time from the drop to that moment is the time to idle.
//
// Runs on the calling coroutine's io_context, which must run on one thread.

// clang-format off
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "load_client.hpp"
#include "server_gauges.hpp"

namespace talkserve::load {

struct StormOptions {
  int clients = 200;  // the first half chat streams, the rest live sessions
  std::string model = "stories260K";
  // Long enough that every chat stream is still generating when the drop comes.
  int chat_max_tokens = 400;
  bool live_video = true;
  // How long to wait for every client's first bytes before dropping what is open.
  std::chrono::milliseconds hold_timeout{std::chrono::seconds(60)};
  // How long to wait for the gauges to come back to rest after the drop.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(10)};
};

struct StormReport {
  int chat_clients = 0;
  int live_clients = 0;
  int mid_stream = 0;       // had their first bytes and were still streaming when dropped
  int with_content = 0;     // of those, had already received generated text or media
  int ended_early = 0;      // the stream ended (or failed) before the drop
  std::string first_error;  // of the clients that failed before their first bytes
  double hold_ms = 0;       // first connect -> drop
  Gauges before;            // at rest, before the storm
  Gauges at_drop;
  Gauges after;       // last reading
  bool idle = false;  // the gauges came back to rest within idle_timeout
  double time_to_idle_ms = -1;
  std::string still_busy;  // what was not at rest when idle_timeout passed

  nlohmann::json to_json() const;
};

// Throws std::runtime_error when /metrics cannot be read or the server is not at rest before
// the storm.
boost::asio::awaitable<StormReport> run_storm(const Target& target, const StormOptions& options);

// GET /metrics and parse the gauges. Throws std::runtime_error.
boost::asio::awaitable<Gauges> read_gauges(const Target& target);

}  // namespace talkserve::load
