// bench_load: mixed traffic against a running talkserve on loopback (streamed chat completions,
// transcriptions, POST /v1/talk turns and GET /v1/stream live turns), bounded in time and in
// request count. Prints a table on stderr and one JSON object on stdout. docs/load.md explains
// the modes, the figures and the verdicts.
//
//   bench_load [--url HOST:PORT [--server-pid PID] | --binary PATH [--server-set KEY=VALUE]...] [--mix
//   chat=6,transcription=2,talk=1,live=1]
//              [--wav FILE] [--max-tokens 64] [--live-video false] [--timeout 120] [--seed 1]
//     --find-capacity      closed loop at rising concurrency (--levels 1,2,4,8,16,32,
//     --level-seconds 15)
//                          until p99 or the error rate degrades; the capacity in requests/s of the
//                          mix
//     --rate-multiplier 1,2,4   open-loop Poisson arrivals at those multiples of the capacity
//                          (--capacity R, else measured first), --duration seconds each
//     --soak --duration 600 --multiplier 2   a verdict: no crash, no 5xx but 503, RSS growth under
//                          --max-rss-growth after --warmup-seconds, every gauge back at rest
//     --storm 200          200 clients dropped mid-stream at once; the time until the gauges rest
//
// Without --url it starts the talkserve binary of this build on a free loopback port with the
// models of this checkout, and samples its RSS from /proc/<pid>/status. --server-set passes a
// `--set KEY=VALUE` on to that server (e.g. asr.max_queue_delay_ms=0 to compare without load
// shedding).

#include <unistd.h>

// clang-format off
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
// clang-format on

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "disconnect_storm.hpp"
#include "load_client.hpp"
#include "server_gauges.hpp"
#include "support/server_process.hpp"

using namespace talkserve::load;
namespace asio = boost::asio;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using asio::awaitable;

namespace {

struct Options {
  std::string url, binary = TALKSERVE_BENCH_BINARY, api_key;
  std::vector<std::string> server_sets;  // --server-set KEY=VALUE, for the started binary
  std::string wav =
      std::string(TALKSERVE_BENCH_SHARED_DIR) + "/testdata/speech/pocketsphinx_goforward.wav";
  std::vector<std::pair<RequestClass, double>> mix{{RequestClass::chat, 6},
                                                   {RequestClass::transcription, 2},
                                                   {RequestClass::talk, 1},
                                                   {RequestClass::live, 1}};
  TrafficOptions traffic;
  std::uint64_t seed = 1;
  pid_t server_pid = 0;
  enum class Mode { capacity, rates, soak, storm } mode = Mode::capacity;
  std::vector<int> levels{1, 2, 4, 8, 16, 32};
  double level_seconds = 15;
  double p99_factor = 4;  // a level degrades when a class's p99 exceeds this x its p99 at 1
  double max_error_rate = 0.01;
  std::vector<double> multipliers{1, 2, 4};
  double capacity = 0;  // requests/s; 0 = measure
  double duration = 30;
  bool duration_set = false;
  long max_requests = 100000;
  double multiplier = 2;
  double warmup_seconds = -1;  // -1 = 20% of the duration
  double max_rss_growth = 0.05;
  double idle_timeout = 10;
  StormOptions storm;
};

// ---------------------------------------------------------------------------------------------
// Statistics

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())) - 1);
  return v[std::min(i, v.size() - 1)];
}

