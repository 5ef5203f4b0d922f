#pragma once
// One .safetensors file: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data.
// The header is validated completely on open (parse_safetensors_header: offsets inside the
// file, sizes matching shapes), so reads afterwards cannot run past the end or allocate from a
// bad shape.

#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "llm/model/binary_reader.hpp"
#include "llm/model/checkpoint_headers.hpp"

namespace talkserve::llm::detail {

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws std::runtime_error naming path
  const std::string& path() const { return file_.path(); }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  // The tensor as a CPU tensor of its on-disk dtype.
  torch::Tensor read(const std::string& name) const;

 private:
  BinaryFile file_;
  std::map<std::string, SafetensorsEntry> entries_;
};

}  // namespace talkserve::llm::detail
