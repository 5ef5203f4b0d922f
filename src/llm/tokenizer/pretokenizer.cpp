#include "llm/tokenizer/pretokenizer.hpp"

#include "llm/tokenizer/unicode_class.hpp"

namespace talkserve::llm::detail {
namespace {

bool is_newline(char32_t c) { return c == '\r' || c == '\n'; }
char32_t lower(char32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

class Matcher {
 public:
  Matcher(std::string_view text, SplitPattern p)
      : cps_(decode_utf8(text)), p_(p) {
    cls_.reserve(cps_.size());
    for (const CodePoint& c : cps_) cls_.push_back(classify(c.cp));
  }
  size_t size() const { return cps_.size(); }
  uint32_t offset(size_t i) const { return cps_[i].offset; }
  uint32_t end_offset(size_t i) const { return cps_[i].offset + cps_[i].len; }

  // Length in code points of the match at i (always >= 1).
  size_t match(size_t i) const {
    if (size_t n = contraction(i)) return n;
    const bool gpt2 = p_ == SplitPattern::kGpt2;
    // Letters, with one optional leading char: ' ' (GPT-2) or [^\r\n\p{L}\p{N}] (Llama 3).
    if (is(i, CharClass::kLetter)) return i_run(i, CharClass::kLetter) - i;
    const bool lead_ok = gpt2 ? cp(i) == ' ' : (!is_newline(cp(i)) && !is(i, CharClass::kNumber));
    if (lead_ok && is(i + 1, CharClass::kLetter)) return i_run(i + 1, CharClass::kLetter) - i;
    // Numbers.
    if (gpt2) {
      if (is(i, CharClass::kNumber)) return i_run(i, CharClass::kNumber) - i;
      if (cp(i) == ' ' && is(i + 1, CharClass::kNumber)) return i_run(i + 1, CharClass::kNumber) - i;
    } else if (is(i, CharClass::kNumber)) {
      const size_t max = p_ == SplitPattern::kLlama3 ? 3 : 1;
      size_t j = i;
      while (j < size() && j - i < max && is(j, CharClass::kNumber)) ++j;
      return j - i;
    }
    // Punctuation and symbols, optionally after one space; Llama 3 also takes trailing newlines.
    size_t j = i;
    if (cp(j) == ' ' && is(j + 1, CharClass::kOther)) ++j;
    if (is(j, CharClass::kOther)) {
      j = i_run(j, CharClass::kOther);
      if (!gpt2) {
        while (j < size() && is_newline(cp(j))) ++j;
      }
      return j - i;
    }
    // Whitespace (cp(i) is whitespace here: every other class returned above).
    const size_t run_end = i_run(i, CharClass::kSpace);
    if (!gpt2) {
      // \s*[\r\n]+ : up to and including the run's last newline.
      size_t last_nl = run_end;
      for (size_t k = i; k < run_end; ++k) {
        if (is_newline(cp(k))) last_nl = k;
      }
      if (last_nl != run_end) return last_nl + 1 - i;
    }
    // \s+(?!\S): the whole run at the end of the text, else all but its last character.
    if (run_end == size()) return run_end - i;
    if (run_end - i >= 2) return run_end - 1 - i;
    return 1;  // \s+
  }

 private:
  char32_t cp(size_t i) const { return i < cps_.size() ? cps_[i].cp : 0; }
  bool is(size_t i, CharClass c) const { return i < cls_.size() && cls_[i] == c; }
  size_t i_run(size_t i, CharClass c) const {
    while (i < size() && cls_[i] == c) ++i;
    return i;
  }
  size_t contraction(size_t i) const {
    if (cp(i) != '\'') return 0;
    const bool fold = p_ != SplitPattern::kGpt2;  // (?i:...) in the Llama 3 / Qwen2 patterns
    auto at = [&](size_t k) { return fold ? lower(cp(k)) : cp(k); };
    const char32_t a = at(i + 1);
    const char32_t b = at(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  std::vector<CodePoint> cps_;
  std::vector<CharClass> cls_;
  SplitPattern p_;
};

}  // namespace

std::vector<std::string_view> pretokenize(std::string_view text, SplitPattern pattern) {
  std::vector<std::string_view> out;
  Matcher m(text, pattern);
  size_t i = 0;
  while (i < m.size()) {
    const size_t n = m.match(i);
    const uint32_t b = m.offset(i);
    const uint32_t e = m.end_offset(i + n - 1);
    out.push_back(text.substr(b, e - b));
    i += n;
  }
  return out;
}

}  // namespace talkserve::llm::detail
