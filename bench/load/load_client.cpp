#include "load_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace talkserve::load {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

Target parse_target(const std::string& url) {
  std::string rest = url;
  for (const char* scheme : {"http://", "ws://"}) {
    if (rest.rfind(scheme, 0) == 0) rest.erase(0, std::char_traits<char>::length(scheme));
  }
  if (rest.find("://") != std::string::npos)
    throw std::invalid_argument("only http:// or ws:// targets: " + url);
  rest = rest.substr(0, rest.find('/'));
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size())
    throw std::invalid_argument("expected HOST:PORT, got '" + url + "'");
  Target t;
  t.host = rest.substr(0, colon);
  t.port = rest.substr(colon + 1);
  return t;
}

std::string_view to_string(RequestClass c) {
  switch (c) {
    case RequestClass::chat:
      return "chat";
    case RequestClass::transcription:
      return "transcription";
    case RequestClass::talk:
      return "talk";
    case RequestClass::live:
      return "live";
  }
  return "?";
}

RequestClass class_from_string(std::string_view name) {
  for (RequestClass c : kAllClasses)
    if (to_string(c) == name) return c;
  throw std::invalid_argument("unknown request class '" + std::string(name) +
                              "' (chat, transcription, talk, live)");
}

std::string_view to_string(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::rate_limited:
      return "429";
    case Status::overloaded:
      return "503";
    case Status::client_error:
      return "4xx";
    case Status::server_error:
      return "5xx";
    case Status::connection:
      return "conn_error";
    case Status::timeout:
      return "timeout";
  }
  return "?";
}

namespace {

const char* const kAdjectives[] = {"little", "brave",  "sleepy", "curious", "happy", "tiny",
                                   "old",    "clever", "shy",    "funny",   "kind",  "lazy",
                                   "proud",  "quiet",  "silly",  "gentle"};
const char* const kAnimals[] = {"cat",    "dog",   "bird", "fish",  "frog",  "bear",
                                "rabbit", "mouse", "duck", "horse", "lion",  "fox",
                                "owl",    "pig",   "cow",  "sheep", "tiger", "monkey",
                                "turtle", "goat",  "deer", "wolf",  "snake", "bee"};

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Status status_of_http(int code) {
  if (code == 200) return Status::ok;
  if (code == 429) return Status::rate_limited;
  if (code == 503) return Status::overloaded;
  if (code >= 400 && code < 500) return Status::client_error;
  return Status::server_error;
}

// A Beast error as a status: the tcp_stream deadline expiring is a timeout, anything else a
// broken connection.
Status status_of_error(const beast::error_code& ec) {
  return ec == beast::error::timeout ? Status::timeout : Status::connection;
}

asio::awaitable<beast::error_code> connect(beast::tcp_stream& stream, const Target& target,
                                           Clock::time_point deadline) {
  beast::error_code ec;
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto endpoints = co_await resolver.async_resolve(target.host, target.port,
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return ec;
  stream.expires_at(deadline);
  co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) stream.socket().set_option(tcp::no_delay(true), ec);
  co_return ec;
}

struct Exchange {
  int http_status = 0;
  std::string body;
  double ttfb_ms = -1;
  double latency_ms = 0;
  beast::error_code ec;
};

// Sends `req` and reads the whole response, noting when the first body byte arrived.
asio::awaitable<Exchange> exchange(const Target& target, http::request<http::string_body>& req,
                                   std::chrono::milliseconds timeout) {
  Exchange x;
  const auto t0 = Clock::now();
  const auto deadline = t0 + timeout;
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  x.ec = co_await connect(stream, target, deadline);
  if (x.ec) {
    x.latency_ms = ms_since(t0);
    co_return x;
  }
  req.set(http::field::host, target.host + ":" + target.port);
  if (!target.api_key.empty()) req.set(http::field::authorization, "Bearer " + target.api_key);
  req.prepare_payload();
  stream.expires_at(deadline);
  co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, x.ec));
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256u << 20);
  while (!x.ec && !parser.is_done()) {
    co_await http::async_read_some(stream, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, x.ec));
    if (x.ttfb_ms < 0 && !parser.get().body().empty()) x.ttfb_ms = ms_since(t0);
  }
  x.latency_ms = ms_since(t0);
  if (parser.is_header_done()) x.http_status = static_cast<int>(parser.get().result_int());
  x.body = std::move(parser.get().body());
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return x;
}

