#pragma once
// The ASR backend interface. A backend is one resident model shared by every request; the ASR
// executor (a BatchingExecutor in front of it) hands it whole batches. Audio is always 16 kHz
// mono float in [-1, 1]; the media layer converts any upload to that first.
//
// Thread-safety: transcribe_batch() is called by one executor worker at a time per backend
// instance unless the backend says otherwise (max_concurrent_batches()); name() and the
// accessors are safe from any thread.

#include <atomic>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace talkserve::speech {

inline constexpr int kAsrSampleRate = 16000;

struct AsrInput {
  std::vector<float> samples;  // 16 kHz mono, [-1, 1]
  std::string language;        // ISO 639-1 hint ("en"); "" = backend default
  // Set once the request behind this input is cancelled (its client left): a backend that has
  // not started on the input yet may skip it and return an empty result. Null: never.
  std::shared_ptr<const std::atomic<bool>> cancelled = nullptr;

  std::string prompt;  // text the speech follows (names, spellings); backends may ignore it

  bool is_cancelled() const { return cancelled && cancelled->load(std::memory_order_relaxed); }
};

// One recognised word with its time span in seconds from the start of the input.
struct AsrWord {
  std::string word;
  double start = 0;
  double end = 0;
};

// A piece of the input as the recogniser itself segmented it (Whisper's timestamp pairs),
// with the decoder's measures of it.
struct AsrSegment {
  double start = 0;  // seconds from the start of the input
  double end = 0;
  std::string text;
  std::vector<int> tokens;
  double temperature = 0;
  double avg_logprob = 0;
  double compression_ratio = 0;
  double no_speech_prob = 0;
};

struct AsrResult {
  std::string text;            // words joined by single spaces, no leading/trailing space
  std::vector<AsrWord> words;  // empty when the backend cannot time words
  std::vector<AsrSegment> segments;  // empty when the backend does not segment its input
};

// A model that failed to load or run. The executor turns it into a failed request; it never
// escapes to the I/O threads.
class AsrError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class AsrBackend {
 public:
  virtual ~AsrBackend() = default;
  // "pocketsphinx", "wav2vec2", ...: the value of the `model` field clients may send.
  virtual std::string name() const = 0;
  // Languages the model understands (ISO 639-1); a request for another one is a 400.
  virtual std::vector<std::string> languages() const = 0;
  // Recognises every input of the batch; returns exactly batch.size() results, in order.
  // May move from the inputs. Throws AsrError on a model failure (fails the whole batch).
  virtual std::vector<AsrResult> transcribe_batch(std::vector<AsrInput>& batch) = 0;
};

}  // namespace talkserve::speech
