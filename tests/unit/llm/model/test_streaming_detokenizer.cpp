#include <catch2/catch.hpp>

#include "talkserve/llm/streaming_detokenizer.hpp"
#include "talkserve/llm/tokenizer.hpp"
#include "test_paths.hpp"

namespace talkserve::llm::test {

TEST_CASE("streaming detokenizer holds back split UTF-8 characters", "[llm][tokenizer]") {
  TokenizerConfig tc;
  tc.path = stories_tokenizer();
  auto tok = load_tokenizer(tc);
  // "日本 ok": BOS, " ", then six byte-fallback tokens, then " o", "k".
  const std::vector<int32_t> ids = {410, 233, 154, 168, 233, 159, 175, 334, 433};
  StreamingDetokenizer d(*tok, /*prev_id=*/1);
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(d.push(id));
  CHECK(out == std::vector<std::string>{"", "", "", "\xE6\x97\xA5", "", "", "\xE6\x9C\xAC", " o", "k"});
  CHECK(d.finish().empty());
}

TEST_CASE("streaming detokenizer replaces invalid and unfinished bytes", "[llm][tokenizer]") {
  std::string bytes = "ok\xFF" "a\xE6\x97" "b";  // a bad lead byte; a sequence broken by 'b'
  CHECK(StreamingDetokenizer::take_complete_utf8(bytes) == "ok\xEF\xBF\xBD" "a\xEF\xBF\xBD" "b");
  CHECK(bytes.empty());
  std::string tail = "x\xF0\x9F\x98";  // a 4-byte emoji missing its last byte
  CHECK(StreamingDetokenizer::take_complete_utf8(tail) == "x");
  CHECK(tail == "\xF0\x9F\x98");
  tail += "\x80";
  CHECK(StreamingDetokenizer::take_complete_utf8(tail) == "\xF0\x9F\x98\x80");
  std::string surrogate = "\xED\xA0\x80";  // CESU-style surrogate: never valid UTF-8
  CHECK(StreamingDetokenizer::take_complete_utf8(surrogate).find("\xEF\xBF\xBD") == 0);

  TokenizerConfig tc;
  tc.path = stories_tokenizer();
  auto tok = load_tokenizer(tc);
  StreamingDetokenizer d(*tok, 378);
  CHECK(d.push(233).empty());  // <0xE6>, a lead byte
  CHECK(d.finish() == "\xEF\xBF\xBD");
}

}  // namespace talkserve::llm::test
