#include "speech/torch/wav2vec2_config.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace talkserve::speech::detail {
namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("wav2vec2: cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("wav2vec2: " + path + " is not valid JSON: " + e.what());
  }
}

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, const std::string& path) : j_(j), path_(path) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw std::runtime_error("wav2vec2: " + path_ + ": \"" + key + "\" " + what);
  }

  void get_int(const char* key, int& out, int lo, int hi) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    const auto& v = j_[key];
    if (!v.is_number_integer()) fail(key, "must be an integer");
    const auto n = v.get<long long>();
    if (n < lo || n > hi) fail(key, "is " + std::to_string(n) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out = static_cast<int>(n);
  }
  void get_bool(const char* key, bool& out) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    if (!j_[key].is_boolean()) fail(key, "must be true or false");
    out = j_[key].get<bool>();
  }
  void get_double(const char* key, double& out) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    if (!j_[key].is_number()) fail(key, "must be a number");
    out = j_[key].get<double>();
  }
  void get_string(const char* key, std::string& out) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    if (!j_[key].is_string()) fail(key, "must be a string");
    out = j_[key].get<std::string>();
  }
  void get_ints(const char* key, std::vector<int>& out, int lo, int hi) const {
    if (!j_.contains(key) || j_[key].is_null()) return;
    const auto& v = j_[key];
    if (!v.is_array() || v.empty()) fail(key, "must be a non-empty array of integers");
    out.clear();
    for (const auto& e : v) {
      if (!e.is_number_integer()) fail(key, "must be a non-empty array of integers");
      const auto n = e.get<long long>();
      if (n < lo || n > hi) fail(key, "has " + std::to_string(n) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      out.push_back(static_cast<int>(n));
    }
  }

 private:
  const nlohmann::json& j_;
  const std::string& path_;
};

}  // namespace

