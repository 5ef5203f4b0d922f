// TLS through the real binary: --set http.tls_cert/tls_key with a certificate made at test
// time. /healthz, a streamed chat completion (SSE) and a live WebSocket session (wss) work
// over it; a plain-HTTP client gets a clear 400 without disturbing the TLS clients; a bad
// certificate path or a key of another certificate stops the server at start with exit 2.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>

#include "support/checks.hpp"
#include "support/talkserve.hpp"
#include "support/tls_cert.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace websocket = beast::websocket;

namespace {

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One HTTPS connection that trusts only the test certificate (and checks it names
// 127.0.0.1). Every step is bounded: the io_context runs until the operation completes or
// the stream's timeout fires.
class HttpsClient {
 public:
  HttpsClient(std::uint16_t port, const std::string& ca_file)
      : ctx_(ssl::context::tls_client), stream_(ioc_, ctx_) {
    ctx_.load_verify_file(ca_file);
    ctx_.set_verify_mode(ssl::verify_peer);
    stream_.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    beast::get_lowest_layer(stream_).expires_after(10s);
    beast::get_lowest_layer(stream_).async_connect(
        asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
        [this](beast::error_code e) { ec_ = e; });
    run();
    REQUIRE_FALSE(ec_);
    stream_.async_handshake(ssl::stream_base::client, [this](beast::error_code e) { ec_ = e; });
    run();
    INFO("TLS handshake: " << ec_.message());
    REQUIRE_FALSE(ec_);
  }

  // Sends one request and reads the whole response (a chunked stream up to its last chunk).
  http::response<http::string_body> request(http::verb method, const std::string& target,
                                            const std::string& body = {},
                                            const std::string& bearer = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(60s);
    http::async_write(stream_, req, [this](beast::error_code e, std::size_t) { ec_ = e; });
    run();
    REQUIRE_FALSE(ec_);
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    http::async_read(stream_, buffer_, parser, [this](beast::error_code e, std::size_t) { ec_ = e; });
    run();
    INFO("reading the response: " << ec_.message());
    REQUIRE_FALSE(ec_);
    return parser.release();
  }

 private:
  void run() {
    ioc_.restart();
    ioc_.run();
  }
  asio::io_context ioc_;
  ssl::context ctx_;
  TlsStream stream_;
  beast::flat_buffer buffer_;
  beast::error_code ec_;
};

// True when a TLS handshake with the listener succeeds for a client that trusts only `ca`.
[[maybe_unused]] bool handshake_trusting(std::uint16_t port, const std::string& ca) {
  asio::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(ca);
  ctx.set_verify_mode(ssl::verify_peer);
  TlsStream stream(ioc, ctx);
  stream.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
  beast::get_lowest_layer(stream).expires_after(10s);
  beast::error_code ec;
  beast::get_lowest_layer(stream).async_connect(
      asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
      [&](beast::error_code e) { ec = e; });
  ioc.run();
  if (ec) return false;
  stream.async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
  ioc.restart();
  ioc.run();
  return !ec;
}

// [[maybe_unused]] here and below: only tests built with TALKSERVE_ITEST_MODELS use it.
[[maybe_unused]] talkserve::test::TlsFiles make_cert(const TempDir& dir) {
  return talkserve::test::write_self_signed_cert(dir.path());
}

[[maybe_unused]] Talkserve::Options tls_options(const talkserve::test::TlsFiles& files) {
  Talkserve::Options o;
  o.wait_ready = false;  // the support library's readiness poll speaks plain HTTP
  o.startup_timeout = 60s;
  o.args = {"--set", "http.tls_cert=\"" + files.cert + "\"", "--set",
            "http.tls_key=\"" + files.key + "\""};
  return o;
}

[[maybe_unused]] void wait_ready_tls(const Talkserve& server, const std::string& ca) {
  const bool ready = poll_until(
      [&] { return HttpsClient(server.port(), ca).request(http::verb::get, "/readyz").result_int() == 200; },
      60s, 100ms);
  INFO(server.diagnostics());
  REQUIRE(ready);
}

}  // namespace

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("tls: https, SSE and wss through the real binary", "[integration][tls]") {
  TempDir dir;
  const auto files = make_cert(dir);
  Talkserve server(tls_options(files));
  wait_ready_tls(server, files.cert);

  auto health = HttpsClient(server.port(), files.cert).request(http::verb::get, "/healthz");
  CHECK(health.result_int() == 200);

  // A streamed chat completion: server-sent events over TLS, ending with [DONE].
  const json body = {{"model", "stories260K"},
                     {"stream", true},
                     {"max_tokens", 16},
                     {"temperature", 0},
                     {"messages", json::array({{{"role", "user"}, {"content", "Tell me a story."}}})}};
  auto stream = HttpsClient(server.port(), files.cert)
                    .request(http::verb::post, "/v1/chat/completions", body.dump());
  REQUIRE(stream.result_int() == 200);
  CHECK(stream[http::field::content_type].starts_with("text/event-stream"));
  const std::string& events = stream.body();
  CHECK(events.find("data: [DONE]") != std::string::npos);
  std::size_t deltas = 0;
  for (std::size_t at = events.find("data: {"); at != std::string::npos;
       at = events.find("data: {", at + 1)) {
    const auto end = events.find('\n', at);
    const auto chunk = json::parse(events.substr(at + 6, end - at - 6));
    CHECK(chunk["object"] == "chat.completion.chunk");
    ++deltas;
  }
  CHECK(deltas >= 2);

  // wss: a live session starts over TLS.
  asio::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(files.cert);
  ctx.set_verify_mode(ssl::verify_peer);
  websocket::stream<TlsStream> ws(ioc, ctx);
  beast::error_code ec;
  auto& tcp = beast::get_lowest_layer(ws);
  tcp.expires_after(30s);
  tcp.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()),
                    [&](beast::error_code e) { ec = e; });
  ioc.run();
  REQUIRE_FALSE(ec);
  ws.next_layer().async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
  ioc.restart();
  ioc.run();
  REQUIRE_FALSE(ec);
  ws.async_handshake("127.0.0.1", "/v1/stream", [&](beast::error_code e) { ec = e; });
  ioc.restart();
  ioc.run();
  REQUIRE_FALSE(ec);
  tcp.expires_never();  // the WebSocket's own timeouts from here
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  const std::string start = R"({"type":"session.start","video":false})";  // outlives the write
  ws.async_write(asio::buffer(start), [&](beast::error_code e, std::size_t) { ec = e; });
  ioc.restart();
  ioc.run();
  REQUIRE_FALSE(ec);
  beast::flat_buffer in;
  json first;
  asio::steady_timer guard(ioc, 30s);
  guard.async_wait([&](beast::error_code e) {
    if (!e) beast::get_lowest_layer(ws).close();
  });
  ws.async_read(in, [&](beast::error_code e, std::size_t) {
    ec = e;
    guard.cancel();
  });
  ioc.restart();
  ioc.run();
  REQUIRE_FALSE(ec);
  first = json::parse(beast::buffers_to_string(in.data()));
  CHECK(first["type"] == "session.started");
  ws.async_close(websocket::close_code::normal, [&](beast::error_code e) { ec = e; });
  ioc.restart();
  ioc.run();
}
#endif

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("tls: plain HTTP to the TLS port gets 400 while TLS clients are served",
          "[integration][tls]") {
  TempDir dir;
  const auto files = make_cert(dir);
  Talkserve server(tls_options(files));
  wait_ready_tls(server, files.cert);

  HttpsClient during(server.port(), files.cert);  // connected before the plain clients
  HttpClient plain(server.host(), server.port(), 5s);
  for (int i = 0; i < 20; ++i) {
    auto res = plain.get("/v1/models");
    INFO(res.body);
    check_error(res, 400);
    CHECK(res.json()["error"]["code"] == "tls_required");
  }
  CHECK(during.request(http::verb::get, "/v1/models").result_int() == 200);
  CHECK(HttpsClient(server.port(), files.cert).request(http::verb::get, "/healthz").result_int() ==
        200);
}
#endif

