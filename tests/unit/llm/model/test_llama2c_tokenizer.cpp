// Expected ids come from a direct transcription of run.c's encode() (full rescan of all
// pairs each round, bsearch lookups) run over tok512.bin, independent of the cached-pair
// implementation under test.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>

#include "talkserve/llm/tokenizer.hpp"
#include "test_paths.hpp"

namespace talkserve::llm::test {
namespace {

std::unique_ptr<Tokenizer> tok512() {
  TokenizerConfig tc;
  tc.path = stories_tokenizer();
  tc.vocab_size = 512;
  return load_tokenizer(tc);
}

}  // namespace

TEST_CASE("tok512 encodes like llama2.c run.c", "[llm][tokenizer]") {
  auto tok = tok512();
  CHECK(tok->kind() == "llama2c");
  CHECK(tok->vocab_size() == 512);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  using V = std::vector<int32_t>;
  CHECK(tok->encode("Once upon a time", true) == V{1, 403, 407, 261, 378});
  CHECK(tok->encode("Hello, world! 123", true) == V{1, 346, 306, 414, 432, 263, 304, 341, 443, 410, 475, 479, 472});
  CHECK(tok->encode("h\xC3\xA9llo \xE2\x82\xAC", true) == V{1, 270, 485, 306, 414, 410, 503});
  CHECK(tok->encode("Lily's dog", true) == V{1, 317, 439, 419, 400, 428});
  // Characters missing from the vocabulary fall back to <0xXX> byte tokens (id = byte + 3).
  CHECK(tok->encode("\xE6\x97\xA5\xE6\x9C\xAC ok", true) == V{1, 410, 233, 154, 168, 233, 159, 175, 334, 433});
  CHECK(tok->encode("  two  spaces", true) == V{1, 410, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419});
  CHECK(tok->encode("", true) == V{1});
  CHECK(tok->encode("", false).empty());
}

TEST_CASE("tok512 decode round-trips text and strips the space after BOS", "[llm][tokenizer]") {
  auto tok = tok512();
  for (const std::string text : {"Once upon a time", "Hello, world! 123", "h\xC3\xA9llo \xE2\x82\xAC",
                                 "\xE6\x97\xA5\xE6\x9C\xAC ok", "line one\nline two", "  two  spaces"}) {
    const auto ids = tok->encode(text, true);
    CHECK(tok->decode(ids) == text);
  }
  CHECK(tok->decode_piece(403, 1) == "Once");      // " Once" after BOS
  CHECK(tok->decode_piece(403, 378) == " Once");   // elsewhere the space stays
  CHECK(tok->decode_piece(13, 378) == "\n");       // <0x0A>
  CHECK(tok->decode_piece(2, 378).empty());        // </s> is a control token
  CHECK_THROWS_AS(tok->decode_piece(512, 1), std::out_of_range);
}

TEST_CASE("special-token text is parsed only on request", "[llm][tokenizer]") {
  auto tok = tok512();
  const auto plain = tok->encode("a</s>", false, false);
  CHECK(std::find(plain.begin(), plain.end(), 2) == plain.end());
  const auto parsed = tok->encode("a</s>", false, true);
  REQUIRE(!parsed.empty());
  CHECK(parsed.back() == 2);
  CHECK(tok->stop_ids() == std::vector<int32_t>{2});
}

TEST_CASE("malformed llama2.c tokenizer files fail with a clear error", "[llm][tokenizer]") {
  TempDir dir;
  const std::string good = read_file(stories_tokenizer());
  TokenizerConfig tc;
  tc.vocab_size = 512;
  tc.path = dir.file("trunc.bin");
  write_file(tc.path, good.substr(0, good.size() - 3));
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("trunc.bin") && Catch::Contains("truncated"));

  std::string bad_len = good;
  const int32_t huge = 1 << 30;
  std::memcpy(bad_len.data() + 4 + 4, &huge, 4);  // length field of token 0
  tc.path = dir.file("badlen.bin");
  write_file(tc.path, bad_len);
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("badlen.bin") && Catch::Contains("length"));

  tc.path = dir.file("missing.bin");
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("missing.bin"));
  tc.path = dir.file("x.txt");
  write_file(tc.path, "hello");
  tc.format = "auto";
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("cannot tell the format"));
}

}  // namespace talkserve::llm::test
