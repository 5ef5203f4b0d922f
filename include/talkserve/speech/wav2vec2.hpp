#pragma once
// wav2vec2-CTC speech recognition (a Hugging Face Wav2Vec2ForCTC directory run with libtorch)
// and a writer of random-weight model directories for tests and benchmarks.
//
// A model directory holds config.json, vocab.json and model.safetensors (F32, F16 or BF16;
// computed in float32). Both encoder variants load: feat_extract_norm "group" with the
// post-LN encoder (wav2vec2-base-960h) and "layer" with do_stable_layer_norm (large-lv60).
//
// Batching: clips are not padded. The convolutional feature encoder and the positional conv run
// per clip (their cost is linear in the length; padded intermediates of the first layer would be
// hundreds of MB), the transformer's per-frame layers run on all clips' frames packed into one
// matrix, and attention runs within each clip, so each clip's text and logits equal those of
// the clip run alone. (HF runs "group" models without an attention mask, so padding changes
// their output there.)
//
// Thread-safety: the loaded model is immutable; transcribe_batch() and logits_batch() may run
// on several threads at once. They share torch's intra-op thread pool, which is process-wide.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "talkserve/speech/asr.hpp"

namespace talkserve::speech {

struct Wav2Vec2Options {
  std::string path;                              // the model directory
  std::string name = "wav2vec2";                 // AsrBackend::name()
  std::vector<std::string> languages = {"en"};   // AsrBackend::languages()
  std::string device = "cpu";                    // "cpu", "cuda", "cuda:N"
  // Intra-op threads. torch::set_num_threads is process-wide: every torch model in the process
  // (LLM, VAD, ASR) shares one pool and the last loader that sets it wins. 0 = leave it as is.
  int threads = 0;
  void validate() const;  // throws std::invalid_argument naming the field
};

// CTC logits of one clip: frames x vocab, row-major.
struct CtcLogits {
  std::size_t frames = 0;
  std::size_t vocab = 0;
  std::vector<float> values;
  float at(std::size_t frame, std::size_t token) const { return values[frame * vocab + token]; }
};

class Wav2Vec2Asr final : public AsrBackend {
 public:
  // Throws AsrError naming the file (and tensor or key) on a missing file, malformed JSON,
  // unsupported config value, missing tensor or wrong shape.
  static std::unique_ptr<Wav2Vec2Asr> load(const Wav2Vec2Options& options);
  ~Wav2Vec2Asr() override;

  std::string name() const override;
  std::vector<std::string> languages() const override;
  // Greedy CTC: argmax per frame, repeats collapsed, the pad (blank) token and <...> special
  // tokens dropped, "|" separates words. Text keeps the vocabulary's case (upper for
  // base-960h). Word times come from the frames of each word's characters.
  std::vector<AsrResult> transcribe_batch(std::vector<AsrInput>& batch) override;

  // The model's output for a batch of 16 kHz clips (one entry per clip, its valid frames only).
  std::vector<CtcLogits> logits_batch(const std::vector<std::span<const float>>& clips) const;
  AsrResult decode(const CtcLogits& logits) const;

  // CTC frames produced by a clip of `samples` samples (0 when shorter than the receptive field).
  std::size_t frames_for(std::size_t samples) const;
  double frame_seconds() const;  // product of the conv strides / 16 kHz (0.02 for base)
  std::size_t vocab_size() const;
  const std::vector<std::string>& vocabulary() const;  // token of each id

  struct Impl;
  explicit Wav2Vec2Asr(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// The shape of a random-weight model written by write_random_wav2vec2().
struct Wav2Vec2RandomSpec {
  int hidden_size = 32;
  int num_layers = 2;
  int num_heads = 2;
  int intermediate_size = 64;
  std::vector<int> conv_dim = {32, 32, 32, 32, 32, 32, 32};
  std::vector<int> conv_kernel = {10, 3, 3, 3, 3, 2, 2};
  std::vector<int> conv_stride = {5, 2, 2, 2, 2, 2, 2};
  bool conv_bias = false;
  std::string feat_extract_norm = "group";  // "group" | "layer"
  bool do_stable_layer_norm = false;
  int num_conv_pos_embeddings = 16;
  int num_conv_pos_embedding_groups = 4;
  std::string dtype = "F32";                // F32 | F16 | BF16 on disk
  // Positional conv weight norm as parametrizations.weight.original0/1 (newer torch) instead
  // of weight_g/weight_v.
  bool parametrized_weight_norm = false;

  // hidden 32, 2 layers, 2 heads, conv_dim 32 x 7 (real kernels and strides: 20 ms frames).
  static Wav2Vec2RandomSpec tiny_group();   // "group" + post-LN encoder (base-960h style)
  static Wav2Vec2RandomSpec tiny_layer();   // "layer" + stable layer norm (large-lv60 style)
  static Wav2Vec2RandomSpec base();         // the real wav2vec2-base sizes (95M parameters)
};

// Writes config.json, vocab.json (the 32-token English CTC vocabulary of base-960h) and
// model.safetensors with random weights scaled to keep activations near unit variance and the
// per-frame argmax varied. Deterministic for a given seed. Throws std::runtime_error on I/O
// failure. Creates `dir` if needed.
void write_random_wav2vec2(const std::string& dir, const Wav2Vec2RandomSpec& spec, std::uint64_t seed);

}  // namespace talkserve::speech
