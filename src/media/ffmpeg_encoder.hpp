#pragma once
// MP3 / Opus-in-Ogg / AAC-in-ADTS / FLAC output through libavcodec and libavformat, muxed into a
// StringSink. Input is mono float at any rate; it is resampled to the rate and sample format
// the codec takes and cut into the codec's frame size through an AVAudioFifo.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "media/encoder_backend.hpp"
#include "media/ffmpeg_raii.hpp"
#include "media/memory_io.hpp"
#include "media/mono_resampler.hpp"

namespace talkserve::media::detail {

struct CodecChoice;

class FfmpegEncoder final : public EncoderBackend {
 public:
  // format must be mp3, opus, aac or flac. Throws MediaError(internal) if this FFmpeg build
  // lacks the encoder or muxer.
  FfmpegEncoder(AudioFormat format, int sample_rate, bool streaming);

  std::string push(std::span<const float> samples) override;
  std::string finish() override;

 private:
  void open_codec(AudioFormat format, const CodecChoice& choice, int input_rate);
  void open_muxer(const char* muxer_name);
  // Encodes whole frames from the FIFO; with `final_frame`, also the partial remainder.
  void encode_fifo(bool final_frame);
  void encode(const AVFrame* frame);  // nullptr drains the encoder
  std::string take_output();

  bool streaming_;
  bool finished_ = false;
  bool wrote_since_flush_ = false;
  int frame_size_ = 0;
  std::int64_t next_pts_ = 0;
  // Declaration order is destruction order in reverse: the muxer context must go before the
  // sink whose AVIOContext it writes through.
  StringSink sink_;
  OutputFormatHandle muxer_;
  AVStream* stream_ = nullptr;
  CodecContextHandle codec_;
  std::optional<MonoResampler> resampler_;
  AudioFifoHandle fifo_;
  PacketHandle packet_;
  std::vector<std::uint8_t> scratch_;
};

}  // namespace talkserve::media::detail
