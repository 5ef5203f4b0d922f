// TLS on the listener ([http] tls_cert / tls_key): the config names the bad key (missing
// pair, unreadable file, a key that belongs to another certificate), and with TLS on, plain
// requests, server-sent event streams and WebSocket sessions (wss) all work, while a client
// that speaks plain HTTP to the TLS port gets a clear 400 and other clients are unaffected.

#include <boost/asio/connect.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <catch2/catch.hpp>
#include <stdexcept>
#include <thread>

#include "support/tls_cert.hpp"
#include "talkserve/net/websocket_session.hpp"
#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;
namespace ssl = boost::asio::ssl;

namespace {

// The message of the std::invalid_argument that validate() throws ("" when it passes).
std::string validation_error(const HttpConfig& c) {
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

HttpConfig tls_config(const talkserve::test::TlsFiles& files) {
  HttpConfig c = fast_config();
  c.tls_cert = files.cert;
  c.tls_key = files.key;
  return c;
}

// A TLS client that trusts only the test certificate and checks it names 127.0.0.1.
class TlsClient {
 public:
  TlsClient(uint16_t port, const std::string& ca_file)
      : ctx_(ssl::context::tls_client), stream_(ioc_, ctx_) {
    ctx_.load_verify_file(ca_file);
    ctx_.set_verify_mode(ssl::verify_peer);
    stream_.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    beast::get_lowest_layer(stream_).expires_after(5s);
    beast::get_lowest_layer(stream_).async_connect(ep, [this](beast::error_code e) { ec_ = e; });
    run();
    REQUIRE_FALSE(ec_);
    stream_.async_handshake(ssl::stream_base::client, [this](beast::error_code e) { ec_ = e; });
    run();
    INFO(ec_.message());
    REQUIRE_FALSE(ec_);
  }

  StringResponse roundtrip(verb method, const std::string& target, std::string body = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = std::move(body);
    req.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(5s);
    http::async_write(stream_, req, [this](beast::error_code e, std::size_t) { ec_ = e; });
    run();
    REQUIRE_FALSE(ec_);
    StringResponse res;
    http::async_read(stream_, buffer_, res, [this](beast::error_code e, std::size_t) { ec_ = e; });
    run();
    INFO(ec_.message());
    REQUIRE_FALSE(ec_);
    return res;
  }

 private:
  void run() {
    ioc_.restart();
    ioc_.run();
  }
  asio::io_context ioc_;
  ssl::context ctx_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  beast::error_code ec_;
};

asio::awaitable<void> hello(HttpExchange& ex) {
  Response res{http::status::ok, ex.request().version()};
  res.body() = "hello " + std::to_string(ex.request().body().size());
  co_await ex.respond(std::move(res));
}

class Echo final : public WebSocketHandler {
 public:
  void on_message(const std::shared_ptr<WebSocketSession>& s, std::string data, bool) override {
    s->send_text("echo " + data);
  }
};

Router tls_router(ThreadBag& producers) {
  Router r;
  r.add(verb::get, "/hello", hello, route_options("hello", {}, false));
  r.add(verb::post, "/small", hello, route_options("small", 100));
  r.add(verb::post, "/events", [&producers](HttpExchange& ex) -> asio::awaitable<void> {
    auto w = co_await ex.start_stream("text/event-stream");
    producers.spawn([w] {
      for (int i = 0; i < 50; ++i) {
        while (w->push(sse_event(std::to_string(i))) == PushResult::full) std::this_thread::yield();
      }
      w->close();
    });
  }, route_options("events"));
  r.add_websocket("/ws", [](const RequestContext&) { return std::make_shared<Echo>(); },
                  route_options("ws"));
  return r;
}

}  // namespace

TEST_CASE("tls config: cert and key come together and name the missing key", "[net][tls]") {
  HttpConfig c = fast_config();
  CHECK(validation_error(c).empty());
  c.tls_cert = "/nonexistent/cert.pem";
  CHECK(validation_error(c).starts_with("http.tls_key must be set together with http.tls_cert"));
  c.tls_cert.clear();
  c.tls_key = "/nonexistent/key.pem";
  CHECK(validation_error(c).starts_with("http.tls_cert must be set together with http.tls_key"));
  c = fast_config();
  c.tls_min_version = "1.1";
  CHECK(validation_error(c).starts_with("http.tls_min_version must be \"1.2\" or \"1.3\""));
}

TEST_CASE("tls config: unreadable files and a foreign key name the key", "[net][tls]") {
  TempDir dir;
  auto a = talkserve::test::write_self_signed_cert(dir.path(), "a");
  auto b = talkserve::test::write_self_signed_cert(dir.path(), "b");
  HttpConfig c = tls_config(a);
  CHECK(validation_error(c).empty());

  c.tls_cert = (dir.path() / "missing.crt").string();
  CHECK(validation_error(c).starts_with("http.tls_cert cannot be loaded from '" + c.tls_cert + "'"));
  c.tls_cert = a.key;  // a key is not a certificate
  CHECK(validation_error(c).starts_with("http.tls_cert cannot be loaded"));

  c = tls_config(a);
  c.tls_key = (dir.path() / "missing.key").string();
  CHECK(validation_error(c).starts_with("http.tls_key cannot be loaded from '" + c.tls_key + "'"));
  c.tls_key = b.key;
  CHECK(validation_error(c) ==
        "http.tls_key '" + b.key + "' does not match the certificate in http.tls_cert");
}

TEST_CASE("tls: requests, limits, SSE and wss over TLS", "[net][tls]") {
  TempDir dir;
  auto files = talkserve::test::write_self_signed_cert(dir.path());
  ThreadBag producers;
  TestServer ts(tls_router(producers), tls_config(files));
  ts.on_shutdown([&] { producers.join(); });

  TlsClient c(ts.port(), files.cert);
  auto res = c.roundtrip(verb::get, "/hello");
  CHECK(res.result() == http::status::ok);
  CHECK(res.body() == "hello 0");
  CHECK(res.keep_alive());
  // Keep-alive: a second request on the same TLS session.
  CHECK(c.roundtrip(verb::post, "/small", std::string(100, 'x')).body() == "hello 100");

  TlsClient big(ts.port(), files.cert);
  auto refused = big.roundtrip(verb::post, "/small", std::string(101, 'x'));
  CHECK(refused.result() == http::status::payload_too_large);
  CHECK(error_type_and_code(refused.body()).second == "body_too_large");

  TlsClient sse(ts.port(), files.cert);
  auto stream = sse.roundtrip(verb::post, "/events", "{}");
  CHECK(stream.result() == http::status::ok);
  std::string expected;
  for (int i = 0; i < 50; ++i) expected += sse_event(std::to_string(i));
  CHECK(stream.body() == expected);

  // wss: the same WebSocket session code over the TLS stream.
  asio::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(files.cert);
  ctx.set_verify_mode(ssl::verify_peer);
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws(ioc, ctx);
  beast::error_code ec;
  beast::get_lowest_layer(ws).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), ts.port()));
  ws.next_layer().handshake(ssl::stream_base::client, ec);
  REQUIRE_FALSE(ec);
  beast::get_lowest_layer(ws).expires_after(5s);
  ws.async_handshake("127.0.0.1", "/ws", [&](beast::error_code e) { ec = e; });
  ioc.run();
  REQUIRE_FALSE(ec);
  const std::string message = "over tls";  // outlives the write
  ws.async_write(asio::buffer(message), [&](beast::error_code e, std::size_t) { ec = e; });
  ioc.restart();
  ioc.run();
  REQUIRE_FALSE(ec);
  beast::flat_buffer in;
  ws.async_read(in, [&](beast::error_code e, std::size_t) { ec = e; });
  ioc.restart();
  ioc.run();
  REQUIRE_FALSE(ec);
  CHECK(beast::buffers_to_string(in.data()) == "echo over tls");
  ws.async_close(websocket::close_code::normal, [&](beast::error_code e) { ec = e; });
  ioc.restart();
  ioc.run();
  CHECK_FALSE(ec);
}

