#pragma once
// What a route handler sees: the request, its context (trace id, priority from the gateway,
// path parameters) and the ways to answer it: one complete response, a server-sent-event or
// chunked stream, or (for WebSocket routes) a session.
//
// Handlers are coroutines run on the connection's strand. They must not block: model work is
// handed to an executor and awaited (see async_bridge.hpp).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "talkserve/net/stream_writer.hpp"

namespace talkserve::net {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

struct RequestContext {
  std::string trace_id;
  int priority = 1;          // 0 = highest (vip), 1 = standard, 2 = batch
  std::string principal;     // API key name; empty when auth is off
  std::string route_name;
  std::map<std::string, std::string, std::less<>> params;  // path parameters
  std::shared_ptr<void> admission;  // held for the request's lifetime (in-flight permit)
  std::chrono::steady_clock::time_point received{};
};

class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual const Request& request() const = 0;
  virtual RequestContext& context() = 0;
  virtual boost::asio::any_io_executor executor() = 0;

  // The named path parameter ("" if absent).
  std::string_view param(std::string_view name) {
    auto it = context().params.find(name);
    return it == context().params.end() ? std::string_view{} : std::string_view{it->second};
  }

  // Sends one complete response (trace id, CORS and keep-alive headers are added).
  virtual boost::asio::awaitable<void> respond(Response res) = 0;

  // Sends the response head for a stream (chunked transfer encoding, Connection: close) and
  // returns the writer. Producers push() from any thread and close() it when done; after the
  // handler returns, the connection drains the writer until it is closed or the client goes
  // away (then the writer's on_disconnect fires, so the producer can cancel its work).
  // Handlers do not call run() themselves.
  virtual boost::asio::awaitable<std::shared_ptr<StreamWriter>> start_stream(
      std::string content_type, http::status status = http::status::ok) = 0;

  virtual bool responded() const = 0;

  // Calls `on_gone` (on the connection's strand) if the client closes the connection before
  // the response is complete, so the handler can cancel its queued and running work; once
  // the response is complete it is dropped uncalled. Each registered callback is called. The
  // response is then sent with "Connection: close". Streams watch automatically.
  virtual void watch_disconnect(std::function<void()> on_gone) = 0;
};

using HttpHandler = std::function<boost::asio::awaitable<void>(HttpExchange&)>;

// JSON error body in the OpenAI shape: {"error":{"message","type","code"}}.
std::string error_body(std::string_view message, std::string_view type, std::string_view code);
Response make_error(http::status status, std::string_view message, std::string_view type,
                    std::string_view code, unsigned version = 11);
Response make_json(http::status status, std::string body, unsigned version = 11);

// Formats one server-sent event ("data: ...\n\n", with an optional "event:" line).
std::string sse_event(std::string_view data, std::string_view event = {});

class WebSocketSession;

// Receives a WebSocket session's messages on the session's strand. Must not block.
class WebSocketHandler {
 public:
  virtual ~WebSocketHandler() = default;
  virtual void on_open(const std::shared_ptr<WebSocketSession>& session) { (void)session; }
  virtual void on_message(const std::shared_ptr<WebSocketSession>& session, std::string data,
                          bool binary) = 0;
  // Called once when the server begins draining: finish the current turn, then close the
  // session (1001 going away). stop() closes it with 1001 once the grace period is over.
  virtual void on_drain(const std::shared_ptr<WebSocketSession>& session) { (void)session; }
  // Called once when the session ends for any reason (client close, error, server drain).
  virtual void on_close(const std::shared_ptr<WebSocketSession>& session) { (void)session; }
};

// Returns the handler of a new connection, or null to refuse the upgrade with 503.
using WebSocketHandlerFactory =
    std::function<std::shared_ptr<WebSocketHandler>(const RequestContext&)>;

}  // namespace talkserve::net
