// A SentencePiece BPE .model is written by the test (protobuf by hand) with the pieces and
// scores of tok512.bin, which llama2.c exported from exactly such a model; both tokenizers
// must then agree.

#include <catch2/catch.hpp>

#include <cstring>

#include "talkserve/llm/tokenizer.hpp"
#include "test_paths.hpp"

namespace talkserve::llm::test {
namespace {

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void key(std::string& out, int field, int wire) { varint(out, static_cast<uint64_t>(field << 3 | wire)); }
void bytes_field(std::string& out, int field, const std::string& s) {
  key(out, field, 2);
  varint(out, s.size());
  out += s;
}
void varint_field(std::string& out, int field, uint64_t v) {
  key(out, field, 0);
  varint(out, v);
}

std::string sp_model_from_tok512(int model_type) {
  const std::string tok = read_file(stories_tokenizer());
  std::string model;
  size_t off = 4;
  for (int id = 0; off < tok.size(); ++id) {
    float score;
    int32_t len;
    std::memcpy(&score, tok.data() + off, 4);
    std::memcpy(&len, tok.data() + off + 4, 4);
    std::string piece = tok.substr(off + 8, static_cast<size_t>(len));
    off += 8 + static_cast<size_t>(len);
    int type = 1;
    if (id == 0) { piece = "<unk>"; type = 2; }
    else if (id == 1) { piece = "<s>"; type = 3; }
    else if (id == 2) { piece = "</s>"; type = 3; }
    else if (id < 259) { type = 6; }
    std::string escaped;
    for (char c : piece) escaped += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    std::string msg;
    bytes_field(msg, 1, escaped);
    key(msg, 2, 5);
    msg.append(reinterpret_cast<const char*>(&score), 4);
    varint_field(msg, 3, static_cast<uint64_t>(type));
    bytes_field(model, 1, msg);
  }
  std::string trainer;
  varint_field(trainer, 3, static_cast<uint64_t>(model_type));
  varint_field(trainer, 35, 1);  // byte_fallback
  varint_field(trainer, 41, 1);  // bos_id
  bytes_field(model, 2, trainer);
  std::string norm;
  bytes_field(norm, 1, "identity");
  varint_field(norm, 3, 1);  // add_dummy_prefix
  varint_field(norm, 4, 0);  // remove_extra_whitespaces
  bytes_field(model, 3, norm);
  return model;
}

}  // namespace

TEST_CASE("a SentencePiece BPE model encodes and decodes like llama2.c", "[llm][tokenizer][sentencepiece]") {
  TempDir dir;
  write_file(dir.file("tokenizer.model"), sp_model_from_tok512(2));
  TokenizerConfig tc;
  tc.path = dir.path();
  auto sp = load_tokenizer(tc);
  tc.path = stories_tokenizer();
  auto ref = load_tokenizer(tc);
  CHECK(sp->kind() == "sentencepiece");
  CHECK(sp->vocab_size() == 512);
  CHECK(sp->bos_id() == 1);
  CHECK(sp->eos_id() == 2);
  for (const std::string text : {"Once upon a time", "Hello, world! 123", "h\xC3\xA9llo \xE2\x82\xAC",
                                 "\xE6\x97\xA5\xE6\x9C\xAC ok", "Lily's dog.\nThe end", "  two  spaces"}) {
    const auto ids = sp->encode(text, true);
    CHECK(ids == ref->encode(text, true));
    CHECK(sp->decode(ids) == text);
  }
  CHECK(sp->decode_piece(403, 1) == "Once");
  CHECK(sp->decode_piece(403, 5) == " Once");
  CHECK(sp->encode("a</s>", false, true).back() == 2);
}

TEST_CASE("unsupported or malformed SentencePiece models fail clearly", "[llm][tokenizer][sentencepiece]") {
  TempDir dir;
  TokenizerConfig tc;
  tc.path = dir.file("uni.model");
  write_file(tc.path, sp_model_from_tok512(1));
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("uni.model") && Catch::Contains("not BPE"));
  const std::string good = sp_model_from_tok512(2);
  tc.path = dir.file("trunc.model");
  write_file(tc.path, good.substr(0, good.size() / 2));
  CHECK_THROWS_WITH(load_tokenizer(tc), Catch::Contains("trunc.model") && Catch::Contains("malformed"));
}

}  // namespace talkserve::llm::test
