#include "talkserve/net/http_server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>
#include <stdexcept>

#include "server_state.hpp"
#include "tls_context.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

void ServerState::record(const std::string& route, unsigned code, double seconds) {
  std::string key = route;
  key += '\0';
  key += std::to_string(code);
  RouteSeries s;
  {
    std::lock_guard lock(series_mutex);
    auto it = series.find(key);
    if (it != series.end()) s = it->second;
  }
  if (s.requests == nullptr) {
    s.requests = &metrics.counter("talkserve_http_requests_total",
                                  "HTTP requests answered, by route and status",
                                  {{"route", route}, {"code", std::to_string(code)}});
    s.duration = &metrics.histogram(
        "talkserve_http_request_duration_seconds",
        "Time from request head received to response complete (streams: to end)",
        obs::default_latency_buckets(), {{"route", route}});
    std::lock_guard lock(series_mutex);
    series.emplace(std::move(key), s);
  }
  s.requests->inc();
  s.duration->observe(seconds);
}

struct HttpServer::Impl {
  Impl(asio::io_context& ioc, HttpConfig config, const Router& router,
       obs::MetricsRegistry& metrics, AdmissionHook admission,
       std::vector<asio::io_context*> contexts)
      : ioc(ioc),
        contexts(std::move(contexts)),
        state(std::make_shared<ServerState>(std::move(config), router, metrics,
                                            std::move(admission))),
        acceptor(asio::make_strand(ioc)) {}

  // Where the next connection lives: the next single-threaded context in turn, or a new
  // strand on the shared one.
  asio::any_io_executor next_connection_executor() {
    if (contexts.empty()) return asio::make_strand(ioc);
    asio::io_context* c = contexts[next_context++ % contexts.size()];
    return c->get_executor();
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket(next_connection_executor());
      co_await acceptor.async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) break;
      if (ec) {
        // Out of descriptors and similar: keep serving the connections we have.
        spdlog::warn("accept failed: {}", ec.message());
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      start_connection(state, std::move(socket));
    }
  }

  std::vector<std::shared_ptr<LiveConnection>> snapshot() {
    std::vector<std::shared_ptr<LiveConnection>> out;
    std::lock_guard lock(state->mutex);
    for (auto& [id, weak] : state->live) {
      if (auto c = weak.lock()) out.push_back(std::move(c));
    }
    return out;
  }

  asio::io_context& ioc;
  std::vector<asio::io_context*> contexts;  // each run by one thread; empty: strands on ioc
  std::size_t next_context = 0;             // touched by the accept loop only
  std::shared_ptr<ServerState> state;
  tcp::acceptor acceptor;
};

HttpServer::HttpServer(asio::io_context& ioc, HttpConfig config, const Router& router,
                       obs::MetricsRegistry& metrics, AdmissionHook admission,
                       std::vector<asio::io_context*> connection_contexts)
    : impl_(std::make_shared<Impl>(ioc, std::move(config), router, metrics,
                                   std::move(admission), std::move(connection_contexts))) {
  impl_->state->config.validate();
  if (impl_->state->config.tls_enabled()) {
    impl_->state->tls_enabled = true;
    impl_->state->set_tls_context(make_tls_context(impl_->state->config));
  }
}

bool HttpServer::reload_tls() {
  auto& state = *impl_->state;
  if (!state.tls_enabled) return false;
  state.set_tls_context(make_tls_context(state.config));  // throws and keeps the old one
  return true;
}

HttpServer::~HttpServer() {
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
}

uint16_t HttpServer::start() {
  const auto& cfg = impl_->state->config;
  boost::system::error_code ec;
  auto address = asio::ip::make_address(cfg.host, ec);
  if (ec) throw std::runtime_error("http.host \"" + cfg.host + "\" is not an IP address");
  tcp::endpoint ep(address, cfg.port);
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + cfg.host + ":" + std::to_string(cfg.port) +
                             ": " + ec.message());
  }
  uint16_t port = acc.local_endpoint().port();
  auto impl = impl_;
  asio::co_spawn(acc.get_executor(),
                 [impl]() -> asio::awaitable<void> { co_await impl->accept_loop(); },
                 asio::detached);
  return port;
}

void HttpServer::begin_drain() {
  impl_->state->draining = true;
  auto impl = impl_;
  asio::post(impl_->acceptor.get_executor(), [impl] {
    boost::system::error_code ec;
    impl->acceptor.close(ec);
  });
  for (auto& c : impl_->snapshot()) c->on_drain();
}

bool HttpServer::wait_idle(std::chrono::milliseconds grace) {
  std::unique_lock lock(impl_->state->mutex);
  return impl_->state->idle_cv.wait_for(lock, grace,
                                        [&] { return impl_->state->in_flight.load() == 0; });
}

void HttpServer::stop() {
  impl_->state->draining = true;
  auto impl = impl_;
  asio::post(impl_->acceptor.get_executor(), [impl] {
    boost::system::error_code ec;
    impl->acceptor.close(ec);
  });
  for (auto& c : impl_->snapshot()) c->force_close();
}

bool HttpServer::wait_closed(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->state->mutex);
  return impl_->state->idle_cv.wait_for(lock, timeout, [&] { return impl_->state->live.empty(); });
}

std::size_t HttpServer::in_flight() const { return impl_->state->in_flight.load(); }

std::size_t HttpServer::connections() const {
  std::lock_guard lock(impl_->state->mutex);
  return impl_->state->live.size();
}

bool HttpServer::draining() const { return impl_->state->draining.load(); }

}  // namespace talkserve::net
