#pragma once
// Streaming mono resampler (libswresample): feed float samples at one rate in pieces, get them
// at another, with the filter state carried across pieces so there are no seams (a reply
// synthesised sentence by sentence resamples as one signal).
//
// Thread-safety: one thread at a time per object.

#include <memory>
#include <span>
#include <vector>

namespace talkserve::media {

class AudioResampler {
 public:
  // Throws MediaError(internal) for rates FFmpeg rejects. Equal rates pass samples through.
  AudioResampler(int in_rate, int out_rate);
  ~AudioResampler();
  AudioResampler(AudioResampler&&) noexcept;
  AudioResampler& operator=(AudioResampler&&) noexcept;

  std::vector<float> push(std::span<const float> samples);
  // The samples still in the filter's delay line; call once at the end.
  std::vector<float> flush();

  int in_rate() const noexcept { return in_rate_; }
  int out_rate() const noexcept { return out_rate_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int in_rate_;
  int out_rate_;
};

}  // namespace talkserve::media
