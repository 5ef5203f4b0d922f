#include "test_support.hpp"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

namespace talkserve::net::test {

RouteOptions route_options(std::string name, std::optional<std::size_t> body_limit,
                           bool requires_auth) {
  RouteOptions o;
  o.name = std::move(name);
  o.body_limit = body_limit;
  o.requires_auth = requires_auth;
  return o;
}

HttpConfig fast_config() {
  HttpConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.io_threads = 2;
  cfg.max_header_bytes = 4 * 1024;
  cfg.max_body_bytes = 64 * 1024;
  cfg.header_timeout = 300ms;
  cfg.body_timeout = 300ms;
  cfg.write_timeout = 2000ms;
  cfg.keepalive_timeout = 2000ms;
  cfg.static_dir = "";
  cfg.stream_queue_limit = 64;
  cfg.ws_ping_interval = 5000ms;
  cfg.ws_max_message_bytes = 64 * 1024;
  return cfg;
}

// ---------------------------------------------------------------------------------------------

void Event::set() {
  {
    std::lock_guard lock(mutex_);
    set_ = true;
  }
  cv_.notify_all();
}

bool Event::is_set() const {
  std::lock_guard lock(mutex_);
  return set_;
}

bool Event::wait_for(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return set_; });
}

ThreadBag::~ThreadBag() {
  join();
}

void ThreadBag::join() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void ThreadBag::spawn(std::function<void()> fn) {
  std::lock_guard lock(mutex_);
  threads_.emplace_back(std::move(fn));
}

// ---------------------------------------------------------------------------------------------

TestServer::TestServer(Router router, HttpConfig config, AdmissionHook admission)
    : router_(std::move(router)), work_(asio::make_work_guard(ioc_)) {
  const int threads = config.io_threads;
  server_ = std::make_unique<HttpServer>(ioc_, std::move(config), router_, metrics_,
                                         std::move(admission));
  port_ = server_->start();
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
}

TestServer::~TestServer() {
  shutdown();
}

void TestServer::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& step : shutdown_steps_) step();
  server_->stop();
  // Handlers parked on long timers would keep the context busy; stop it once connections end.
  server_->wait_closed(2s);
  work_.reset();
  ioc_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

// ---------------------------------------------------------------------------------------------

template <typename Initiate>
beast::error_code HttpTestClient::run_op(std::chrono::milliseconds timeout, Initiate&& initiate) {
  beast::error_code result = asio::error::would_block;
  bool done = false;
  stream_.expires_after(timeout);
  initiate([&](beast::error_code ec, auto&&...) {
    result = ec;
    done = true;
  });
  ioc_->restart();
  while (!done && ioc_->run_one() > 0) {
  }
  return result;
}

HttpTestClient::HttpTestClient(NoConnect)
    : ioc_(std::make_unique<asio::io_context>()), stream_(*ioc_) {}

HttpTestClient::HttpTestClient(uint16_t port) : HttpTestClient(NoConnect{}) {
  auto ec = connect(port);
  REQUIRE_FALSE(ec);
}

std::optional<HttpTestClient> HttpTestClient::try_connect(uint16_t port, beast::error_code& ec) {
  HttpTestClient client{NoConnect{}};
  ec = client.connect(port);
  if (ec) return std::nullopt;
  return client;
}

beast::error_code HttpTestClient::connect(uint16_t port) {
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  return run_op(2s, [&](auto handler) { stream_.async_connect(ep, std::move(handler)); });
}

beast::error_code HttpTestClient::write(std::string_view bytes, std::chrono::milliseconds timeout) {
  return run_op(timeout, [&](auto handler) {
    asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()), std::move(handler));
  });
}

beast::error_code HttpTestClient::send(http::request<http::string_body> req,
                                       std::chrono::milliseconds timeout) {
  return run_op(timeout,
                [&](auto handler) { http::async_write(stream_, req, std::move(handler)); });
}

