// decode_audio(): bytes in memory -> mono float at the requested rate.
//
// Error policy (MediaError kinds):
//   empty       - the span is empty.
//   unsupported - no demuxer recognises the bytes, the file has no audio stream, or FFmpeg has
//                 no decoder for its codec.
//   corrupt     - the format was recognised but its header cannot be parsed, or decoding
//                 yields no audio at all. A truncated file that still decodes returns the
//                 audio before the cut (a cut-off upload stays transcribable), except when
//                 that is under 10 ms while the container promised more or the decoder
//                 reported errors: a few stray samples from a header-only fragment are
//                 reported as corrupt, not as a successful near-empty decode. Also a RIFF
//                 metadata chunk (WAV, AVI) that claims more bytes than the whole upload
//                 (riff_chunks.hpp): FFmpeg would allocate its claimed size.
//   too_long    - more than options.max_seconds of audio; checked frame by frame while
//                 decoding, so an over-long upload costs only max_seconds of decoding.
//   internal    - allocation failures and invalid options.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "media/ffmpeg_raii.hpp"
#include "media/memory_io.hpp"
#include "media/mono_resampler.hpp"
#include "media/riff_chunks.hpp"
#include "talkserve/media/audio.hpp"

namespace talkserve::media {

namespace {

using detail::throw_av_error;
using Kind = MediaError::Kind;

constexpr double kMinTruncatedSeconds = 0.010;
constexpr std::int64_t kProbeBytes = std::int64_t{128} * 1024;
// Source rates accepted: every real recording format lies inside.
constexpr int kMinSampleRate = 1000;
constexpr int kMaxSampleRate = 768000;

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", seconds);
  return text;
}

// Demuxer + decoder + resampler state for one decode_audio() call. Member order matters: the
// reader's AVIOContext must outlive the format context that reads through it.
class Decoder {
 public:
  Decoder(std::span<const std::uint8_t> bytes, const DecodeOptions& options)
      : options_(options), bytes_(bytes), reader_(bytes) {}

  DecodedAudio run() {
    open_input();
    open_decoder();
    read_packets();
    drain_decoder();
    if (resampler_) {
      resampler_->flush(scratch_);
      append();
    }
    check_yielded_audio();
    result_.sample_rate = options_.sample_rate;
    return std::move(result_);
  }

 private:
  void open_input() {
    const AVInputFormat* input_format = nullptr;
    int rc = av_probe_input_buffer2(reader_.context(), &input_format, "", nullptr, 0, 0);
    if (rc < 0 || !input_format) {
      throw MediaError(Kind::unsupported,
                       "unrecognised audio format (" + detail::av_error_string(rc) + ")");
    }
    // Before the demuxer reads the header: it allocates what the header claims.
    detail::check_riff_chunk_claims(bytes_);
    AVFormatContext* raw = avformat_alloc_context();
    if (!raw) throw MediaError(Kind::internal, "out of memory allocating AVFormatContext");
    raw->pb = reader_.context();
    raw->flags |= AVFMT_FLAG_CUSTOM_IO;
    // Bounds the read-ahead of avformat_find_stream_info (5 MB by default); 128 KiB still
    // holds dozens of frames of any compressed audio codec.
    raw->probesize = kProbeBytes;
    rc = avformat_open_input(&raw, "", input_format, nullptr);  // frees raw on failure
    if (rc < 0) {
      throw_av_error(Kind::corrupt,
                     std::string("cannot parse the ") + input_format->name +
                         " header (truncated or damaged input)",
                     rc);
    }
    format_.reset(raw);
    result_.container = input_format->name;

    stream_ = first_audio_stream();
    if (!stream_ || !has_codec_parameters(*stream_->codecpar)) {
      // Some containers (raw ADTS, MPEG-TS, headerless streams) only learn the stream
      // parameters from packets. Skipped when the header was enough: it reads and decodes
      // ahead for nothing. Failure is not fatal; the decoder may still manage.
      avformat_find_stream_info(format_.get(), nullptr);
      stream_ = first_audio_stream();
    }
    for (unsigned i = 0; i < format_->nb_streams; ++i) {
      if (format_->streams[i] != stream_) format_->streams[i]->discard = AVDISCARD_ALL;
    }
    if (!stream_) {
      throw MediaError(Kind::unsupported, result_.container + " input has no audio stream");
    }
  }