json number(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

struct ClassStats {
  long sent = 0;
  long status[kStatusCount] = {};
  std::vector<double> latency, ttfb;  // of successful requests
  std::string first_error;

  void add(const Outcome& o) {
    ++sent;
    ++status[static_cast<int>(o.status)];
    if (o.status == Status::ok) {
      latency.push_back(o.latency_ms);
      if (o.ttfb_ms >= 0) ttfb.push_back(o.ttfb_ms);
    } else if (first_error.empty()) {
      first_error = o.error;
    }
  }
  long ok() const { return status[static_cast<int>(Status::ok)]; }
  long errors() const { return sent - ok(); }
  // Refusals the client is told to retry (429, 503) are not failures of the server.
  long failures() const {
    return sent - ok() - status[static_cast<int>(Status::rate_limited)] -
           status[static_cast<int>(Status::overloaded)];
  }
};

struct PhaseStats {
  std::string name;
  double elapsed_s = 0;
  double offered_rps = 0;  // open loop only
  ClassStats overall;
  std::map<RequestClass, ClassStats> per_class;

  void add(const Outcome& o) {
    overall.add(o);
    per_class[o.cls].add(o);
  }
  double goodput(const ClassStats& c) const {
    return elapsed_s > 0 ? static_cast<double>(c.ok()) / elapsed_s : 0;
  }
};

json class_json(const PhaseStats& p, const ClassStats& c) {
  json status;
  for (int s = 0; s < kStatusCount; ++s)
    status[std::string(to_string(static_cast<Status>(s)))] = c.status[s];
  json j{{"sent", c.sent},
         {"throughput_rps", p.goodput(c)},
         {"latency_ms_p50", number(percentile(c.latency, 0.5))},
         {"latency_ms_p99", number(percentile(c.latency, 0.99))},
         {"ttfb_ms_p50", number(percentile(c.ttfb, 0.5))},
         {"ttfb_ms_p99", number(percentile(c.ttfb, 0.99))},
         {"status", status}};
  if (!c.first_error.empty()) j["first_error"] = c.first_error.substr(0, 300);
  return j;
}

json phase_json(const PhaseStats& p) {
  json classes;
  for (const auto& [cls, c] : p.per_class) classes[std::string(to_string(cls))] = class_json(p, c);
  json j{{"name", p.name},
         {"elapsed_s", p.elapsed_s},
         {"overall", class_json(p, p.overall)},
         {"classes", classes}};
  if (p.offered_rps > 0) j["offered_rps"] = p.offered_rps;
  return j;
}

void print_header() {
  std::fprintf(stderr, "%-22s %-13s %6s %7s %9s %9s %9s %9s | %5s %4s %4s %4s %4s %4s %4s\n",
               "phase", "class", "sent", "ok/s", "p50 ms", "p99 ms", "ttfb p50", "ttfb p99", "200",
               "429", "503", "4xx", "5xx", "conn", "tmo");
}

void print_phase(const PhaseStats& p) {
  auto row = [&p](const std::string& cls, const ClassStats& c) {
    std::fprintf(
        stderr,
        "%-22s %-13s %6ld %7.2f %9.0f %9.0f %9.0f %9.0f | %5ld %4ld %4ld %4ld %4ld %4ld %4ld\n",
        p.name.c_str(), cls.c_str(), c.sent, p.goodput(c), percentile(c.latency, 0.5),
        percentile(c.latency, 0.99), percentile(c.ttfb, 0.5), percentile(c.ttfb, 0.99), c.status[0],
        c.status[1], c.status[2], c.status[3], c.status[4], c.status[5], c.status[6]);
  };
  for (const auto& [cls, c] : p.per_class) row(std::string(to_string(cls)), c);
  row("all", p.overall);
  for (const auto& [cls, c] : p.per_class)
    if (!c.first_error.empty())
      std::fprintf(stderr, "    %s first error: %s\n", std::string(to_string(cls)).c_str(),
                   c.first_error.substr(0, 200).c_str());
}

// ---------------------------------------------------------------------------------------------
// Driving traffic

// Waits for a number of detached coroutines, all on this thread.
struct Join {
  explicit Join(asio::any_io_executor ex) : timer(std::move(ex)) {
    timer.expires_at(Clock::time_point::max());
  }
  long pending = 0;
  asio::steady_timer timer;
  void done() {
    if (--pending == 0) timer.cancel();
  }
  awaitable<void> wait() {
    if (pending == 0) co_return;
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
};

class Mix {
 public:
  Mix(const std::vector<std::pair<RequestClass, double>>& mix, std::uint64_t seed) : rng_(seed) {
    std::vector<double> weights;
    for (const auto& [cls, w] : mix) {
      classes_.push_back(cls);
      weights.push_back(w);
    }
    pick_ = std::discrete_distribution<std::size_t>(weights.begin(), weights.end());
  }
  RequestClass next() { return classes_[pick_(rng_)]; }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
  std::vector<RequestClass> classes_;
  std::discrete_distribution<std::size_t> pick_;
};

struct Context {
  Target target;
  const Options& options;
  std::uint64_t counter = 0;  // request number, for distinct questions
};

awaitable<void> closed_worker(Context& ctx, Mix& mix, PhaseStats& stats, Clock::time_point end,
                              long& budget, Join& join) {
  while (Clock::now() < end && budget > 0) {
    --budget;
    const RequestClass cls = mix.next();
    const std::uint64_t k = ctx.counter++;
    const Outcome o = co_await run_request(ctx.target, ctx.options.traffic, cls, k);
    stats.add(o);
  }
  join.done();
}

// `concurrency` clients, each sending its next request when the last one is answered.
awaitable<PhaseStats> closed_loop(Context& ctx, int concurrency, double seconds,
                                  long max_requests) {
  PhaseStats stats;
  stats.name = "closed c=" + std::to_string(concurrency);
  Mix mix(ctx.options.mix, ctx.options.seed + static_cast<std::uint64_t>(concurrency));
  auto ex = co_await asio::this_coro::executor;
  Join join(ex);
  join.pending = concurrency;
  long budget = max_requests;
  const auto t0 = Clock::now();
  const auto end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (int i = 0; i < concurrency; ++i)
    asio::co_spawn(ex, closed_worker(ctx, mix, stats, end, budget, join), asio::detached);
  co_await join.wait();
  stats.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  co_return stats;
}

awaitable<void> one_request(Context& ctx, RequestClass cls, std::uint64_t k, PhaseStats& stats,
                            Join& join) {
  const Outcome o = co_await run_request(ctx.target, ctx.options.traffic, cls, k);
  stats.add(o);
  join.done();
}

// Poisson arrivals at `rate` per second for `seconds` (or `max_requests`), whatever the answers
// take; `during` runs alongside (the soak's RSS sampler). Returns once every request answered.
awaitable<PhaseStats> open_loop(Context& ctx, const std::string& name, double rate, double seconds,
                                long max_requests, const std::function<void()>* each_second) {
  PhaseStats stats;
  stats.name = name;
  stats.offered_rps = rate;
  Mix mix(ctx.options.mix, ctx.options.seed * 7919 + static_cast<std::uint64_t>(rate * 1000));
  std::exponential_distribution<double> gap(rate);
  auto ex = co_await asio::this_coro::executor;
  Join join(ex);
  asio::steady_timer timer(ex);
  const auto t0 = Clock::now();
  const auto end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  auto next = t0;
  auto next_tick = t0;
  boost::system::error_code ec;
  for (long sent = 0; sent < max_requests;) {
    next +=
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(mix.rng())));
    if (next >= end) break;
    while (each_second && next_tick <= next) {
      timer.expires_at(next_tick);
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      (*each_second)();
      next_tick += std::chrono::seconds(1);
    }
    timer.expires_at(next);
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    ++join.pending;
    ++sent;
    asio::co_spawn(ex, one_request(ctx, mix.next(), ctx.counter++, stats, join), asio::detached);
  }
  if (each_second) {  // the sampler goes on until the last arrival time
    for (; next_tick <= end; next_tick += std::chrono::seconds(1)) {
      timer.expires_at(next_tick);
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      (*each_second)();
    }
  }
  co_await join.wait();
  stats.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  co_return stats;
}

