#pragma once
// Whisper's decoding rules, as the reference decoder applies them, over plain float logits:
// suppressed tokens, the timestamp-token grammar, greedy / sampled / beam-search token choice,
// the quality measures behind temperature fallback, and the split of timestamped tokens into
// segments. No torch here: the network (whisper_model.hpp) produces logits, this decides.
//
// Thread-safety: the free functions are pure; a WhisperSearch belongs to one thread.

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace talkserve::speech::detail {

// Ids of the special tokens of a Whisper vocabulary (-1 where the vocabulary has none).
struct WhisperSpecialTokens {
  int eot = -1;              // <|endoftext|>
  int sot = -1;              // <|startoftranscript|>
  int sot_prev = -1;         // <|startofprev|>
  int sot_lm = -1;           // <|startoflm|>
  int no_speech = -1;        // <|nospeech|> (<|nocaptions|> in older vocabularies)
  int no_timestamps = -1;    // <|notimestamps|>
  int transcribe = -1;
  int translate = -1;
  int timestamp_begin = -1;  // <|0.00|>; timestamps are timestamp_begin + k (k * 0.02 s)
  std::vector<int> suppress;        // suppressed at every step (generation config's suppress_tokens)
  std::vector<int> begin_suppress;  // suppressed at the first sampled step (" " and eot)
};

struct WhisperDecodeRules {
  bool timestamps = true;               // predict timestamp tokens (segments); else <|notimestamps|>
  int max_initial_timestamp_index = 50;  // the first timestamp is at most 1.0 s
  int vocab = 0;                         // logits per row
};

// Applies SuppressBlank, SuppressTokens and (with timestamps) the timestamp rules to one
// sequence's logits in place; `sampled` are the tokens generated so far (after the prefix).
void apply_whisper_rules(std::span<float> logits, std::span<const int> sampled,
                         const WhisperSpecialTokens& special, const WhisperDecodeRules& rules);

// log_softmax of a row (in a new vector).
std::vector<float> log_softmax(std::span<const float> logits);

// zlib compression ratio of the text's bytes (len / len(compressed)); repetition loops give
// high values (the reference falls back above 2.4).
double compression_ratio(const std::string& text);

// One timestamped piece of a window's tokens.
struct WhisperSegment {
  double start = 0;  // seconds from the start of the window
  double end = 0;
  std::vector<int> tokens;  // text tokens only
};
// Splits generated tokens (without eot) into segments: a timestamp opens a segment, the next
// one closes it (the usual "<|t0|> text <|t1|><|t1|> text <|t2|>" shape); text that follows a
// closed segment without a new timestamp starts where that one ended; text left open at the
// end runs to `window_seconds`. Without timestamp tokens the whole text is one segment
// [0, window_seconds]. Segments without text are dropped.
std::vector<WhisperSegment> split_segments(std::span<const int> tokens, int timestamp_begin,
                                           double window_seconds);

// How much of a window its tokens account for, as the reference transcriber decides where to
// decode next: when the tokens end in a closed timestamp pair (or text after one), the model
// has put the rest of the audio off to the next window, so only the tokens up to that pair
// are kept and the next window starts at its time; otherwise the window is done.
struct WhisperSeek {
  std::size_t keep = 0;     // tokens to keep (a prefix of them)
  double consumed = 0;      // seconds of the window they cover
};
WhisperSeek plan_seek(std::span<const int> tokens, int timestamp_begin, double window_seconds);

// A finished hypothesis.
struct WhisperHypothesis {
  std::vector<int> tokens;  // generated tokens, eot not included
  double sum_logprob = 0;   // includes the eot's log-probability when it ended with one
};

// The token choice of one request's decode at one temperature: greedy (temperature 0, one
// beam), sampling (temperature > 0), or beam search (temperature 0, beams > 1). Feed it each
// step's logits for its live beams; it says which tokens to feed next and which beam each
// continues (so the caller reorders the K/V cache).
class WhisperSearch {
 public:
  WhisperSearch(int beams, double temperature, int max_tokens, std::uint64_t seed,
                const WhisperSpecialTokens& special, const WhisperDecodeRules& rules);

  // Rows in use this step: 1 before the first step (all beams share the prefix), then beams().
  int live_rows() const { return first_ ? 1 : beams_; }
  int beams() const { return beams_; }

  // logits: live_rows() rows of `vocab` floats (modified in place). After it, next_tokens()
  // and parents() describe the beams (beams() of them) unless done().
  void advance(std::span<float> logits);
  bool done() const { return done_; }
  const std::vector<int>& next_tokens() const { return next_; }
  const std::vector<int>& parents() const { return parents_; }
  int generated() const { return step_; }  // tokens generated per beam so far

  // The best hypothesis (by sum_logprob / length); valid once done().
  WhisperHypothesis best() const;

 private:
  struct Beam {
    std::vector<int> tokens;
    double sum_logprob = 0;
  };
  void finish_unfinished();

  int beams_;
  double temperature_;
  int max_tokens_;
  std::mt19937_64 rng_;
  const WhisperSpecialTokens& special_;
  WhisperDecodeRules rules_;
  bool first_ = true;
  bool done_ = false;
  int step_ = 0;
  std::vector<Beam> live_;
  std::vector<WhisperHypothesis> finished_;
  std::vector<int> next_;
  std::vector<int> parents_;
};

// Dynamic time warping over a cost matrix [rows x cols] (row-major); returns the path as
// (row, col) pairs from (0, 0) to (rows-1, cols-1), moving down, right or diagonally.
std::vector<std::pair<int, int>> dtw_path(std::span<const float> cost, int rows, int cols);

}  // namespace talkserve::speech::detail