TEST_CASE("tls: a bad certificate path or a foreign key exits 2 naming the key",
          "[integration][tls][config]") {
  TempDir dir;
  const auto a = talkserve::test::write_self_signed_cert(dir.path(), "a");
  const auto b = talkserve::test::write_self_signed_cert(dir.path(), "b");
  auto start = [&](const std::string& cert, const std::string& key) {
    auto args = base_args();
    args.insert(args.end(), {"--set", "http.tls_cert=\"" + cert + "\"", "--set",
                             "http.tls_key=\"" + key + "\""});
    return run_to_exit(talkserve_binary(), args, 30s);
  };
  auto missing = start((dir.path() / "nope.crt").string(), a.key);
  INFO(missing.err);
  CHECK(missing.exit_status == 2);
  CHECK(missing.err.find("http.tls_cert") != std::string::npos);
  CHECK(missing.out.find("listening") == std::string::npos);

  auto mismatch = start(a.cert, b.key);
  INFO(mismatch.err);
  CHECK(mismatch.exit_status == 2);
  CHECK(mismatch.err.find("http.tls_key") != std::string::npos);
  CHECK(mismatch.err.find("does not match") != std::string::npos);

  auto half = start(a.cert, "");
  CHECK(half.exit_status == 2);
  CHECK(half.err.find("http.tls_key must be set together with http.tls_cert") != std::string::npos);
}

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("keys: talkserve --hash-key output is a keys-file line the server accepts",
          "[integration][keys]") {
  const std::string secret = "sk-hash-me-7f3a";
  // The key goes in on stdin; the output is "sha256:<64 hex>\n".
  const std::string hashed =
      run_command("printf '%s\\n' '" + secret + "' | '" + talkserve_binary() + "' --hash-key");
  REQUIRE(hashed.size() == 7 + 64 + 1);
  CHECK(hashed.starts_with("sha256:"));
  CHECK(hashed.find(secret) == std::string::npos);
  auto empty = run_command("printf '\\n' | '" + talkserve_binary() + "' --hash-key; echo \"exit=$?\"");
  CHECK(empty.find("exit=2") != std::string::npos);

  TempDir dir;
  const std::string keys = dir.write("keys", "alice standard " + hashed);
  Talkserve server({"--set", "gateway.keys_file=\"" + keys + "\""});
  auto client = server.client(10s);
  CHECK(client.get("/v1/models", {{"Authorization", "Bearer " + secret}}).status == 200);
  check_error(client.get("/v1/models", {{"Authorization", "Bearer " + hashed.substr(7, 64)}}), 401);
  check_error(client.get("/v1/models"), 401);
}
#endif

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("reload: SIGHUP loads a rotated certificate and keys file and keeps them when broken",
          "[integration][tls][keys]") {
  TempDir dir;
  const auto a = talkserve::test::write_self_signed_cert(dir.path(), "a");
  const auto b = talkserve::test::write_self_signed_cert(dir.path(), "b");
  const auto live = dir.path() / "live";
  std::filesystem::create_directories(live);
  const auto cert = (live / "server.crt").string(), key = (live / "server.key").string();
  auto install = [&](const talkserve::test::TlsFiles& f) {
    std::filesystem::copy_file(f.cert, cert, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(f.key, key, std::filesystem::copy_options::overwrite_existing);
  };
  install(a);
  const std::string keys = dir.write("keys", "old standard key:sk-old-1111\n");

  Talkserve::Options o = tls_options({cert, key});
  o.args.insert(o.args.end(), {"--set", "gateway.keys_file=\"" + keys + "\""});
  Talkserve server(o);
  wait_ready_tls(server, a.cert);
  HttpsClient before(server.port(), a.cert);  // established before the rotation
  CHECK(before.request(http::verb::get, "/v1/models", {}, "sk-old-1111").result_int() == 200);
  CHECK_FALSE(handshake_trusting(server.port(), b.cert));

  // How many reloads of `what` ended with `result`, read over TLS with the CA now in use.
  auto reloads = [&](const std::string& ca, const std::string& what, const std::string& result) {
    auto res = HttpsClient(server.port(), ca).request(http::verb::get, "/metrics");
    const std::string series =
        "talkserve_reloads_total{result=\"" + result + "\",what=\"" + what + "\"} ";
    const auto at = res.body().find(series);
    return at == std::string::npos ? -1.0 : std::stod(res.body().substr(at + series.size()));
  };

  // Rotation: certificate b and a new key replace the old ones.
  install(b);
  dir.write("keys", "new vip key:sk-new-2222\n");
  server.process().send_signal(SIGHUP);
  INFO(server.diagnostics());
  REQUIRE(poll_until([&] { return handshake_trusting(server.port(), b.cert); }, 10s, 50ms));
  CHECK_FALSE(handshake_trusting(server.port(), a.cert));
  CHECK(poll_until([&] { return reloads(b.cert, "api_keys", "ok") == 1.0; }, 10s, 50ms));
  CHECK(reloads(b.cert, "tls", "ok") == 1.0);
  HttpsClient after(server.port(), b.cert);
  CHECK(after.request(http::verb::get, "/v1/models", {}, "sk-new-2222").result_int() == 200);
  CHECK(after.request(http::verb::get, "/v1/models", {}, "sk-old-1111").result_int() == 401);
  // The connection made before the rotation goes on with its session.
  CHECK(before.request(http::verb::get, "/healthz").result_int() == 200);

  // A broken rotation: a truncated certificate and a malformed keys line. Both are refused,
  // counted and logged; the server goes on with certificate b and key sk-new-2222.
  std::filesystem::resize_file(cert, 40);
  dir.write("keys", "new vip key:sk-new-2222\nbroken-line\n");
  server.process().send_signal(SIGHUP);
  CHECK(poll_until([&] { return reloads(b.cert, "tls", "error") == 1.0; }, 10s, 50ms));
  CHECK(poll_until([&] { return reloads(b.cert, "api_keys", "error") == 1.0; }, 10s, 50ms));
  CHECK(handshake_trusting(server.port(), b.cert));
  CHECK(HttpsClient(server.port(), b.cert)
            .request(http::verb::get, "/v1/models", {}, "sk-new-2222")
            .result_int() == 200);
  const std::string log = server.process().stderr_text();
  CHECK(log.find("TLS certificate not reloaded, the previous one stays in use") != std::string::npos);
  CHECK(log.find("http.tls_cert cannot be loaded") != std::string::npos);
  CHECK(log.find("API keys not reloaded") != std::string::npos);
  CHECK(log.find(":2:") != std::string::npos);  // the keys file's bad line, by number
  CHECK_FALSE(server.process().exited());
}
#endif
