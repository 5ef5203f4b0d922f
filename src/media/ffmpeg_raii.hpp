#pragma once
// Owning handles for the FFmpeg objects the media module creates, so that every early return
// and every exception releases them. Internal to src/media; the public header stays free of
// libav types.

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/frame.h>
#include <libswresample/swresample.h>
}

#include <memory>
#include <string>

#include "talkserve/media/audio.hpp"

namespace talkserve::media::detail {

struct CodecContextDeleter {
  void operator()(AVCodecContext* ctx) const noexcept { avcodec_free_context(&ctx); }
};
struct FrameDeleter {
  void operator()(AVFrame* frame) const noexcept { av_frame_free(&frame); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const noexcept { av_packet_free(&packet); }
};
struct SwrDeleter {
  void operator()(SwrContext* swr) const noexcept { swr_free(&swr); }
};
struct AudioFifoDeleter {
  void operator()(AVAudioFifo* fifo) const noexcept { av_audio_fifo_free(fifo); }
};
// An input context opened with avformat_open_input (closing also frees it). A custom pb is
// not closed: it is owned by an AvioHandle that must outlive this handle.
struct InputFormatDeleter {
  void operator()(AVFormatContext* ctx) const noexcept { avformat_close_input(&ctx); }
};
// An output context from avformat_alloc_output_context2 with a custom pb (not closed here).
struct OutputFormatDeleter {
  void operator()(AVFormatContext* ctx) const noexcept { avformat_free_context(ctx); }
};
// A custom AVIOContext: its buffer (which FFmpeg may have replaced) is freed with it.
struct AvioDeleter {
  void operator()(AVIOContext* io) const noexcept {
    av_freep(&io->buffer);
    avio_context_free(&io);
  }
};

using CodecContextHandle = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FrameHandle = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketHandle = std::unique_ptr<AVPacket, PacketDeleter>;
using SwrHandle = std::unique_ptr<SwrContext, SwrDeleter>;
using AudioFifoHandle = std::unique_ptr<AVAudioFifo, AudioFifoDeleter>;
using InputFormatHandle = std::unique_ptr<AVFormatContext, InputFormatDeleter>;
using OutputFormatHandle = std::unique_ptr<AVFormatContext, OutputFormatDeleter>;
using AvioHandle = std::unique_ptr<AVIOContext, AvioDeleter>;

// Allocation helpers that throw MediaError(internal) instead of returning null.
FrameHandle make_frame();
PacketHandle make_packet();

// "Invalid data found when processing input" for an AVERROR code.
std::string av_error_string(int errnum);

// Throws MediaError(kind, context + ": " + av_error_string(errnum)).
[[noreturn]] void throw_av_error(MediaError::Kind kind, const std::string& context, int errnum);

// Routes FFmpeg's log output (warnings and errors only) to spdlog at debug level, once per
// process, so libav does not write to stderr behind the server's logger.
void route_ffmpeg_logging_once();

}  // namespace talkserve::media::detail
