#pragma once
// Writes a .safetensors file (the layout SafetensorsFile reads) from float tensors, stored as
// F32, F16 or BF16 (round to nearest even). No torch: the bytes are the same whatever libtorch
// is installed. Used by the random-weight models of tests and benchmarks.
//
// Thread-safety: none per object.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace talkserve::llm::detail {

std::uint16_t float_to_f16(float f);
std::uint16_t float_to_bf16(float f);

class SafetensorsWriter {
 public:
  // `who` prefixes error messages (e.g. "write_random_wav2lip").
  SafetensorsWriter(std::string dtype, std::string who);

  void add(const std::string& name, const std::vector<std::int64_t>& shape, const std::vector<float>& values);
  template <typename Int>
  void add(const std::string& name, const std::vector<Int>& shape, const std::vector<float>& values) {
    add(name, std::vector<std::int64_t>(shape.begin(), shape.end()), values);
  }
  // The "__metadata__" object (string values), written when set.
  void set_metadata(nlohmann::json metadata) { metadata_ = std::move(metadata); }
  // Throws std::runtime_error naming `path` when it cannot be written.
  void write(const std::string& path) const;

 private:
  std::string dtype_;
  std::string who_;
  nlohmann::json header_ = nlohmann::json::object();
  nlohmann::json metadata_;
  std::vector<char> data_;
};

}  // namespace talkserve::llm::detail
