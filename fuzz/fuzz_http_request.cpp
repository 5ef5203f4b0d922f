// Raw bytes as one TCP connection to the real HTTP server (HttpServer, its connection loop and
// Beast's parser, the Router with its body limits, CORS and keep-alive), whose routes parse JSON
// bodies with the OpenAI request parser (llm/api/openai_protocol) and multipart bodies with
// form_data_of(), as the LLM, transcription and talk handlers do. The input may hold several
// pipelined requests; the client half-closes after sending them.
//
// Fails on: a sanitizer report; a connection the server does not close after the client has
// sent everything (a hang, caught by -timeout); an answer that is not a sequence of well-formed
// HTTP responses; any 5xx (a handler threw something other than an ApiError); a 4xx whose body
// is not the JSON error shape, or, answering HEAD (no body, RFC 9110 9.3.2), whose Content-Type
// is not JSON.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "openai_protocol.hpp"
#include "talkserve/net/api_error.hpp"
#include "talkserve/net/http_server.hpp"
#include "talkserve/net/multipart.hpp"
#include "talkserve/obs/metrics.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace talkserve;

[[noreturn]] void fail(const std::string& why, const std::string& answer) {
  std::fprintf(stderr, "fuzz_http_request: %s\n--- answer ---\n%s\n", why.c_str(), answer.c_str());
  std::abort();
}

// The LLM handler's shape: parse, map ApiError to its response, else answer with a completion
// built from the parsed request (response building sees every client string too).
asio::awaitable<void> openai_route(net::HttpExchange& ex, llm::api::Endpoint endpoint) {
  const unsigned version = ex.request().version();
  std::optional<net::ApiError> error;
  llm::api::ParsedRequest req;
  try {
    req = llm::api::parse_request(endpoint, ex.request().body(), 16);
  } catch (const net::ApiError& e) {
    error = e;
  }
  if (error) co_return co_await ex.respond(net::error_response(*error, version));
  llm::api::ResponseMeta meta{llm::api::make_response_id(endpoint), 0, req.model};
  llm::api::CompletionResult result;
  result.text = req.prompt_text.value_or(req.messages.empty() ? "" : req.messages.back().content);
  const auto body = req.stream
                        ? llm::api::stream_chunk(req, meta, result.text, {}, llm::FinishReason::stop, true)
                        : llm::api::completion_response(req, meta, result);
  co_await ex.respond(net::make_json(http::status::ok, llm::api::dump_json(body), version));
}

// The transcription/talk handlers' shape: form fields by name.
asio::awaitable<void> form_route(net::HttpExchange& ex) {
  const unsigned version = ex.request().version();
  std::optional<net::ApiError> error;
  nlohmann::json names = nlohmann::json::array();
  try {
    auto parts = net::form_data_of(ex.request());
    if (!parts) throw net::ApiError(415, "expected multipart/form-data", "", "unsupported_media_type");
    for (const auto& p : *parts) names.push_back({{"name", p.name}, {"bytes", p.data.size()}});
  } catch (const net::ApiError& e) {
    error = e;
  }
  if (error) co_return co_await ex.respond(net::error_response(*error, version));
  co_await ex.respond(net::make_json(
      http::status::ok, names.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), version));
}

struct Harness {
  asio::io_context ioc{1};
  net::Router router;
  obs::MetricsRegistry metrics;
  std::unique_ptr<net::HttpServer> server;
  tcp::endpoint endpoint;

  Harness() {
    spdlog::set_level(spdlog::level::off);
    net::RouteOptions small;
    small.body_limit = 4096;
    router.add(http::verb::post, "/v1/chat/completions",
               [](net::HttpExchange& ex) { return openai_route(ex, llm::api::Endpoint::chat); });
    router.add(http::verb::post, "/v1/completions",
               [](net::HttpExchange& ex) { return openai_route(ex, llm::api::Endpoint::completions); },
               small);
    router.add(http::verb::post, "/v1/audio/transcriptions", form_route);
    router.add(http::verb::get, "/v1/sessions/{id}", [](net::HttpExchange& ex) -> asio::awaitable<void> {
      nlohmann::json j{{"id", std::string(ex.param("id"))}};
      co_await ex.respond(net::make_json(
          http::status::ok, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
          ex.request().version()));
    });
    router.add(http::verb::delete_, "/v1/sessions/{id}", [](net::HttpExchange& ex) -> asio::awaitable<void> {
      co_await ex.respond(net::Response{http::status::no_content, ex.request().version()});
    });
    net::HttpConfig cfg;
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.static_dir = "";
    cfg.max_body_bytes = 64 * 1024;
    cfg.max_header_bytes = 8 * 1024;
    cfg.cors_allowed_origins = {"https://app.example"};
    // The client sends everything at once and half-closes: nothing should wait for these.
    cfg.header_timeout = std::chrono::milliseconds(3000);
    cfg.body_timeout = std::chrono::milliseconds(3000);
    cfg.write_timeout = std::chrono::milliseconds(3000);
    cfg.keepalive_timeout = std::chrono::milliseconds(3000);
    server = std::make_unique<net::HttpServer>(ioc, cfg, router, metrics);
    endpoint = tcp::endpoint(asio::ip::make_address("127.0.0.1"), server->start());
  }
};

