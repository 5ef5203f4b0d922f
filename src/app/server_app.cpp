#include "server_app.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <string_view>
#include <spdlog/spdlog.h>
#include <thread>

#include "model_files.hpp"
#include "services.hpp"
#include "system_routes.hpp"
#include "systemd_notify.hpp"
#include "talkserve/gateway/gateway.hpp"
#include "talkserve/net/http_server.hpp"
#include "talkserve/net/router.hpp"
#include "talkserve/obs/gpu_monitor.hpp"
#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/clock.hpp"

#ifdef TALKSERVE_HAVE_REDIS
#include "quota_sync.hpp"
#include "talkserve/cache/redis_client.hpp"
#endif

namespace talkserve::app {

namespace asio = boost::asio;

namespace {

// "Bearer <key>" from the api_key query parameter of an upgrade target, or "" without one.
// Keys are printable ASCII without spaces, so no percent-decoding beyond rejecting '%'.
std::string websocket_query_key(std::string_view target) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    if (pair.starts_with("api_key=")) {
      const std::string_view key = pair.substr(8);
      if (key.empty() || key.find('%') != std::string_view::npos) return {};
      return "Bearer " + std::string(key);
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return {};
}

// Where quota windows fall: windows of `window` counted from the Unix epoch, so that a day is
// a UTC day and every replica agrees on the window (and its shared counter).
struct QuotaWindows {
  sched::Clock::duration phase{};  // how far into its window the wall clock is now
  std::int64_t wall_index = 0;     // that window's index since the epoch
};

QuotaWindows quota_windows(std::chrono::seconds window) {
  const auto wall = std::chrono::system_clock::now().time_since_epoch();
  return {std::chrono::duration_cast<sched::Clock::duration>(wall % window),
          static_cast<std::int64_t>(wall / window)};
}

#ifdef TALKSERVE_HAVE_REDIS
std::shared_ptr<cache::RedisClient> make_redis(const RedisSection& c, obs::MetricsRegistry& metrics) {
  if (c.url.empty()) return nullptr;
  cache::RedisClientConfig client;
  client.url = c.url;
  client.timeout = std::chrono::milliseconds(c.timeout_ms);
  return std::make_shared<cache::RedisClient>(client, &metrics);
}
#endif

}  // namespace

struct ServerApp::Impl {
  explicit Impl(AppConfig c)
      : config(std::move(c)),
        windows(quota_windows(config.gateway.quota_window)),
        gateway(config.gateway, sched::steady_clock(), metrics, windows.phase),
#ifdef TALKSERVE_HAVE_REDIS
        redis(make_redis(config.redis, metrics)),
        services(make_services(config, metrics, redis)) {
  }
#else
        services(make_services(config, metrics, nullptr)) {
  }
#endif

  AppConfig config;
  obs::MetricsRegistry metrics;
  QuotaWindows windows;
  gateway::Gateway gateway;
#ifdef TALKSERVE_HAVE_REDIS
  std::shared_ptr<cache::RedisClient> redis;  // null without redis.url
  std::unique_ptr<QuotaSync> quota_sync;      // with redis.quotas and API keys
#endif
  std::vector<std::unique_ptr<Service>> services;
  std::unique_ptr<obs::ResourceMonitor> resources;  // null with gpu.mode = "off"
  net::Router router;
  asio::io_context ioc{1};  // run by one I/O thread (see run())
  std::atomic<bool> models_loaded{false};
  std::atomic<bool> draining{false};

