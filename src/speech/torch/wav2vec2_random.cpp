// write_random_wav2vec2: a Wav2Vec2ForCTC directory with random weights, written without torch
// (safetensors by hand) so the files are the same whatever libtorch is installed.

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "llm/model/safetensors_writer.hpp"
#include "talkserve/speech/wav2vec2.hpp"

namespace talkserve::speech {
namespace {

// The CTC vocabulary of facebook/wav2vec2-base-960h, in id order.
const char* const kEnglishCtcVocab[] = {"<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I",
                                        "H", "S", "R", "D", "L", "U", "M", "W", "C", "F", "G",
                                        "Y", "P", "B", "V", "K", "'", "X", "J", "Q", "Z"};
constexpr int kVocabSize = 32;

using llm::detail::SafetensorsWriter;

class RandomTensors {
 public:
  RandomTensors(SafetensorsWriter& out, std::uint64_t seed) : out_(out), rng_(seed) {}

  // Normal(mean, stddev) entries.
  void normal(const std::string& name, const std::vector<std::int64_t>& shape, double stddev, double mean = 0) {
    std::normal_distribution<float> dist(static_cast<float>(mean), static_cast<float>(stddev));
    std::vector<float> v(numel(shape));
    for (auto& x : v) x = dist(rng_);
    out_.add(name, shape, v);
  }
  void constant(const std::string& name, const std::vector<std::int64_t>& shape, float value) {
    out_.add(name, shape, std::vector<float>(numel(shape), value));
  }
  // A Linear layer with unit-variance outputs for unit-variance inputs.
  void linear(const std::string& prefix, std::int64_t out, std::int64_t in, double gain = 1.0) {
    normal(prefix + ".weight", {out, in}, gain / std::sqrt(static_cast<double>(in)));
    normal(prefix + ".bias", {out}, 0.02);
  }
  // LayerNorm / GroupNorm affine parameters near identity.
  void norm(const std::string& prefix, std::int64_t n) {
    normal(prefix + ".weight", {n}, 0.1, 1.0);
    normal(prefix + ".bias", {n}, 0.05);
  }

 private:
  static std::size_t numel(const std::vector<std::int64_t>& shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
  }
  SafetensorsWriter& out_;
  std::mt19937_64 rng_;
};

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("write_random_wav2vec2: cannot create " + path.string());
  out << text;
  if (!out) throw std::runtime_error("write_random_wav2vec2: write failed: " + path.string());
}

}  // namespace

Wav2Vec2RandomSpec Wav2Vec2RandomSpec::tiny_group() { return Wav2Vec2RandomSpec{}; }

Wav2Vec2RandomSpec Wav2Vec2RandomSpec::tiny_layer() {
  Wav2Vec2RandomSpec s;
  s.feat_extract_norm = "layer";
  s.do_stable_layer_norm = true;
  s.conv_bias = true;
  s.parametrized_weight_norm = true;
  return s;
}

Wav2Vec2RandomSpec Wav2Vec2RandomSpec::base() {
  Wav2Vec2RandomSpec s;
  s.hidden_size = 768;
  s.num_layers = 12;
  s.num_heads = 12;
  s.intermediate_size = 3072;
  s.conv_dim = {512, 512, 512, 512, 512, 512, 512};
  s.num_conv_pos_embeddings = 128;
  s.num_conv_pos_embedding_groups = 16;
  return s;
}

