#pragma once
// The Whisper network on libtorch: log-mel front end, encoder, and a decoder whose state lives
// in slot buffers so that the decoding steps of many requests run as one batched forward.
//
// Layout of the decoder state (WhisperDecoderState):
//   * request slots r = 0..R-1 hold the cross-attention K/V of one request's audio
//     (computed once from the encoder output);
//   * each request owns `beams` consecutive sequence slots [r*beams, (r+1)*beams) holding the
//     self-attention K/V of its hypotheses.
// Active requests are kept compact (0..R-1): one that leaves is replaced by the last one
// (WhisperDecoderState::move_request), so one step is a forward over slots [0, R*beams) with
// plain views of the buffers, no gather.
//
// Thread-safety: WhisperModel is immutable after load and may be used from several threads;
// a WhisperDecoderState belongs to one thread at a time.

#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace talkserve::speech::detail {

// The hyper-parameters of a Hugging Face Whisper config.json.
struct WhisperConfig {
  int num_mel_bins = 80;
  int d_model = 384;
  int encoder_layers = 4;
  int decoder_layers = 4;
  int encoder_attention_heads = 6;
  int decoder_attention_heads = 6;
  int encoder_ffn_dim = 1536;
  int decoder_ffn_dim = 1536;
  int vocab_size = 51864;
  int max_source_positions = 1500;  // encoder frames of a 30 s window
  int max_target_positions = 448;   // decoder context
  double layer_norm_eps = 1e-5;

  // Reads and checks <dir>/config.json; throws std::runtime_error naming the file and key.
  static WhisperConfig load(const std::string& path);
};

inline constexpr int kWhisperSampleRate = 16000;
inline constexpr int kWhisperNFft = 400;
inline constexpr int kWhisperHop = 160;
inline constexpr int kWhisperWindowSamples = 30 * kWhisperSampleRate;  // 480000
inline constexpr int kWhisperFrames = kWhisperWindowSamples / kWhisperHop;  // 3000

// Slaney-style mel filterbank [n_mels, n_fft/2+1] (librosa's default: slaney mel scale and
// area normalisation), over 0 .. sample_rate/2.
torch::Tensor whisper_mel_filters(int n_mels);

// Whisper's log-mel features of one window: the samples (16 kHz) zero-padded or cut to 30 s,
// STFT (n_fft 400, hop 160, periodic Hann, centred with reflection), power, mel, log10 with a
// floor of 1e-10, clamped to 8 decades below the maximum, then (x + 4) / 4.
// Returns [n_mels, 3000] float32.
torch::Tensor whisper_log_mel(std::span<const float> samples, const torch::Tensor& filters);

struct WhisperAttentionWeights {
  torch::Tensor q_w, q_b, k_w, v_w, v_b, o_w, o_b;  // k has no bias in Whisper
};

struct WhisperLayerWeights {
  torch::Tensor ln1_w, ln1_b;
  WhisperAttentionWeights self_attn;
  // Encoder: Q (pre-scaled by 1/sqrt(head_dim)), K and V stacked, [3d, d] and [3d] (K's bias
  // zero), for one matmul per layer.
  torch::Tensor qkv_w, qkv_b;
  // Decoder: cross-attention K and V stacked, [2d, d] and [2d] (K's bias zero).
  torch::Tensor cross_kv_w, cross_kv_b;
  // Encoder, bfloat16 matmuls: the four weight matrices in bf16 (empty in float32 mode).
  torch::Tensor qkv_w16, o_w16, fc1_w16, fc2_w16;
  torch::Tensor ln_cross_w, ln_cross_b;  // decoder only
  WhisperAttentionWeights cross_attn;    // decoder only
  torch::Tensor ln2_w, ln2_b;
  torch::Tensor fc1_w, fc1_b, fc2_w, fc2_b;
};

struct WhisperWeights {
  torch::Tensor conv1_w, conv1_b, conv2_w, conv2_b, enc_pos;
  std::vector<WhisperLayerWeights> encoder;
  torch::Tensor enc_ln_w, enc_ln_b;
  torch::Tensor tok_emb, dec_pos;  // [vocab, d], [448, d]
  std::vector<WhisperLayerWeights> decoder;
  torch::Tensor dec_ln_w, dec_ln_b;
};

class WhisperDecoderState;

