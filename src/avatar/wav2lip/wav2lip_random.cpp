// write_random_wav2lip: a safetensors file with every tensor of the Wav2Lip generator, random,
// written without torch so the bytes are the same whatever libtorch is installed.

#include <nlohmann/json.hpp>

#include <cmath>
#include <random>
#include <stdexcept>

#include "avatar/wav2lip/wav2lip_architecture.hpp"
#include "llm/model/safetensors_writer.hpp"
#include "talkserve/avatar/wav2lip.hpp"

namespace talkserve::avatar {
namespace {

using llm::detail::SafetensorsWriter;

std::size_t numel(const std::vector<long long>& shape) {
  std::size_t n = 1;
  for (long long d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

}  // namespace

void write_random_wav2lip(const std::string& path, std::uint64_t seed, const std::string& dtype) {
  SafetensorsWriter writer(dtype, "write_random_wav2lip");
  writer.set_metadata({{"format", "pt"}, {"model", "wav2lip"}, {"source", "random"}});
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