void write_random_wav2vec2(const std::string& dir_name, const Wav2Vec2RandomSpec& spec, std::uint64_t seed) {
  namespace fs = std::filesystem;
  const fs::path dir(dir_name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("write_random_wav2vec2: cannot create " + dir_name + ": " + ec.message());
  if (spec.conv_dim.empty() || spec.conv_kernel.size() != spec.conv_dim.size() ||
      spec.conv_stride.size() != spec.conv_dim.size()) {
    throw std::runtime_error("write_random_wav2vec2: conv_dim, conv_kernel and conv_stride must have one length");
  }
  if (spec.hidden_size % spec.num_heads != 0 || spec.hidden_size % spec.num_conv_pos_embedding_groups != 0) {
    throw std::runtime_error("write_random_wav2vec2: heads and pos-conv groups must divide hidden_size");
  }

  nlohmann::json config = {
      {"architectures", {"Wav2Vec2ForCTC"}},
      {"model_type", "wav2vec2"},
      {"hidden_size", spec.hidden_size},
      {"num_hidden_layers", spec.num_layers},
      {"num_attention_heads", spec.num_heads},
      {"intermediate_size", spec.intermediate_size},
      {"hidden_act", "gelu"},
      {"feat_extract_activation", "gelu"},
      {"feat_extract_norm", spec.feat_extract_norm},
      {"do_stable_layer_norm", spec.do_stable_layer_norm},
      {"conv_dim", spec.conv_dim},
      {"conv_kernel", spec.conv_kernel},
      {"conv_stride", spec.conv_stride},
      {"conv_bias", spec.conv_bias},
      {"num_feat_extract_layers", spec.conv_dim.size()},
      {"num_conv_pos_embeddings", spec.num_conv_pos_embeddings},
      {"num_conv_pos_embedding_groups", spec.num_conv_pos_embedding_groups},
      {"layer_norm_eps", 1e-5},
      {"vocab_size", kVocabSize},
      {"pad_token_id", 0},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"ctc_loss_reduction", "sum"},
  };
  write_text(dir / "config.json", config.dump(2) + "\n");
  nlohmann::json vocab = nlohmann::json::object();
  for (int i = 0; i < kVocabSize; ++i) vocab[kEnglishCtcVocab[i]] = i;
  write_text(dir / "vocab.json", vocab.dump() + "\n");

  SafetensorsWriter writer(spec.dtype, "write_random_wav2vec2");
  RandomTensors r(writer, seed);
  const std::int64_t H = spec.hidden_size;
  std::int64_t in = 1;
  for (std::size_t i = 0; i < spec.conv_dim.size(); ++i) {
    const std::string p = "wav2vec2.feature_extractor.conv_layers." + std::to_string(i) + ".";
    const std::int64_t out = spec.conv_dim[i];
    const std::int64_t k = spec.conv_kernel[i];
    // GELU halves the variance roughly; gain 1.7 keeps the un-normalised "group" layers alive.
    r.normal(p + "conv.weight", {out, in, k}, 1.7 / std::sqrt(static_cast<double>(in * k)));
    if (spec.conv_bias) r.normal(p + "conv.bias", {out}, 0.05);
    if (spec.feat_extract_norm == "layer" || i == 0) r.norm(p + "layer_norm", out);
    in = out;
  }
  r.norm("wav2vec2.feature_projection.layer_norm", in);
  r.linear("wav2vec2.feature_projection.projection", H, in);
  const std::string pc = "wav2vec2.encoder.pos_conv_embed.conv.";
  const std::int64_t K = spec.num_conv_pos_embeddings;
  const std::int64_t group_in = H / spec.num_conv_pos_embedding_groups;
  // The normalised weight has unit norm per kernel tap; g scales it to unit output variance.
  const double g = std::sqrt(static_cast<double>(H) / static_cast<double>(K)) * 0.5;
  const std::string g_name = spec.parametrized_weight_norm ? "parametrizations.weight.original0" : "weight_g";
  const std::string v_name = spec.parametrized_weight_norm ? "parametrizations.weight.original1" : "weight_v";
  r.normal(pc + g_name, {1, 1, K}, 0.1 * g, g);
  r.normal(pc + v_name, {H, group_in, K}, 1.0);
  r.normal(pc + "bias", {H}, 0.02);
  r.norm("wav2vec2.encoder.layer_norm", H);
  r.normal("wav2vec2.masked_spec_embed", {H}, 1.0);  // present in HF checkpoints, unused
  for (int l = 0; l < spec.num_layers; ++l) {
    const std::string p = "wav2vec2.encoder.layers." + std::to_string(l) + ".";
    // Larger q/k gains give the attention some focus; residual branches are damped.
    r.linear(p + "attention.q_proj", H, H, 2.0);
    r.linear(p + "attention.k_proj", H, H, 2.0);
    r.linear(p + "attention.v_proj", H, H);
    r.linear(p + "attention.out_proj", H, H, 0.5);
    r.norm(p + "layer_norm", H);
    r.linear(p + "feed_forward.intermediate_dense", spec.intermediate_size, H);
    r.linear(p + "feed_forward.output_dense", H, spec.intermediate_size, 0.5);
    r.norm(p + "final_layer_norm", H);
  }
  // Logits of spread ~3 so that different tokens win on different frames.
  r.linear("lm_head", kVocabSize, H, 3.0);
  writer.write((dir / "model.safetensors").string());
}

}  // namespace talkserve::speech