class WhisperModel {
 public:
  // Reads config.json and model.safetensors (F32, F16 or BF16; computed in float32) from `dir`.
  // Throws std::runtime_error naming the file and tensor on a missing file or tensor or a
  // wrong shape.
  // encoder_bf16: the encoder's matmuls run in bfloat16 (float32 accumulation; activations,
  // norms and softmax stay float32). For CPUs with native bf16 dot products.
  WhisperModel(const std::string& dir, torch::Device device, bool encoder_bf16 = false);
  bool encoder_bf16() const { return encoder_bf16_; }

  const WhisperConfig& config() const { return config_; }
  const torch::Tensor& mel_filters() const { return mel_filters_; }
  torch::Device device() const { return device_; }
  std::int64_t head_dim() const { return config_.d_model / config_.decoder_attention_heads; }

  // mel [B, n_mels, 3000] -> encoder output [B, 1500, d].
  torch::Tensor encode(const torch::Tensor& mel) const;

  // Cross-attention keys and values of one encoder output [1500, d], per decoder layer:
  // {K, V} each [H, 1500, head_dim].
  std::vector<std::pair<torch::Tensor, torch::Tensor>> cross_kv(const torch::Tensor& audio) const;

  // Runs `tokens` (a whole prefix) for the request in slot `r` and writes their self-attention
  // K/V into sequence slot `seq`. Returns the logits of every position [n, vocab]. When
  // `alignment` is non-empty it also returns, for each (layer, head) listed, the
  // cross-attention scores before the softmax [n, 1500] (concatenated: [heads, n, 1500]) in
  // `*weights`, so that the caller can normalise them over the window's own frames.
  torch::Tensor prefill(WhisperDecoderState& state, int r, int seq, const std::vector<std::int64_t>& tokens,
                        const std::vector<std::pair<int, int>>& alignment = {},
                        torch::Tensor* weights = nullptr) const;

  // One decoding step for sequence slots [0, n): slot i feeds tokens[i] at position lens[i]
  // (its K/V so far occupy positions [0, lens[i])); request slot of sequence i is i / beams.
  // Returns logits [n, vocab]. Slots with lens[i] < 0 are idle: fed a dummy token, ignored.
  torch::Tensor step(WhisperDecoderState& state, const std::vector<std::int64_t>& tokens,
                     const std::vector<std::int64_t>& lens) const;

 private:
  torch::Tensor encoder_layer(const WhisperLayerWeights& w, torch::Tensor x) const;
  // The float32 CPU encoder: buffers reused across layers and heads, one head's scores at a
  // time, softmax and GELU by whisper_cpu.hpp. x: [B * 1500, d], updated in place.
  void encode_cpu(torch::Tensor& x, std::int64_t batch) const;
  // Final hidden states [n, d] -> logits [n, vocab] on the CPU (tied embedding).
  torch::Tensor vocab_logits(const torch::Tensor& x) const;

  WhisperConfig config_;
  WhisperWeights w_;
  torch::Tensor mel_filters_;
  torch::Device device_;
  bool encoder_bf16_ = false;
};

// Per-request and per-sequence decoder buffers (see the top of this file). Grows on demand.
class WhisperDecoderState {
 public:
  WhisperDecoderState(const WhisperModel& model, int beams);

  int beams() const { return beams_; }
  int requests() const { return requests_; }

  // Adds a request in slot requests() and stores its cross K/V; returns the slot.
  int add_request(const std::vector<std::pair<torch::Tensor, torch::Tensor>>& cross);
  // Removes request `r`: the last request moves into its slot (its sequences too).
  // Returns the old slot of the request that moved (== r when r was the last).
  int remove_request(int r);
  // Copies sequence slot `from`'s self K/V (positions [0, len)) into slot `to`.
  void copy_sequence(int from, int to, std::int64_t len);
  // Reorders the sequences of request r: new sequence j takes old sequence parents[j]'s K/V.
  void reorder(int r, const std::vector<int>& parents, std::int64_t len);

  // Buffers: per decoder layer, [seq slots, H, T, hd] and [request slots, H, 1500, hd].
  std::vector<torch::Tensor> self_k, self_v, cross_k, cross_v;
  void ensure_length(std::int64_t t);

 private:
  void ensure_requests(int n);

  const WhisperModel& model_;
  int beams_;
  int requests_ = 0;
  int request_capacity_ = 0;
  std::int64_t length_capacity_ = 0;
};

}  // namespace talkserve::speech::detail