Outcome outcome_of(RequestClass cls, const Exchange& x) {
  Outcome o;
  o.cls = cls;
  o.http_status = x.http_status;
  o.ttfb_ms = x.ttfb_ms;
  o.latency_ms = x.latency_ms;
  if (x.ec) {
    o.status = status_of_error(x.ec);
    o.error = x.ec.message();
  } else {
    o.status = status_of_http(x.http_status);
    if (o.status != Status::ok)
      o.error = "HTTP " + std::to_string(x.http_status) + ": " + x.body.substr(0, 200);
  }
  return o;
}

http::request<http::string_body> json_post(std::string path, const json& body) {
  http::request<http::string_body> req{http::verb::post, path, 11};
  req.set(http::field::content_type, "application/json");
  req.body() = body.dump();
  return req;
}

asio::awaitable<Outcome> chat(const Target& target, const TrafficOptions& o, std::uint64_t k) {
  auto req = json_post(
      "/v1/chat/completions",
      json{{"model", o.model},
           {"stream", true},
           {"max_tokens", o.chat_max_tokens},
           {"messages", json::array({json{{"role", "user"}, {"content", question(k)}}})}});
  req.set(http::field::accept, "text/event-stream");
  const Exchange x = co_await exchange(target, req, o.timeout);
  Outcome out = outcome_of(RequestClass::chat, x);
  if (out.status != Status::ok) co_return out;
  // A 200 stream that failed half-way carries an error event and no [DONE].
  if (x.body.find("data: [DONE]") == std::string::npos) {
    out.status = Status::server_error;
    out.error = "stream without [DONE]: " + x.body.substr(0, 200);
  } else if (x.body.find("data: {\"error\"") != std::string::npos) {
    out.status = Status::server_error;
    out.error = "error event in the stream";
  }
  co_return out;
}

asio::awaitable<Outcome> transcription(const Target& target, const TrafficOptions& o) {
  const std::string boundary = "talkserve-load-7d3f9a2c";
  std::string body;
  body +=
      "--" + boundary + "\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n";
  body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" +
          o.wav_name + "\"\r\nContent-Type: audio/wav\r\n\r\n";
  body += o.wav_bytes;
  body += "\r\n--" + boundary + "--\r\n";
  http::request<http::string_body> req{http::verb::post, "/v1/audio/transcriptions", 11};
  req.set(http::field::content_type, "multipart/form-data; boundary=" + boundary);
  req.body() = std::move(body);
  const Exchange x = co_await exchange(target, req, o.timeout);
  Outcome out = outcome_of(RequestClass::transcription, x);
  if (out.status == Status::ok) {
    const auto j = json::parse(x.body, nullptr, false);
    if (j.is_discarded() || !j.contains("text")) {
      out.status = Status::server_error;
      out.error = "no transcript in: " + x.body.substr(0, 200);
    }
  }
  co_return out;
}

asio::awaitable<Outcome> talk(const Target& target, const TrafficOptions& o, std::uint64_t k) {
  auto req = json_post("/v1/talk", json{{"text", question(k)}});
  const Exchange x = co_await exchange(target, req, o.timeout);
  Outcome out = outcome_of(RequestClass::talk, x);
  if (out.status == Status::ok) {
    const auto j = json::parse(x.body, nullptr, false);
    if (j.is_discarded() || !j.contains("video_url")) {
      out.status = Status::server_error;
      out.error = "no video_url in: " + x.body.substr(0, 200);
    }
  }
  co_return out;
}