// ---------------------------------------------------------------------------------------------
// Modes

// Closed loop at each level; a level is good while its error rate stays under max_error_rate
// and every class's p99 under p99_factor times the class's p99 at the first level. The
// capacity is the goodput of the best good level; the climb stops at the first bad level or
// when a level adds under 5% goodput (saturated: more clients only queue).
awaitable<double> find_capacity(Context& ctx, json& out) {
  const Options& o = ctx.options;
  json levels = json::array();
  std::map<RequestClass, double> base_p99;
  double capacity = 0, last = 0;
  int capacity_level = 0;
  for (int c : o.levels) {
    const PhaseStats p = co_await closed_loop(ctx, c, o.level_seconds, o.max_requests);
    print_phase(p);
    std::string verdict = "ok";
    const double error_rate = p.overall.sent ? static_cast<double>(p.overall.errors()) /
                                                   static_cast<double>(p.overall.sent)
                                             : 1.0;
    if (error_rate > o.max_error_rate) verdict = "error rate " + std::to_string(error_rate);
    for (const auto& [cls, s] : p.per_class) {
      const double p99 = percentile(s.latency, 0.99);
      if (!std::isfinite(p99)) continue;
      if (!base_p99.count(cls))
        base_p99[cls] = p99;
      else if (p99 > o.p99_factor * base_p99[cls] && verdict == "ok")
        verdict = std::string(to_string(cls)) + " p99 " + std::to_string(p99 / base_p99[cls]) + "x";
    }
    const double goodput = p.goodput(p.overall);
    json lj = phase_json(p);
    lj["concurrency"] = c;
    lj["verdict"] = verdict;
    levels.push_back(lj);
    if (verdict != "ok") {
      std::fprintf(stderr, "    c=%d degraded: %s\n", c, verdict.c_str());
      break;
    }
    if (goodput > capacity) {
      capacity = goodput;
      capacity_level = c;
    }
    if (last > 0 && goodput < last * 1.05) {
      std::fprintf(stderr, "    c=%d saturated: %.2f req/s after %.2f\n", c, goodput, last);
      break;
    }
    last = goodput;
  }
  out["capacity"] = {
      {"levels", levels}, {"capacity_rps", capacity}, {"at_concurrency", capacity_level}};
  std::fprintf(stderr, "capacity of the mix: %.2f requests/s (at concurrency %d)\n", capacity,
               capacity_level);
  co_return capacity;
}

