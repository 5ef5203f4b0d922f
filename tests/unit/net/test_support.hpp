#pragma once
// Fixtures shared by the net tests: an in-process HttpServer on an ephemeral loopback port,
// HTTP and WebSocket clients whose every operation is bounded by a timeout (a server bug fails
// the test instead of hanging it), a one-shot event for crossing threads, and a temporary
// folder for static files.

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "support/ws_client.hpp"
#include "talkserve/net/http_config.hpp"
#include "talkserve/net/http_server.hpp"
#include "talkserve/net/router.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::net::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using StringResponse = http::response<http::string_body>;
using namespace std::chrono_literals;

// Route options without spelling out every field.
RouteOptions route_options(std::string name, std::optional<std::size_t> body_limit = {},
                           bool requires_auth = true);

// Loopback, ephemeral port, no static root, and timeouts short enough that a timeout test
// takes a fraction of a second.
HttpConfig fast_config();

// A one-shot flag another thread can wait for.
class Event {
 public:
  void set();
  bool is_set() const;
  // True once set; false if `timeout` passed first.
  bool wait_for(std::chrono::milliseconds timeout) const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  bool set_ = false;
};

// Threads started by a test (stream producers). Joined by join() and on destruction; join
// them from TestServer::on_shutdown so producers finish before the server goes away.
class ThreadBag {
 public:
  ~ThreadBag();
  void spawn(std::function<void()> fn);
  void join();

 private:
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

// An HttpServer over `router` with its own io_context run by config.io_threads threads.
class TestServer {
 public:
  explicit TestServer(Router router, HttpConfig config = fast_config(),
                      AdmissionHook admission = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  uint16_t port() const { return port_; }
  HttpServer& server() { return *server_; }
  obs::MetricsRegistry& metrics() { return metrics_; }
  asio::io_context& io_context() { return ioc_; }

  // shutdown() runs `step` first, while the server still runs: join producer threads, drop
  // stream writers (they hold the server's timers, which must not outlive its io_context).
  void on_shutdown(std::function<void()> step) { shutdown_steps_.push_back(std::move(step)); }

  // Closes every connection, waits for them, then stops and joins the I/O threads.
  // Idempotent; the destructor calls it.
  void shutdown();

 private:
  obs::MetricsRegistry metrics_;
  Router router_;
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<HttpServer> server_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  bool shut_down_ = false;
  std::vector<std::function<void()>> shutdown_steps_;
};

// One client TCP connection. Each call runs the client's private io_context until its
// operation completes or the timeout closes the socket (then the client is unusable).
class HttpTestClient {
 public:
  explicit HttpTestClient(uint16_t port);
  // Connects; returns the error instead of failing (for tests of a closed listener).
  static std::optional<HttpTestClient> try_connect(uint16_t port, beast::error_code& ec);

  beast::error_code write(std::string_view bytes, std::chrono::milliseconds timeout = 2s);
  beast::error_code send(http::request<http::string_body> req,
                         std::chrono::milliseconds timeout = 2s);
  // One response, or nullopt if the connection ended or the timeout passed first (`ec` says
  // which). `head_request` tells the parser the response has no body.
  std::optional<StringResponse> read_response(std::chrono::milliseconds timeout = 2s,
                                              beast::error_code* ec = nullptr,
                                              bool head_request = false);
  // Sends a request (Host set, HTTP/1.1 unless `version` says otherwise) and REQUIREs a
  // response.
  StringResponse roundtrip(http::verb method, std::string target, std::string body = {},
                           std::vector<std::pair<std::string, std::string>> headers = {},
                           unsigned version = 11);

  beast::error_code read_header(http::response_parser<http::string_body>& parser,
                                std::chrono::milliseconds timeout = 2s);
  beast::error_code read_rest(http::response_parser<http::string_body>& parser,
                              std::chrono::milliseconds timeout = 2s);
  // Reads until the server closes. True if it closed (EOF or reset) within `timeout`;
  // `received` gets whatever arrived before that.
  bool wait_closed(std::chrono::milliseconds timeout, std::string* received = nullptr);

  void close();
  tcp::socket& socket() { return stream_.socket(); }

 private:
  struct NoConnect {};
  explicit HttpTestClient(NoConnect);
  beast::error_code connect(uint16_t port);
  // Runs the io_context until `initiate`'s completion handler ran.
  template <typename Initiate>
  beast::error_code run_op(std::chrono::milliseconds timeout, Initiate&& initiate);

  std::unique_ptr<asio::io_context> ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

// A WebSocket client with bounded operations (tests/support/ws_client.hpp).
using WsTestClient = talkserve::test::WsClient;

// A fresh folder under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  // Writes `content` to path()/relative, creating folders.
  void write(const std::string& relative, std::string_view content) const;

 private:
  std::filesystem::path path_;
};

// Parses a JSON error body; REQUIREs the OpenAI shape {"error":{"message","type","code"}}
// and returns {type, code} (code "" when null).
std::pair<std::string, std::string> error_type_and_code(const std::string& body);

}  // namespace talkserve::net::test
