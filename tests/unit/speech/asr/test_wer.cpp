#include <catch2/catch.hpp>

#include "talkserve/speech/wer.hpp"

using talkserve::speech::normalize_words;
using talkserve::speech::word_errors;

TEST_CASE("normalize_words lower-cases and drops punctuation but keeps in-word apostrophes") {
  CHECK(normalize_words("Hello, World! Don't 'quote' well-known.") ==
        std::vector<std::string>{"hello", "world", "don't", "quote", "well", "known"});
  CHECK(normalize_words("  ").empty());
}

TEST_CASE("word_errors counts substitutions, deletions and insertions of one best alignment") {
  auto e = word_errors("the cat sat on the mat", "the cat sat on the mat");
  CHECK(e.errors() == 0);
  CHECK(e.reference_words == 6);

  e = word_errors("the cat sat on the mat", "the bat sat on mat");
  CHECK(e.substitutions == 1);
  CHECK(e.deletions == 1);
  CHECK(e.insertions == 0);
  CHECK(e.rate() == Approx(2.0 / 6));

  e = word_errors("go forward", "go go forward ten");
  CHECK(e.insertions == 2);
  CHECK(e.substitutions == 0);
  CHECK(e.deletions == 0);

  e = word_errors("", "");
  CHECK(e.rate() == 0.0);
  e = word_errors("", "noise");
  CHECK(e.rate() == 1.0);
  e = word_errors("ONE TWO", "");
  CHECK(e.deletions == 2);
  CHECK(e.rate() == 1.0);
}
