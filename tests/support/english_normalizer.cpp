#include "support/english_normalizer.hpp"

#include <cctype>
#include <cstdint>
#include <map>
#include <optional>

namespace talkserve::test {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_word_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || u >= 0x80;
}

// Steps 1-3: lower case, annotations dropped, split into raw words.
std::vector<std::string> split_words(std::string_view in) {
  std::string text;
  text.reserve(in.size());
  int depth = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '[' || c == '(') {
      ++depth;
      continue;
    }
    if ((c == ']' || c == ')') && depth > 0) {
      --depth;
      text.push_back(' ');
      continue;
    }
    if (depth > 0) continue;
    // U+2018 / U+2019 (E2 80 98 / E2 80 99): apostrophes.
    if (c == '\xE2' && i + 2 < in.size() && in[i + 1] == '\x80' &&
        (in[i + 2] == '\x98' || in[i + 2] == '\x99')) {
      text.push_back('\'');
      i += 2;
      continue;
    }
    // U+2010..U+2015 (hyphens and dashes): word breaks.
    if (c == '\xE2' && i + 2 < in.size() && in[i + 1] == '\x80' &&
        static_cast<unsigned char>(in[i + 2]) >= 0x90 && static_cast<unsigned char>(in[i + 2]) <= 0x95) {
      text.push_back(' ');
      i += 2;
      continue;
    }
    const auto u = static_cast<unsigned char>(c);
    text.push_back(u < 0x80 ? static_cast<char>(std::tolower(u)) : c);
  }
  std::vector<std::string> words;
  std::string cur;
  auto flush = [&] {
    while (!cur.empty() && cur.back() == '\'') cur.pop_back();
    std::size_t lead = 0;
    while (lead < cur.size() && cur[lead] == '\'') ++lead;
    cur.erase(0, lead);
    if (!cur.empty()) words.push_back(cur);
    cur.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool between_digits = i > 0 && i + 1 < text.size() && is_digit(text[i - 1]) &&
                                is_digit(text[i + 1]) && !cur.empty();
    if (is_word_char(c) || c == '\'') {
      cur.push_back(c);
    } else if (c == ',' && between_digits) {
      // "1,000": a thousands separator, dropped.
    } else if (c == '.' && between_digits) {
      cur.push_back(c);  // "3.5"
    } else {
      flush();
    }
  }
  flush();
  return words;
}

const std::map<std::string, std::vector<std::string>, std::less<>>& contractions() {
  static const std::map<std::string, std::vector<std::string>, std::less<>> m{
      {"won't", {"will", "not"}}, {"can't", {"can", "not"}}, {"let's", {"let", "us"}},
      {"ain't", {"is", "not"}},   {"shan't", {"shall", "not"}}};
  return m;
}

bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Steps 4-6.
void expand_word(const std::string& w, std::vector<std::string>& out) {
  static const std::map<std::string, std::string, std::less<>> titles{
      {"mr", "mister"}, {"mrs", "missus"}, {"dr", "doctor"}};
  if (w == "hmm" || w == "mm" || w == "mhm" || w == "mmm" || w == "uh" || w == "um") return;
  if (auto it = contractions().find(w); it != contractions().end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  if (auto it = titles.find(w); it != titles.end()) {
    out.push_back(it->second);
    return;
  }
  static const std::vector<std::pair<std::string, std::string>> suffixes{
      {"n't", "not"}, {"'re", "are"}, {"'ve", "have"}, {"'ll", "will"}, {"'m", "am"}};
  for (const auto& [suffix, word] : suffixes) {
    if (ends_with(w, suffix)) {
      out.push_back(w.substr(0, w.size() - suffix.size()));
      out.push_back(word);
      return;
    }
  }
  out.push_back(w);
}

std::optional<int> ones_value(std::string_view w) {
  static const std::map<std::string, int, std::less<>> m{
      {"zero", 0},       {"one", 1},        {"two", 2},       {"three", 3},    {"four", 4},
      {"five", 5},       {"six", 6},        {"seven", 7},     {"eight", 8},    {"nine", 9},
      {"ten", 10},       {"eleven", 11},    {"twelve", 12},   {"thirteen", 13}, {"fourteen", 14},
      {"fifteen", 15},   {"sixteen", 16},   {"seventeen", 17}, {"eighteen", 18}, {"nineteen", 19}};
  auto it = m.find(w);
  return it == m.end() ? std::nullopt : std::optional<int>(it->second);
}

std::optional<int> tens_value(std::string_view w) {
  static const std::map<std::string, int, std::less<>> m{
      {"twenty", 20}, {"thirty", 30},  {"forty", 40},  {"fifty", 50},
      {"sixty", 60},  {"seventy", 70}, {"eighty", 80}, {"ninety", 90}};
  auto it = m.find(w);
  return it == m.end() ? std::nullopt : std::optional<int>(it->second);
}

std::optional<std::int64_t> big_value(std::string_view w) {
  if (w == "thousand") return 1000;
  if (w == "million") return 1000000;
  if (w == "billion") return 1000000000;
  return std::nullopt;
}

bool is_number_word(std::string_view w) {
  return ones_value(w) || tens_value(w) || w == "hundred" || big_value(w);
}

// Step 7: runs of cardinal number words become one or more numbers in digits.
std::vector<std::string> numbers_to_digits(const std::vector<std::string>& words) {
  enum class Last { none, ones, tens, hundred, big };
  std::vector<std::string> out;
  bool have = false;
  std::int64_t total = 0, current = 0;
  Last last = Last::none;
  auto flush = [&] {
    if (have) out.push_back(std::to_string(total + current));
    have = false;
    total = current = 0;
    last = Last::none;
  };
  auto start = [&](std::int64_t v, Last kind) {
    flush();
    have = true;
    current = v;
    last = kind;
  };
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (auto v = ones_value(w)) {
      if (have && ((last == Last::tens && *v < 10) || last == Last::hundred || last == Last::big)) {
        current += *v;
        last = Last::ones;
      } else {
        start(*v, Last::ones);
      }
    } else if (auto t = tens_value(w)) {
      if (have && (last == Last::hundred || last == Last::big)) {
        current += *t;
        last = Last::tens;
      } else {
        start(*t, Last::tens);
      }
    } else if (w == "hundred") {
      if (have && current > 0 && current < 100 && (last == Last::ones || last == Last::tens)) {
        current *= 100;
        last = Last::hundred;
      } else {
        flush();
        out.push_back(w);
      }
    } else if (auto m = big_value(w)) {
      if (have && current > 0 && last != Last::big) {
        total += current * *m;
        current = 0;
        last = Last::big;
      } else {
        flush();
        out.push_back(w);
      }
    } else if (w == "and" && have && (last == Last::hundred || last == Last::big) &&
               i + 1 < words.size() && is_number_word(words[i + 1]) && words[i + 1] != "hundred" &&
               !big_value(words[i + 1])) {
      // "one hundred and five": the "and" belongs to the number.
    } else {
      flush();
      out.push_back(w);
    }
  }
  flush();
  return out;
}

}  // namespace

std::vector<std::string> english_words(std::string_view text) {
  std::vector<std::string> expanded;
  for (const std::string& w : split_words(text)) {
    // Hyphens split words: "ill-disposed" -> "ill disposed" (split_words already did).
    expand_word(w, expanded);
  }
  return numbers_to_digits(expanded);
}

std::string normalize_english(std::string_view text) {
  std::string out;
  for (const std::string& w : english_words(text)) {
    if (!out.empty()) out.push_back(' ');
    out += w;
  }
  return out;
}

}  // namespace talkserve::test
