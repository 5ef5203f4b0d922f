#include <filesystem>
#include <stdexcept>
#include <string>

#include "talkserve/llm/model_loader.hpp"

namespace talkserve::llm {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

[[noreturn]] void bad(const std::string& key, const std::string& why) {
  throw std::invalid_argument("llm.model." + key + ": " + why);
}

}  // namespace

void ModelConfig::validate() const {
  if (path.empty()) bad("path", "is empty");
  if (format != "auto" && format != "llama2c" && format != "safetensors") {
    bad("format", "'" + format + "' is not one of auto, llama2c, safetensors");
  }
  const bool cuda = device == "cuda" || device.rfind("cuda:", 0) == 0;
  if (device != "cpu" && !cuda) bad("device", "'" + device + "' is not cpu, cuda or cuda:N");
  if (device.rfind("cuda:", 0) == 0) {
    const std::string n = device.substr(5);
    if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 3) {
      bad("device", "'" + device + "' has a bad device index");
    }
  }
  if (dtype != "auto" && dtype != "float32" && dtype != "float16" && dtype != "bfloat16") {
    bad("dtype", "'" + dtype + "' is not one of auto, float32, float16, bfloat16");
  }
  if (device == "cpu" && dtype == "float16") {
    bad("dtype", "float16 is not supported on cpu (use float32 or bfloat16)");
  }
  if (block_size < 1 || block_size > 1024) bad("block_size", "must be in [1, 1024]");
  if (num_blocks < 0) bad("num_blocks", "must be >= 0 (0 = derive from kv_cache_bytes)");
  if (kv_cache_bytes < 0) bad("kv_cache_bytes", "must be >= 0");
  if (num_threads < 0 || num_threads > 1024) bad("num_threads", "must be in [0, 1024]");
  if (max_seq_len < 0) bad("max_seq_len", "must be >= 0");
}

std::string resolve_model_format(const ModelConfig& config) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(config.path, ec)) {
    throw std::runtime_error("llm model path does not exist: " + config.path);
  }
  if (config.format != "auto") return config.format;
  if (fs::is_directory(config.path, ec) || ends_with(config.path, ".safetensors") ||
      ends_with(config.path, ".safetensors.index.json")) {
    return "safetensors";
  }
  if (ends_with(config.path, ".bin")) return "llama2c";
  throw std::runtime_error("llm model: cannot tell the format of " + config.path +
                           " (expected a llama2.c .bin, a .safetensors file or a model directory; "
                           "set llm.model.format)");
}

}  // namespace talkserve::llm
