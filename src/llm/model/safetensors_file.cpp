#include "llm/model/safetensors_file.hpp"

#include <stdexcept>

namespace talkserve::llm::detail {
namespace {

torch::ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "F32") return torch::kFloat32;
  if (dtype == "F16") return torch::kFloat16;
  return torch::kBFloat16;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  entries_ = parse_safetensors_header(
      file_.size(),
      [this](std::uint64_t offset, void* dst, std::uint64_t n, std::string_view what) {
        file_.read_at(offset, dst, n, what);
      },
      path);
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
