#pragma once
// Whisper speech recognition on libtorch: any Hugging Face `openai/whisper-*` checkpoint
// directory (config.json, generation_config.json, model.safetensors, tokenizer.json), English-
// only or multilingual, 80 or 128 mel bins.
//
// Scheduling: the ASR executor hands transcribe_batch() a batch of segments; their log-mel
// features go through the encoder as one batch (one encoder at a time), then each segment
// joins a decode loop shared by every batch in flight: one thread runs one batched decoder
// forward per step over all active segments' hypotheses (continuous batching: a segment
// joins and leaves between steps; a cancelled one is dropped at the next step).
// transcribe_batch() returns when its segments are decoded, so several executor workers keep
// the decode loop fed while one of them encodes.
//
// Decoding follows the reference decoder: suppressed tokens, timestamp-token rules, greedy or
// beam search, temperature fallback on repetition (compression ratio) or low confidence
// (average log-probability), no-speech detection (silent windows give no text), timestamp
// segments and word times from cross-attention alignment (dynamic time warping).
//
// Thread-safety: transcribe_batch() and the test helpers may be called from several threads
// at once; everything else is immutable after load().

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "talkserve/speech/asr.hpp"

namespace talkserve::speech {

struct WhisperOptions {
  std::string path;                  // the model directory
  std::string name = "whisper";      // AsrBackend::name()
  std::string device = "cpu";        // "cpu", "cuda", "cuda:N"
  int threads = 0;                   // torch intra-op threads (process-wide); 0 = leave as is
  // Encoder matmuls: "float32", "bfloat16" (float32 accumulation; CPU only), or "auto":
  // bfloat16 where the CPU has native bf16 dot products (AVX512-BF16), else float32.
  std::string encoder_dtype = "auto";
  int beam_size = 1;                 // 1 = greedy; > 1 = beam search at temperature 0
  bool timestamps = true;            // predict timestamp tokens (segments)
  bool word_timestamps = true;       // word times by cross-attention alignment
  std::vector<double> temperatures = {0.0, 0.2, 0.4, 0.6, 0.8, 1.0};  // fallback ladder
  double compression_ratio_threshold = 2.4;  // above: retry hotter (0 = off)
  double logprob_threshold = -1.0;           // average log-prob below: retry hotter
  double no_speech_threshold = 0.6;          // with a low log-prob too: the window is silence
  int max_active = 32;               // segments decoding at once in the shared decode loop
  int max_new_tokens = 224;          // tokens per 30 s window at most
  std::uint64_t seed = 0x5eed;       // sampling at temperatures > 0
  void validate() const;             // throws std::invalid_argument naming the field
};

// One recognised window with the decoder's own measures (verbose_json's segment fields).
struct WhisperWindow {
  std::vector<int> tokens;  // generated tokens (timestamps included), no eot
  std::string text;
  std::string language;     // detected or requested
  double temperature = 0;
  double avg_logprob = 0;
  double compression_ratio = 0;
  double no_speech_prob = 0;
  bool skipped = false;     // judged silence: no text
  AsrResult result;         // text, words and segments, times from the window's start
};

class WhisperAsr final : public AsrBackend {
 public:
  // Throws AsrError naming the file (and key or tensor) on a missing or malformed file.
  static std::unique_ptr<WhisperAsr> load(const WhisperOptions& options);
  ~WhisperAsr() override;

  std::string name() const override;
  std::vector<std::string> languages() const override;
  std::vector<AsrResult> transcribe_batch(std::vector<AsrInput>& batch) override;

  // The same, with each window's details (inputs over 30 s give several windows).
  std::vector<std::vector<WhisperWindow>> transcribe_windows(std::vector<AsrInput>& batch);

  // Log-mel features of one window [n_mels x 3000], row-major.
  std::vector<float> log_mel(const std::vector<float>& samples) const;
  int mel_bins() const;
  // Logits of the first token after the prefix <|startoftranscript|> [language, task]
  // [<|notimestamps|>], before any suppression (vocab_size() floats).
  std::vector<float> first_logits(const std::vector<float>& samples, bool timestamps) const;
  int vocab_size() const;
  bool multilingual() const;

  // Decoding counters since load, for benchmarks.
  struct Stats {
    std::uint64_t steps = 0;          // batched decoder forwards
    std::uint64_t tokens = 0;         // tokens produced (all hypotheses)
    std::uint64_t max_rows = 0;       // largest batch of rows in one step
    double encoder_seconds = 0;
    double decoder_seconds = 0;       // time inside decoder forwards (steps and prefills)
  };
  Stats stats() const;

  struct Impl;
  explicit WhisperAsr(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace talkserve::speech
