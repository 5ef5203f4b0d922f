#include "media/video_encoder.hpp"

extern "C" {
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>
}

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace talkserve::media {

namespace {

constexpr std::array<std::string_view, 10> kX264Presets = {
    "ultrafast", "superfast", "veryfast", "faster",   "fast",
    "medium",    "slow",      "slower",   "veryslow", "placebo"};

[[noreturn]] void bad_param(const std::string& field, const std::string& rule,
                            const std::string& got) {
  throw std::invalid_argument("VideoParams." + field + " " + rule + " (got " + got + ")");
}

}  // namespace

void VideoParams::validate() const {
  // 4096: the largest width or height of H.264 level 5.1/5.2, which every hardware decoder has.
  if (width <= 0 || width > 4096 || width % 2 != 0) {
    bad_param("width", "must be an even number in [2, 4096]", std::to_string(width));
  }
  if (height <= 0 || height > 4096 || height % 2 != 0) {
    bad_param("height", "must be an even number in [2, 4096]", std::to_string(height));
  }
  if (fps < 1 || fps > 120) bad_param("fps", "must be in [1, 120]", std::to_string(fps));
  if (crf < 0 || crf > 51) bad_param("crf", "must be in [0, 51]", std::to_string(crf));
  if (std::find(kX264Presets.begin(), kX264Presets.end(), preset) == kX264Presets.end()) {
    bad_param("preset", "must be an x264 preset (ultrafast ... placebo)", "\"" + preset + "\"");
  }
  if (audio_sample_rate < 8000 || audio_sample_rate > 96000) {
    bad_param("audio_sample_rate", "must be in [8000, 96000]", std::to_string(audio_sample_rate));
  }
  if (audio_bitrate < 8000 || audio_bitrate > 320000) {
    bad_param("audio_bitrate", "must be in [8000, 320000]", std::to_string(audio_bitrate));
  }
  if (!(segment_seconds > 0) || segment_seconds > 10 || segment_seconds * fps < 1) {
    bad_param("segment_seconds", "must be in (0, 10] and at least one frame (1 / fps)",
              std::to_string(segment_seconds));
  }
}

}  // namespace talkserve::media

namespace talkserve::media::detail {

using Kind = MediaError::Kind;

namespace {

int pick_sample_rate(const AVCodec& codec, int wanted) {
  if (!codec.supported_samplerates) return wanted;
  int best = 0;
  for (const int* rate = codec.supported_samplerates; *rate != 0; ++rate) {
    if (*rate == wanted) return wanted;
    if (best == 0 || std::abs(*rate - wanted) < std::abs(best - wanted)) best = *rate;
  }
  return best > 0 ? best : wanted;
}

void set_option(AVCodecContext& codec, const char* name, const std::string& value) {
  const int rc = av_opt_set(codec.priv_data, name, value.c_str(), 0);
  if (rc < 0) throw_av_error(Kind::internal, std::string("setting libx264 option ") + name, rc);
}

}  // namespace

H264AacEncoder::H264AacEncoder(const VideoParams& params, H264Use use)
    : live_(use == H264Use::live), yuv_(make_frame()) {
  route_ffmpeg_logging_once();
  open_video(params, use);
  open_audio(params);
}

void H264AacEncoder::open_video(const VideoParams& params, H264Use use) {
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (!codec) throw MediaError(Kind::internal, "this FFmpeg build has no libx264 encoder");
  video_.reset(avcodec_alloc_context3(codec));
  if (!video_) throw MediaError(Kind::internal, "out of memory allocating AVCodecContext");

  AVCodecContext& ctx = *video_;
  ctx.width = params.width;
  ctx.height = params.height;
  ctx.pix_fmt = AV_PIX_FMT_YUV420P;
  ctx.time_base = AVRational{1, params.fps};
  ctx.framerate = AVRational{params.fps, 1};
  ctx.sample_aspect_ratio = AVRational{1, 1};
  ctx.color_range = AVCOL_RANGE_MPEG;
  ctx.colorspace = AVCOL_SPC_BT709;
  ctx.color_primaries = AVCOL_PRI_BT709;
  ctx.color_trc = AVCOL_TRC_BT709;
  ctx.flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

  // Main profile: CABAC and (for clips) B-frames, decoded by every browser that plays H.264.
  set_option(ctx, "preset", params.preset);
  set_option(ctx, "profile", "main");
  set_option(ctx, "crf", std::to_string(params.crf));
  if (use == H264Use::live) {
    keyframe_interval_ =
        std::max(1, static_cast<int>(std::lround(params.fps * params.segment_seconds)));
    set_option(ctx, "tune", "zerolatency");
    set_option(ctx, "forced-idr", "1");
    set_option(ctx, "x264-params",
               "scenecut=0:keyint=" + std::to_string(keyframe_interval_) +
                   ":min-keyint=" + std::to_string(keyframe_interval_));
    ctx.max_b_frames = 0;
  } else {
    // A key frame every 2 s keeps seeking in a long clip quick at little cost.
    keyframe_interval_ = 2 * params.fps;
  }
  ctx.gop_size = keyframe_interval_;

  const int rc = avcodec_open2(&ctx, codec, nullptr);
  if (rc < 0) throw_av_error(Kind::internal, "opening the libx264 encoder", rc);

  sws_.reset(sws_getContext(params.width, params.height, AV_PIX_FMT_RGB24, params.width,
                            params.height, AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr, nullptr,
                            nullptr));
  if (!sws_) throw MediaError(Kind::internal, "cannot convert RGB24 to yuv420p (swscale)");
  // RGB is full range; the H.264 stream is tagged BT.709 limited range above.
  sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(SWS_CS_DEFAULT), 1,
                           sws_getCoefficients(SWS_CS_ITU709), 0, 0, 1 << 16, 1 << 16);

