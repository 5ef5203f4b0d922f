#pragma once
// The shared Whisper decode loop: one thread runs the decoding steps of every active window as
// one batched decoder forward per step (continuous batching). A window joins between steps
// (its prefix is prefilled into its slot first) and leaves as soon as its search is done, is
// retried at the next temperature of the fallback ladder, or is dropped when cancelled.
//
// Thread-safety: submit() may be called from any thread; the loop thread alone touches the
// decoder state. The destructor stops the loop and answers what is left as cancelled.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "speech/torch/whisper_decoding.hpp"
#include "speech/torch/whisper_model.hpp"

namespace talkserve::speech::detail {

struct WhisperLoopOptions {
  int beams = 1;
  std::vector<double> temperatures = {0.0};
  double compression_ratio_threshold = 2.4;
  double logprob_threshold = -1.0;
  double no_speech_threshold = 0.6;
  int max_active = 32;
  int max_new_tokens = 224;
  int max_initial_timestamp_index = 50;
};

struct WhisperJob {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> cross;  // WhisperModel::cross_kv
  std::vector<std::int64_t> prefix;  // tokens before the first sampled one
  int sot_index = 0;                 // where <|startoftranscript|> is in `prefix`
  bool timestamps = true;
  std::uint64_t seed = 0;
  std::shared_ptr<const std::atomic<bool>> cancelled;  // may be null
};

struct WhisperOutcome {
  WhisperHypothesis best;  // at the temperature finally used
  std::string text;        // its text tokens, decoded
  double temperature = 0;
  double avg_logprob = 0;
  double compression_ratio = 0;
  double no_speech_prob = 0;
  bool cancelled = false;
};

class WhisperDecodeLoop {
 public:
  using TextOf = std::function<std::string(const std::vector<int>&)>;

  WhisperDecodeLoop(const WhisperModel& model, const WhisperSpecialTokens& special, TextOf text_of,
                    WhisperLoopOptions options);
  ~WhisperDecodeLoop();
  WhisperDecodeLoop(const WhisperDecodeLoop&) = delete;
  WhisperDecodeLoop& operator=(const WhisperDecodeLoop&) = delete;

  std::future<WhisperOutcome> submit(WhisperJob job);

  std::uint64_t steps() const { return steps_.load(); }
  std::uint64_t tokens() const { return tokens_.load(); }
  std::uint64_t max_rows() const { return max_rows_.load(); }
  double decoder_seconds() const { return decoder_ns_.load() / 1e9; }

 private:
  struct Active;
  void run();
  void admit(std::unique_ptr<Active> a);
  void start_attempt(Active& a, int slot);
  bool finish_attempt(Active& a, int slot);  // true when the window is done
  void step_all();
  void remove(std::vector<int> slots);

  const WhisperModel& model_;
  const WhisperSpecialTokens& special_;
  TextOf text_of_;
  WhisperLoopOptions options_;
  WhisperDecoderState state_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Active>> pending_;
  bool stopping_ = false;

  std::vector<std::unique_ptr<Active>> active_;  // index = request slot (loop thread only)

  std::atomic<std::uint64_t> steps_{0}, tokens_{0}, max_rows_{0}, decoder_ns_{0};
  std::thread thread_;
};

}  // namespace talkserve::speech::detail
