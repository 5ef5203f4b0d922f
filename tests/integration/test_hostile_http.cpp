// Hostile input against the real binary. Each attack must be answered with a clear error (or
// a WebSocket close code) while another client, running at the same time, is served
// normally: a Bystander thread keeps making requests through the gateway for the whole
// attack and every one of them must succeed.

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/checks.hpp"
#include "support/talkserve.hpp"
#include "support/ws_client.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace websocket = boost::beast::websocket;

namespace {

// Requests /v1/models (gateway, router, JSON answer) and /healthz in a loop on its own thread
// until stopped. Any failure is recorded with what went wrong.
class Bystander {
 public:
  explicit Bystander(const Talkserve& server)
      : client_(server.client(5s)), thread_([this] { loop(); }) {}
  ~Bystander() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int served() const { return served_.load(); }
  std::vector<std::string> failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
  }
  // At least `n` requests served during the attack, none failed.
  void check(int n = 1) {
    stop();
    INFO("bystander failures: " << failures().size() << (failures().empty() ? "" : ", first: " + failures().front()));
    CHECK(failures().empty());
    CHECK(served() >= n);
  }

 private:
  void loop() {
    while (!stop_) {
      for (const char* target : {"/v1/models", "/healthz"}) {
        try {
          auto res = client_.get(target);
          if (res.status == 200) {
            ++served_;
          } else {
            fail(std::string(target) + " -> " + std::to_string(res.status) + " " + res.body);
          }
        } catch (const std::exception& e) {
          fail(std::string(target) + ": " + e.what());
        }
      }
      std::this_thread::sleep_for(20ms);  // a steady client, not a second attacker
    }
  }
  void fail(std::string what) {
    std::lock_guard lock(mutex_);
    failures_.push_back(std::move(what));
  }

  HttpClient client_;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> failures_;
  std::thread thread_;
};

// A raw TCP connection for attacks no well-behaved client library would make.
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // False once the server has closed (or reset) the connection.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // Reads until the server closes or `timeout` passes. True if it closed; `received` gets what
  // arrived.
  bool read_until_closed(std::chrono::milliseconds timeout, std::string& received) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[4096];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
      received.append(buf, static_cast<std::size_t>(n));
    }
  }
  // Without waiting: reads what has arrived into `received`; true once the server has
  // closed (or reset) the connection.
  bool closed_by_server(std::string& received) {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) return false;
      char buf[4096];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
      received.append(buf, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
};

std::string status_line(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

// The JSON error body of a raw HTTP response.
json raw_error(const std::string& response) {
  const auto at = response.find("\r\n\r\n");
  REQUIRE(at != std::string::npos);
  return json::parse(response.substr(at + 4));
}

json chat(std::string content) {
  return json{{"model", "stories260K"},
              {"max_tokens", 4},
              {"messages", json::array({{{"role", "user"}, {"content", std::move(content)}}})}};
}

}  // namespace

