#include "talkserve/media/resampler.hpp"

extern "C" {
#include <libavutil/channel_layout.h>
}

#include <cstring>

#include "media/mono_resampler.hpp"

namespace talkserve::media {

struct AudioResampler::Impl {
  std::unique_ptr<detail::MonoResampler> swr;  // null when the rates are equal
};

AudioResampler::AudioResampler(int in_rate, int out_rate)
    : impl_(std::make_unique<Impl>()), in_rate_(in_rate), out_rate_(out_rate) {
  if (in_rate != out_rate) {
    const AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    impl_->swr = std::make_unique<detail::MonoResampler>(mono, AV_SAMPLE_FMT_FLT, in_rate,
                                                         AV_SAMPLE_FMT_FLT, out_rate);
  }
}

AudioResampler::~AudioResampler() = default;
AudioResampler::AudioResampler(AudioResampler&&) noexcept = default;
AudioResampler& AudioResampler::operator=(AudioResampler&&) noexcept = default;

namespace {
std::vector<float> as_floats(const std::vector<std::uint8_t>& bytes) {
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}
}  // namespace

std::vector<float> AudioResampler::push(std::span<const float> samples) {
  if (!impl_->swr) return {samples.begin(), samples.end()};
  if (samples.empty()) return {};
  std::vector<std::uint8_t> out;
  const auto* plane = reinterpret_cast<const std::uint8_t*>(samples.data());
  impl_->swr->convert(&plane, static_cast<int>(samples.size()), out);
  return as_floats(out);
}

std::vector<float> AudioResampler::flush() {
  if (!impl_->swr) return {};
  std::vector<std::uint8_t> out;
  impl_->swr->flush(out);
  return as_floats(out);
}

}  // namespace talkserve::media
