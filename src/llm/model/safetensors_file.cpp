#include "llm/model/safetensors_file.hpp"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace talkserve::llm::detail {
namespace {

constexpr std::uint64_t kMaxHeaderBytes = 100ull << 20;

int element_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  return 0;
}

torch::ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "F32") return torch::kFloat32;
  if (dtype == "F16") return torch::kFloat16;
  return torch::kBFloat16;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("safetensors file " + path + ": " + what);
  };
  if (file_.size() < 8) fail("truncated: shorter than the 8-byte header length");
  std::uint64_t header_len = 0;
  file_.read_at(0, &header_len, 8, "header length");
  if (header_len > kMaxHeaderBytes || header_len > file_.size() - 8) {
    fail("header length " + std::to_string(header_len) + " exceeds the file size " +
         std::to_string(file_.size()) + " (truncated or not a safetensors file)");
  }
  std::string header(header_len, '\0');
  file_.read_at(8, header.data(), header_len, "JSON header");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("bad header JSON: ") + e.what());
  }
  if (!j.is_object()) fail("header JSON is not an object");
  const std::uint64_t data_start = 8 + header_len;
  const std::uint64_t data_len = file_.size() - data_start;
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
        numel *= static_cast<std::uint64_t>(n);
        if (numel > (std::uint64_t{1} << 40)) fail("tensor " + name + " is implausibly large");
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
      entries_.emplace(name, std::move(e));
    } catch (const nlohmann::json::exception& ex) {
      fail("tensor " + name + ": bad header entry: " + ex.what());
    }
  }
}

torch::Tensor SafetensorsFile::read(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    throw std::runtime_error("safetensors file " + path() + ": no tensor named " + name);
  }
  const SafetensorsEntry& e = it->second;
  torch::Tensor t = torch::empty(e.shape, scalar_type(e.dtype));
  file_.read_at(e.begin, t.data_ptr(), e.end - e.begin, name);
  return t;
}

}  // namespace talkserve::llm::detail