awaitable<double> capacity_of(Context& ctx, json& out) {
  if (ctx.options.capacity > 0) co_return ctx.options.capacity;
  co_return co_await find_capacity(ctx, out);
}

awaitable<void> rates(Context& ctx, json& out) {
  const double capacity = co_await capacity_of(ctx, out);
  if (capacity <= 0) throw std::runtime_error("no capacity measured: every level failed");
  json phases = json::array();
  for (double m : ctx.options.multipliers) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "open %gx (%.2f/s)", m, m * capacity);
    const std::string name = buf;
    const std::function<void()>* no_sampler = nullptr;
    const PhaseStats p = co_await open_loop(ctx, name, m * capacity, ctx.options.duration,
                                            ctx.options.max_requests, no_sampler);
    print_phase(p);
    json pj = phase_json(p);
    pj["multiplier"] = m;
    phases.push_back(pj);
  }
  out["capacity_rps"] = capacity;
  out["rates"] = phases;
}

double median(std::vector<double> v) {
  return percentile(std::move(v), 0.5);
}

struct Sample {
  double t_s;
  double rss;
};

// Polls the gauges until they rest (or `timeout` passes); the time it took, or nullopt.
awaitable<std::optional<double>> wait_idle(const Target& target, const Gauges& idle,
                                           std::chrono::milliseconds timeout,
                                           std::string& still_busy) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer tick(ex);
  boost::system::error_code ec;
  const auto t0 = Clock::now();
  for (;;) {
    const Gauges g = co_await read_gauges(target);
    still_busy = busy(g, idle);
    const auto since = Clock::now() - t0;
    if (still_busy.empty()) co_return std::chrono::duration<double, std::milli>(since).count();
    if (since > timeout) co_return std::nullopt;
    tick.expires_after(std::chrono::milliseconds(20));
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

awaitable<bool> soak(Context& ctx, json& out, talkserve::itest::ServerProcess* server) {
  const Options& o = ctx.options;
  if (o.server_pid <= 0)
    throw std::runtime_error("--soak with --url needs --server-pid PID (for its RSS)");
  const double capacity = co_await capacity_of(ctx, out);
  if (capacity <= 0) throw std::runtime_error("no capacity measured: every level failed");
  const Gauges idle = co_await read_gauges(ctx.target);
  const double warmup = o.warmup_seconds >= 0 ? o.warmup_seconds : 0.2 * o.duration;

  std::vector<Sample> samples;
  const auto t0 = Clock::now();
  bool process_gone = false;
  const std::function<void()> sample = [&] {
    const auto rss = resident_bytes(o.server_pid);
    if (!rss) {
      process_gone = true;
      return;
    }
    samples.push_back({std::chrono::duration<double>(Clock::now() - t0).count(), *rss});
  };
  char buf[64];
  std::snprintf(buf, sizeof buf, "soak %gx (%.2f/s)", o.multiplier, o.multiplier * capacity);
  const std::string name = buf;
  const std::function<void()>* sampler = &sample;
  const PhaseStats p =
      co_await open_loop(ctx, name, o.multiplier * capacity, o.duration, o.max_requests, sampler);
  print_phase(p);

  // The verdict.
  std::vector<std::string> failures;
  if (process_gone || (server && server->exited()))
    failures.push_back("the server process is gone");
  const std::string healthz = "/healthz";
  const GetResult health = co_await http_get(ctx.target, healthz, std::chrono::seconds(10));
  if (health.status != 200)
    failures.push_back("GET /healthz answered " + std::to_string(health.status));
  const long server_errors = p.overall.status[static_cast<int>(Status::server_error)];
  const long conn_errors = p.overall.status[static_cast<int>(Status::connection)];
  if (server_errors > 0)
    failures.push_back(std::to_string(server_errors) + " server errors other than 503 (" +
                       p.overall.first_error + ")");
  if (conn_errors > 0) failures.push_back(std::to_string(conn_errors) + " broken connections");
  for (const auto& [cls, w] : o.mix) {
    auto it = p.per_class.find(cls);
    if (w > 0 && (it == p.per_class.end() || it->second.ok() == 0))
      failures.push_back("no " + std::string(to_string(cls)) + " request succeeded");
  }

  // RSS growth after the warm-up: the least-squares line through the maxima of successive
  // 5 s windows after it, its rise over that period relative to its start. RSS swings by up
  // to a third from one second to the next: large buffers (uploads, frames) are mmap'd and go
  // back to the kernel when freed (server.malloc_mmap_threshold_kb). A leak lifts every
  // window's maximum; the dips between bursts, which a line through every sample (still
  // reported, "trend_all") follows as much as the level, do not. The medians of two short
  // windows at the ends are reported too.
  std::vector<double> early, late;
  const double window = std::max(3.0, 0.1 * o.duration);
  constexpr double kEnvelopeSeconds = 5.0;
  std::map<long, double> envelope;  // window index -> max RSS
  for (const auto& s : samples) {
    if (s.t_s >= warmup && s.t_s < warmup + window) early.push_back(s.rss);
    if (s.t_s >= o.duration - window) late.push_back(s.rss);
    if (s.t_s >= warmup) {
      const long k = static_cast<long>((s.t_s - warmup) / kEnvelopeSeconds);
      if (warmup + (k + 1) * kEnvelopeSeconds <= o.duration + 0.5)  // whole windows only
        envelope[k] = std::max(envelope[k], s.rss);
    }
  }
  // The rise of the least-squares line through (t, v) over [warmup, duration], relative to
  // its value at warmup.
  const auto rise = [&](const std::vector<std::pair<double, double>>& pts) {
    double mt = 0, mv = 0;
    for (const auto& [t, v] : pts) mt += t, mv += v;
    mt /= static_cast<double>(pts.size());
    mv /= static_cast<double>(pts.size());
    double cov = 0, var = 0;
    for (const auto& [t, v] : pts) cov += (t - mt) * (v - mv), var += (t - mt) * (t - mt);
    const double slope = var > 0 ? cov / var : 0.0;
    return slope * (o.duration - warmup) / (mv + slope * (warmup - mt));
  };
  std::vector<std::pair<double, double>> maxima, all;
  for (const auto& [k, v] : envelope) maxima.emplace_back(warmup + (k + 0.5) * kEnvelopeSeconds, v);
  for (const auto& s : samples)
    if (s.t_s >= warmup) all.emplace_back(s.t_s, s.rss);
  double growth = std::numeric_limits<double>::quiet_NaN();
  double growth_all = std::numeric_limits<double>::quiet_NaN();
  double peak = 0;
  for (const auto& s : samples) peak = std::max(peak, s.rss);
  if (early.empty() || late.empty() || maxima.size() < 3) {
    failures.push_back("too few RSS samples");
  } else {
    growth = rise(maxima);
    growth_all = rise(all);
    if (growth >= o.max_rss_growth) {
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    "RSS grew %.1f%% after the warm-up (trend of 5 s maxima; limit %.1f%%)",
                    growth * 100, o.max_rss_growth * 100);
      failures.push_back(buf);
    }
  }

  std::string still_busy;
  const auto idle_ms = co_await wait_idle(
      ctx.target, idle, std::chrono::milliseconds(static_cast<long>(o.idle_timeout * 1000)),
      still_busy);
  if (!idle_ms)
    failures.push_back("not at rest " + std::to_string(o.idle_timeout) +
                       " s after the last answer: " + still_busy);

  json rss = json::array();
  for (const auto& s : samples) rss.push_back({s.t_s, s.rss});
  const bool pass = failures.empty();
  out["soak"] = {{"duration_s", o.duration},
                 {"multiplier", o.multiplier},
                 {"capacity_rps", capacity},
                 {"warmup_s", warmup},
                 {"phase", phase_json(p)},
                 {"rss_early_bytes", number(early.empty() ? NAN : median(early))},
                 {"rss_late_bytes", number(late.empty() ? NAN : median(late))},
                 {"rss_peak_bytes", peak},
                 {"rss_growth", number(growth)},
                 {"rss_trend_all", number(growth_all)},
                 {"rss_samples", rss},
                 {"idle_after_ms", idle_ms ? json(*idle_ms) : json(nullptr)},
                 {"failures", failures},
                 {"verdict", pass ? "pass" : "fail"}};
  std::fprintf(stderr,
               "soak %.0f s at %gx capacity (%.2f req/s): RSS %.1f MiB -> %.1f MiB (trend of 5 s maxima "
               "%+.2f%%, of all samples %+.2f%%, peak %.1f MiB), "
               "at rest %s after the last answer\n",
               o.duration, o.multiplier, o.multiplier * capacity,
               early.empty() ? 0 : median(early) / 1048576.0,
               late.empty() ? 0 : median(late) / 1048576.0, growth * 100, growth_all * 100,
               peak / 1048576.0,
               idle_ms ? (std::to_string(static_cast<int>(*idle_ms)) + " ms").c_str() : "never");
  std::fprintf(stderr, "verdict: %s\n", pass ? "PASS" : "FAIL");
  for (const auto& f : failures) std::fprintf(stderr, "  - %s\n", f.c_str());
  co_return pass;
}

