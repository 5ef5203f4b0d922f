#include "talkserve/speech/sentence_splitter.hpp"

#include <algorithm>
#include <array>
#include <optional>

namespace talkserve::speech {
namespace {

// ---- UTF-8 -------------------------------------------------------------------------------

struct CodePoint {
  char32_t value = 0;
  std::size_t length = 0;  // 0: an incomplete sequence at the end of the text so far
};

// Decodes the code point at `i`. An invalid byte decodes as U+FFFD of length 1; an incomplete
// sequence at the end decodes with length 0 unless `final`, where it is U+FFFD to the end.
CodePoint decode(std::string_view s, std::size_t i, bool final) {
  const auto lead = static_cast<unsigned char>(s[i]);
  if (lead < 0x80) return {lead, 1};
  std::size_t need = 0;
  char32_t value = 0;
  if ((lead & 0xE0) == 0xC0) {
    need = 2;
    value = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    need = 3;
    value = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    need = 4;
    value = lead & 0x07;
  } else {
    return {0xFFFD, 1};
  }
  for (std::size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) return final ? CodePoint{0xFFFD, s.size() - i} : CodePoint{0, 0};
    const auto next = static_cast<unsigned char>(s[i + k]);
    if ((next & 0xC0) != 0x80) return {0xFFFD, 1};
    value = (value << 6) | (next & 0x3F);
  }
  return {value, need};
}

// ---- character classes ---------------------------------------------------------------------

bool is_newline(char32_t c) { return c == U'\n' || c == 0x2028 || c == 0x2029; }

bool is_space(char32_t c) {
  return c == U' ' || c == U'\t' || c == U'\r' || c == U'\f' || c == U'\v' || is_newline(c) ||
         c == 0x00A0 || c == 0x3000;
}

bool is_dot_terminator(char32_t c) { return c == U'.' || c == 0x2026; }  // . …
bool is_exclaim_terminator(char32_t c) { return c == U'!' || c == U'?'; }
// 。！？；．｡
bool is_cjk_terminator(char32_t c) {
  return c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == 0xFF1B || c == 0xFF0E || c == 0xFF61;
}
bool is_terminator(char32_t c) {
  return is_dot_terminator(c) || is_exclaim_terminator(c) || is_cjk_terminator(c);
}

// Closing quotes and brackets that stay with the sentence they close.
bool is_closer(char32_t c) {
  static constexpr std::array<char32_t, 17> kClosers = {
      U'"',   U'\'',  U')',   U']',   U'}',   0x201D, 0x2019, 0x00BB, 0x203A,
      0x300D, 0x300F, 0xFF09, 0x3011, 0x300B, 0x3009, 0xFF3D, 0xFF02};
  return std::find(kClosers.begin(), kClosers.end(), c) != kClosers.end();
}

bool is_opener(char32_t c) {
  static constexpr std::array<char32_t, 11> kOpeners = {
      U'(', U'[', U'{', 0x201C, 0x2018, 0x00AB, 0x2039, 0x300C, 0x300E, 0xFF08, 0x3010};
  return std::find(kOpeners.begin(), kOpeners.end(), c) != kOpeners.end();
}

bool is_ascii_clause_mark(char32_t c) { return c == U',' || c == U';' || c == U':'; }
// ， 、 ： and the em dash need no space after them.
bool is_wide_clause_mark(char32_t c) {
  return c == 0xFF0C || c == 0x3001 || c == 0xFF1A || c == 0x2014;
}

bool is_cjk(char32_t c) {
  return (c >= 0x3040 && c <= 0x30FF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7AF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x2FFFF);
}

bool is_ascii_lower(char32_t c) { return c >= U'a' && c <= U'z'; }
bool is_ascii_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_ascii_alpha(char32_t c) { return (c | 0x20) >= U'a' && (c | 0x20) <= U'z'; }

// Something a voice can say: a letter or digit of any script.
bool has_content(std::string_view piece) {
  for (std::size_t i = 0; i < piece.size();) {
    const CodePoint cp = decode(piece, i, true);
    const char32_t c = cp.value;
    if (c < 0x80) {
      if (is_ascii_alpha(c) || is_ascii_digit(c)) return true;
    } else if (!is_space(c) && !is_terminator(c) && !is_closer(c) && !is_opener(c) &&
               !is_wide_clause_mark(c) && c != 0x2013 && c != 0xFFFD) {
      return true;
    }
    i += cp.length;
  }
  return false;
}

// Strips whitespace of any width from both ends.
std::string_view trim(std::string_view s) {
  while (!s.empty()) {
    const CodePoint cp = decode(s, 0, true);
    if (!is_space(cp.value)) break;
    s.remove_prefix(cp.length);
  }
  while (!s.empty()) {
    std::size_t start = s.size() - 1;  // back up to the lead byte of the last code point
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    const CodePoint cp = decode(s, start, true);
    if (start + cp.length != s.size() || !is_space(cp.value)) break;
    s.remove_suffix(cp.length);
  }
  return s;
}

// ---- abbreviations ---------------------------------------------------------------------------

enum class Abbreviation { none, always, before_number };

Abbreviation abbreviation_before(std::string_view text, std::size_t dot) {
  std::size_t start = dot;
  while (start > 0 && (is_ascii_alpha(static_cast<unsigned char>(text[start - 1])) ||
                       text[start - 1] == '.')) {
    --start;
  }
  if (start == dot) return Abbreviation::none;
  if (start > 0 && is_ascii_digit(static_cast<unsigned char>(text[start - 1]))) {
    return Abbreviation::none;
  }
  std::string word(text.substr(start, dot - start));
  if (word.size() == 1 && word[0] >= 'A' && word[0] <= 'Z') return Abbreviation::always;  // J. K.
  std::transform(word.begin(), word.end(), word.begin(),
                 [](unsigned char c) { return static_cast<char>(c | 0x20); });
  static constexpr auto kAlways = std::to_array<std::string_view>(
      {"mr", "mrs", "ms",  "mx",  "dr",  "prof", "st",  "sr", "jr",     "mt",   "vs",
       "e.g", "i.e", "cf", "gen", "capt", "lt",  "col", "sgt", "rev", "hon", "esp",
       "viz", "ca",  "approx", "dept"});
  static constexpr auto kBeforeNumber = std::to_array<std::string_view>(
      {"no", "nos", "fig", "figs", "eq", "sec", "ch", "vol", "p", "pp", "art", "op"});
  if (std::find(kAlways.begin(), kAlways.end(), word) != kAlways.end()) {
    return Abbreviation::always;
  }
  if (std::find(kBeforeNumber.begin(), kBeforeNumber.end(), word) != kBeforeNumber.end()) {
    return Abbreviation::before_number;
  }
  return Abbreviation::none;
}

// "1." or "12." opening a piece: a list item number, not a sentence.
bool is_list_number(std::string_view piece, std::size_t dot) {
  return dot > 0 && dot <= 3 &&
         std::all_of(piece.begin(), piece.begin() + static_cast<std::ptrdiff_t>(dot),
                     [](unsigned char c) { return c >= '0' && c <= '9'; });
}

// ---- boundary search -------------------------------------------------------------------------

struct Cut {
  std::size_t end;   // the piece is text[0, end)
  std::size_t next;  // the rest starts here
};

enum class Verdict { boundary, not_boundary, need_more };
struct Decision {
  Verdict verdict;
  std::size_t end = 0;  // boundary: end of the sentence; not_boundary: where scanning resumes
};

// Decides whether the terminator run starting at `i` ends a sentence.
Decision decide_terminator(std::string_view text, std::size_t i, bool final) {
  std::size_t j = i;
  bool exclaim = false;
  bool cjk = false;
  std::size_t dots = 0;
  std::size_t run_length = 0;
  while (j < text.size()) {
    const CodePoint cp = decode(text, j, final);
    if (cp.length == 0) return {Verdict::need_more};
    if (!is_terminator(cp.value)) break;
    exclaim = exclaim || is_exclaim_terminator(cp.value);
    cjk = cjk || is_cjk_terminator(cp.value);
    dots += cp.value == U'.' ? 1 : 0;
    ++run_length;
    j += cp.length;
  }
  while (j < text.size()) {
    const CodePoint cp = decode(text, j, final);
    if (cp.length == 0) return {Verdict::need_more};
    if (!is_closer(cp.value)) break;
    j += cp.length;
  }
  if (j == text.size()) return final ? Decision{Verdict::boundary, j} : Decision{Verdict::need_more};
  const CodePoint after = decode(text, j, final);
  if (after.length == 0) return {Verdict::need_more};
  if (cjk || is_cjk(after.value)) return {Verdict::boundary, j};
  if (!is_space(after.value)) return {Verdict::not_boundary, j};  // 3.14, example.com, ?!x
  if (exclaim) return {Verdict::boundary, j};

  // A '.' or '…' before whitespace: look at the next visible character.
  std::size_t k = j;
  while (k < text.size()) {
    const CodePoint cp = decode(text, k, final);
    if (cp.length == 0) return {Verdict::need_more};
    if (is_newline(cp.value)) return {Verdict::boundary, j};
    if (!is_space(cp.value)) break;
    k += cp.length;
  }
  if (k == text.size()) return final ? Decision{Verdict::boundary, j} : Decision{Verdict::need_more};
  const CodePoint next = decode(text, k, final);
  if (next.length == 0) return {Verdict::need_more};
  const bool single_dot = dots == 1 && run_length == 1;
  if (single_dot) {
    switch (abbreviation_before(text, i)) {
      case Abbreviation::always:
        return {Verdict::not_boundary, j};
      case Abbreviation::before_number:
        if (is_ascii_digit(next.value)) return {Verdict::not_boundary, j};
        break;
      case Abbreviation::none:
        break;
    }
    if (is_list_number(text, i)) return {Verdict::not_boundary, j};
  }
  if (is_ascii_lower(next.value)) return {Verdict::not_boundary, j};
  return {Verdict::boundary, j};
}

// A run-on piece: cut inside text[0, window) at the last clause mark, else the last space,
// else hard at the window's end.
Cut long_cut(std::string_view text, std::size_t window, const SentenceSplitterConfig& config) {
  std::optional<std::size_t> clause;
  std::optional<std::size_t> space;
  std::size_t count = 0;
  for (std::size_t p = 0; p < window;) {
    const CodePoint cp = decode(text, p, true);
    const std::size_t after = p + cp.length;
    ++count;
    if (count >= config.min_chars) {
      if (is_wide_clause_mark(cp.value)) clause = after;
      if (is_ascii_clause_mark(cp.value) && after < window &&
          is_space(decode(text, after, true).value)) {
        clause = after;
      }
      if (is_space(cp.value) && count > config.min_chars) space = p;
    }
    p = after;
  }
  if (clause) return {*clause, *clause};
  if (space) return {*space, *space};
  return {window, window};
}

// The first certain sentence end in `text` (which starts at a piece start), or nullopt if it
// depends on text not received yet. With `final`, the end of the text is a boundary.
std::optional<Cut> find_cut(std::string_view text, bool final,
                            const SentenceSplitterConfig& config) {
  std::size_t i = 0;
  std::size_t count = 0;
  while (true) {
    if (i >= text.size()) {
      if (final) return Cut{text.size(), text.size()};
      return std::nullopt;
    }
    const CodePoint cp = decode(text, i, final);
    if (cp.length == 0) return std::nullopt;
    if (count >= config.max_chars) return long_cut(text, i, config);
    if (is_newline(cp.value)) return Cut{i, i + cp.length};
    if (is_terminator(cp.value)) {
      const Decision decision = decide_terminator(text, i, final);
      if (decision.verdict == Verdict::need_more) return std::nullopt;
      if (decision.verdict == Verdict::boundary) return Cut{decision.end, decision.end};
      while (i < decision.end) {
        i += decode(text, i, true).length;
        ++count;
      }
      continue;
    }
    i += cp.length;
    ++count;
  }
}

}  // namespace

