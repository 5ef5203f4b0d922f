#pragma once
// libswresample wrapper that turns any channel layout / sample format / rate into mono at a
// chosen format and rate. Channels are averaged (a custom 1/N mix matrix), not swr's default
// centre downmix, which scales a stereo pair by sqrt(1/2) each and can exceed full scale.

#include <cstdint>
#include <vector>

#include "media/ffmpeg_raii.hpp"

namespace talkserve::media::detail {

class MonoResampler {
 public:
  MonoResampler(const AVChannelLayout& in_layout, AVSampleFormat in_format, int in_rate,
                AVSampleFormat out_format, int out_rate);
  ~MonoResampler() { av_channel_layout_uninit(&in_layout_); }
  MonoResampler(const MonoResampler&) = delete;
  MonoResampler& operator=(const MonoResampler&) = delete;

  // True if frames with these parameters can go through this resampler unchanged.
  bool accepts(const AVChannelLayout& layout, AVSampleFormat format, int rate) const;

  // Converts `count` input samples (per channel; planes as FFmpeg lays them out) and appends
  // the mono output to `out` as raw bytes of out_format. Returns the samples appended.
  int convert(const std::uint8_t* const* planes, int count, std::vector<std::uint8_t>& out);
  // Drains the resampler's delay line into `out`.
  int flush(std::vector<std::uint8_t>& out) { return convert(nullptr, 0, out); }

  int out_rate() const noexcept { return out_rate_; }

 private:
  SwrHandle swr_;
  AVChannelLayout in_layout_{};
  AVSampleFormat in_format_;
  int in_rate_;
  AVSampleFormat out_format_;
  int out_rate_;
  int out_sample_bytes_;
};

}  // namespace talkserve::media::detail
