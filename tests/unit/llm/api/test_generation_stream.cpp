// GenerationStream against a real StreamWriter on an io_context: events keep their order,
// text is coalesced (never dropped) while the client is slow, the stream ends with [DONE].

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "llm/api/generation_stream.hpp"

using namespace talkserve;
using namespace talkserve::llm;
using namespace talkserve::llm::api;
using nlohmann::json;
namespace asio = boost::asio;

namespace {

// One token per lowercase letter: id i is the letter 'a' + i.
class LetterTokenizer final : public Tokenizer {
 public:
  std::string decode_piece(int32_t id, int32_t) const override {
    return std::string(1, static_cast<char>('a' + id));
  }
  int vocab_size() const override { return 26; }
  std::string_view kind() const override { return "letters"; }

 protected:
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const override {
    for (char c : text) out.push_back(c - 'a');
  }
};

struct Sink {
  std::vector<std::string> events;  // SSE payloads, in arrival order
};

std::shared_ptr<net::StreamWriter> make_writer(asio::io_context& ioc, std::size_t limit,
                                               std::shared_ptr<Sink> sink) {
  return std::make_shared<net::StreamWriter>(
      ioc.get_executor(), limit,
      [sink](std::string& msg) -> asio::awaitable<boost::system::error_code> {
        REQUIRE(msg.rfind("data: ", 0) == 0);
        sink->events.push_back(msg.substr(6, msg.size() - 8));
        co_return boost::system::error_code{};
      });
}

TokenEvent token(int32_t id) {
  TokenEvent ev;
  ev.token_ids = {id};
  ev.text = std::string(1, static_cast<char>('a' + id));
  return ev;
}

FinishedEvent finished(FinishReason reason, int completion_tokens) {
  FinishedEvent ev;
  ev.reason = reason;
  ev.usage = {3, completion_tokens, 0};
  return ev;
}

ParsedRequest request(Endpoint ep, const std::string& body) { return parse_request(ep, body, 16); }

}  // namespace

TEST_CASE("a slow client gets every token, coalesced, in order, then [DONE]", "[llm][api]") {
  LetterTokenizer tok;
  asio::io_context ioc;
  auto sink = std::make_shared<Sink>();
  auto writer = make_writer(ioc, 2, sink);
  auto req = request(Endpoint::chat,
                     R"({"messages":[{"role":"user","content":"x"}],"stream":true,
                         "stream_options":{"include_usage":true}})");
  auto hold = std::make_shared<int>(0);
  std::weak_ptr<int> held = hold;
  auto stream = std::make_shared<GenerationStream>(writer, req, ResponseMeta{"chatcmpl-t", 1, "m"},
                                                   tok, -1, std::move(hold));
  writer->set_on_drain([stream] { stream->flush(); });
  stream->start();
  // The client reads nothing yet: the queue (2) fills, the rest must wait, coalesced.
  for (int i = 0; i < 20; ++i) stream->on_event(token(i));
  CHECK(writer->pending() == 2);
  stream->on_event(finished(FinishReason::length, 20));
  CHECK(stream->finished());
  CHECK(held.expired());  // the reservation ends with the generation, not with the client

  asio::co_spawn(ioc, writer->run(), asio::detached);
  ioc.run();

  REQUIRE(sink->events.size() >= 4);
  CHECK(sink->events.back() == "[DONE]");
  auto first = json::parse(sink->events.front());
  CHECK(first["choices"][0]["delta"]["role"] == "assistant");
  std::string text;
  int text_chunks = 0;
  bool saw_finish = false;
  bool saw_usage = false;
  for (std::size_t i = 0; i + 1 < sink->events.size(); ++i) {
    auto j = json::parse(sink->events[i]);
    if (j["choices"].empty()) {
      CHECK(saw_finish);  // usage comes after the finish chunk
      CHECK(j["usage"]["completion_tokens"] == 20);
      saw_usage = true;
      continue;
    }
    CHECK_FALSE(saw_finish);  // nothing after the finish chunk but usage and [DONE]
    auto& c = j["choices"][0];
    if (!c["finish_reason"].is_null()) {
      CHECK(c["finish_reason"] == "length");
      saw_finish = true;
    }
    if (c["delta"].contains("content") && !c["delta"]["content"].get<std::string>().empty()) {
      text += c["delta"]["content"].get<std::string>();
      ++text_chunks;
    }
  }
  CHECK(text == "abcdefghijklmnopqrst");
  CHECK(saw_finish);
  CHECK(saw_usage);
  CHECK(text_chunks < 20);  // coalesced while the queue was full
}