Wav2Vec2Config parse_wav2vec2_config(const std::string& path) {
  const nlohmann::json j = read_json(path);
  if (!j.is_object()) throw std::runtime_error("wav2vec2: " + path + " is not a JSON object");
  ConfigReader r(j, path);
  Wav2Vec2Config c;
  std::string model_type = "wav2vec2";
  r.get_string("model_type", model_type);
  if (model_type != "wav2vec2") r.fail("model_type", "is \"" + model_type + "\"; only \"wav2vec2\" is supported");
  if (j.contains("architectures") && j["architectures"].is_array()) {
    bool ctc = false;
    for (const auto& a : j["architectures"]) ctc = ctc || (a.is_string() && a.get<std::string>() == "Wav2Vec2ForCTC");
    if (!ctc) r.fail("architectures", "does not list Wav2Vec2ForCTC (a CTC head is needed)");
  }
  r.get_int("hidden_size", c.hidden_size, 1, 1 << 16);
  r.get_int("num_hidden_layers", c.num_hidden_layers, 0, 1024);
  r.get_int("num_attention_heads", c.num_attention_heads, 1, 1024);
  r.get_int("intermediate_size", c.intermediate_size, 1, 1 << 18);
  r.get_ints("conv_dim", c.conv_dim, 1, 1 << 16);
  r.get_ints("conv_kernel", c.conv_kernel, 1, 1024);
  r.get_ints("conv_stride", c.conv_stride, 1, 1024);
  r.get_bool("conv_bias", c.conv_bias);
  r.get_string("feat_extract_norm", c.feat_extract_norm);
  r.get_bool("do_stable_layer_norm", c.do_stable_layer_norm);
  r.get_bool("feat_proj_layer_norm", c.feat_proj_layer_norm);
  r.get_int("num_conv_pos_embeddings", c.num_conv_pos_embeddings, 1, 1 << 12);
  r.get_int("num_conv_pos_embedding_groups", c.num_conv_pos_embedding_groups, 1, 1 << 16);
  r.get_double("layer_norm_eps", c.layer_norm_eps);
  r.get_int("vocab_size", c.vocab_size, 1, 1 << 20);
  r.get_int("pad_token_id", c.pad_token_id, 0, 1 << 20);

  if (c.feat_extract_norm != "group" && c.feat_extract_norm != "layer") {
    r.fail("feat_extract_norm", "is \"" + c.feat_extract_norm + "\"; supported: \"group\", \"layer\"");
  }
  for (const char* key : {"hidden_act", "feat_extract_activation"}) {
    std::string act = "gelu";
    r.get_string(key, act);
    if (act != "gelu") r.fail(key, "is \"" + act + "\"; only \"gelu\" is supported");
  }
  bool adapter = false;
  r.get_bool("add_adapter", adapter);
  if (adapter) r.fail("add_adapter", "is true; adapter layers are not supported");
  if (j.contains("adapter_attn_dim") && !j["adapter_attn_dim"].is_null()) {
    r.fail("adapter_attn_dim", "is set; attention adapter layers (MMS) are not supported");
  }
  std::string pos_type;
  r.get_string("position_embeddings_type", pos_type);
  if (!pos_type.empty()) r.fail("position_embeddings_type", "is set; this is a conformer model, not supported");
  if (c.conv_kernel.size() != c.conv_dim.size() || c.conv_stride.size() != c.conv_dim.size()) {
    r.fail("conv_dim", "conv_dim, conv_kernel and conv_stride must have the same length");
  }
  int layers = static_cast<int>(c.conv_dim.size());
  r.get_int("num_feat_extract_layers", layers, 1, 64);
  if (layers != static_cast<int>(c.conv_dim.size())) {
    r.fail("num_feat_extract_layers", "does not match the length of conv_dim");
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    r.fail("num_attention_heads", "does not divide hidden_size " + std::to_string(c.hidden_size));
  }
  if (c.hidden_size % c.num_conv_pos_embedding_groups != 0) {
    r.fail("num_conv_pos_embedding_groups", "does not divide hidden_size " + std::to_string(c.hidden_size));
  }
  if (!(c.layer_norm_eps > 0 && c.layer_norm_eps < 1)) r.fail("layer_norm_eps", "must be in (0, 1)");
  if (c.pad_token_id >= c.vocab_size) r.fail("pad_token_id", "is not below vocab_size");
  return c;
}

std::vector<std::string> parse_wav2vec2_vocab(const std::string& path, int vocab_size) {
  const nlohmann::json j = read_json(path);
  if (!j.is_object()) throw std::runtime_error("wav2vec2: " + path + " is not a JSON object {token: id}");
  std::vector<std::string> tokens(static_cast<std::size_t>(vocab_size));
  std::vector<bool> seen(tokens.size(), false);
  for (const auto& [token, id] : j.items()) {
    if (!id.is_number_integer()) {
      throw std::runtime_error("wav2vec2: " + path + ": the id of token \"" + token + "\" is not an integer");
    }
    const auto n = id.get<long long>();
    // Tokens added on top of the CTC vocabulary (ids >= vocab_size) can never be emitted.
    if (n < 0) throw std::runtime_error("wav2vec2: " + path + ": token \"" + token + "\" has a negative id");
    if (n >= vocab_size) continue;
    tokens[static_cast<std::size_t>(n)] = token;
    seen[static_cast<std::size_t>(n)] = true;
  }
  for (std::size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) {
      throw std::runtime_error("wav2vec2: " + path + ": no token has id " + std::to_string(i) +
                               " (vocab_size is " + std::to_string(vocab_size) + ")");
    }
  }
  return tokens;
}

std::size_t conv_output_length(const Wav2Vec2Config& config, std::size_t samples) {
  std::size_t n = samples;
  for (std::size_t i = 0; i < config.conv_kernel.size(); ++i) {
    const auto k = static_cast<std::size_t>(config.conv_kernel[i]);
    const auto s = static_cast<std::size_t>(config.conv_stride[i]);
    if (n < k) return 0;
    n = (n - k) / s + 1;
  }
  return n;
}

}  // namespace talkserve::speech::detail
