#include "talkserve/speech/wer.hpp"

#include <algorithm>
#include <cctype>

namespace talkserve::speech {

std::vector<std::string> normalize_words(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  auto flush = [&] {
    // Apostrophes only count inside a word ("don't"), not as quotes around it.
    while (!cur.empty() && cur.back() == '\'') cur.pop_back();
    std::size_t lead = 0;
    while (lead < cur.size() && cur[lead] == '\'') ++lead;
    cur.erase(0, lead);
    if (!cur.empty()) words.push_back(std::move(cur));
    cur.clear();
  };
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || u >= 0x80 || c == '\'') {
      cur.push_back(u < 0x80 ? static_cast<char>(std::tolower(u)) : c);
    } else if (c == '-' && !cur.empty()) {
      flush();  // "well-known" -> "well known"
    } else {
      flush();
    }
  }
  flush();
  return words;
}

WordErrors word_errors(std::string_view reference, std::string_view hypothesis) {
  const auto ref = normalize_words(reference);
  const auto hyp = normalize_words(hypothesis);
  // Levenshtein over words, keeping the operation counts of one best alignment.
  struct Cell {
    std::size_t cost = 0, sub = 0, del = 0, ins = 0;
  };
  std::vector<Cell> prev(hyp.size() + 1), cur(hyp.size() + 1);
  for (std::size_t j = 0; j <= hyp.size(); ++j) prev[j] = {j, 0, 0, j};
  for (std::size_t i = 1; i <= ref.size(); ++i) {
    cur[0] = {i, 0, i, 0};
    for (std::size_t j = 1; j <= hyp.size(); ++j) {
      Cell best = prev[j - 1];
      if (ref[i - 1] != hyp[j - 1]) {
        ++best.cost;
        ++best.sub;
      }
      Cell del = prev[j];
      ++del.cost;
      ++del.del;
      Cell ins = cur[j - 1];
      ++ins.cost;
      ++ins.ins;
      if (del.cost < best.cost) best = del;
      if (ins.cost < best.cost) best = ins;
      cur[j] = best;
    }
    std::swap(prev, cur);
  }
  const Cell& end = prev[hyp.size()];
  return WordErrors{end.sub, end.del, end.ins, ref.size()};
}

}  // namespace talkserve::speech