  yuv_->format = AV_PIX_FMT_YUV420P;
  yuv_->width = params.width;
  yuv_->height = params.height;
  const int alloc_rc = av_frame_get_buffer(yuv_.get(), 0);
  if (alloc_rc < 0) throw_av_error(Kind::internal, "allocating a video frame", alloc_rc);
}

void H264AacEncoder::open_audio(const VideoParams& params) {
  const AVCodec* codec = avcodec_find_encoder_by_name("aac");
  if (!codec) throw MediaError(Kind::internal, "this FFmpeg build has no aac encoder");
  audio_.reset(avcodec_alloc_context3(codec));
  if (!audio_) throw MediaError(Kind::internal, "out of memory allocating AVCodecContext");

  AVCodecContext& ctx = *audio_;
  const AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
  int rc = av_channel_layout_copy(&ctx.ch_layout, &mono);
  if (rc < 0) throw_av_error(Kind::internal, "setting channel layout", rc);
  ctx.sample_fmt = codec->sample_fmts ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
  ctx.sample_rate = pick_sample_rate(*codec, params.audio_sample_rate);
  ctx.time_base = AVRational{1, ctx.sample_rate};
  ctx.bit_rate = params.audio_bitrate;
  ctx.flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  rc = avcodec_open2(&ctx, codec, nullptr);
  if (rc < 0) throw_av_error(Kind::internal, "opening the aac encoder", rc);

  audio_frame_size_ = ctx.frame_size > 0 ? ctx.frame_size : 1024;
  resampler_.emplace(ctx.ch_layout, AV_SAMPLE_FMT_FLT, params.audio_sample_rate, ctx.sample_fmt,
                     ctx.sample_rate);
  fifo_.reset(av_audio_fifo_alloc(ctx.sample_fmt, 1, audio_frame_size_));
  if (!fifo_) throw MediaError(Kind::internal, "out of memory allocating audio FIFO");
  if (live_) {
    // A fragmented MP4 written before the first packet cannot carry an edit list, and its
    // timestamps cannot go below zero, so the encoder delay (1024 samples of priming) cannot be
    // cut at playback. Instead the first `initial_padding` input samples are dropped and the
    // input timeline starts at initial_padding: the first packet (the priming) lands at 0, and
    // input sample k still plays at k / rate, in step with the video.
    skip_samples_ = ctx.initial_padding;
    next_audio_pts_ = ctx.initial_padding;
  }
}

void H264AacEncoder::push_frame(const RgbFrame& frame) {
  if (finished_) throw MediaError(Kind::internal, "video frame pushed after finish");
  const AVCodecContext& ctx = *video_;
  if (frame.width != ctx.width || frame.height != ctx.height) {
    throw std::invalid_argument("video frame is " + std::to_string(frame.width) + "x" +
                                std::to_string(frame.height) + ", expected " +
                                std::to_string(ctx.width) + "x" + std::to_string(ctx.height));
  }
  const std::size_t expected = static_cast<std::size_t>(ctx.width) * ctx.height * 3;
  if (frame.data.size() != expected) {
    throw std::invalid_argument("video frame has " + std::to_string(frame.data.size()) +
                                " bytes of RGB24, expected " + std::to_string(expected));
  }
  // The encoder may still hold a reference to the previous picture (lookahead).
  int rc = av_frame_make_writable(yuv_.get());
  if (rc < 0) throw_av_error(Kind::internal, "allocating a video frame", rc);
  const std::uint8_t* src[1] = {frame.data.data()};
  const int src_stride[1] = {3 * ctx.width};
  sws_scale(sws_.get(), src, src_stride, 0, ctx.height, yuv_->data, yuv_->linesize);

  yuv_->pts = next_video_pts_;
  yuv_->pict_type = (live_ && next_video_pts_ % keyframe_interval_ == 0) ? AV_PICTURE_TYPE_I
                                                                         : AV_PICTURE_TYPE_NONE;
  ++next_video_pts_;
  encode(*video_, yuv_.get(), video_packets_, 1);
}