awaitable<bool> storm(Context& ctx, json& out) {
  const StormReport r = co_await run_storm(ctx.target, ctx.options.storm);
  out["storm"] = r.to_json();
  std::fprintf(stderr,
               "storm: %d chat streams + %d live sessions; %d dropped mid-stream (%d with "
               "content), %d ended before "
               "the drop; held %.0f ms\n",
               r.chat_clients, r.live_clients, r.mid_stream, r.with_content, r.ended_early,
               r.hold_ms);
  std::fprintf(stderr, "at the drop: in_flight=%g llm_running=%g llm_waiting=%g kv_usage=%g\n",
               r.at_drop.in_flight, r.at_drop.llm_running, r.at_drop.llm_waiting,
               r.at_drop.kv_usage);
  if (!r.first_error.empty())
    std::fprintf(stderr, "first client error: %s\n", r.first_error.c_str());
  if (r.idle)
    std::fprintf(stderr, "time to idle: %.0f ms\n", r.time_to_idle_ms);
  else
    std::fprintf(stderr, "NOT at rest %.0f s after the drop: %s\n",
                 ctx.options.storm.idle_timeout.count() / 1000.0, r.still_busy.c_str());
  co_return r.idle&& r.mid_stream > 0;
}

// ---------------------------------------------------------------------------------------------
// Command line