  bool ready() const {
    if (!models_loaded.load() || draining.load()) return false;
    for (const auto& s : services) {
      if (!s->ready()) return false;
    }
    return true;
  }
};

ServerApp::ServerApp(AppConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
ServerApp::~ServerApp() = default;

int ServerApp::run() {
  auto& d = *impl_;
  const auto& cfg = d.config;

  try {
    d.resources = obs::make_resource_monitor(cfg.gpu, d.metrics);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  SystemState system;
  system.ready = [&d] { return d.ready(); };
  system.draining = [&d] { return d.draining.load(); };
  system.metrics = &d.metrics;
  system.resource_limit = [&d]() -> std::optional<std::string> {
    return d.resources ? d.resources->not_ready_reason() : std::nullopt;
  };
  register_system_routes(d.router, system);
#ifdef TALKSERVE_HAVE_REDIS
  if (d.redis && cfg.redis.quotas && cfg.gateway.auth_configured()) {
    QuotaSyncConfig qc;
    qc.key_prefix = cfg.redis.quota_key_prefix;
    qc.interval = std::chrono::milliseconds(cfg.redis.quota_sync_ms);
    qc.window = cfg.gateway.quota_window;
    qc.wall_index = d.windows.wall_index;
    d.quota_sync = std::make_unique<QuotaSync>(d.gateway, d.redis, qc, sched::steady_clock(), d.metrics);
    // Before the first request, so that a restarted replica knows what its keys have used.
    const auto first = d.quota_sync->sync_once();
    spdlog::info("quotas: counted across replicas through Redis every {} ms ({} key{} synced, {} "
                 "not reached yet)",
                 cfg.redis.quota_sync_ms, first.synced, first.synced == 1 ? "" : "s", first.failed);
    d.quota_sync->start();
  }
#endif
  for (auto& s : d.services) s->register_routes(d.router);
  if (!cfg.http.static_dir.empty()) d.router.set_static_root(cfg.http.static_dir);

  auto admission = [&d](const net::Request& req, const net::Route& route) {
    std::optional<std::string_view> auth;
    if (auto it = req.find(boost::beast::http::field::authorization); it != req.end()) {
      auth = std::string_view(it->value());
    }
    // Browsers cannot set headers on a WebSocket: the upgrade may carry ?api_key= instead.
    std::string from_query;
    if (!auth && route.websocket) {
      from_query = websocket_query_key(req.target());
      if (!from_query.empty()) auth = from_query;
    }
    auto a = d.gateway.admit(auth, route.options.requires_auth);
    net::AdmissionDecision out;
    out.status = a.http_status();
    out.message = a.message;
    out.code = std::string(a.error_code());
    out.retry_after_s = a.retry_after_s;
    out.priority = gateway::priority(a.tier);
    out.principal = a.key_name;
    if (a.permit) out.permit = std::make_shared<gateway::InFlightPermit>(std::move(a.permit));
    return out;
  };

  // One context per I/O thread: the first (d.ioc) also runs the acceptor, signals and the
  // watchdog; connections are dealt to all of them in turn (see net/http_server.hpp).
  std::vector<std::unique_ptr<asio::io_context>> extra_contexts;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> extra_work;
  std::vector<asio::io_context*> connection_contexts{&d.ioc};
  const int io_thread_count = cfg.http.effective_io_threads();
  for (int i = 1; i < io_thread_count; ++i) {
    extra_contexts.push_back(std::make_unique<asio::io_context>(1));
    extra_work.emplace_back(extra_contexts.back()->get_executor());
    connection_contexts.push_back(extra_contexts.back().get());
  }
  net::HttpServer server(d.ioc, cfg.http, d.router, d.metrics, admission, connection_contexts);
  uint16_t port = 0;
  try {
    port = server.start();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  // The actual port on one line, machine-readable, so tests and scripts can find it.
  spdlog::info("listening on {}://{}:{} ({} I/O thread{})", cfg.http.tls_enabled() ? "https" : "http",
               cfg.http.host, port, io_thread_count, io_thread_count == 1 ? "" : "s");
  std::printf("talkserve listening on %s:%u\n", cfg.http.host.c_str(), static_cast<unsigned>(port));
  std::fflush(stdout);

  // Shutdown is requested by a signal and carried out on this (the main) thread.
  std::promise<int> shutdown;
  auto shutdown_future = shutdown.get_future();
  std::atomic<bool> shutdown_requested{false};
  asio::signal_set signals(d.ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    if (!shutdown_requested.exchange(true)) shutdown.set_value(signo);
  });

  // SIGHUP reloads what an operator rotates without a restart: the API keys (inline ones are
  // fixed by the config; the keys file is read again) and the listener's certificate and key.
  // A reload that fails leaves what is in use untouched and says why in the log.
  asio::signal_set hangup(d.ioc, SIGHUP);
  auto& reloads_ok_keys = d.metrics.counter("talkserve_reloads_total",
                                            "SIGHUP reloads, by what was reloaded and outcome",
                                            {{"what", "api_keys"}, {"result", "ok"}});
  auto& reloads_failed_keys = d.metrics.counter("talkserve_reloads_total", "",
                                                {{"what", "api_keys"}, {"result", "error"}});
  auto& reloads_ok_tls = d.metrics.counter("talkserve_reloads_total", "",
                                           {{"what", "tls"}, {"result", "ok"}});
  auto& reloads_failed_tls = d.metrics.counter("talkserve_reloads_total", "",
                                               {{"what", "tls"}, {"result", "error"}});
  std::function<void()> arm_hangup = [&] {
    hangup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      spdlog::info("SIGHUP: reloading API keys and TLS certificate");
      if (cfg.gateway.auth_configured()) {
        try {
          d.gateway.reload_keys();
          reloads_ok_keys.inc();
          spdlog::info("reload: {} API key{} in use", d.gateway.key_count(),
                       d.gateway.key_count() == 1 ? "" : "s");
        } catch (const std::exception& e) {
          reloads_failed_keys.inc();
          spdlog::error("reload: API keys not reloaded, the previous keys stay in use: {}", e.what());
        }
      }
      try {
        if (server.reload_tls()) {
          reloads_ok_tls.inc();
          spdlog::info("reload: TLS certificate {} loaded for new connections", cfg.http.tls_cert);
        }
      } catch (const std::exception& e) {
        reloads_failed_tls.inc();
        spdlog::error("reload: TLS certificate not reloaded, the previous one stays in use: {}",
                      e.what());
      }
      arm_hangup();
    });
  };
  arm_hangup();

  asio::steady_timer watchdog(d.ioc);
  std::function<void()> arm_watchdog;
  if (auto interval = watchdog_interval()) {
    arm_watchdog = [&, interval] {
      notify_watchdog();
      watchdog.expires_after(*interval);
      watchdog.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) arm_watchdog();
      });
    };
    arm_watchdog();
  }

  std::vector<std::thread> io_threads;
  for (asio::io_context* c : connection_contexts) {
    io_threads.emplace_back([c] { c->run(); });
  }

  // Sampled from now on, so /metrics shows memory while the models load.
  if (d.resources) d.resources->start();

  // Model loading happens here, off the I/O threads; /healthz answers meanwhile and /readyz
  // says 503 until every service is ready.
  std::thread loader([&] {
    // The recogniser's files against the manifest first: a corrupt model is exit status 2.
    try {
      if (cfg.asr.enabled && cfg.asr.backend == "whisper") {
        const std::string dir = std::filesystem::path(cfg.asr.whisper_model).is_absolute()
                                    ? cfg.asr.whisper_model
                                    : (std::filesystem::path(cfg.server.models_dir) / cfg.asr.whisper_model).string();
        const int n = verify_model_files(cfg.server.models_dir, dir);
        if (n > 0) spdlog::info("asr: {} files of {} match the model manifest", n, dir);
      }
    } catch (const ModelFileError& e) {
      spdlog::critical("{}", e.what());
      if (!shutdown_requested.exchange(true)) shutdown.set_value(-2);
      return;
    }
    for (auto& s : d.services) {
      try {
        spdlog::info("starting {}", s->name());
        s->start();
        spdlog::info("{} ready", s->name());
      } catch (const std::exception& e) {
        spdlog::critical("{} failed to start: {}", s->name(), e.what());
        if (!shutdown_requested.exchange(true)) shutdown.set_value(-1);
        return;
      }
    }
    d.models_loaded = true;
    notify_ready();
    spdlog::info("ready");
  });

  int signo = shutdown_future.get();
  loader.join();
  int status = signo == -2 ? 2 : signo < 0 ? 1 : 0;
  if (signo > 0) spdlog::info("signal {} received: draining (grace {} ms)", signo, cfg.server.drain_grace.count());
  notify_stopping();
  d.draining = true;
  d.gateway.set_draining(true);
  server.begin_drain();
  for (auto& s : d.services) s->drain();
  if (!server.wait_idle(cfg.server.drain_grace)) {
    spdlog::warn("grace period over with {} requests in flight; closing them", server.in_flight());
  }
  server.stop();  // WebSockets get 1001 going away
  for (auto& s : d.services) s->stop();
  if (d.resources) d.resources->stop();
#ifdef TALKSERVE_HAVE_REDIS
  if (d.quota_sync) d.quota_sync->stop();  // a last exchange: what this replica admitted counts
#endif
  // Give close frames and final chunks a moment to leave, then stop the loop.
  server.wait_closed(std::chrono::seconds(2));
  signals.cancel();
  hangup.cancel();
  watchdog.cancel();
  d.ioc.stop();
  for (auto& c : extra_contexts) c->stop();
  for (auto& t : io_threads) t.join();
  spdlog::info("stopped");
  return status;
}

}  // namespace talkserve::app
