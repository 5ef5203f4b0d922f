#include "media/mono_resampler.hpp"

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
}

#include <vector>

namespace talkserve::media::detail {

MonoResampler::MonoResampler(const AVChannelLayout& in_layout, AVSampleFormat in_format,
                             int in_rate, AVSampleFormat out_format, int out_rate)
    : in_format_(in_format),
      in_rate_(in_rate),
      out_format_(out_format),
      out_rate_(out_rate),
      out_sample_bytes_(av_get_bytes_per_sample(out_format)) {
  const int channels = in_layout.nb_channels;
  if (channels <= 0 || in_rate <= 0 || out_rate <= 0 || in_format == AV_SAMPLE_FMT_NONE ||
      out_sample_bytes_ <= 0) {
    throw MediaError(MediaError::Kind::corrupt,
                     "audio stream has no valid channel layout, "
                     "sample format or sample rate");
  }
  int rc = av_channel_layout_copy(&in_layout_, &in_layout);
  if (rc < 0) throw_av_error(MediaError::Kind::internal, "copying channel layout", rc);

  // Non-const: FFmpeg 5.1 declares these parameters without const.
  AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
  SwrContext* raw = nullptr;
  rc = swr_alloc_set_opts2(&raw, &mono, out_format, out_rate, &in_layout_, in_format, in_rate, 0,
                           nullptr);
  swr_.reset(raw);
  if (rc < 0) throw_av_error(MediaError::Kind::internal, "configuring the resampler", rc);

  if (channels > 1) {
    // The mix matrix is [out][in]; one output channel, so a single row of 1/N weights.
    const std::vector<double> matrix(static_cast<std::size_t>(channels), 1.0 / channels);
    rc = swr_set_matrix(swr_.get(), matrix.data(), channels);
    if (rc < 0) throw_av_error(MediaError::Kind::internal, "setting the downmix matrix", rc);
  }
  rc = swr_init(swr_.get());
  if (rc < 0) throw_av_error(MediaError::Kind::internal, "initialising the resampler", rc);
}

bool MonoResampler::accepts(const AVChannelLayout& layout, AVSampleFormat format, int rate) const {
  return format == in_format_ && rate == in_rate_ &&
         av_channel_layout_compare(&layout, &in_layout_) == 0;
}

int MonoResampler::convert(const std::uint8_t* const* planes, int count,
                           std::vector<std::uint8_t>& out) {
  const int capacity = swr_get_out_samples(swr_.get(), count);
  if (capacity < 0) throw_av_error(MediaError::Kind::internal, "sizing resampler output", capacity);
  if (capacity == 0) return 0;
  const std::size_t old_size = out.size();
  out.resize(old_size + static_cast<std::size_t>(capacity) * out_sample_bytes_);
  std::uint8_t* dst = out.data() + old_size;
  const int produced =
      swr_convert(swr_.get(), &dst, capacity, const_cast<const std::uint8_t**>(planes), count);
  if (produced < 0) {
    out.resize(old_size);
    throw_av_error(MediaError::Kind::internal, "resampling", produced);
  }
  out.resize(old_size + static_cast<std::size_t>(produced) * out_sample_bytes_);
  return produced;
}

}  // namespace talkserve::media::detail
