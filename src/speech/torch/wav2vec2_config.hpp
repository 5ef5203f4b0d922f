#pragma once
// config.json and vocab.json of a Hugging Face Wav2Vec2ForCTC directory (no torch here).

#include <string>
#include <vector>

namespace talkserve::speech::detail {

struct Wav2Vec2Config {
  // Defaults are those of transformers' Wav2Vec2Config (= wav2vec2-base).
  int hidden_size = 768;
  int num_hidden_layers = 12;
  int num_attention_heads = 12;
  int intermediate_size = 3072;
  std::vector<int> conv_dim = {512, 512, 512, 512, 512, 512, 512};
  std::vector<int> conv_kernel = {10, 3, 3, 3, 3, 2, 2};
  std::vector<int> conv_stride = {5, 2, 2, 2, 2, 2, 2};
  bool conv_bias = false;
  std::string feat_extract_norm = "group";
  bool do_stable_layer_norm = false;
  bool feat_proj_layer_norm = true;
  int num_conv_pos_embeddings = 128;
  int num_conv_pos_embedding_groups = 16;
  double layer_norm_eps = 1e-5;
  int vocab_size = 32;
  int pad_token_id = 0;
};

// Throws std::runtime_error naming the file and key.
Wav2Vec2Config parse_wav2vec2_config(const std::string& path);

// Token of each id (size config.vocab_size). Throws std::runtime_error naming the file.
std::vector<std::string> parse_wav2vec2_vocab(const std::string& path, int vocab_size);

// Frames after the conv stack for `samples` input samples.
std::size_t conv_output_length(const Wav2Vec2Config& config, std::size_t samples);

}  // namespace talkserve::speech::detail