template <typename T, typename F>
std::vector<T> parse_list(const std::string& list, F convert) {
  std::vector<T> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) out.push_back(convert(item));
  if (out.empty()) throw std::invalid_argument("empty list '" + list + "'");
  return out;
}

bool parse_bool(const std::string& v) {
  if (v == "true" || v == "1" || v == "on") return true;
  if (v == "false" || v == "0" || v == "off") return false;
  throw std::invalid_argument("expected true or false, got '" + v + "'");
}

double positive(const std::string& flag, double v) {
  if (!(v > 0)) throw std::invalid_argument(flag + " must be > 0");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return std::string(argv[++i]);
    };
    if (a == "--url")
      o.url = next();
    else if (a == "--binary")
      o.binary = next();
    else if (a == "--server-set")
      o.server_sets.push_back(next());
    else if (a == "--server-pid")
      o.server_pid = static_cast<pid_t>(std::stol(next()));
    else if (a == "--api-key")
      o.api_key = next();
    else if (a == "--wav")
      o.wav = next();
    else if (a == "--max-tokens")
      o.traffic.chat_max_tokens = static_cast<int>(positive(a, std::stoi(next())));
    else if (a == "--live-video")
      o.traffic.live_video = parse_bool(next());
    else if (a == "--timeout")
      o.traffic.timeout =
          std::chrono::milliseconds(static_cast<long>(positive(a, std::stod(next())) * 1000));
    else if (a == "--seed")
      o.seed = std::stoull(next());
    else if (a == "--mix") {
      o.mix = parse_list<std::pair<RequestClass, double>>(next(), [](const std::string& item) {
        const auto eq = item.find('=');
        if (eq == std::string::npos)
          throw std::invalid_argument("--mix entries are CLASS=WEIGHT, got '" + item + "'");
        const double w = std::stod(item.substr(eq + 1));
        if (w < 0) throw std::invalid_argument("--mix weights must be >= 0");
        return std::make_pair(class_from_string(item.substr(0, eq)), w);
      });
    } else if (a == "--find-capacity")
      o.mode = Options::Mode::capacity;
    else if (a == "--levels")
      o.levels = parse_list<int>(next(), [&](const std::string& s) {
        return static_cast<int>(positive(a, std::stoi(s)));
      });
    else if (a == "--level-seconds")
      o.level_seconds = positive(a, std::stod(next()));
    else if (a == "--p99-factor")
      o.p99_factor = positive(a, std::stod(next()));
    else if (a == "--max-error-rate")
      o.max_error_rate = std::stod(next());
    else if (a == "--rate-multiplier") {
      o.mode = Options::Mode::rates;
      o.multipliers = parse_list<double>(
          next(), [&](const std::string& s) { return positive(a, std::stod(s)); });
    } else if (a == "--capacity")
      o.capacity = positive(a, std::stod(next()));
    else if (a == "--duration") {
      o.duration = positive(a, std::stod(next()));
      o.duration_set = true;
    } else if (a == "--max-requests")
      o.max_requests = static_cast<long>(positive(a, std::stod(next())));
    else if (a == "--soak")
      o.mode = Options::Mode::soak;
    else if (a == "--multiplier")
      o.multiplier = positive(a, std::stod(next()));
    else if (a == "--warmup-seconds")
      o.warmup_seconds = std::stod(next());
    else if (a == "--max-rss-growth")
      o.max_rss_growth = positive(a, std::stod(next()));
    else if (a == "--idle-timeout")
      o.idle_timeout = positive(a, std::stod(next()));
    else if (a == "--storm") {
      o.mode = Options::Mode::storm;
      o.storm.clients = static_cast<int>(positive(a, std::stoi(next())));
      if (o.storm.clients < 2) throw std::invalid_argument("--storm needs at least 2 clients");
    } else if (a == "--storm-max-tokens")
      o.storm.chat_max_tokens = static_cast<int>(positive(a, std::stoi(next())));
    else if (a == "--storm-video")
      o.storm.live_video = parse_bool(next());
    else
      throw std::invalid_argument("unknown argument " + a);
  }
  if (o.mode == Options::Mode::soak && !o.duration_set) o.duration = 600;
  if (o.warmup_seconds >= o.duration)
    throw std::invalid_argument("--warmup-seconds must be shorter than --duration");
  if (!o.url.empty() && !o.server_sets.empty())
    throw std::invalid_argument("--server-set configures the started binary; not with --url");
  o.storm.idle_timeout = std::chrono::milliseconds(static_cast<long>(o.idle_timeout * 1000));
  double total = 0;
  for (const auto& [cls, w] : o.mix) total += w;
  if (!(total > 0)) throw std::invalid_argument("--mix has no positive weight");
  return o;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

