// write_random_wav2lip: a safetensors file with every tensor of the Wav2Lip generator, random,
// written without torch so the bytes are the same whatever libtorch is installed.

#include <nlohmann/json.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>

#include "avatar/wav2lip/wav2lip_architecture.hpp"
#include "talkserve/avatar/wav2lip.hpp"

namespace talkserve::avatar {
namespace {

// float -> IEEE half, round to nearest even (finite inputs of moderate size only: the weights
// written here are all within +-10).
std::uint16_t to_f16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (u >> 16) & 0x8000;
  const int exp = static_cast<int>((u >> 23) & 0xff) - 127 + 15;
  std::uint32_t mant = u & 0x7fffff;
  if (exp >= 31) return static_cast<std::uint16_t>(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<std::uint16_t>(sign);
    mant |= 0x800000;
    const int shift = 14 - exp;
    std::uint32_t half = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  std::uint32_t half = (static_cast<std::uint32_t>(exp) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;
  return static_cast<std::uint16_t>(sign | half);
}

std::uint16_t to_bf16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  u += 0x7fff + ((u >> 16) & 1);
  return static_cast<std::uint16_t>(u >> 16);
}

class Writer {
 public:
  explicit Writer(std::string dtype) : dtype_(std::move(dtype)) {
    if (dtype_ != "F32" && dtype_ != "F16" && dtype_ != "BF16") {
      throw std::runtime_error("write_random_wav2lip: dtype must be F32, F16 or BF16, got " + dtype_);
    }
  }

  void add(const std::string& name, const std::vector<long long>& shape, const std::vector<float>& v) {
    const std::size_t begin = data_.size();
    if (dtype_ == "F32") {
      data_.resize(begin + v.size() * 4);
      std::memcpy(data_.data() + begin, v.data(), v.size() * 4);  // little-endian host
    } else {
      data_.resize(begin + v.size() * 2);
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::uint16_t h = dtype_ == "F16" ? to_f16(v[i]) : to_bf16(v[i]);
        std::memcpy(data_.data() + begin + 2 * i, &h, 2);
      }
    }
    header_[name] = {{"dtype", dtype_}, {"shape", shape}, {"data_offsets", {begin, data_.size()}}};
  }

  void write(const std::string& path) {
    header_["__metadata__"] = {{"format", "pt"}, {"model", "wav2lip"}, {"source", "random"}};
    std::string header = header_.dump();
    header.append((8 - header.size() % 8) % 8, ' ');
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("write_random_wav2lip: cannot create " + path);
    const std::uint64_t n = header.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    out.write(len, 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(data_.data(), static_cast<std::streamsize>(data_.size()));
    if (!out) throw std::runtime_error("write_random_wav2lip: write failed: " + path);
  }

 private:
  std::string dtype_;
  nlohmann::json header_ = nlohmann::json::object();
  std::vector<char> data_;
};

std::size_t numel(const std::vector<long long>& shape) {
  std::size_t n = 1;
  for (long long d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

}  // namespace

void write_random_wav2lip(const std::string& path, std::uint64_t seed, const std::string& dtype) {
  Writer writer(dtype);
  std::mt19937_64 rng(seed);
  auto normal = [&](const std::vector<long long>& shape, double mean, double stddev) {
    std::normal_distribution<float> dist(static_cast<float>(mean), static_cast<float>(stddev));
    std::vector<float> v(numel(shape));
    for (float& x : v) x = dist(rng);
    return v;
  };
  const detail::Wav2LipArchitecture& a = detail::wav2lip_architecture();
  auto layer = [&](const detail::Wav2LipLayer& l) {
    const auto specs = detail::wav2lip_tensor_specs(l);
    // He scaling keeps the ReLU activations' second moment level; a transposed conv with stride
    // s sees about in * k * k / s^2 inputs per output. Residual branches are damped so that the
    // 20 residual layers do not blow the activations up; the last conv gives logits of spread
    // ~1.5 so the sigmoid output is neither flat nor saturated.
    double fan_in = static_cast<double>(l.in) * l.kernel * l.kernel;
    if (l.transposed) fan_in /= static_cast<double>(l.stride_h) * l.stride_w;
    double gain = std::sqrt(2.0 / fan_in);
    if (l.residual) gain *= 0.3;
    if (!l.batch_norm) gain = 1.5 / std::sqrt(fan_in);
    writer.add(specs[0].name, specs[0].shape, normal(specs[0].shape, 0, gain));
    writer.add(specs[1].name, specs[1].shape, normal(specs[1].shape, 0, 0.02));
    if (!l.batch_norm) return;
    writer.add(specs[2].name, specs[2].shape, normal(specs[2].shape, 1, 0.1));   // gamma
    writer.add(specs[3].name, specs[3].shape, normal(specs[3].shape, 0, 0.05));  // beta
    writer.add(specs[4].name, specs[4].shape, normal(specs[4].shape, 0, 0.05));  // running_mean
    std::vector<float> var = normal(specs[5].shape, 1, 0.1);                     // running_var > 0
    for (float& v : var) v = std::max(v, 0.5f);
    writer.add(specs[5].name, specs[5].shape, var);
  };
  for (const auto& block : a.face_encoder)
    for (const auto& l : block) layer(l);
  for (const auto& l : a.audio_encoder) layer(l);
  for (const auto& block : a.face_decoder)
    for (const auto& l : block) layer(l);
  for (const auto& l : a.output_block) layer(l);
  writer.write(path);
}

}  // namespace talkserve::avatar