TEST_CASE("tls: plain HTTP to the TLS port gets 400 tls_required, others are served",
          "[net][tls]") {
  TempDir dir;
  auto files = talkserve::test::write_self_signed_cert(dir.path());
  ThreadBag producers;
  TestServer ts(tls_router(producers), tls_config(files));
  TlsClient before(ts.port(), files.cert);

  HttpTestClient plain(ts.port());
  REQUIRE_FALSE(plain.write("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto res = plain.read_response();
  REQUIRE(res);
  CHECK(res->result() == http::status::bad_request);
  CHECK(error_type_and_code(res->body()).second == "tls_required");
  CHECK(res->body().find("https://") != std::string::npos);
  CHECK(plain.wait_closed(2s));

  // Garbage that is not TLS either, and a client that connects and says nothing until the
  // header timeout: neither harms the TLS clients.
  HttpTestClient garbage(ts.port());
  REQUIRE_FALSE(garbage.write(std::string("\x16\x03\x01\x00\x05hello", 10)));
  CHECK(garbage.wait_closed(2s));
  HttpTestClient silent(ts.port());
  CHECK(before.roundtrip(verb::get, "/hello").body() == "hello 0");
  TlsClient after(ts.port(), files.cert);
  CHECK(after.roundtrip(verb::get, "/hello").result() == http::status::ok);
  CHECK(silent.wait_closed(3s));
}
