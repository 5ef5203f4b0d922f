// Tokenizer encode/decode (src/llm/tokenizer) on the default model's tokenizer
// (stories260K tok512.bin: score-ordered BPE with byte fallback), plus the streaming
// detokenizer the engine's streams use. The first input byte picks the mode:
//   even: the rest is text. encode() must give ids inside the vocabulary; for valid UTF-8
//         text (all the API can send) decode() and the streaming detokenizer must give the
//         text back; the streaming detokenizer must give valid UTF-8 for any input;
//   odd:  the rest is a sequence of little-endian u16 ids (taken modulo vocab_size + 8, so a
//         few are out of range). decode_piece() must throw std::out_of_range for exactly the
//         out-of-range ids, and the streaming detokenizer must emit valid UTF-8.
// Fails on a sanitizer report or any broken promise above. TALKSERVE_MODELS_DIR (env) or the
// configured models folder must hold stories260K/tok512.bin (scripts/fetch-models.sh).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/llm/streaming_detokenizer.hpp"
#include "talkserve/llm/tokenizer.hpp"

namespace {

using talkserve::llm::StreamingDetokenizer;
using talkserve::llm::Tokenizer;

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "fuzz_tokenizer: %s\n", why.c_str());
  std::abort();
}

std::unique_ptr<Tokenizer> load() {
  const char* env = std::getenv("TALKSERVE_MODELS_DIR");
  const std::string dir = env && *env ? env : TALKSERVE_DEFAULT_MODELS_DIR;
  talkserve::llm::TokenizerConfig cfg;
  cfg.path = dir + "/stories260K/tok512.bin";
  cfg.format = "llama2c";
  cfg.vocab_size = 512;
  try {
    return talkserve::llm::load_tokenizer(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_tokenizer: %s (run scripts/fetch-models.sh)\n", e.what());
    std::exit(2);
  }
}

// Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::string stream_text(const Tokenizer& tok, const std::vector<int32_t>& ids, int32_t prev) {
  StreamingDetokenizer detok(tok, prev);
  std::string out;
  for (int32_t id : ids) out += detok.push(id);
  out += detok.finish();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::unique_ptr<Tokenizer> tok = load();
  if (size == 0) return 0;
  const int vocab = tok->vocab_size();
  if ((data[0] & 1) == 0) {
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto ids = tok->encode(text, /*add_bos=*/true, /*parse_special=*/(data[0] & 2) != 0);
    for (int32_t id : ids) {
      if (id < 0 || id >= vocab) fail("encode gave id " + std::to_string(id) + " outside the vocabulary");
    }
    if ((data[0] & 2) == 0) {
      // Text from the API is valid UTF-8 (it comes out of JSON). Invalid input need not round
      // trip: like run.c, continuation bytes join the previous character, so the dummy-prefix
      // space can become a <0x20> byte token that decode keeps after BOS.
      const bool utf8 = valid_utf8(text);
      if (utf8 && tok->decode(ids) != text) fail("decode(encode(text)) != text");
      const std::string streamed = stream_text(*tok, std::vector<int32_t>(ids.begin() + 1, ids.end()),
                                               tok->bos_id());
      if (!valid_utf8(streamed)) fail("streamed text is not valid UTF-8");
      if (utf8 && streamed != text) fail("streamed text differs from valid UTF-8 input");
    }
    return 0;
  }
  std::vector<int32_t> ids;
  for (std::size_t i = 1; i + 1 < size; i += 2) {
    const int32_t id = (data[i] | (data[i + 1] << 8)) % (vocab + 8);
    if (id >= vocab) {
      try {
        (void)tok->decode_piece(id, -1);
        fail("decode_piece accepted an out-of-range id");
      } catch (const std::out_of_range&) {
      }
      continue;
    }
    ids.push_back(id);
  }
  (void)tok->decode(ids);
  if (!valid_utf8(stream_text(*tok, ids, -1))) fail("streamed text is not valid UTF-8");
  return 0;
}