void H264AacEncoder::push_audio(std::span<const float> samples) {
  if (finished_) throw MediaError(Kind::internal, "audio pushed after finish");
  if (samples.empty()) return;
  const auto* input = reinterpret_cast<const std::uint8_t*>(samples.data());
  queue_resampled(resampler_->convert(&input, static_cast<int>(samples.size()), scratch_));
  encode_fifo(/*final_frame=*/false);
}

void H264AacEncoder::finish() {
  if (finished_) return;
  finished_ = true;
  queue_resampled(resampler_->flush(scratch_));
  encode_fifo(/*final_frame=*/true);
  encode(*audio_, nullptr, audio_packets_, 0);
  encode(*video_, nullptr, video_packets_, 1);
}

void H264AacEncoder::queue_resampled(int count) {
  if (count > 0) {
    void* data = scratch_.data();
    if (av_audio_fifo_write(fifo_.get(), &data, count) < count) {
      throw MediaError(Kind::internal, "out of memory growing audio FIFO");
    }
  }
  scratch_.clear();
  if (skip_samples_ > 0) {
    const int skip = std::min(skip_samples_, av_audio_fifo_size(fifo_.get()));
    av_audio_fifo_drain(fifo_.get(), skip);
    skip_samples_ -= skip;
  }
}

void H264AacEncoder::encode_fifo(bool final_frame) {
  const AVCodecContext& ctx = *audio_;
  while (true) {
    const int available = av_audio_fifo_size(fifo_.get());
    if (available == 0 || (available < audio_frame_size_ && !final_frame)) return;
    // The AAC encoder takes a short last frame (AV_CODEC_CAP_SMALL_LAST_FRAME).
    const int take = std::min(available, audio_frame_size_);
    FrameHandle frame = make_frame();
    frame->nb_samples = take;
    frame->format = ctx.sample_fmt;
    frame->sample_rate = ctx.sample_rate;
    int rc = av_channel_layout_copy(&frame->ch_layout, &ctx.ch_layout);
    if (rc < 0) throw_av_error(Kind::internal, "setting frame layout", rc);
    rc = av_frame_get_buffer(frame.get(), 0);
    if (rc < 0) throw_av_error(Kind::internal, "allocating an audio frame", rc);
    if (av_audio_fifo_read(fifo_.get(), reinterpret_cast<void**>(frame->data), take) < take) {
      throw MediaError(Kind::internal, "reading the audio FIFO");
    }
    frame->pts = next_audio_pts_;
    next_audio_pts_ += take;
    encode(*audio_, frame.get(), audio_packets_, 0);
  }
}

void H264AacEncoder::encode(AVCodecContext& codec, const AVFrame* frame,
                            std::deque<PacketHandle>& out, std::int64_t default_duration) {
  const char* what = codec.codec_type == AVMEDIA_TYPE_VIDEO ? "encoding video" : "encoding audio";
  int rc = avcodec_send_frame(&codec, frame);
  if (rc < 0) throw_av_error(Kind::internal, what, rc);
  while (true) {
    PacketHandle packet = make_packet();
    rc = avcodec_receive_packet(&codec, packet.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
    if (rc < 0) throw_av_error(Kind::internal, what, rc);
    // libx264 leaves the duration unset; the muxer needs it for the last frame's length.
    if (packet->duration <= 0) packet->duration = default_duration;
    out.push_back(std::move(packet));
  }
}

AvcProfile H264AacEncoder::avc_profile() const {
  const std::uint8_t* data = video_->extradata;
  const int size = video_->extradata_size;
  if (data && size >= 4 && data[0] == 1) {  // avcC
    return {data[1], data[2], data[3]};
  }
  // Annex B: 00 00 01, then the NAL header; type 7 is the sequence parameter set.
  for (int i = 0; data && i + 6 < size; ++i) {
    if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 && (data[i + 3] & 0x1f) == 7) {
      return {data[i + 4], data[i + 5], data[i + 6]};
    }
  }
  throw MediaError(Kind::internal, "libx264 produced no sequence parameter set");
}

AVStream* add_stream(AVFormatContext& muxer, const AVCodecContext& codec) {
  AVStream* stream = avformat_new_stream(&muxer, nullptr);
  if (!stream) throw MediaError(Kind::internal, "out of memory adding an output stream");
  const int rc = avcodec_parameters_from_context(stream->codecpar, &codec);
  if (rc < 0) throw_av_error(Kind::internal, "copying encoder parameters", rc);
  stream->time_base = codec.time_base;
  if (codec.codec_type == AVMEDIA_TYPE_VIDEO) stream->avg_frame_rate = codec.framerate;
  return stream;
}

void prepare_packet(AVPacket& packet, const AVCodecContext& codec, const AVStream& stream) {
  av_packet_rescale_ts(&packet, codec.time_base, stream.time_base);
  packet.stream_index = stream.index;
}

}  // namespace talkserve::media::detail