TEST_CASE("hostile JSON: deep nesting, oversize bodies and invalid UTF-8 are 4xx",
          "[integration][hostile]") {
  Talkserve server;
  Bystander bystander(server);
  auto client = server.client(30s);

  // 100k nested arrays: a recursive parser would overflow its stack here.
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  check_error(client.request("POST", "/v1/chat/completions", deep,
                             {{"Content-Type", "application/json"}}),
              400);
  const std::string deep_field =
      "{\"model\":\"stories260K\",\"messages\":" + std::string(100'000, '[') +
      std::string(100'000, ']') + "}";
  check_error(client.request("POST", "/v1/chat/completions", deep_field,
                             {{"Content-Type", "application/json"}}),
              400);
  // Unbalanced: 500k opening brackets and nothing else.
  check_error(client.request("POST", "/v1/completions", std::string(500'000, '['),
                             {{"Content-Type", "application/json"}}),
              400);
  check_error(client.request("POST", "/v1/audio/speech", std::string(200'000, '{'),
                             {{"Content-Type", "application/json"}}),
              400);

  // Invalid UTF-8 inside a JSON string (a lone continuation byte, an overlong '/', a lone
  // surrogate escape) is refused by the parser, not passed to the tokenizer.
  for (std::string bad : {std::string("caf\xC3"), std::string("\x80\x80"),
                          std::string("\xC0\xAF"), std::string("\xED\xA0\x80")}) {
    const std::string body = chat("@@").dump();
    std::string raw = body;
    raw.replace(raw.find("@@"), 2, bad);
    INFO("bytes " << json(std::vector<int>(bad.begin(), bad.end())).dump());
    check_error(client.request("POST", "/v1/chat/completions", raw,
                               {{"Content-Type", "application/json"}}),
                400);
    std::string speech = R"({"input":"@@","voice":"alloy"})";
    speech.replace(speech.find("@@"), 2, bad);
    check_error(client.request("POST", "/v1/audio/speech", speech,
                               {{"Content-Type", "application/json"}}),
                400);
  }
  check_error(client.request("POST", "/v1/chat/completions",
                             R"({"model":"stories260K","messages":[{"role":"user","content":"\udc00"}]})",
                             {{"Content-Type", "application/json"}}),
              400);

  // Invalid UTF-8 in a multipart text field (the talk text, the transcription prompt).
  for (const char* target : {"/v1/talk", "/v1/audio/transcriptions"}) {
    const std::string field = std::string(target) == "/v1/talk" ? "text" : "prompt";
    const std::string body = "--B\r\nContent-Disposition: form-data; name=\"" + field +
                             "\"\r\n\r\nhello \xC3\x28 there\r\n--B--\r\n";
    auto res = client.request("POST", target, body,
                              {{"Content-Type", "multipart/form-data; boundary=B"}});
    INFO(target);
    check_error(res, 400, {}, "not valid UTF-8");
  }

  // A body far over the route's limit is refused from its Content-Length, before it is read.
  for (const char* target : {"/v1/chat/completions", "/v1/audio/speech", "/v1/talk"}) {
    RawConnection raw(server.port());
    REQUIRE(raw.send(std::string("POST ") + target +
                     " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 10000000000\r\n\r\n{\"a\":"));
    std::string response;
    CHECK(raw.read_until_closed(5s, response));
    INFO(target << ": " << response);
    CHECK(status_line(response) == "HTTP/1.1 413 Payload Too Large");
    CHECK(raw_error(response)["error"]["code"] == "body_too_large");
  }
  // The server still answers real work afterwards.
  CHECK(client.post_json("/v1/chat/completions", chat("Hello")).status == 200);
  bystander.check();
}

TEST_CASE("hostile multipart: a huge upload is 413 before it is read", "[integration][hostile]") {
  Talkserve server;
  Bystander bystander(server);
  for (const char* target : {"/v1/audio/transcriptions", "/v1/talk"}) {
    RawConnection raw(server.port());
    // 8 GiB announced; only the first part's head is ever sent.
    REQUIRE(raw.send(std::string("POST ") + target +
                     " HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: multipart/form-data; boundary=XyZ\r\n"
                     "Content-Length: 8589934592\r\n\r\n"
                     "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                     "Content-Type: audio/wav\r\n\r\nRIFF"));
    std::string response;
    CHECK(raw.read_until_closed(5s, response));
    INFO(target << ": " << response);
    CHECK(status_line(response) == "HTTP/1.1 413 Payload Too Large");
  }
  // Chunked (no Content-Length): refused as soon as the received bytes pass the limit.
  RawConnection raw(server.port());
  REQUIRE(raw.send("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: multipart/form-data; boundary=XyZ\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"));
  // 64 MiB, well over the route's 25 MiB: the server answers 413 once the limit is passed,
  // drops the rest for a moment (so the client can read its answer), then closes.
  const std::string chunk = "100000\r\n" + std::string(0x100000, 'a') + "\r\n";
  for (int i = 0; i < 64 && raw.send(chunk); ++i) {
  }
  std::string response;
  CHECK(raw.read_until_closed(10s, response));
  INFO(response.substr(0, 300));
  if (!response.empty()) CHECK(status_line(response) == "HTTP/1.1 413 Payload Too Large");
  bystander.check();
}

TEST_CASE("slow-loris: a trickled head or body is dropped after its timeout",
          "[integration][hostile]") {
  Talkserve server({"--set", "http.header_timeout_ms=1000", "--set", "http.body_timeout_ms=1500"});
  Bystander bystander(server);

  // Ten connections each trickle one header byte every 100 ms: each one is answered 408 and
  // closed once its head has taken 1 s, however steadily it keeps sending.
  std::vector<std::unique_ptr<RawConnection>> heads;
  std::vector<std::string> answers(10);
  for (int i = 0; i < 10; ++i) {
    heads.push_back(std::make_unique<RawConnection>(server.port()));
    REQUIRE(heads.back()->send("GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  }
  const auto start = std::chrono::steady_clock::now();
  bool all_closed = false;
  while (!all_closed && std::chrono::steady_clock::now() - start < 5s) {
    all_closed = true;
    for (std::size_t i = 0; i < heads.size(); ++i) {
      if (heads[i]->closed_by_server(answers[i])) continue;
      all_closed = false;
      heads[i]->send("a");
    }
    std::this_thread::sleep_for(100ms);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(all_closed);
  CHECK(took >= 900ms);
  CHECK(took < 4s);
  // The timeout closes the socket; a 408 may or may not make it out first.
  for (const auto& answer : answers)
    CHECK((answer.empty() || status_line(answer) == "HTTP/1.1 408 Request Timeout"));

  // A body that trickles in: 408 after the body timeout.
  RawConnection body(server.port());
  REQUIRE(body.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"));
  const auto body_start = std::chrono::steady_clock::now();
  std::string response;
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() - body_start < 5s) {
    body.send(" ");
    closed = body.read_until_closed(100ms, response);
  }
  CHECK(closed);
  CHECK(std::chrono::steady_clock::now() - body_start < 4s);
  INFO(response);
  CHECK((response.empty() || status_line(response) == "HTTP/1.1 408 Request Timeout"));
  bystander.check();
}

TEST_CASE("WebSocket abuse: a frame flood is processed in order, an oversize frame is 1009",
          "[integration][hostile][live]") {
  Talkserve::Options options;
  options.startup_timeout = 60s;
  options.args = {"--set", "http.ws_max_message_bytes=65536"};
  Talkserve server(options);
  Bystander bystander(server);

  {
    talkserve::test::WsClient ws(server.port());
    REQUIRE_FALSE(ws.handshake("/v1/stream"));
    REQUIRE_FALSE(ws.send_text(R"({"type":"session.start","video":false})"));
    bool started = false;
    while (auto m = ws.read(30s)) {
      if (!m->binary && json::parse(m->data)["type"] == "session.started") {
        started = true;
        break;
      }
    }
    REQUIRE(started);
    // 5000 small frames as fast as the socket takes them (cancels of nothing: no replies).
    for (int i = 0; i < 5000; ++i) REQUIRE_FALSE(ws.send_text(R"({"type":"response.cancel"})"));
    // A second session.start breaks the protocol: its error and the 1008 close come only
    // after every frame of the flood was read and handled.
    REQUIRE_FALSE(ws.send_text(R"({"type":"session.start"})"));
    std::vector<json> errors;
    boost::beast::error_code ec;
    while (auto m = ws.read(30s, &ec)) {
      if (!m->binary) {
        auto j = json::parse(m->data);
        if (j["type"] == "error") errors.push_back(j);
      }
    }
    INFO(ec.message());
    CHECK(ec == websocket::error::closed);
    CHECK(ws.close_reason().code == 1008);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].dump().find("already started") != std::string::npos);
  }
  {
    talkserve::test::WsClient ws(server.port());
    REQUIRE_FALSE(ws.handshake("/v1/stream"));
    REQUIRE_FALSE(ws.send_text(R"({"type":"session.start","video":false})"));
    while (auto m = ws.read(30s)) {
      if (!m->binary && json::parse(m->data)["type"] == "session.started") break;
    }
    // 100 KB in one binary message: over the 64 KiB limit.
    ws.send_binary(std::string(100 * 1024, '\0'), 30s);
    boost::beast::error_code ec;
    while (ws.read(30s, &ec)) {
    }
    INFO(ec.message());
    CHECK(ws.close_reason().code == 1009);
  }
  {
    // Invalid UTF-8 in a text frame: the WebSocket layer closes with 1007.
    talkserve::test::WsClient ws(server.port());
    REQUIRE_FALSE(ws.handshake("/v1/stream"));
    ws.send_text(std::string("{\"type\":\"session.start\",\"voice\":\"\xC0\xAF\"}"));
    boost::beast::error_code ec;
    while (ws.read(10s, &ec)) {
    }
    CHECK(ws.close_reason().code == 1007);
  }
  bystander.check();
}

TEST_CASE("path traversal: static files and clip ids never leave their directory",
          "[integration][hostile]") {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "web");
  std::ofstream(dir.path() / "web" / "index.html") << "<p>demo</p>";
  std::ofstream(dir.path() / "secret.txt") << "TOP-SECRET";
  Talkserve server({"--set", "http.static_dir=\"" + (dir.path() / "web").string() + "\""});
  Bystander bystander(server);
  auto client = server.client(10s);

  CHECK(client.get("/index.html").body == "<p>demo</p>");
  for (const std::string& target : std::vector<std::string>{
           "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/..%2fsecret.txt",
        "/%252e%252e/secret.txt", "/%252e%252e%252fsecret.txt", "/..\\secret.txt",
        "/..%5csecret.txt", "/%5c..%5csecret.txt", "/./../secret.txt", "/web/../../secret.txt",
        "//../secret.txt", "/....//secret.txt", "/%00../secret.txt", "/index.html%00.txt",
        "/" + dir.path().string() + "/secret.txt"}) {
    INFO(target);
    auto res = client.get(target);
    CHECK(res.body.find("TOP-SECRET") == std::string::npos);
    CHECK((res.status == 404 || res.status == 400));
  }
  const std::string hex(64, 'a');
  for (const std::string& target : std::vector<std::string>{
           "/v1/clips/../../secret.txt", "/v1/clips/..%2f..%2fsecret.txt",
        "/v1/clips/%2e%2e%2f%2e%2e%2fsecret.txt", "/v1/clips/%252e%252e%252fsecret.mp4",
        "/v1/clips/..\\..\\secret.mp4", "/v1/clips/" + hex.substr(1) + ".mp4",
        "/v1/clips/" + hex + "0.mp4", "/v1/clips/" + std::string(64, 'A') + ".mp4",
        "/v1/clips/" + hex.substr(0, 62) + "%2f.mp4", "/v1/clips/" + hex + ".mp4%00",
        "/v1/clips/" + hex + ".mp4/../../secret.txt", "/v1/clips/" + hex + ".txt",
        "/v1/clips/" + std::string(100'00, 'a') + ".mp4"}) {
    INFO(target);
    auto res = client.get(target);
    CHECK(res.body.find("TOP-SECRET") == std::string::npos);
    CHECK((res.status == 404 || res.status == 400 || res.status == 431));
  }
  bystander.check();
}
