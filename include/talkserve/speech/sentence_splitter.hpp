#pragma once
// Splits text into sentences for streaming TTS: whole text at once (split_sentences) or
// incrementally as an LLM streams deltas (SentenceStream), with identical results.
//
// Boundaries: after . ! ? … and 。！？； (plus any closing quotes/brackets that follow, so
// "Hi!" keeps its quote), and at every newline. A '.' or '…' ends a sentence only when
// followed by whitespace and then not by a lower-case letter, and not after a known
// abbreviation (Mr. Dr. St. e.g. vs. ...), a single capital initial, or a list number ("1.");
// so 3.14, example.com and "etc. and" stay whole. ! and ? end a sentence before any
// whitespace. Any terminator directly followed by CJK text ends a sentence. A run-on
// sentence longer than max_chars code points is cut at the last clause mark (, ; : ， 、 ：)
// or else the last space inside the first max_chars, or else hard at max_chars, so the first
// audio is never held back. Pieces are trimmed; pieces without a letter or digit are dropped.
// Input is UTF-8; cuts fall only between code points.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace talkserve::speech {

struct SentenceSplitterConfig {
  std::size_t max_chars = 160;  // code points before a run-on sentence is cut
  std::size_t min_chars = 20;   // a cut leaves at least this many code points (when it can)
};

std::vector<std::string> split_sentences(std::string_view text,
                                         const SentenceSplitterConfig& config = {});

// Incremental splitting. Not thread-safe: one instance per stream.
class SentenceStream {
 public:
  explicit SentenceStream(SentenceSplitterConfig config = {});

  // Appends a delta (may end inside a UTF-8 sequence) and returns the sentences that are now
  // certainly complete, in order. A sentence is returned by the first push() whose text
  // decides its end (for "Hello." that is the push bringing the next non-space character).
  std::vector<std::string> push(std::string_view delta);
  // The end of the text: returns the remaining sentences and resets the stream.
  std::vector<std::string> flush();

  // Bytes received but not yet returned in a sentence.
  std::size_t pending_bytes() const noexcept { return buffer_.size(); }

 private:
  void drain(bool final, std::vector<std::string>& out);

  SentenceSplitterConfig config_;
  std::string buffer_;
};

}  // namespace talkserve::speech