awaitable<void> wait_ready(const Target& target, Clock::time_point deadline) {
  asio::steady_timer tick(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  const std::string readyz = "/readyz";
  for (;;) {
    const GetResult r = co_await http_get(target, readyz, std::chrono::seconds(5));
    if (r.status == 200) co_return;
    if (Clock::now() > deadline) throw std::runtime_error("/readyz not 200 in time");
    tick.expires_after(std::chrono::milliseconds(100));
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

awaitable<bool> run(Options& o, json& out, talkserve::itest::ServerProcess* server) {
  Context ctx{parse_target(o.url), o};
  ctx.target.api_key = o.api_key;
  co_await wait_ready(ctx.target, Clock::now() + std::chrono::seconds(120));
  out["target"] = ctx.target.host + ":" + ctx.target.port;
  print_header();
  switch (o.mode) {
    case Options::Mode::capacity:
      co_await find_capacity(ctx, out);
      co_return true;
    case Options::Mode::rates:
      co_await rates(ctx, out);
      co_return true;
    case Options::Mode::soak:
      co_return co_await soak(ctx, out, server);
    case Options::Mode::storm:
      co_return co_await storm(ctx, out);
  }
  co_return false;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
    const bool needs_wav = std::any_of(o.mix.begin(), o.mix.end(), [](const auto& e) {
      return e.first == RequestClass::transcription && e.second > 0;
    });
    if (needs_wav && o.mode != Options::Mode::storm) {
      o.traffic.wav_bytes = read_file(o.wav);
      o.traffic.wav_name = std::filesystem::path(o.wav).filename().string();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_load: %s\n", e.what());
    return 2;
  }
  std::unique_ptr<talkserve::itest::ServerProcess> server;
  std::filesystem::path clips;
  try {
    if (o.url.empty()) {
      clips = std::filesystem::temp_directory_path() /
              ("bench_load_clips_" + std::to_string(::getpid()));
      std::vector<std::string> args{
          "--set", "http.host=127.0.0.1", "--set", "http.port=0", "--set",
          std::string("server.models_dir=\"") + TALKSERVE_BENCH_MODELS_DIR + "\"", "--set",
          "http.static_dir=\"\"", "--set", "log.level=\"warn\"",
          // As in the integration tests: libtorch's spinning intra-op threads
          // slow a shared 2-core machine down; the tiny model gains nothing.
          "--set", "llm.threads=1", "--set", "talk.cache_dir=\"" + clips.string() + "\""};
      for (const std::string& kv : o.server_sets) {
        args.push_back("--set");
        args.push_back(kv);
      }
      server = std::make_unique<talkserve::itest::ServerProcess>(o.binary, std::move(args));
      const auto port = server->wait_listening(std::chrono::seconds(60));
      o.url = "127.0.0.1:" + std::to_string(port);
      o.server_pid = server->pid();
    }
    asio::io_context ioc;
    json out{{"bench", "load"}};
    json mix;
    for (const auto& [cls, w] : o.mix) mix[std::string(to_string(cls))] = w;
    out["mix"] = mix;
    auto result = asio::co_spawn(ioc, run(o, out, server.get()), asio::use_future);
    ioc.run();
    const bool ok = result.get();
    std::printf("%s\n", out.dump().c_str());
    if (server) {
      server->send_signal(SIGTERM);
      if (!server->wait_exit(std::chrono::seconds(30))) server->kill_now();
    }
    if (!clips.empty()) std::filesystem::remove_all(clips);
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_load: %s\n%s", e.what(),
                 server ? server->diagnostics().c_str() : "");
    if (!clips.empty()) std::filesystem::remove_all(clips);
    return 1;
  }
}
