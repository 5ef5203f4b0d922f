#pragma once
// Greedy CTC decoding of per-frame best token ids into words with times (no torch here).

#include <string>
#include <vector>

#include "talkserve/speech/asr.hpp"

namespace talkserve::speech::detail {

struct CtcVocabulary {
  std::vector<std::string> tokens;  // token of each id
  int blank_id = 0;                 // the pad token
  std::string word_delimiter = "|";
};

// Collapses repeats, drops the blank and <...> special tokens, splits words at the delimiter.
// A word spans from the first frame of its first token to the end of the last frame of its
// last token; frame f covers [f, f + 1) * frame_seconds.
AsrResult ctc_greedy_decode(const std::vector<int>& best_ids, const CtcVocabulary& vocab,
                            double frame_seconds);

}  // namespace talkserve::speech::detail
