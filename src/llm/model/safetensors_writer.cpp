#include "llm/model/safetensors_writer.hpp"

#include <bit>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace talkserve::llm::detail {

std::uint16_t float_to_bf16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  u += 0x7fff + ((u >> 16) & 1);  // round to nearest even (finite inputs)
  return static_cast<std::uint16_t>(u >> 16);
}

std::uint16_t float_to_f16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (u >> 16) & 0x8000;
  const int exp = static_cast<int>((u >> 23) & 0xff) - 127 + 15;
  std::uint32_t mant = u & 0x7fffff;
  if (exp >= 31) return static_cast<std::uint16_t>(sign | 0x7c00);  // overflow: inf
  if (exp <= 0) {                                                    // subnormal or zero
    if (exp < -10) return static_cast<std::uint16_t>(sign);
    mant |= 0x800000;
    const int shift = 14 - exp;
    std::uint32_t half = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1);
    const std::uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = (static_cast<std::uint32_t>(exp) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;  // may carry into the exponent: fine
  return static_cast<std::uint16_t>(sign | half);
}

SafetensorsWriter::SafetensorsWriter(std::string dtype, std::string who)
    : dtype_(std::move(dtype)), who_(std::move(who)) {
  if (dtype_ != "F32" && dtype_ != "F16" && dtype_ != "BF16") {
    throw std::runtime_error(who_ + ": dtype must be F32, F16 or BF16, got " + dtype_);
  }
}

void SafetensorsWriter::add(const std::string& name, const std::vector<std::int64_t>& shape,
                            const std::vector<float>& values) {
  const std::size_t begin = data_.size();
  if (dtype_ == "F32") {
    data_.resize(begin + values.size() * 4);
    std::memcpy(data_.data() + begin, values.data(), values.size() * 4);  // little-endian host
  } else {
    data_.resize(begin + values.size() * 2);
    for (std::size_t i = 0; i < values.size(); ++i) {
      const std::uint16_t h = dtype_ == "F16" ? float_to_f16(values[i]) : float_to_bf16(values[i]);
      std::memcpy(data_.data() + begin + 2 * i, &h, 2);
    }
  }
  header_[name] = {{"dtype", dtype_}, {"shape", shape}, {"data_offsets", {begin, data_.size()}}};
}

void SafetensorsWriter::write(const std::string& path) const {
  nlohmann::json full = header_;
  if (!metadata_.is_null()) full["__metadata__"] = metadata_;
  std::string header = full.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // data 8-byte aligned, as safetensors does
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(who_ + ": cannot create " + path);
  const std::uint64_t n = header.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(data_.data(), static_cast<std::streamsize>(data_.size()));
  if (!out) throw std::runtime_error(who_ + ": write failed: " + path);
}

}  // namespace talkserve::llm::detail