// The methods of the requests in `input`, as far as they parse (HEAD answers have no body).
std::vector<http::verb> request_methods(std::string_view input) {
  std::vector<http::verb> methods;
  while (!input.empty()) {
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    // A body longer than what is left of the input cannot be complete: the limit stops the
    // parser at the head (Content-Length is checked against it there) instead of letting it
    // reserve a claimed size of up to 2^64 bytes.
    parser.body_limit(input.size());
    beast::error_code ec;
    const std::size_t used = parser.put(asio::buffer(input.data(), input.size()), ec);
    if (ec || !parser.is_done()) {
      // body_limit is reported once the whole head is parsed, as the head completes.
      if (parser.is_header_done() || ec == http::error::body_limit)
        methods.push_back(parser.get().method());
      break;
    }
    methods.push_back(parser.get().method());
    input.remove_prefix(used);
  }
  return methods;
}

// Checks that `answer` is a sequence of complete HTTP responses with no 5xx.
void check_answer(const std::string& answer, std::string_view input) {
  const auto methods = request_methods(input);
  std::size_t index = 0;
  std::string_view rest = answer;
  while (!rest.empty()) {
    http::response_parser<http::string_body> parser;
    const bool head = index < methods.size() && methods[index] == http::verb::head;
    parser.skip(head);
    parser.eager(true);
    parser.body_limit(16 * 1024 * 1024);
    beast::error_code ec;
    const std::size_t used = parser.put(asio::buffer(rest.data(), rest.size()), ec);
    // A response without a length (none here) would need EOF to finish.
    if (!ec && !parser.is_done()) parser.put_eof(ec);
    if (ec || !parser.is_done()) fail("malformed HTTP response: " + ec.message(), answer);
    const auto& res = parser.get();
    const unsigned status = res.result_int();
    if (status >= 500) fail("server error " + std::to_string(status), answer);
    if (status >= 400 && head) {
      if (res[http::field::content_type].find("application/json") != 0)
        fail("error answer to HEAD is not JSON", answer);
    } else if (status >= 400) {
      auto j = nlohmann::json::parse(res.body(), nullptr, false);
      if (j.is_discarded() || !j.contains("error")) fail("error body is not the JSON error shape", answer);
    }
    rest.remove_prefix(used);
    if (status >= 200) ++index;  // 100 Continue is followed by the request's final response
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Harness* h = new Harness();  // the server lives for the whole run
  tcp::socket client(h->ioc);
  std::string answer;
  bool done = false;
  beast::error_code connect_ec;
  beast::error_code read_ec;
  // Asynchronous like the rest: a blocking connect() failed with EINTR when libFuzzer's
  // -timeout alarm (SIGALRM, its handler installed without SA_RESTART) landed in it.
  client.async_connect(h->endpoint, [&](beast::error_code ec) {
    if (ec) {
      connect_ec = ec;
      done = true;
      return;
    }
    asio::async_write(client, asio::buffer(data, size), [&](beast::error_code ec, std::size_t) {
      beast::error_code ignored;
      if (!ec) client.shutdown(tcp::socket::shutdown_send, ignored);
      // Read to EOF (or to a reset when the server refused early): the server must close.
      asio::async_read(client, asio::dynamic_buffer(answer),
                       [&](beast::error_code ec, std::size_t) {
                         read_ec = ec;
                         done = true;
                       });
    });
  });
  while (!done) h->ioc.run_one();
  if (connect_ec) fail("cannot connect to the server: " + connect_ec.message(), "");
  // No TIME_WAIT on the client side: a long run would exhaust the ephemeral ports.
  beast::error_code ec;
  client.set_option(asio::socket_base::linger(true, 0), ec);
  client.close(ec);
  // After a reset the answer may be cut short; only a clean close promises it is whole.
  if (read_ec == asio::error::eof) {
    check_answer(answer, std::string_view(reinterpret_cast<const char*>(data), size));
  }
  return 0;
}
