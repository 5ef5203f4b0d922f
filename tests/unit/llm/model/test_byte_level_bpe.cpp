#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "llm/tokenizer/pretokenizer.hpp"
#include "talkserve/llm/streaming_detokenizer.hpp"
#include "talkserve/llm/tokenizer.hpp"
#include "test_paths.hpp"

namespace talkserve::llm::test {
namespace {

using detail::pretokenize;
using detail::SplitPattern;
using Pieces = std::vector<std::string_view>;

const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-2's byte -> code point map, written out independently of the implementation.
std::string byte_char(int b) {
  int cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
    int n = 0;
    for (int k = 0; k < b; ++k) {
      if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255))) ++n;
    }
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Byte tokens have id == byte; then Ġt=256, he=257, Ġthe=258, in=259, Ġin=260; added tokens
// <|endoftext|>=261, <|im_start|>=262, <|im_end|>=263.
nlohmann::json small_tokenizer_json(const std::string& split_regex) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::string G = byte_char(' ');
  vocab[G + "t"] = 256;
  vocab["he"] = 257;
  vocab[G + "the"] = 258;
  vocab["in"] = 259;
  vocab[G + "in"] = 260;
  nlohmann::json merges = {G + " t", "h e", G + "t he", "i n", G + " in"};
  nlohmann::json pre;
  if (split_regex.empty()) {
    pre = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  } else {
    nlohmann::json split = {{"type", "Split"}, {"behavior", "Isolated"}};
    split["pattern"] = {{"Regex", split_regex}};
    nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
    pre = {{"type", "Sequence"}};
    pre["pretokenizers"] = nlohmann::json::array({split, byte_level});
  }
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", 261}, {"content", "<|endoftext|>"}, {"special", true}},
            {{"id", 262}, {"content", "<|im_start|>"}, {"special", true}},
            {{"id", 263}, {"content", "<|im_end|>"}, {"special", true}}}},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer", pre},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}}};
}

}  // namespace

