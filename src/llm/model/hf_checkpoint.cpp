// Hugging Face Llama-family checkpoints: config.json + model.safetensors, or shards listed in
// model.safetensors.index.json. HF stores q/k projections already in the rotate_half layout
// this project uses internally, so they load unpermuted.
// Not supported (rejected or ignored, as noted): rope_scaling types other than linear and
// llama3 (rejected); Mistral's sliding_window (ignored: attention is always full-context).

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "llm/model/llama_weights.hpp"
#include "llm/model/safetensors_file.hpp"

namespace talkserve::llm::detail {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json(const fs::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string(what) + " not found: " + path.string());
  in.seekg(0, std::ios::end);
  const auto size = in.tellg();
  if (size < 0 || size > (64 << 20)) {
    throw std::runtime_error(std::string(what) + " " + path.string() + " is too large or unreadable");
  }
  in.seekg(0);
  std::string text(static_cast<size_t>(size), '\0');
  in.read(text.data(), size);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string(what) + " " + path.string() + ": bad JSON: " + e.what());
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}

LlamaHyperParams parse_config(const nlohmann::json& c, const std::string& source) {
  LlamaHyperParams hp;
  try {
    if (c.contains("architectures") && c["architectures"].is_array() && !c["architectures"].empty()) {
      hp.architecture = c["architectures"][0].get<std::string>();
    } else {
      const std::string mt = c.value("model_type", "");
      hp.architecture = mt == "qwen2" ? "Qwen2ForCausalLM" : mt == "mistral" ? "MistralForCausalLM"
                                                                             : "LlamaForCausalLM";
    }
    const std::string& a = hp.architecture;
    if (a != "LlamaForCausalLM" && a != "Qwen2ForCausalLM" && a != "MistralForCausalLM") {
      throw std::runtime_error(source + ": unsupported architecture " + a +
                               " (LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM)");
    }
    hp.dim = c.at("hidden_size").get<int>();
    hp.hidden_dim = c.at("intermediate_size").get<int>();
    hp.n_layers = c.at("num_hidden_layers").get<int>();
    hp.n_heads = c.at("num_attention_heads").get<int>();
    hp.n_kv_heads = c.value("num_key_value_heads", hp.n_heads);
    hp.head_dim = (c.contains("head_dim") && !c["head_dim"].is_null())
                      ? c["head_dim"].get<int>()
                      : (hp.n_heads > 0 ? hp.dim / hp.n_heads : 0);
    hp.vocab_size = c.at("vocab_size").get<int>();
    hp.max_seq_len = c.value("max_position_embeddings", 2048);
    hp.rms_eps = c.value("rms_norm_eps", 1e-6);
    hp.rope_theta = c.value("rope_theta", 10000.0);
    hp.qkv_bias = a == "Qwen2ForCausalLM" ? true : c.value("attention_bias", false);
    hp.tied_embeddings = c.value("tie_word_embeddings", false);
    if (c.contains("bos_token_id") && c["bos_token_id"].is_number_integer()) {
      hp.bos_id = c["bos_token_id"].get<int>();
    } else {
      hp.bos_id = -1;
    }
    const auto& eos = c.contains("eos_token_id") ? c["eos_token_id"] : nlohmann::json();
    hp.eos_id = eos.is_number_integer() ? eos.get<int>()
                : (eos.is_array() && !eos.empty()) ? eos[0].get<int>() : -1;
    if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) {
      const auto& rs = c["rope_scaling"];
      hp.rope_scaling.type = rs.value("rope_type", rs.value("type", std::string()));
      hp.rope_scaling.factor = rs.value("factor", 1.0);
      hp.rope_scaling.low_freq_factor = rs.value("low_freq_factor", 1.0);
      hp.rope_scaling.high_freq_factor = rs.value("high_freq_factor", 4.0);
      hp.rope_scaling.original_max_position = rs.value("original_max_position_embeddings", 8192);
      if (hp.rope_scaling.type == "default") hp.rope_scaling.type.clear();
      if (!hp.rope_scaling.type.empty() && hp.rope_scaling.type != "linear" &&
          hp.rope_scaling.type != "llama3") {
        throw std::runtime_error(source + ": rope_scaling type '" + hp.rope_scaling.type +
                                 "' is not supported (linear, llama3)");
      }
      if (!(hp.rope_scaling.factor > 0) ||
          (hp.rope_scaling.type == "llama3" &&
           !(hp.rope_scaling.high_freq_factor > hp.rope_scaling.low_freq_factor))) {
        throw std::runtime_error(source + ": bad rope_scaling parameters");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(source + ": missing or mistyped key: " + e.what());
  }
  check_hyper_params(hp, source);
  return hp;
}

}  // namespace

