#include "talkserve/llm/model_loader.hpp"

#include <ATen/Parallel.h>
#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "llm/model/cpu_caching_allocator.hpp"
#include "llm/model/llama_model.hpp"
#include "llm/model/llama_weights.hpp"

// Debian's libtorch does its GEMMs through OpenBLAS, whose own thread pool ignores
// at::set_num_threads and whose workers spin between calls: the loader makes it
// single-threaded and the CPU step spreads its matmuls over torch's threads instead. Weak, so
// the build does not depend on which BLAS libtorch was linked with.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace talkserve::llm {
namespace {

constexpr std::int64_t kDefaultKvCap = 512ll << 20;
constexpr int kDefaultFullSequences = 32;

void install_cpu_caching_allocator_for(const std::string& device) {
  if (device == "cpu") detail::install_cpu_caching_allocator();
}

torch::Device parse_device(const std::string& device) {
  if (device == "cpu") return torch::kCPU;
  if (!torch::cuda::is_available()) {
    throw std::runtime_error("llm.model.device is '" + device +
                             "' but this libtorch has no usable CUDA device");
  }
  const int index = device == "cuda" ? 0 : std::stoi(device.substr(5));
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    throw std::runtime_error("llm.model.device " + device + ": only " +
                             std::to_string(torch::cuda::device_count()) + " CUDA devices");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::ScalarType parse_dtype(const std::string& dtype, const torch::Device& device) {
  if (dtype == "float32") return torch::kFloat32;
  if (dtype == "float16") return torch::kFloat16;
  if (dtype == "bfloat16") return torch::kBFloat16;
  return device.is_cuda() ? torch::kFloat16 : torch::kFloat32;  // auto
}

std::string default_name(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // trailing '/'
  std::error_code ec;
  if (fs::is_directory(p, ec)) return p.filename().string();
  if (p.extension() == ".safetensors") return p.parent_path().filename().string();
  return p.stem().string();
}

}  // namespace

std::unique_ptr<ModelRunner> load_model(const ModelConfig& config) {
  config.validate();
  const std::string format = resolve_model_format(config);
  install_cpu_caching_allocator_for(config.device);
  try {
    const int threads = config.num_threads > 0
                            ? config.num_threads
                            : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    at::set_num_threads(threads);
    // The BLAS stays single-threaded: its workers spin between calls; the CPU paths split
    // their matmuls across torch's threads instead (parallel_matmul.hpp).
    if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);

    detail::RunnerOptions opt;
    opt.device = parse_device(config.device);
    opt.dtype = parse_dtype(config.dtype, opt.device);
    opt.block_size = config.block_size;
    opt.name = config.served_name.empty() ? default_name(config.path) : config.served_name;

    detail::LlamaWeights weights = format == "llama2c" ? detail::load_llama2c_checkpoint(config.path)
                                                       : detail::load_hf_checkpoint(config.path);
    const auto& hp = weights.hp;
    opt.max_seq_len = config.max_seq_len > 0 ? std::min(config.max_seq_len, hp.max_seq_len)
                                             : hp.max_seq_len;
    const std::int64_t elem = static_cast<std::int64_t>(c10::elementSize(opt.dtype));
    const std::int64_t block_bytes = 2ll * hp.n_layers * config.block_size * hp.n_kv_heads *
                                     hp.head_dim * elem;
    const std::int64_t blocks_per_seq = (opt.max_seq_len + config.block_size - 1) / config.block_size;
    std::int64_t blocks = config.num_blocks;
    if (blocks == 0 && config.kv_cache_bytes > 0) {
      blocks = config.kv_cache_bytes / block_bytes;
      if (blocks < 1) {
        throw std::invalid_argument("llm.model.kv_cache_bytes: " + std::to_string(config.kv_cache_bytes) +
                                    " is smaller than one KV block (" + std::to_string(block_bytes) +
                                    " bytes)");
      }
    } else if (blocks == 0) {
      blocks = std::min(blocks_per_seq * kDefaultFullSequences,
                        std::max<std::int64_t>(blocks_per_seq, kDefaultKvCap / block_bytes));
    }
    if (blocks > (1ll << 30) / config.block_size) {
      throw std::invalid_argument("llm.model.num_blocks: " + std::to_string(blocks) + " is too many");
    }
    opt.num_blocks = static_cast<int>(blocks);
    return detail::make_llama_model(std::move(weights), opt);
  } catch (const c10::Error& e) {
    throw std::runtime_error("llm model " + config.path + ": " + e.what_without_backtrace());
  }
}

}  // namespace talkserve::llm
