#pragma once
// Video out through FFmpeg: H.264 (libx264) + AAC.
//   encode_mp4_clip():     a whole clip as MP4 with the index at the front (fast start), for
//                          GET /v1/clips/{id}.mp4.
//   FragmentedMp4Writer:   a live stream as fragmented MP4 (an init segment, then media
//                          segments of about segment_seconds) for a browser's Media Source
//                          Extensions.
// Timing: the audio sample count is the clock. Frame n is shown at n / fps seconds; audio sample
// k plays at k / audio_sample_rate. Callers give exactly round(duration * fps) frames for a
// duration of audio, so sound and mouth stay together however long the stream runs.
//
// Thread-safety: functions are reentrant; a FragmentedMp4Writer is used by one thread at a time.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "talkserve/media/audio.hpp"

namespace talkserve::media {

// One video frame, RGB24, rows top to bottom, stride = 3 * width.
struct RgbFrame {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> data;
};

struct VideoParams {
  int width = 0;           // even; frames must have this size
  int height = 0;          // even
  int fps = 25;
  int crf = 26;            // x264 quality (lower = better, bigger)
  std::string preset = "veryfast";
  int audio_sample_rate = 24000;  // the rate of the float audio given
  int audio_bitrate = 64000;
  double segment_seconds = 0.5;   // fragmented MP4: target media segment length
  void validate() const;          // throws std::invalid_argument naming the field
};

// A complete MP4 (H.264 + AAC, faststart). Throws MediaError(internal) if encoding fails and
// std::invalid_argument for frames of the wrong size.
std::string encode_mp4_clip(const std::vector<RgbFrame>& frames, std::span<const float> audio,
                            const VideoParams& params);

class FragmentedMp4Writer {
 public:
  explicit FragmentedMp4Writer(const VideoParams& params);
  ~FragmentedMp4Writer();
  FragmentedMp4Writer(const FragmentedMp4Writer&) = delete;
  FragmentedMp4Writer& operator=(const FragmentedMp4Writer&) = delete;

  // ftyp + moov, to be appended to the SourceBuffer first. Available from construction.
  const std::string& init_segment() const;
  // The MIME type with codecs for MediaSource.isTypeSupported / addSourceBuffer,
  // e.g. video/mp4; codecs="avc1.42E01E, mp4a.40.2".
  std::string mime_type() const;

  void push_audio(std::span<const float> samples);
  void push_frame(const RgbFrame& frame);
  // Complete media segments (moof + mdat) ready so far, in order; each starts with a key frame.
  std::vector<std::string> take_segments();
  // Flushes the encoders; returns the last segments.
  std::vector<std::string> finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace talkserve::media
