#include "llm/model/checkpoint_headers.hpp"

#include <nlohmann/json.hpp>

#include <bit>
#include <climits>
#include <cstdlib>
#include <stdexcept>

namespace talkserve::llm::detail {

static_assert(std::endian::native == std::endian::little,
              "checkpoint readers assume a little-endian host");

void check_hyper_params(const LlamaHyperParams& hp, const std::string& source) {
  auto fail = [&](const std::string& what) { throw std::runtime_error(source + ": " + what); };
  auto in_range = [&](const char* name, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) {
      fail(std::string(name) + " = " + std::to_string(v) + " is outside [" + std::to_string(lo) +
           ", " + std::to_string(hi) + "]");
    }
  };
  in_range("dim", hp.dim, 1, 1 << 16);
  in_range("hidden_dim", hp.hidden_dim, 1, 1 << 18);
  in_range("n_layers", hp.n_layers, 1, 1024);
  in_range("n_heads", hp.n_heads, 1, 1024);
  in_range("n_kv_heads", hp.n_kv_heads, 1, 1024);
  in_range("head_dim", hp.head_dim, 2, 1024);
  in_range("vocab_size", hp.vocab_size, 1, 1 << 22);
  in_range("max_seq_len", hp.max_seq_len, 1, 1 << 22);
  if (hp.n_heads % hp.n_kv_heads != 0) {
    fail("n_heads " + std::to_string(hp.n_heads) + " is not a multiple of n_kv_heads " +
         std::to_string(hp.n_kv_heads));
  }
  if (hp.head_dim % 2 != 0) fail("head_dim " + std::to_string(hp.head_dim) + " is odd (RoPE pairs)");
  if (!(hp.rms_eps > 0) || !(hp.rope_theta > 0)) fail("rms_norm_eps and rope_theta must be > 0");
}

namespace {

constexpr int32_t kLlama2cV1Magic = 0x616b3432;  // "ak42": the newer export formats
constexpr std::uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

int element_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  return 0;
}

}  // namespace

Llama2cLayout parse_llama2c_header(const std::int32_t (&header)[7], std::uint64_t file_size,
                                   const std::string& path) {
  if (header[0] == kLlama2cV1Magic) {
    throw std::runtime_error(path + ": this is a llama2.c version-1/2 export (magic 'ak42'); only "
                             "the legacy format (export.py --version 0) is supported");
  }
  Llama2cLayout layout;
  LlamaHyperParams& hp = layout.hp;
  hp.architecture = "llama2c";
  hp.dim = header[0];
  hp.hidden_dim = header[1];
  hp.n_layers = header[2];
  hp.n_heads = header[3];
  hp.n_kv_heads = header[4];
  layout.shared_classifier = header[5] > 0;
  hp.vocab_size = header[5] == INT32_MIN ? 0 : std::abs(header[5]);
  hp.max_seq_len = header[6];
  hp.head_dim = hp.n_heads > 0 ? hp.dim / hp.n_heads : 0;
  hp.tied_embeddings = layout.shared_classifier;
  const std::string source = "llama2.c checkpoint " + path;
  check_hyper_params(hp, source);
  if (hp.dim % hp.n_heads != 0) {
    throw std::runtime_error(source + ": dim " + std::to_string(hp.dim) +
                             " is not a multiple of n_heads " + std::to_string(hp.n_heads));
  }

  // Sizes in floats; checked against the file size before any allocation. The ranges checked
  // above keep every product well inside 64 bits.
  const uint64_t D = static_cast<uint64_t>(hp.dim);
  const uint64_t F = static_cast<uint64_t>(hp.hidden_dim);
  const uint64_t L = static_cast<uint64_t>(hp.n_layers);
  const uint64_t V = static_cast<uint64_t>(hp.vocab_size);
  const uint64_t HD = static_cast<uint64_t>(hp.head_dim);
  const uint64_t QD = static_cast<uint64_t>(hp.n_heads) * HD;
  const uint64_t KD = static_cast<uint64_t>(hp.n_kv_heads) * HD;
  layout.rope_floats = static_cast<uint64_t>(hp.max_seq_len) * HD;  // 2 x seq*hd/2
  const uint64_t floats = V * D + L * (D + D * QD + 2 * D * KD + QD * D + D + 3 * D * F) + D +
                          layout.rope_floats + (layout.shared_classifier ? 0 : V * D);
  layout.expected_bytes = sizeof(header) + 4 * floats;
  if (file_size < layout.expected_bytes) {
    throw std::runtime_error(source + ": truncated: the header (dim " + std::to_string(hp.dim) +
                             ", layers " + std::to_string(hp.n_layers) + ", vocab " +
                             std::to_string(hp.vocab_size) + ") needs " +
                             std::to_string(layout.expected_bytes) + " bytes but the file has " +
                             std::to_string(file_size));
  }
  if (file_size > layout.expected_bytes) {
    throw std::runtime_error(source + ": " + std::to_string(file_size - layout.expected_bytes) +
                             " unexpected trailing bytes (expected exactly " +
                             std::to_string(layout.expected_bytes) +
                             "); not a legacy llama2.c checkpoint?");
  }
  return layout;
}

