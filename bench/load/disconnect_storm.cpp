#include "disconnect_storm.hpp"

#include <functional>
#include <utility>

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <memory>
#include <stdexcept>
#include <vector>

namespace talkserve::load {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using WsStream = websocket::stream<beast::tcp_stream>;

namespace {

struct ClientState {
  bool ready = false;    // had its first bytes
  bool content = false;  // had generated text or media
  bool ended = false;    // the stream ended or failed on its own
};

// Shared by the storm's coroutines, all on one thread.
struct StormState {
  explicit StormState(asio::any_io_executor ex) : wake(std::move(ex)) {}
  int expected = 0;
  int settled = 0;  // clients ready or ended
  // The chat streams start once every live session is settled (they are short on a fast
  // engine: started first, many would be over before the slower sessions had begun).
  int live_pending = 0;
  std::function<void()> start_chat;
  bool dropped = false;
  std::string first_error;
  std::vector<ClientState> clients;
  // Kept here (not only in the client coroutines) so the drop reaches every socket at once.
  std::vector<std::shared_ptr<beast::tcp_stream>> chat_streams;
  std::vector<std::shared_ptr<WsStream>> live_streams;
  asio::steady_timer wake;

  void settle() {
    if (++settled == expected) wake.cancel();
  }
  void settle_live() {
    if (--live_pending == 0 && start_chat) std::exchange(start_chat, nullptr)();
  }
  void ready(std::size_t i) {
    clients[i].ready = true;
    settle();
    if (is_live(i)) settle_live();
  }
  bool is_live(std::size_t i) const { return i >= clients.size() - static_cast<std::size_t>(live_clients); }
  int live_clients = 0;
  // The client's stream is over before the drop: it never counts as dropped mid-stream.
  void end(std::size_t i, const std::string& why) {
    if (dropped) return;
    ClientState& c = clients[i];
    const bool was_ready = c.ready;
    c.ended = true;
    if (!why.empty() && first_error.empty()) first_error = why;
    if (!was_ready) {
      settle();
      if (is_live(i)) settle_live();
    }
  }
};

// Abrupt close: with SO_LINGER {on, 0} close() discards unsent data and sends a RST.
void reset(tcp::socket& socket) {
  if (!socket.is_open()) return;
  beast::error_code ignored;
  socket.set_option(asio::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
}

asio::awaitable<beast::error_code> connect(beast::tcp_stream& stream, const Target& target) {
  beast::error_code ec;
  tcp::resolver resolver(co_await asio::this_coro::executor);
  auto endpoints = co_await resolver.async_resolve(target.host, target.port,
                                                   asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  co_return ec;
}

asio::awaitable<void> chat_client(std::shared_ptr<StormState> st, Target target, StormOptions o,
                                  std::size_t i) {
  auto stream = std::make_shared<beast::tcp_stream>(co_await asio::this_coro::executor);
  st->chat_streams.push_back(stream);
  beast::error_code ec = co_await connect(*stream, target);
  if (ec) {
    st->end(i, "connect: " + ec.message());
    co_return;
  }
  http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
  req.set(http::field::host, target.host + ":" + target.port);
  req.set(http::field::content_type, "application/json");
  if (!target.api_key.empty()) req.set(http::field::authorization, "Bearer " + target.api_key);
  req.body() = json{{"model", o.model},
                    {"stream", true},
                    {"max_tokens", o.chat_max_tokens},
                    {"ignore_eos", true},
                    {"messages", json::array({json{{"role", "user"}, {"content", question(i)}}})}}
                   .dump();
  req.prepare_payload();
  co_await http::async_write(*stream, req, asio::redirect_error(asio::use_awaitable, ec));
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  if (!ec)
    co_await http::async_read_header(*stream, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    st->end(i, "chat: " + ec.message());
    co_return;
  }
  if (parser.get().result_int() != 200) {
    {
      st->end(i, "chat: HTTP " + std::to_string(parser.get().result_int()));
      co_return;
    }
  }
  st->ready(i);
  while (!parser.is_done()) {
    co_await http::async_read_some(*stream, buffer, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    if (parser.get().body().find("\"content\"") != std::string::npos) st->clients[i].content = true;
  }
  st->end(i, {});
}

asio::awaitable<void> live_client(std::shared_ptr<StormState> st, Target target, StormOptions o,
                                  std::size_t i) {
  auto ws = std::make_shared<WsStream>(co_await asio::this_coro::executor);
  st->live_streams.push_back(ws);
  beast::error_code ec = co_await connect(beast::get_lowest_layer(*ws), target);
  if (ec) {
    st->end(i, "connect: " + ec.message());
    co_return;
  }
  const std::string api_key = target.api_key;
  ws->set_option(websocket::stream_base::decorator([api_key](websocket::request_type& req) {
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  }));
  const std::string host = target.host + ":" + target.port;
  co_await ws->async_handshake(host, "/v1/stream", asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    st->end(i, "live upgrade: " + ec.message());
    co_return;
  }
  const std::string start = json{{"type", "session.start"}, {"video", o.live_video}}.dump();
  co_await ws->async_write(asio::buffer(start), asio::redirect_error(asio::use_awaitable, ec));
  beast::flat_buffer in;
  while (!ec) {
    in.clear();
    co_await ws->async_read(in, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    if (!ws->got_text()) {
      st->clients[i].content = true;
      continue;
    }
    const auto event = json::parse(beast::buffers_to_string(in.data()), nullptr, false);
    const std::string type = event.is_object() ? event.value("type", "") : "";
    if (type == "session.started") {
      const std::string turn = json{{"type", "input.text"}, {"text", question(i)}}.dump();
      co_await ws->async_write(asio::buffer(turn), asio::redirect_error(asio::use_awaitable, ec));
    } else if (type == "response.started") {
      st->ready(i);
    } else if (type == "reply.delta") {
      st->clients[i].content = true;
    } else if (type == "response.done") {
      {
        st->end(i, {});
        co_return;
      }
    } else if (type == "error") {
      {
        st->end(i, "live: " + event.dump().substr(0, 300));
        co_return;
      }
    }
  }
  st->end(i, "live: " + ec.message());
}

}  // namespace

asio::awaitable<Gauges> read_gauges(const Target& target) {
  const std::string path = "/metrics";
  const GetResult r = co_await http_get(target, path, std::chrono::seconds(10));
  if (r.status != 200) {
    throw std::runtime_error("GET /metrics: " +
                             (r.status ? "HTTP " + std::to_string(r.status) : r.error));
  }
  co_return gauges_of(r.body);
}

asio::awaitable<StormReport> run_storm(const Target& target, const StormOptions& o) {
  if (o.clients < 2) throw std::invalid_argument("the storm needs at least 2 clients");
  StormReport r;
  r.before = co_await read_gauges(target);
  if (const std::string b = busy(r.before, r.before); !b.empty())
    throw std::runtime_error("the server is not at rest before the storm: " + b);
  if (r.before.kv_usage != 0)
    throw std::runtime_error("KV blocks in use before the storm: " +
                             std::to_string(r.before.kv_usage));

  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<StormState>(ex);
  st->expected = o.clients;
  st->clients.resize(static_cast<std::size_t>(o.clients));
  r.chat_clients = o.clients / 2;
  r.live_clients = o.clients - r.chat_clients;
  const auto t0 = Clock::now();
  st->live_clients = r.live_clients;
  st->live_pending = r.live_clients;
  st->start_chat = [weak = std::weak_ptr<StormState>(st), ex, target, o, chat = r.chat_clients] {
    const auto state = weak.lock();
    if (!state) return;
    for (std::size_t i = 0; i < static_cast<std::size_t>(chat); ++i) {
      asio::co_spawn(ex, chat_client(state, target, o, i), asio::detached);
    }
  };
  for (std::size_t i = static_cast<std::size_t>(r.chat_clients); i < static_cast<std::size_t>(o.clients); ++i) {
    asio::co_spawn(ex, live_client(st, target, o, i), asio::detached);
  }
  st->wake.expires_after(o.hold_timeout);
  beast::error_code ec;
  co_await st->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  r.hold_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  r.first_error = st->first_error;
  r.at_drop = co_await read_gauges(target);

  st->dropped = true;
  for (const auto& c : st->clients) {
    if (c.ended)
      ++r.ended_early;
    else if (c.ready) {
      ++r.mid_stream;
      if (c.content) ++r.with_content;
    }
  }
  for (auto& s : st->chat_streams) reset(s->socket());
  for (auto& s : st->live_streams) reset(beast::get_lowest_layer(*s).socket());
  const auto dropped_at = Clock::now();

  // A child process has nothing to wait on: poll its gauges.
  asio::steady_timer tick(ex);
  for (;;) {
    r.after = co_await read_gauges(target);
    const double since =
        std::chrono::duration<double, std::milli>(Clock::now() - dropped_at).count();
    r.still_busy = busy(r.after, r.before);
    if (r.still_busy.empty()) {
      r.idle = true;
      r.time_to_idle_ms = since;
      break;
    }
    if (since > static_cast<double>(o.idle_timeout.count())) break;
    tick.expires_after(std::chrono::milliseconds(10));
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return r;
}

nlohmann::json StormReport::to_json() const {
  nlohmann::json j{
      {"chat_clients", chat_clients},
      {"live_clients", live_clients},
      {"mid_stream", mid_stream},
      {"with_content", with_content},
      {"ended_early", ended_early},
      {"hold_ms", hold_ms},
      {"gauges_before", load::to_json(before)},
      {"gauges_at_drop", load::to_json(at_drop)},
      {"gauges_after", load::to_json(after)},
      {"idle", idle},
      {"time_to_idle_ms", idle ? nlohmann::json(time_to_idle_ms) : nlohmann::json(nullptr)}};
  if (!first_error.empty()) j["first_error"] = first_error;
  if (!still_busy.empty()) j["still_busy"] = still_busy;
  return j;
}

}  // namespace talkserve::load