  AVStream* first_audio_stream() const {
    for (unsigned i = 0; i < format_->nb_streams; ++i) {
      if (format_->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
        return format_->streams[i];
    }
    return nullptr;
  }

  static bool has_codec_parameters(const AVCodecParameters& params) {
    return params.codec_id != AV_CODEC_ID_NONE && params.sample_rate > 0 &&
           params.ch_layout.nb_channels > 0;
  }

  void open_decoder() {
    const AVCodecParameters* params = stream_->codecpar;
    result_.codec = avcodec_get_name(params->codec_id);
    result_.source_sample_rate = params->sample_rate;
    result_.source_channels = params->ch_layout.nb_channels;
    const AVCodec* codec = avcodec_find_decoder(params->codec_id);
    if (!codec) throw MediaError(Kind::unsupported, "no decoder for audio codec " + result_.codec);
    codec_.reset(avcodec_alloc_context3(codec));
    if (!codec_) throw MediaError(Kind::internal, "out of memory allocating AVCodecContext");
    int rc = avcodec_parameters_to_context(codec_.get(), params);
    if (rc < 0) throw_av_error(Kind::internal, "copying codec parameters", rc);
    codec_->pkt_timebase = stream_->time_base;
    rc = avcodec_open2(codec_.get(), codec, nullptr);
    if (rc < 0) throw_av_error(Kind::corrupt, "cannot open " + result_.codec + " decoder", rc);
  }

  void read_packets() {
    auto packet = detail::make_packet();
    while (true) {
      const int rc = av_read_frame(format_.get(), packet.get());
      if (rc == AVERROR(ENOMEM)) throw_av_error(Kind::internal, "reading packet", rc);
      if (rc < 0) {
        // EOF, or a truncated/garbled tail the demuxer cannot resync past: keep what decoded.
        if (rc != AVERROR_EOF) ++errors_;
        return;
      }
      if (packet->stream_index == stream_->index) {
        // Demuxers flag a packet cut short by the end of the input (e.g. WAV) as corrupt.
        if (packet->flags & AV_PKT_FLAG_CORRUPT) ++errors_;
        send(packet.get());
      }
      av_packet_unref(packet.get());
    }
  }

  void drain_decoder() { send(nullptr); }

  void send(const AVPacket* packet) {
    const int rc = avcodec_send_packet(codec_.get(), packet);
    if (rc == AVERROR(ENOMEM)) throw_av_error(Kind::internal, "decoding", rc);
    if (rc < 0 && rc != AVERROR_EOF) {
      ++errors_;  // a damaged packet: skip it, as players do
      return;
    }
    receive_frames();
  }

  void receive_frames() {
    if (!frame_) frame_ = detail::make_frame();
    while (true) {
      const int rc = avcodec_receive_frame(codec_.get(), frame_.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      if (rc == AVERROR(ENOMEM)) throw_av_error(Kind::internal, "decoding", rc);
      if (rc < 0) {
        ++errors_;
        return;
      }
      consume(*frame_);
      av_frame_unref(frame_.get());
    }
  }

  void consume(const AVFrame& frame) {
    if (frame.nb_samples <= 0 || frame.sample_rate <= 0) return;
    decoded_seconds_ += static_cast<double>(frame.nb_samples) / frame.sample_rate;
    if (options_.max_seconds > 0 && decoded_seconds_ > options_.max_seconds) {
      throw MediaError(Kind::too_long,
                       "audio is longer than the " + seconds_text(options_.max_seconds) +
                           " limit (stopped decoding at " + seconds_text(decoded_seconds_) + ")");
    }
    const auto format = static_cast<AVSampleFormat>(frame.format);
    if (!resampler_ || !resampler_->accepts(frame.ch_layout, format, frame.sample_rate)) {
      if (resampler_) {
        resampler_->flush(scratch_);  // parameters changed mid-stream
        append();
      } else {
        // What the decoder produces, which is what matters: a WebM/Opus header may claim the
        // original 16 kHz while Opus always decodes at 48 kHz.
        result_.source_sample_rate = frame.sample_rate;
        result_.source_channels = frame.ch_layout.nb_channels;
      }
      // A damaged header can claim any rate; swr_init builds its filter for it, which for
      // 700 MHz took over 10 s and 2 GB per upload (fuzz_audio_decoder).
      if (frame.sample_rate < kMinSampleRate || frame.sample_rate > kMaxSampleRate) {
        throw MediaError(Kind::corrupt, "sample rate " + std::to_string(frame.sample_rate) +
                                            " Hz is outside " + std::to_string(kMinSampleRate) +
                                            " to " + std::to_string(kMaxSampleRate) + " Hz");
      }
      resampler_.emplace(frame.ch_layout, format, frame.sample_rate, AV_SAMPLE_FMT_FLT,
                         options_.sample_rate);
    }
    resampler_->convert(frame.extended_data, frame.nb_samples, scratch_);
    append();
  }

  // Moves the float samples the resampler left in scratch_ into the result.
  void append() {
    const std::size_t count = scratch_.size() / sizeof(float);
    // memcpy with the null data() of an empty vector is undefined even for 0 bytes (UBSan).
    if (count == 0) {
      scratch_.clear();
      return;
    }
    const std::size_t old_size = result_.samples.size();
    result_.samples.resize(old_size + count);
    std::memcpy(result_.samples.data() + old_size, scratch_.data(), count * sizeof(float));
    scratch_.clear();
    // Float codecs carry any value (a float WAV may hold NaN or 1e30) and lossy ones overshoot
    // full scale: the promise is [-1, 1], which the ASR and VAD rely on when they convert to
    // int16 (a float-to-int conversion out of range is undefined behaviour).
    for (std::size_t i = old_size; i < result_.samples.size(); ++i) {
      float& s = result_.samples[i];
      s = std::isfinite(s) ? std::clamp(s, -1.0f, 1.0f) : 0.0f;
    }
  }

  void check_yielded_audio() const {
    if (result_.samples.empty()) {
      throw MediaError(Kind::corrupt, "no audio could be decoded from the " + result_.container +
                                          " input (truncated or damaged)");
    }
    const double decoded = static_cast<double>(result_.samples.size()) / options_.sample_rate;
    const double promised =
        format_->duration > 0 ? static_cast<double>(format_->duration) / AV_TIME_BASE : 0.0;
    if (decoded < kMinTruncatedSeconds && (errors_ > 0 || promised > 2 * kMinTruncatedSeconds)) {
      throw MediaError(Kind::corrupt, "only " + seconds_text(decoded) + " of audio decoded from " +
                                          "the " + result_.container + " input; it is truncated " +
                                          "or damaged");
    }
  }

  DecodeOptions options_;
  std::span<const std::uint8_t> bytes_;
  detail::MemoryReader reader_;
  detail::InputFormatHandle format_;
  AVStream* stream_ = nullptr;
  detail::CodecContextHandle codec_;
  detail::FrameHandle frame_;
  std::optional<detail::MonoResampler> resampler_;
  std::vector<std::uint8_t> scratch_;
  double decoded_seconds_ = 0;
  int errors_ = 0;
  DecodedAudio result_;
};

}  // namespace

DecodedAudio decode_audio(std::span<const std::uint8_t> bytes, const DecodeOptions& options) {
  if (options.sample_rate <= 0 || !std::isfinite(options.max_seconds)) {
    throw MediaError(Kind::internal,
                     "decode_audio: sample_rate must be positive and "
                     "max_seconds finite");
  }
  if (bytes.empty()) throw MediaError(Kind::empty, "audio input is empty");
  detail::route_ffmpeg_logging_once();
  return Decoder(bytes, options).run();
}

}  // namespace talkserve::media