SentenceStream::SentenceStream(SentenceSplitterConfig config) : config_(config) {
  config_.max_chars = std::max<std::size_t>(config_.max_chars, 1);
  config_.min_chars = std::min(config_.min_chars, config_.max_chars - 1);
}

std::vector<std::string> SentenceStream::push(std::string_view delta) {
  buffer_.append(delta);
  std::vector<std::string> out;
  drain(false, out);
  return out;
}

std::vector<std::string> SentenceStream::flush() {
  std::vector<std::string> out;
  drain(true, out);
  buffer_.clear();
  return out;
}

void SentenceStream::drain(bool final, std::vector<std::string>& out) {
  while (true) {
    // Leading whitespace never belongs to a sentence.
    std::size_t start = 0;
    while (start < buffer_.size()) {
      const CodePoint cp = decode(buffer_, start, final);
      if (cp.length == 0 || !is_space(cp.value)) break;
      start += cp.length;
    }
    buffer_.erase(0, start);
    if (buffer_.empty()) return;

    const auto cut = find_cut(buffer_, final, config_);
    if (!cut) return;
    const std::string_view piece = trim(std::string_view(buffer_).substr(0, cut->end));
    if (has_content(piece)) out.emplace_back(piece);
    buffer_.erase(0, std::max<std::size_t>(cut->next, 1));
  }
}

std::vector<std::string> split_sentences(std::string_view text,
                                         const SentenceSplitterConfig& config) {
  SentenceStream stream(config);
  std::vector<std::string> out = stream.push(text);
  std::vector<std::string> rest = stream.flush();
  out.insert(out.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
  return out;
}

}  // namespace talkserve::speech
