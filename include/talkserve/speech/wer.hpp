#pragma once
// Word error rate, as ASR accuracy is usually reported: (substitutions + deletions +
// insertions) / reference words, after normalising both texts (lower case, punctuation other
// than in-word apostrophes removed, whitespace collapsed).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace talkserve::speech {

std::vector<std::string> normalize_words(std::string_view text);

struct WordErrors {
  std::size_t substitutions = 0;
  std::size_t deletions = 0;
  std::size_t insertions = 0;
  std::size_t reference_words = 0;
  std::size_t errors() const { return substitutions + deletions + insertions; }
  double rate() const {
    return reference_words == 0 ? (errors() == 0 ? 0.0 : 1.0)
                                : static_cast<double>(errors()) / reference_words;
  }
  WordErrors& operator+=(const WordErrors& o) {
    substitutions += o.substitutions;
    deletions += o.deletions;
    insertions += o.insertions;
    reference_words += o.reference_words;
    return *this;
  }
};

WordErrors word_errors(std::string_view reference, std::string_view hypothesis);

}  // namespace talkserve::speech
