#pragma once
// Voice activity detection: per-chunk speech probabilities from a resident model, and a small
// state machine that turns them into speech regions (for trimming uploads) and speech-start /
// speech-end events (for live streams).
//
// Thread-safety: a VadModel is shared and immutable after load; each stream owns its own
// VadStream (model state lives there), which is not thread-safe.

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace talkserve::speech {

inline constexpr int kVadSampleRate = 16000;

struct VadParams {
  float threshold = 0.5f;          // probability at or above which a chunk is speech
  float neg_threshold = 0.35f;     // below which a chunk counts towards silence (hysteresis)
  int min_speech_ms = 250;         // shorter bursts are dropped
  int min_silence_ms = 500;        // silence needed to end a region
  int speech_pad_ms = 100;         // added before and after each region
  void validate() const;           // throws std::invalid_argument naming the field
};

// A speech region in samples of the 16 kHz input.
struct SpeechRegion {
  std::size_t begin = 0;
  std::size_t end = 0;  // exclusive
};

// Per-stream model state (recurrent state and context), created by VadModel::new_state().
class VadState {
 public:
  virtual ~VadState() = default;
  virtual void reset() = 0;
};

class VadModel {
 public:
  virtual ~VadModel() = default;
  // Samples per chunk at 16 kHz (512 for Silero).
  virtual std::size_t chunk_samples() const = 0;
  virtual std::unique_ptr<VadState> new_state() const = 0;
  // Speech probability of each consecutive chunk (chunk_samples() each) of `samples`,
  // continuing `state`. samples.size() must be a multiple of chunk_samples().
  virtual std::vector<float> probabilities(VadState& state, std::span<const float> samples) const = 0;
};

// Loads the Silero VAD TorchScript file (e.g. models/silero_vad/silero_vad.jit).
// Throws std::runtime_error naming the file when it is missing or not a Silero model.
// threads > 0 calls torch::set_num_threads, which is process-wide (shared with the LLM and
// wav2vec2 models); 0 leaves it alone. The model itself is tiny: one thread is plenty.
// Streams share the loaded model without locking (each VadState holds its own LSTM state and
// context), so probabilities() may run on several threads at once for different states.
std::unique_ptr<VadModel> load_silero_vad(const std::string& path, int threads = 0);

// Speech regions of a whole 16 kHz clip (a fresh state; the tail shorter than a chunk is
// zero-padded). Regions are padded by speech_pad_ms and merged when they touch. The result is
// exactly what a VadStream fed the whole clip and then flushed reports.
//
// The rules (chunk i covers samples [i*C, (i+1)*C)):
//  - a region begins at the first chunk with p >= threshold;
//  - inside a region, the first chunk with p < neg_threshold marks a tentative end; a chunk
//    with p >= threshold cancels it (chunks in between change nothing: hysteresis);
//  - the region ends at the tentative end once the silence since it, up to the end of the
//    current chunk, lasts min_silence_ms;
//  - regions shorter than min_speech_ms are dropped; an open region at the end of the input
//    ends at its tentative end, else at the end of the input;
//  - each region grows by speech_pad_ms on both sides, clamped to the input and to the end of
//    the previous region.
std::vector<SpeechRegion> detect_speech(const VadModel& model, std::span<const float> samples,
                                        const VadParams& params);

// Streaming detector: feed audio of any length; get speech start/end events with the sample
// position (from the start of the stream) where they happened (padded by speech_pad_ms, so a
// start lies up to min_speech_ms + speech_pad_ms before the position at which it is reported).
// speech_start is reported once the region has lasted min_speech_ms (short bursts never start);
// speech_end once the silence has lasted min_silence_ms.
class VadStream {
 public:
  struct Event {
    enum class Kind { speech_start, speech_end } kind;
    std::size_t sample = 0;
  };
  VadStream(const VadModel& model, VadParams params);
  std::vector<Event> push(std::span<const float> samples);
  // Ends the stream: the buffered tail (less than a chunk) is zero-padded and processed, and a
  // speech region still open is closed at its tentative end (plus padding) or at the end of
  // the audio pushed. Further pushes start after the padded tail.
  std::vector<Event> flush();
  bool in_speech() const { return in_speech_; }
  std::size_t position() const { return consumed_; }

 private:
  // `audio_end` caps the positions used for the duration rules (the zero-padded tail chunk of
  // flush() must not make a region look longer than the audio).
  void process_chunk_probs(const std::vector<float>& probs, std::vector<Event>& out,
                           std::size_t audio_end = static_cast<std::size_t>(-1));
  void close_region(std::size_t end, std::size_t limit, std::vector<Event>& out);
  const VadModel& model_;
  VadParams params_;
  std::unique_ptr<VadState> state_;
  std::vector<float> pending_;     // samples not yet a whole chunk
  std::size_t consumed_ = 0;       // samples turned into chunks so far
  bool in_speech_ = false;         // a speech_start has been reported and no speech_end yet
  bool triggered_ = false;         // a region is open (maybe not yet min_speech_ms long)
  std::size_t speech_begin_ = 0;   // unpadded start of the open region
  std::size_t last_end_ = 0;       // padded end of the previous region (starts never precede it)
  std::optional<std::size_t> silence_begin_;  // tentative end of the open region
};

}  // namespace talkserve::speech
