#pragma once
// A small blocking HTTP/1.1 client on Boost.Beast for integration tests: one connection per
// request (Connection: close), every operation bounded by a timeout (a hung server fails
// the test instead of hanging it), and an SSE reader that hands out `data:` payloads one by
// one so a test can stop reading, or drop the connection, half-way through a stream.
//
// The API is synchronous; internally each step is an async Beast operation run on a private
// io_context, because Beast's timeouts (tcp_stream::expires_after) only apply to async calls.
//
// Thread-safety: none per object; use one object per thread (objects are independent).

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace talkserve::itest {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  unsigned status = 0;
  Headers headers;
  std::string body;

  // Case-insensitive lookup of the first header with this name.
  std::optional<std::string> header(std::string_view name) const;
  // The body parsed as JSON; throws std::runtime_error quoting the body if it is not JSON.
  nlohmann::json json() const;
};

class HttpClient {
 public:
  HttpClient(std::string host, std::uint16_t port,
             std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Throws std::runtime_error on connection failure or timeout.
  HttpResponse request(std::string_view method, std::string_view target, std::string body = {},
                       const Headers& headers = {}) const;
  HttpResponse get(std::string_view target, const Headers& headers = {}) const;
  // POST with Content-Type: application/json.
  HttpResponse post_json(std::string_view target, const nlohmann::json& body,
                         const Headers& headers = {}) const;

  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  std::string host_;
  std::uint16_t port_;
  std::chrono::milliseconds timeout_;
};

// One streamed (Server-Sent Events) response. The constructor sends the request and reads
// the response head; next_data() then reads just enough of the body for the next event.
class SseStream {
 public:
  SseStream(const HttpClient& client, std::string_view method, std::string_view target,
            std::string body, const Headers& headers = {});
  // POST `body` as JSON.
  SseStream(const HttpClient& client, std::string_view target, const nlohmann::json& body,
            const Headers& headers = {});
  ~SseStream();
  SseStream(const SseStream&) = delete;
  SseStream& operator=(const SseStream&) = delete;

  unsigned status() const;
  std::optional<std::string> header(std::string_view name) const;

  // The data of the next event (its `data:` lines joined by '\n'); nullopt once the response
  // has ended. Throws std::runtime_error on a timeout or a broken connection.
  std::optional<std::string> next_data();
  // Every remaining event's data, in order.
  std::vector<std::string> read_all();
  // The rest of the body as raw bytes (for a response that is not an event stream, e.g. an
  // error answered as JSON).
  std::string read_body();
  // Drops the connection now, mid-stream (the client going away).
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every `data:` payload of a streamed POST, in order (throws if the status is not 200).
std::vector<std::string> sse_post(const HttpClient& client, std::string_view target,
                                  const nlohmann::json& body, const Headers& headers = {});

// Tries one TCP connect. True if it was refused (nothing listening), false if it connected
// (the connection is closed again at once). Other errors throw.
bool connection_refused(const std::string& host, std::uint16_t port);

}  // namespace talkserve::itest