asio::awaitable<Outcome> live(const Target& target, const TrafficOptions& o, std::uint64_t k) {
  Outcome out;
  out.cls = RequestClass::live;
  const auto t0 = Clock::now();
  const auto deadline = t0 + o.timeout;
  websocket::stream<beast::tcp_stream> ws(co_await asio::this_coro::executor);
  auto fail = [&](Status s, std::string why) {
    out.status = s;
    out.error = std::move(why);
    out.latency_ms = ms_since(t0);
    return out;
  };
  beast::error_code ec = co_await connect(beast::get_lowest_layer(ws), target, deadline);
  if (ec) co_return fail(status_of_error(ec), "connect: " + ec.message());
  const std::string api_key = target.api_key;
  ws.set_option(websocket::stream_base::decorator([api_key](websocket::request_type& req) {
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  }));
  websocket::response_type upgrade;
  const std::string host = target.host + ":" + target.port;
  co_await ws.async_handshake(upgrade, host, "/v1/stream",
                              asio::redirect_error(asio::use_awaitable, ec));
  out.http_status = static_cast<int>(upgrade.result_int());
  if (ec) {
    if (out.http_status != 0 && out.http_status != 101) {
      const Status s = status_of_http(out.http_status);
      co_return fail(s, "upgrade refused: HTTP " + std::to_string(out.http_status));
    }
    co_return fail(status_of_error(ec), "upgrade: " + ec.message());
  }
  // The deadline set on the TCP stream bounds the whole turn (Beast's WebSocket timeouts stay off).
  const std::string start = json{{"type", "session.start"}, {"video", o.live_video}}.dump();
  co_await ws.async_write(asio::buffer(start), asio::redirect_error(asio::use_awaitable, ec));
  beast::flat_buffer in;
  bool started = false;
  Clock::time_point sent{};
  while (!ec) {
    in.clear();
    co_await ws.async_read(in, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    if (!ws.got_text()) {
      if (started && out.ttfb_ms < 0) out.ttfb_ms = ms_since(sent);
      continue;
    }
    const auto event = json::parse(beast::buffers_to_string(in.data()), nullptr, false);
    const std::string type = event.is_object() ? event.value("type", "") : "";
    if (type == "session.started") {
      started = true;
      const std::string turn = json{{"type", "input.text"}, {"text", question(k)}}.dump();
      sent = Clock::now();
      co_await ws.async_write(asio::buffer(turn), asio::redirect_error(asio::use_awaitable, ec));
    } else if (type == "reply.delta" && out.ttfb_ms < 0) {
      out.ttfb_ms = ms_since(sent);
    } else if (type == "response.done") {
      out.status = Status::ok;
      out.latency_ms = ms_since(t0);
      websocket::close_reason normal(websocket::close_code::normal);
      co_await ws.async_close(normal, asio::redirect_error(asio::use_awaitable, ec));
      co_return out;
    } else if (type == "error") {
      const json& err = event.contains("error") ? event["error"] : event;
      const auto code =
          err.contains("code") && err["code"].is_string() ? err["code"].get<std::string>() : "";
      co_return fail(code == "queue_full" || code == "overloaded" ? Status::overloaded
                                                                  : Status::server_error,
                     "error event: " + err.dump());
    }
  }
  if (ec == websocket::error::closed) {
    const auto reason = ws.reason();
    const auto code = static_cast<int>(reason.code);
    co_return fail(code == 1011 ? Status::server_error : Status::connection,
                   "closed " + std::to_string(code) + " " + std::string(reason.reason.c_str()));
  }
  co_return fail(status_of_error(ec), ec.message());
}

}  // namespace

std::string question(std::uint64_t k) {
  constexpr std::size_t animals = std::size(kAnimals);
  const char* adjective = kAdjectives[(k / animals) % std::size(kAdjectives)];
  return std::string("Tell me a story about a ") + adjective + " " + kAnimals[k % animals] +
         " number " + std::to_string(k) + ".";
}

asio::awaitable<Outcome> run_request(const Target& target, const TrafficOptions& options,
                                     RequestClass cls, std::uint64_t k) {
  try {
    switch (cls) {
      case RequestClass::chat:
        co_return co_await chat(target, options, k);
      case RequestClass::transcription:
        co_return co_await transcription(target, options);
      case RequestClass::talk:
        co_return co_await talk(target, options, k);
      case RequestClass::live:
        co_return co_await live(target, options, k);
    }
  } catch (const std::exception& e) {
    Outcome o;
    o.cls = cls;
    o.status = Status::connection;
    o.error = e.what();
    co_return o;
  }
  co_return Outcome{};
}

asio::awaitable<GetResult> http_get(const Target& target, const std::string& path,
                                    std::chrono::milliseconds timeout) {
  GetResult r;
  try {
    http::request<http::string_body> req{http::verb::get, path, 11};
    req.set(http::field::connection, "close");
    Exchange x = co_await exchange(target, req, timeout);
    r.status = x.ec ? 0 : x.http_status;
    r.body = std::move(x.body);
    if (x.ec) r.error = x.ec.message();
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  co_return r;
}

}  // namespace talkserve::load