TEST_CASE("pre-tokenizer follows the Llama 3 split regex", "[llm][tokenizer][bpe]") {
  const std::string text = "Hello world's 12345 foo!!\n\n  bar  \tbaz";
  CHECK(pretokenize(text, SplitPattern::kLlama3) ==
        Pieces{"Hello", " world", "'s", " ", "123", "45", " foo", "!!\n\n", " ", " bar", "  ", "\tbaz"});
  CHECK(pretokenize(text, SplitPattern::kQwen2) ==
        Pieces{"Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " foo", "!!\n\n", " ", " bar", "  ", "\tbaz"});
  CHECK(pretokenize("I'LL go", SplitPattern::kLlama3) == Pieces{"I", "'LL", " go"});
  CHECK(pretokenize("x  \n y ", SplitPattern::kLlama3) == Pieces{"x", "  \n", " y", " "});
  CHECK(pretokenize("(hi)", SplitPattern::kLlama3) == Pieces{"(hi", ")"});
}

TEST_CASE("pre-tokenizer follows the GPT-2 split regex", "[llm][tokenizer][bpe]") {
  CHECK(pretokenize("Hello world's 12345 foo!!\n\n  bar  \tbaz", SplitPattern::kGpt2) ==
        Pieces{"Hello", " world", "'s", " 12345", " foo", "!!", "\n\n ", " bar", "  ", "\t", "baz"});
  CHECK(pretokenize("I'LL", SplitPattern::kGpt2) == Pieces{"I", "'", "LL"});  // case-sensitive
}

TEST_CASE("pre-tokenizer classifies non-ASCII letters, numbers and marks", "[llm][tokenizer][bpe]") {
  // 日本語テキスト are letters (Lo), Ω a letter, ² a number (No), ١٢ Arabic-Indic digits (Nd),
  // U+0301 a combining mark (Mn: neither letter nor number).
  CHECK(pretokenize("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x83\x86 caf\xC3\xA9 \xCE\xA9\xC2\xB2 \xD9\xA1\xD9\xA2",
                    SplitPattern::kLlama3) ==
        Pieces{"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x83\x86", " caf\xC3\xA9", " \xCE\xA9", "\xC2\xB2", " ",
               "\xD9\xA1\xD9\xA2"});
  CHECK(pretokenize("e\xCC\x81x", SplitPattern::kLlama3) == Pieces{"e", "\xCC\x81x"});
  CHECK(pretokenize("a\xFF" "b", SplitPattern::kLlama3) == Pieces{"a", "\xFF" "b"});  // invalid byte
}

TEST_CASE("byte-level BPE encodes with merge ranks and special tokens", "[llm][tokenizer][bpe]") {
  TempDir dir;
  write_file(dir.file("tokenizer.json"), small_tokenizer_json(kQwen2Regex).dump());
  TokenizerConfig tc;
  tc.path = dir.path();
  auto tok = load_tokenizer(tc);
  using V = std::vector<int32_t>;
  CHECK(tok->kind() == "hf_bpe");
  CHECK(tok->vocab_size() == 264);
  CHECK(tok->bos_id() == -1);
  CHECK(tok->eos_id() == 261);
  CHECK(tok->stop_ids() == V{261, 263});
  CHECK(tok->encode(" the in the", true) == V{258, 260, 258});
  CHECK(tok->encode("the", false) == V{'t', 257});
  CHECK(tok->encode("<|im_start|>user\nthe<|im_end|>", false, true) == V{262, 'u', 's', 'e', 'r', '\n', 't', 257, 263});
  // Without parse_special the marker is ordinary text.
  CHECK(tok->encode("<|im_end|>", false, false).size() == 10);
  CHECK(tok->decode_piece(258, -1) == " the");
  CHECK(tok->decode_piece(263, -1).empty());
  for (const std::string text : {"h\xC3\xA9llo w\xC3\xB6rld \xF0\x9F\x98\x80!", " the in\n\tthe  ", "12 + 34 = 46"}) {
    CHECK(tok->decode(tok->encode(text, false)) == text);
  }
  // A 4-byte emoji arrives as four byte tokens; the streaming detokenizer emits it whole.
  StreamingDetokenizer d(*tok);
  std::string streamed;
  for (int32_t id : tok->encode("a\xF0\x9F\x98\x80", false)) {
    const std::string piece = d.push(id);
    CHECK((piece.empty() || piece == "a" || piece == "\xF0\x9F\x98\x80"));
    streamed += piece;
  }
  CHECK(streamed + d.finish() == "a\xF0\x9F\x98\x80");
}

TEST_CASE("byte-level BPE with the GPT-2 pre-tokenizer and a tokenizer_config", "[llm][tokenizer][bpe]") {
  TempDir dir;
  write_file(dir.file("tokenizer.json"), small_tokenizer_json("").dump());
  write_file(dir.file("tokenizer_config.json"), R"({"bos_token": null, "eos_token": {"content": "<|im_end|>"}})");
  TokenizerConfig tc;
  tc.path = dir.file("tokenizer.json");
  auto tok = load_tokenizer(tc);
  CHECK(tok->eos_id() == 263);
  CHECK(tok->encode(" the in the", false) == std::vector<int32_t>{258, 260, 258});
}

TEST_CASE("malformed tokenizer.json files fail with a clear error", "[llm][tokenizer][bpe]") {
  TempDir dir;
  TokenizerConfig tc;
  tc.path = dir.file("tokenizer.json");
  write_file(tc.path, "{\"model\": ");
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("tokenizer.json") && Catch::Contains("bad JSON"));
  auto j = small_tokenizer_json(R"(\p{L}+|\d)");
  write_file(tc.path, j.dump());
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("unsupported pre-tokenizer"));
  j = small_tokenizer_json(kQwen2Regex);
  j["model"]["merges"].push_back("x zz");
  write_file(tc.path, j.dump());
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("not in the vocab"));
  j = small_tokenizer_json(kQwen2Regex);
  j["model"]["vocab"].erase(byte_char(0));
  write_file(tc.path, j.dump());
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("byte 0"));
}

}  // namespace talkserve::llm::test
