#include "media/ffmpeg_encoder.hpp"

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/samplefmt.h>
}

#include <algorithm>
#include <array>
#include <cstdlib>

namespace talkserve::media::detail {

using Kind = MediaError::Kind;

struct CodecChoice {
  std::array<const char*, 2> encoders;  // by preference; nullptr = none
  const char* muxer;
  std::int64_t bit_rate;  // 0: codec default (lossless)
  int forced_rate;        // 0: keep the input rate if the codec supports it
};

namespace {

// Debian 12's libavcodec59 has libmp3lame, libopus and the native aac/flac/opus encoders.
// libmp3lame and libopus are the better encoders; the fallbacks are there for other builds.
// Bit rates are for mono speech.
CodecChoice choice_for(AudioFormat format) {
  switch (format) {
    case AudioFormat::mp3:
      return {{"libmp3lame", "libshine"}, "mp3", 64000, 0};
    case AudioFormat::opus:
      return {{"libopus", "opus"}, "ogg", 32000, 48000};
    case AudioFormat::aac:
      return {{"aac", "libfdk_aac"}, "adts", 64000, 0};
    case AudioFormat::flac:
      return {{"flac", nullptr}, "flac", 0, 0};
    case AudioFormat::wav:
    case AudioFormat::pcm:
      break;
  }
  throw MediaError(Kind::internal,
                   "FfmpegEncoder does not handle " + std::string(to_string(format)));
}

AVSampleFormat pick_sample_format(const AVCodec& codec) {
  if (!codec.sample_fmts) return AV_SAMPLE_FMT_FLT;
  // Float first (no quantisation before the codec), then 16-bit (FLAC: smaller than s32).
  for (AVSampleFormat wanted :
       {AV_SAMPLE_FMT_FLT, AV_SAMPLE_FMT_FLTP, AV_SAMPLE_FMT_S16, AV_SAMPLE_FMT_S16P}) {
    for (const AVSampleFormat* f = codec.sample_fmts; *f != AV_SAMPLE_FMT_NONE; ++f) {
      if (*f == wanted) return wanted;
    }
  }
  return codec.sample_fmts[0];
}

int pick_sample_rate(const AVCodec& codec, int wanted) {
  if (!codec.supported_samplerates) return wanted;
  int best = 0;
  for (const int* rate = codec.supported_samplerates; *rate != 0; ++rate) {
    if (*rate == wanted) return wanted;
    const int distance = std::abs(*rate - wanted);
    const int best_distance = std::abs(best - wanted);
    if (best == 0 || distance < best_distance || (distance == best_distance && *rate > best)) {
      best = *rate;
    }
  }
  return best > 0 ? best : wanted;
}

}  // namespace

FfmpegEncoder::FfmpegEncoder(AudioFormat format, int sample_rate, bool streaming)
    : streaming_(streaming), sink_(/*seekable=*/!streaming), packet_(make_packet()) {
  const CodecChoice choice = choice_for(format);
  open_codec(format, choice, sample_rate);
  open_muxer(choice.muxer);

  resampler_.emplace(codec_->ch_layout, AV_SAMPLE_FMT_FLT, sample_rate, codec_->sample_fmt,
                     codec_->sample_rate);
  fifo_.reset(av_audio_fifo_alloc(codec_->sample_fmt, 1, frame_size_));
  if (!fifo_) throw MediaError(Kind::internal, "out of memory allocating audio FIFO");
}

void FfmpegEncoder::open_codec(AudioFormat format, const CodecChoice& choice, int input_rate) {
  const AVCodec* codec = nullptr;
  for (const char* name : choice.encoders) {
    if (name && (codec = avcodec_find_encoder_by_name(name)) != nullptr) break;
  }
  if (!codec) {
    throw MediaError(Kind::internal,
                     "this FFmpeg build has no " + std::string(to_string(format)) + " encoder");
  }
  codec_.reset(avcodec_alloc_context3(codec));
  if (!codec_) throw MediaError(Kind::internal, "out of memory allocating AVCodecContext");

  const AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
  int rc = av_channel_layout_copy(&codec_->ch_layout, &mono);
  if (rc < 0) throw_av_error(Kind::internal, "setting channel layout", rc);
  codec_->sample_fmt = pick_sample_format(*codec);
  codec_->sample_rate =
      pick_sample_rate(*codec, choice.forced_rate > 0 ? choice.forced_rate : input_rate);
  codec_->time_base = AVRational{1, codec_->sample_rate};
  if (choice.bit_rate > 0) codec_->bit_rate = choice.bit_rate;
  // LAME's default algorithm quality (q 3) costs ~3x the CPU of q 7 for no audible gain on
  // synthesised speech at 64 kb/s, and MP3 encoding is most of the work of a streamed reply.
  if (std::string_view(codec->name) == "libmp3lame") codec_->compression_level = 7;
  // FFmpeg's native Opus encoder is still flagged experimental.
  if (codec->capabilities & AV_CODEC_CAP_EXPERIMENTAL) {
    codec_->strict_std_compliance = FF_COMPLIANCE_EXPERIMENTAL;
  }
  const AVOutputFormat* muxer = av_guess_format(choice.muxer, nullptr, nullptr);
  if (muxer && (muxer->flags & AVFMT_GLOBALHEADER)) codec_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

  rc = avcodec_open2(codec_.get(), codec, nullptr);
  if (rc < 0)
    throw_av_error(Kind::internal, std::string("opening the ") + codec->name + " encoder", rc);

  // frame_size 0 means any size is accepted; 1024 keeps the packets reasonably small.
  frame_size_ = codec_->frame_size > 0 ? codec_->frame_size : 1024;
}

void FfmpegEncoder::open_muxer(const char* muxer_name) {
  AVFormatContext* raw = nullptr;
  int rc = avformat_alloc_output_context2(&raw, nullptr, muxer_name, nullptr);
  if (rc < 0 || !raw) {
    throw_av_error(Kind::internal, std::string("this FFmpeg build has no ") + muxer_name + " muxer",
                   rc < 0 ? rc : AVERROR_MUXER_NOT_FOUND);
  }
  muxer_.reset(raw);
  muxer_->pb = sink_.context();
  muxer_->flags |= AVFMT_FLAG_CUSTOM_IO;

  stream_ = avformat_new_stream(muxer_.get(), nullptr);
  if (!stream_) throw MediaError(Kind::internal, "out of memory adding an output stream");
  rc = avcodec_parameters_from_context(stream_->codecpar, codec_.get());
  if (rc < 0) throw_av_error(Kind::internal, "copying encoder parameters", rc);
  stream_->time_base = codec_->time_base;

  rc = avformat_write_header(muxer_.get(), nullptr);
  if (rc < 0)
    throw_av_error(Kind::internal, std::string("writing the ") + muxer_name + " header", rc);
}

std::string FfmpegEncoder::push(std::span<const float> samples) {
  if (finished_) throw MediaError(Kind::internal, "AudioEncoder::push after finish");
  if (!samples.empty()) {
    const auto* input = reinterpret_cast<const std::uint8_t*>(samples.data());
    const int count = resampler_->convert(&input, static_cast<int>(samples.size()), scratch_);
    if (count > 0) {
      void* data = scratch_.data();
      if (av_audio_fifo_write(fifo_.get(), &data, count) < count) {
        throw MediaError(Kind::internal, "out of memory growing audio FIFO");
      }
    }
    scratch_.clear();
    encode_fifo(/*final_frame=*/false);
  }
  // Ogg holds packets until a page fills; flushing per push is what makes the stream live.
  if (streaming_ && wrote_since_flush_ && (muxer_->oformat->flags & AVFMT_ALLOW_FLUSH)) {
    const int rc = av_write_frame(muxer_.get(), nullptr);
    if (rc < 0) throw_av_error(Kind::internal, "flushing the muxer", rc);
    wrote_since_flush_ = false;
  }
  return streaming_ ? take_output() : std::string();
}

std::string FfmpegEncoder::finish() {
  if (finished_) return {};
  finished_ = true;
  resampler_->flush(scratch_);
  const int count = static_cast<int>(scratch_.size() / av_get_bytes_per_sample(codec_->sample_fmt));
  if (count > 0) {
    void* data = scratch_.data();
    if (av_audio_fifo_write(fifo_.get(), &data, count) < count) {
      throw MediaError(Kind::internal, "out of memory growing audio FIFO");
    }
  }
  scratch_.clear();
  encode_fifo(/*final_frame=*/true);
  encode(nullptr);
  const int rc = av_write_trailer(muxer_.get());
  if (rc < 0) throw_av_error(Kind::internal, "writing the trailer", rc);
  return take_output();
}

void FfmpegEncoder::encode_fifo(bool final_frame) {
  const bool small_last_frame = codec_->codec->capabilities &
                                (AV_CODEC_CAP_SMALL_LAST_FRAME | AV_CODEC_CAP_VARIABLE_FRAME_SIZE);
  while (true) {
    const int available = av_audio_fifo_size(fifo_.get());
    if (available == 0 || (available < frame_size_ && !final_frame)) return;
    const int take = std::min(available, frame_size_);
    // Codecs that need full frames get the last one padded with silence.
    const int frame_samples = (take < frame_size_ && !small_last_frame) ? frame_size_ : take;

    FrameHandle frame = make_frame();
    frame->nb_samples = frame_samples;
    frame->format = codec_->sample_fmt;
    frame->sample_rate = codec_->sample_rate;
    int rc = av_channel_layout_copy(&frame->ch_layout, &codec_->ch_layout);
    if (rc < 0) throw_av_error(Kind::internal, "setting frame layout", rc);
    rc = av_frame_get_buffer(frame.get(), 0);
    if (rc < 0) throw_av_error(Kind::internal, "allocating an audio frame", rc);
    if (av_audio_fifo_read(fifo_.get(), reinterpret_cast<void**>(frame->data), take) < take) {
      throw MediaError(Kind::internal, "reading the audio FIFO");
    }
    if (frame_samples > take) {
      av_samples_set_silence(frame->data, take, frame_samples - take, 1, codec_->sample_fmt);
    }
    frame->pts = next_pts_;
    next_pts_ += frame_samples;
    encode(frame.get());
  }
}

void FfmpegEncoder::encode(const AVFrame* frame) {
  int rc = avcodec_send_frame(codec_.get(), frame);
  if (rc < 0) throw_av_error(Kind::internal, "encoding audio", rc);
  while (true) {
    rc = avcodec_receive_packet(codec_.get(), packet_.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
    if (rc < 0) throw_av_error(Kind::internal, "encoding audio", rc);
    packet_->stream_index = stream_->index;
    av_packet_rescale_ts(packet_.get(), codec_->time_base, stream_->time_base);
    rc = av_write_frame(muxer_.get(), packet_.get());
    av_packet_unref(packet_.get());
    if (rc < 0) throw_av_error(Kind::internal, "muxing audio", rc);
    wrote_since_flush_ = true;
  }
}

std::string FfmpegEncoder::take_output() {
  return sink_.drain();
}

}  // namespace talkserve::media::detail
