#include "support/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <deque>
#include <limits>
#include <stdexcept>

namespace talkserve::itest {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

std::optional<std::string> find_header(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return std::nullopt;
}

// Runs one async operation on `ioc` to completion under the stream's timeout.
template <typename Start>
error_code run_op(asio::io_context& ioc, beast::tcp_stream& stream,
                  std::chrono::milliseconds timeout, std::size_t* bytes, Start start) {
  error_code result;
  bool done = false;
  stream.expires_after(timeout);
  start([&](error_code ec, std::size_t n) {
    result = ec;
    if (bytes) *bytes = n;
    done = true;
  });
  ioc.restart();
  while (!done && ioc.run_one() > 0) {
  }
  stream.expires_never();
  if (!done) throw std::logic_error("http_client: operation did not complete");
  return result;
}

void connect(asio::io_context& ioc, beast::tcp_stream& stream, const std::string& host,
             std::uint16_t port, std::chrono::milliseconds timeout) {
  tcp::endpoint ep(asio::ip::make_address(host), port);
  auto ec = run_op(ioc, stream, timeout, nullptr, [&](auto handler) {
    stream.async_connect(ep, [handler](error_code e) mutable { handler(e, 0); });
  });
  if (ec) {
    throw std::runtime_error("connect to " + host + ":" + std::to_string(port) + ": " +
                             ec.message());
  }
}

http::request<http::string_body> make_request(const HttpClient& client, std::string_view method,
                                              std::string_view target, std::string body,
                                              const Headers& headers) {
  http::request<http::string_body> req;
  auto verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    req.method_string(method);
  } else {
    req.method(verb);
  }
  req.target(target);
  req.version(11);
  req.set(http::field::host, client.host() + ":" + std::to_string(client.port()));
  req.set(http::field::user_agent, "talkserve-integration-test");
  bool has_content_type = false;
  for (const auto& [k, v] : headers) {
    req.set(k, v);
    if (iequals(k, "Content-Type")) has_content_type = true;
  }
  if (!body.empty() && !has_content_type) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  if (!req.body().empty() || verb == http::verb::post || verb == http::verb::put) {
    req.prepare_payload();
  }
  req.keep_alive(false);
  return req;
}

template <typename Fields>
Headers copy_headers(const Fields& fields) {
  Headers out;
  for (const auto& f : fields) out.emplace_back(std::string(f.name_string()), std::string(f.value()));
  return out;
}

void throw_io(const char* what, const error_code& ec, std::string_view target) {
  throw std::runtime_error(std::string(what) + " " + std::string(target) + ": " + ec.message());
}

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  return find_header(headers, name);
}

nlohmann::json HttpResponse::json() const {
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("response body (status " + std::to_string(status) +
                             ") is not JSON: " + e.what() + "\nbody: " + body);
  }
}

HttpClient::HttpClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout)
    : host_(std::move(host)), port_(port), timeout_(timeout) {}

HttpResponse HttpClient::request(std::string_view method, std::string_view target,
                                 std::string body, const Headers& headers) const {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  connect(ioc, stream, host_, port_, timeout_);
  auto req = make_request(*this, method, target, std::move(body), headers);
  auto ec = run_op(ioc, stream, timeout_, nullptr,
                   [&](auto handler) { http::async_write(stream, req, handler); });
  if (ec) throw_io("writing request", ec, target);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  if (method == "HEAD") parser.skip(true);
  ec = run_op(ioc, stream, timeout_, nullptr,
              [&](auto handler) { http::async_read(stream, buffer, parser, handler); });
  if (ec) throw_io("reading response to", ec, target);

  HttpResponse out;
  out.status = parser.get().result_int();
  out.headers = copy_headers(parser.get().base());
  out.body = std::move(parser.get().body());
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return out;
}

HttpResponse HttpClient::get(std::string_view target, const Headers& headers) const {
  return request("GET", target, {}, headers);
}

HttpResponse HttpClient::post_json(std::string_view target, const nlohmann::json& body,
                                   const Headers& headers) const {
  return request("POST", target, body.dump(), headers);
}

// ---------------------------------------------------------------------------------------------

struct SseStream::Impl {
  Impl(const HttpClient& c) : client(c), stream(ioc) {}

  // A copy: tests pass a temporary (`SseStream s(server.client(), ...)`).
  const HttpClient client;
  asio::io_context ioc;
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  std::string target;
  Headers headers;
  unsigned status = 0;
  std::string unread;       // body bytes not yet split into events
  std::string event_data;   // data lines of the event being assembled
  bool event_has_data = false;
  std::deque<std::string> events;
  bool ended = false;
  bool closed = false;