std::map<std::string, SafetensorsEntry> parse_safetensors_header(std::uint64_t file_size,
                                                                 const ReadAt& read_at,
                                                                 const std::string& path) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("safetensors file " + path + ": " + what);
  };
  if (file_size < 8) fail("truncated: shorter than the 8-byte header length");
  std::uint64_t header_len = 0;
  read_at(0, &header_len, 8, "header length");
  if (header_len > kMaxSafetensorsHeaderBytes || header_len > file_size - 8) {
    fail("header length " + std::to_string(header_len) + " exceeds the file size " +
         std::to_string(file_size) + " (truncated or not a safetensors file)");
  }
  std::string header(header_len, '\0');
  read_at(8, header.data(), header_len, "JSON header");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("bad header JSON: ") + e.what());
  }
  if (!j.is_object()) fail("header JSON is not an object");
  const std::uint64_t data_start = 8 + header_len;
  const std::uint64_t data_len = file_size - data_start;
  std::map<std::string, SafetensorsEntry> entries;
  for (const auto& [name, v] : j.items()) {
    if (name == "__metadata__") continue;
    try {
      SafetensorsEntry e;
      e.dtype = v.at("dtype").get<std::string>();
      const int esize = element_size(e.dtype);
      if (esize == 0) fail("tensor " + name + " has unsupported dtype " + e.dtype + " (F32, F16, BF16 only)");
      std::uint64_t numel = 1;
      for (const auto& d : v.at("shape")) {
        const int64_t n = d.get<int64_t>();
        if (n < 0 || n > (int64_t{1} << 40)) fail("tensor " + name + " has a bad dimension");
        e.shape.push_back(n);
        // Checked before multiplying: two dimensions of 2^32 would wrap the product to 0 and
        // pass as an empty tensor whose shape torch then cannot allocate.
        if (n != 0 && numel > (std::uint64_t{1} << 40) / static_cast<std::uint64_t>(n)) {
          fail("tensor " + name + " is implausibly large");
        }
        numel *= static_cast<std::uint64_t>(n);
      }
      const auto& off = v.at("data_offsets");
      if (!off.is_array() || off.size() != 2) fail("tensor " + name + ": data_offsets is not [begin, end]");
      const std::uint64_t b = off[0].get<std::uint64_t>();
      const std::uint64_t en = off[1].get<std::uint64_t>();
      if (b > en || en > data_len) {
        fail("tensor " + name + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
             "] outside the " + std::to_string(data_len) + " data bytes (truncated file?)");
      }
      if (en - b != numel * static_cast<std::uint64_t>(esize)) {
        fail("tensor " + name + ": " + std::to_string(en - b) + " bytes do not match its shape and dtype");
      }
      e.begin = data_start + b;
      e.end = data_start + en;
      entries.emplace(name, std::move(e));
    } catch (const nlohmann::json::exception& ex) {
      fail("tensor " + name + ": bad header entry: " + ex.what());
    }
  }
  return entries;
}

}  // namespace talkserve::llm::detail