std::optional<StringResponse> HttpTestClient::read_response(std::chrono::milliseconds timeout,
                                                            beast::error_code* ec_out,
                                                            bool head_request) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  if (head_request) parser.skip(true);
  auto ec = run_op(timeout, [&](auto handler) {
    http::async_read(stream_, buffer_, parser, std::move(handler));
  });
  if (ec_out) *ec_out = ec;
  if (ec) return std::nullopt;
  return parser.release();
}

StringResponse HttpTestClient::roundtrip(http::verb method, std::string target, std::string body,
                                         std::vector<std::pair<std::string, std::string>> headers,
                                         unsigned version) {
  http::request<http::string_body> req{method, target, version};
  req.set(http::field::host, "127.0.0.1");
  for (auto& [name, value] : headers) req.set(name, value);
  if (!body.empty() || method == http::verb::post || method == http::verb::put) {
    req.body() = std::move(body);
    req.prepare_payload();
  }
  auto wec = send(std::move(req));
  REQUIRE_FALSE(wec);
  beast::error_code ec;
  auto res = read_response(2s, &ec, method == http::verb::head);
  INFO("reading the response to " << target << ": " << ec.message());
  REQUIRE(res);
  return std::move(*res);
}

beast::error_code HttpTestClient::read_header(http::response_parser<http::string_body>& parser,
                                              std::chrono::milliseconds timeout) {
  return run_op(timeout, [&](auto handler) {
    http::async_read_header(stream_, buffer_, parser, std::move(handler));
  });
}

beast::error_code HttpTestClient::read_rest(http::response_parser<http::string_body>& parser,
                                            std::chrono::milliseconds timeout) {
  return run_op(timeout, [&](auto handler) {
    http::async_read(stream_, buffer_, parser, std::move(handler));
  });
}

bool HttpTestClient::wait_closed(std::chrono::milliseconds timeout, std::string* received) {
  std::string got = beast::buffers_to_string(buffer_.data());
  buffer_.consume(buffer_.size());
  std::array<char, 4096> chunk;
  beast::error_code ec;
  // One deadline for the whole wait: the stream's expiry is absolute once set.
  stream_.expires_after(timeout);
  for (;;) {
    bool done = false;
    std::size_t n = 0;
    stream_.async_read_some(asio::buffer(chunk), [&](beast::error_code e, std::size_t k) {
      ec = e;
      n = k;
      done = true;
    });
    ioc_->restart();
    while (!done && ioc_->run_one() > 0) {
    }
    got.append(chunk.data(), n);
    if (ec) break;
  }
  if (received) *received = std::move(got);
  return ec == asio::error::eof || ec == asio::error::connection_reset;
}

void HttpTestClient::close() {
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.socket().close(ec);
}

// ---------------------------------------------------------------------------------------------

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ =
      std::filesystem::temp_directory_path() / ("talkserve-net-test-" + std::to_string(::getpid()) +
                                                "-" + std::to_string(counter.fetch_add(1)));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void TempDir::write(const std::string& relative, std::string_view content) const {
  auto file = path_ / relative;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  REQUIRE(out.good());
}

std::pair<std::string, std::string> error_type_and_code(const std::string& body) {
  INFO("error body: " << body);
  auto j = nlohmann::json::parse(body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  REQUIRE(j.is_object());
  REQUIRE(j.contains("error"));
  const auto& e = j["error"];
  REQUIRE(e.is_object());
  REQUIRE(e.contains("message"));
  REQUIRE(e.contains("type"));
  REQUIRE(e.contains("code"));
  CHECK(e["message"].is_string());
  CHECK_FALSE(e["message"].get<std::string>().empty());
  REQUIRE(e["type"].is_string());
  std::string code = e["code"].is_null() ? "" : e["code"].get<std::string>();
  return {e["type"].get<std::string>(), code};
}

}  // namespace talkserve::net::test
