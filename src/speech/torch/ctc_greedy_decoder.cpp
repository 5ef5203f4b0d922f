#include "speech/torch/ctc_greedy_decoder.hpp"

namespace talkserve::speech::detail {
namespace {

bool is_special(const std::string& token) {
  return token.size() >= 3 && token.front() == '<' && token.back() == '>';
}

}  // namespace

AsrResult ctc_greedy_decode(const std::vector<int>& best_ids, const CtcVocabulary& vocab,
                            double frame_seconds) {
  AsrResult result;
  AsrWord current;
  std::size_t word_first = 0;
  std::size_t word_last = 0;  // last frame of the word's last token run
  bool in_word = false;
  auto finish_word = [&] {
    if (!in_word) return;
    current.start = static_cast<double>(word_first) * frame_seconds;
    current.end = static_cast<double>(word_last + 1) * frame_seconds;
    result.words.push_back(std::move(current));
    current = AsrWord{};
    in_word = false;
  };
  int previous = -1;
  bool run_in_word = false;  // the current run of `previous` is part of the open word
  for (std::size_t f = 0; f < best_ids.size(); ++f) {
    const int id = best_ids[f];
    if (id == previous) {
      if (run_in_word) word_last = f;
      continue;
    }
    previous = id;
    run_in_word = false;
    if (id == vocab.blank_id || id < 0 || static_cast<std::size_t>(id) >= vocab.tokens.size()) continue;
    const std::string& token = vocab.tokens[static_cast<std::size_t>(id)];
    if (token == vocab.word_delimiter) {
      finish_word();
      continue;
    }
    if (is_special(token)) continue;
    if (!in_word) {
      in_word = true;
      word_first = f;
    }
    current.word += token;
    word_last = f;
    run_in_word = true;
  }
  finish_word();
  for (const auto& w : result.words) {
    if (!result.text.empty()) result.text += ' ';
    result.text += w.word;
  }
  return result;
}

}  // namespace talkserve::speech::detail
