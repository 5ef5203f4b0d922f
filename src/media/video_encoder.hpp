#pragma once
// The H.264 + AAC encoder pair behind encode_mp4_clip() and FragmentedMp4Writer.
//   Video: RGB24 -> yuv420p (swscale, BT.709, limited range) -> libx264.
//   Audio: mono float at VideoParams::audio_sample_rate -> MonoResampler -> AVAudioFifo ->
//          FFmpeg's native AAC encoder in whole 1024-sample frames.
// Encoded packets wait in one queue per stream, timestamps in the codec time base (1/fps for
// video, 1/codec sample rate for audio), until the muxer takes them. Both encoders are opened
// with AV_CODEC_FLAG_GLOBAL_HEADER (SPS/PPS and AudioSpecificConfig in extradata), as MP4 needs.

extern "C" {
#include <libswscale/swscale.h>
}

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "media/ffmpeg_raii.hpp"
#include "media/mono_resampler.hpp"
#include "talkserve/media/video.hpp"

namespace talkserve::media::detail {

struct SwsDeleter {
  void operator()(SwsContext* sws) const noexcept { sws_freeContext(sws); }
};
using SwsHandle = std::unique_ptr<SwsContext, SwsDeleter>;

enum class H264Use {
  clip,  // best compression for the preset: B-frames, lookahead, a key frame every 2 s
  live,  // tune zerolatency (no B-frames, no lookahead: a packet per frame pushed) and an IDR
         // exactly every keyframe_interval() frames, so that every segment starts with one.
         // Audio timestamps start at 0 (see open_audio: the priming replaces the first input).
};

// profile_idc, constraint flags and level_idc from the SPS: the "PPCCLL" of avc1.PPCCLL.
struct AvcProfile {
  int profile_idc = 0;
  int constraint_flags = 0;
  int level_idc = 0;
};

class H264AacEncoder {
 public:
  // params must be valid (VideoParams::validate()). Throws MediaError(internal) if libx264 or
  // the AAC encoder is missing or refuses the settings.
  H264AacEncoder(const VideoParams& params, H264Use use);
  H264AacEncoder(const H264AacEncoder&) = delete;
  H264AacEncoder& operator=(const H264AacEncoder&) = delete;

  // Throws std::invalid_argument for a frame of the wrong size.
  void push_frame(const RgbFrame& frame);
  void push_audio(std::span<const float> samples);
  // Encodes what is buffered (the last partial audio frame included) and drains both encoders.
  void finish();

  std::deque<PacketHandle>& video_packets() noexcept { return video_packets_; }
  std::deque<PacketHandle>& audio_packets() noexcept { return audio_packets_; }
  const AVCodecContext& video_codec() const noexcept { return *video_; }
  const AVCodecContext& audio_codec() const noexcept { return *audio_; }

  int keyframe_interval() const noexcept { return keyframe_interval_; }
  std::int64_t frames_pushed() const noexcept { return next_video_pts_; }
  AvcProfile avc_profile() const;

 private:
  void open_video(const VideoParams& params, H264Use use);
  void open_audio(const VideoParams& params);
  // Moves `count` resampled samples from scratch_ into the FIFO.
  void queue_resampled(int count);
  void encode_fifo(bool final_frame);
  static void encode(AVCodecContext& codec, const AVFrame* frame, std::deque<PacketHandle>& out,
                     std::int64_t default_duration);

  bool finished_ = false;
  bool live_ = false;
  int keyframe_interval_ = 0;
  CodecContextHandle video_;
  CodecContextHandle audio_;
  SwsHandle sws_;
  FrameHandle yuv_;
  std::int64_t next_video_pts_ = 0;
  std::optional<MonoResampler> resampler_;
  AudioFifoHandle fifo_;
  std::vector<std::uint8_t> scratch_;
  int audio_frame_size_ = 0;
  int skip_samples_ = 0;  // live: input samples still to drop in place of the AAC priming
  std::int64_t next_audio_pts_ = 0;
  std::deque<PacketHandle> video_packets_;
  std::deque<PacketHandle> audio_packets_;
};

// Adds a stream carrying `codec`'s output to an output context (before avformat_write_header).
AVStream* add_stream(AVFormatContext& muxer, const AVCodecContext& codec);

// Rescales a queued packet from its codec time base to `stream`'s and sets its stream index.
void prepare_packet(AVPacket& packet, const AVCodecContext& codec, const AVStream& stream);

}  // namespace talkserve::media::detail