LlamaWeights load_hf_checkpoint(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  const bool is_dir = fs::is_directory(p, ec);
  const fs::path dir = is_dir ? p : p.parent_path();
  const fs::path config_path = dir / "config.json";
  LlamaWeights w;
  w.hp = parse_config(read_json(config_path, "model config"), "model config " + config_path.string());
  const LlamaHyperParams& hp = w.hp;

  // name -> file, and the opened files.
  std::map<std::string, std::shared_ptr<SafetensorsFile>> by_name;
  auto add_file = [&](const fs::path& f) {
    auto file = std::make_shared<SafetensorsFile>(f.string());
    for (const auto& [name, e] : file->entries()) by_name[name] = file;
    return file;
  };
  const fs::path index_path = dir / "model.safetensors.index.json";
  if (!is_dir && path.size() >= 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0) {
    add_file(p);
  } else if (fs::exists(index_path, ec)) {
    const nlohmann::json index = read_json(index_path, "safetensors index");
    if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
      throw std::runtime_error("safetensors index " + index_path.string() + ": no weight_map object");
    }
    std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) {
        throw std::runtime_error("safetensors index " + index_path.string() + ": entry " + name +
                                 " is not a file name");
      }
      const std::string fname = file.get<std::string>();
      if (fname.find('/') != std::string::npos || fname.find("..") != std::string::npos) {
        throw std::runtime_error("safetensors index " + index_path.string() + ": shard name '" + fname +
                                 "' must be a plain file name in the model directory");
      }
      auto it = shards.find(fname);
      if (it == shards.end()) it = shards.emplace(fname, add_file(dir / fname)).first;
      if (!it->second->has(name)) {
        throw std::runtime_error("safetensors index " + index_path.string() + " maps " + name + " to " +
                                 fname + ", which does not contain it");
      }
      by_name[name] = it->second;
    }
  } else if (fs::exists(dir / "model.safetensors", ec)) {
    add_file(dir / "model.safetensors");
  } else {
    throw std::runtime_error("model directory " + dir.string() +
                             " has neither model.safetensors nor model.safetensors.index.json");
  }

  auto get = [&](const std::string& name, std::vector<int64_t> shape) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      throw std::runtime_error("checkpoint " + dir.string() + ": missing tensor " + name);
    }
    const SafetensorsEntry& e = it->second->entries().at(name);
    if (e.shape != shape) {
      throw std::runtime_error("checkpoint " + it->second->path() + ": tensor " + name + " has shape " +
                               shape_str(e.shape) + ", expected " + shape_str(shape));
    }
    return it->second->read(name);
  };

  const int64_t D = hp.dim, F = hp.hidden_dim, V = hp.vocab_size, HD = hp.head_dim;
  const int64_t QD = static_cast<int64_t>(hp.n_heads) * HD, KD = static_cast<int64_t>(hp.n_kv_heads) * HD;
  w.embedding = get("model.embed_tokens.weight", {V, D});
  for (int l = 0; l < hp.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LlamaLayerWeights lw;
    lw.attn_norm = get(pre + "input_layernorm.weight", {D});
    lw.wq = get(pre + "self_attn.q_proj.weight", {QD, D});
    lw.wk = get(pre + "self_attn.k_proj.weight", {KD, D});
    lw.wv = get(pre + "self_attn.v_proj.weight", {KD, D});
    if (hp.qkv_bias) {
      lw.bq = get(pre + "self_attn.q_proj.bias", {QD});
      lw.bk = get(pre + "self_attn.k_proj.bias", {KD});
      lw.bv = get(pre + "self_attn.v_proj.bias", {KD});
    }
    lw.wo = get(pre + "self_attn.o_proj.weight", {D, QD});
    lw.ffn_norm = get(pre + "post_attention_layernorm.weight", {D});
    lw.w1 = get(pre + "mlp.gate_proj.weight", {F, D});
    lw.w3 = get(pre + "mlp.up_proj.weight", {F, D});
    lw.w2 = get(pre + "mlp.down_proj.weight", {D, F});
    w.layers.push_back(std::move(lw));
  }
  w.final_norm = get("model.norm.weight", {D});
  w.wcls = hp.tied_embeddings ? w.embedding : get("lm_head.weight", {V, D});
  return w;
}

}  // namespace talkserve::llm::detail