TEST_CASE("a fast client gets one chunk per token event", "[llm][api]") {
  LetterTokenizer tok;
  asio::io_context ioc;
  auto sink = std::make_shared<Sink>();
  auto writer = make_writer(ioc, 64, sink);
  auto req = request(Endpoint::completions, R"({"prompt":"x","stream":true,"echo":true})");
  auto stream = std::make_shared<GenerationStream>(writer, req, ResponseMeta{"cmpl-t", 1, "m"}, tok,
                                                   -1, nullptr);
  writer->set_on_drain([stream] { stream->flush(); });
  stream->start();
  for (int i = 0; i < 5; ++i) stream->on_event(token(i));
  stream->on_event(finished(FinishReason::stop, 5));
  asio::co_spawn(ioc, writer->run(), asio::detached);
  ioc.run();
  // echo chunk "x", five token chunks, the finish chunk, [DONE]
  REQUIRE(sink->events.size() == 8);
  CHECK(json::parse(sink->events[0])["choices"][0]["text"] == "x");
  CHECK(json::parse(sink->events[1])["choices"][0]["text"] == "a");
  CHECK(json::parse(sink->events[5])["choices"][0]["text"] == "e");
  CHECK(json::parse(sink->events[6])["choices"][0]["finish_reason"] == "stop");
  CHECK_FALSE(json::parse(sink->events[6]).contains("usage"));
  CHECK(sink->events[7] == "[DONE]");
}

TEST_CASE("an engine failure or shutdown ends the stream with an error event", "[llm][api]") {
  LetterTokenizer tok;
  asio::io_context ioc;
  auto sink = std::make_shared<Sink>();
  auto writer = make_writer(ioc, 8, sink);
  auto req = request(Endpoint::completions, R"({"prompt":"x","stream":true})");
  auto stream = std::make_shared<GenerationStream>(writer, req, ResponseMeta{"cmpl-t", 1, "m"}, tok,
                                                   -1, nullptr);
  stream->start();
  stream->on_event(token(0));
  auto fin = finished(FinishReason::cancelled, 1);
  fin.message = "engine stopped";
  stream->on_event(std::move(fin));
  asio::co_spawn(ioc, writer->run(), asio::detached);
  ioc.run();
  REQUIRE(sink->events.size() == 3);
  auto err = json::parse(sink->events[1]);
  CHECK(err["error"]["message"].get<std::string>().find("engine stopped") != std::string::npos);
  CHECK(sink->events[2] == "[DONE]");
}

TEST_CASE("after the client is gone nothing more is queued", "[llm][api]") {
  LetterTokenizer tok;
  asio::io_context ioc;
  auto writer = std::make_shared<net::StreamWriter>(
      ioc.get_executor(), 4, [](std::string&) -> asio::awaitable<boost::system::error_code> {
        co_return asio::error::broken_pipe;
      });
  bool gone = false;
  writer->set_on_disconnect([&] { gone = true; });
  auto req = request(Endpoint::completions, R"({"prompt":"x","stream":true})");
  auto stream = std::make_shared<GenerationStream>(writer, req, ResponseMeta{"cmpl-t", 1, "m"}, tok,
                                                   -1, nullptr);
  stream->start();
  stream->on_event(token(0));
  asio::co_spawn(ioc, writer->run(), asio::detached);
  ioc.run();
  CHECK(gone);
  for (int i = 1; i < 10; ++i) stream->on_event(token(i));  // must not throw or grow
  CHECK(writer->pending() == 0);
}