  // Reads some more of the body into `unread`; sets `ended` at the end of the response.
  void read_more() {
    if (ended) return;
    if (closed) throw std::runtime_error("SseStream: read after close()");
    std::size_t n = 0;
    auto ec = run_op(ioc, stream, client.timeout(), &n, [&](auto handler) {
      http::async_read_some(stream, buffer, parser, handler);
    });
    auto& body = parser.get().body();
    unread += body;
    body.clear();
    if (ec == http::error::end_of_stream || ec == asio::error::eof) {
      ended = true;
      return;
    }
    if (ec) throw_io("reading stream of", ec, target);
    if (parser.is_done()) ended = true;
  }

  // Splits complete lines of `unread` into events (the SSE parsing rules, data field only).
  void parse_events() {
    std::size_t start = 0;
    for (;;) {
      auto nl = unread.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(unread.data() + start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) {
        if (event_has_data) events.push_back(std::move(event_data));
        event_data.clear();
        event_has_data = false;
        continue;
      }
      if (line.front() == ':') continue;  // comment / keep-alive
      auto colon = line.find(':');
      std::string_view field = line.substr(0, colon);
      std::string_view value;
      if (colon != std::string_view::npos) {
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      }
      if (field == "data") {
        if (event_has_data) event_data += '\n';
        event_data += value;
        event_has_data = true;
      }
    }
    unread.erase(0, start);
  }
};

SseStream::SseStream(const HttpClient& client, std::string_view method, std::string_view target,
                     std::string body, const Headers& headers)
    : impl_(std::make_unique<Impl>(client)) {
  auto& d = *impl_;
  d.target = std::string(target);
  d.parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  connect(d.ioc, d.stream, client.host(), client.port(), client.timeout());
  Headers h = headers;
  if (!find_header(h, "Accept")) h.emplace_back("Accept", "text/event-stream");
  auto req = make_request(client, method, target, std::move(body), h);
  auto ec = run_op(d.ioc, d.stream, client.timeout(), nullptr,
                   [&](auto handler) { http::async_write(d.stream, req, handler); });
  if (ec) throw_io("writing request", ec, target);
  ec = run_op(d.ioc, d.stream, client.timeout(), nullptr, [&](auto handler) {
    http::async_read_header(d.stream, d.buffer, d.parser, handler);
  });
  if (ec) throw_io("reading response head of", ec, target);
  d.status = d.parser.get().result_int();
  d.headers = copy_headers(d.parser.get().base());
  if (d.parser.is_done()) d.ended = true;
}

SseStream::SseStream(const HttpClient& client, std::string_view target, const nlohmann::json& body,
                     const Headers& headers)
    : SseStream(client, "POST", target, body.dump(), headers) {}

SseStream::~SseStream() { close(); }

unsigned SseStream::status() const { return impl_->status; }

std::optional<std::string> SseStream::header(std::string_view name) const {
  return find_header(impl_->headers, name);
}

std::optional<std::string> SseStream::next_data() {
  auto& d = *impl_;
  for (;;) {
    d.parse_events();
    if (!d.events.empty()) {
      std::string out = std::move(d.events.front());
      d.events.pop_front();
      return out;
    }
    if (d.ended) return std::nullopt;  // an unterminated last event is dropped, as SSE says
    d.read_more();
  }
}

std::vector<std::string> SseStream::read_all() {
  std::vector<std::string> out;
  while (auto e = next_data()) out.push_back(std::move(*e));
  return out;
}

std::string SseStream::read_body() {
  auto& d = *impl_;
  while (!d.ended) d.read_more();
  return std::move(d.unread);
}

void SseStream::close() {
  auto& d = *impl_;
  if (d.closed) return;
  d.closed = true;
  error_code ignored;
  d.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  d.stream.socket().close(ignored);
}

std::vector<std::string> sse_post(const HttpClient& client, std::string_view target,
                                  const nlohmann::json& body, const Headers& headers) {
  SseStream s(client, target, body, headers);
  if (s.status() != 200) {
    throw std::runtime_error("POST " + std::string(target) + " answered " +
                             std::to_string(s.status()) + ": " + s.read_body());
  }
  return s.read_all();
}

bool connection_refused(const std::string& host, std::uint16_t port) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  error_code ec;
  socket.connect(tcp::endpoint(asio::ip::make_address(host), port), ec);
  if (ec == asio::error::connection_refused) return true;
  if (ec) throw std::runtime_error("connect to " + host + ":" + std::to_string(port) + ": " +
                                   ec.message());
  socket.close(ec);
  return false;
}

}  // namespace talkserve::itest
