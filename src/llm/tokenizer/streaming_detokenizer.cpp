#include "talkserve/llm/streaming_detokenizer.hpp"

namespace talkserve::llm {
namespace {

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Expected length of a sequence from its lead byte; 0 for a byte that cannot start one.
int sequence_length(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Whether `b` may be the k-th byte (k >= 1) of a sequence led by `lead` (excludes overlong
// forms, surrogates and code points above U+10FFFF, as the UTF-8 standard does).
bool valid_continuation(unsigned char lead, int k, unsigned char b) {
  if ((b & 0xC0) != 0x80) return false;
  if (k != 1) return true;
  if (lead == 0xE0) return b >= 0xA0;
  if (lead == 0xED) return b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90;
  if (lead == 0xF4) return b <= 0x8F;
  return true;
}

}  // namespace

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, int32_t prev_id)
    : tokenizer_(tokenizer), prev_id_(prev_id) {}

std::string StreamingDetokenizer::push(int32_t id) {
  pending_ += tokenizer_.decode_piece(id, prev_id_);
  prev_id_ = id;
  return take_complete_utf8(pending_);
}

std::string StreamingDetokenizer::finish() {
  std::string out = take_complete_utf8(pending_);
  if (!pending_.empty()) {
    out += kReplacement;  // an incomplete character at the end of the stream
    pending_.clear();
  }
  return out;
}

std::string StreamingDetokenizer::take_complete_utf8(std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[i]);
    const int len = sequence_length(lead);
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    int k = 1;
    while (k < len && i + static_cast<size_t>(k) < bytes.size() &&
           valid_continuation(lead, k, static_cast<unsigned char>(bytes[i + static_cast<size_t>(k)]))) {
      ++k;
    }
    if (k == len) {
      out.append(bytes, i, static_cast<size_t>(len));
      i += static_cast<size_t>(len);
    } else if (i + static_cast<size_t>(k) == bytes.size()) {
      break;  // a valid prefix that may still complete: hold it back
    } else {
      out += kReplacement;  // broken by a byte that cannot continue it
      i += static_cast<size_t>(k);
    }
  }
  bytes.erase(0, i);
  return out;
}

}  // namespace talkserve::llm
