#include "media/ffmpeg_raii.hpp"

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
}

#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstring>
#include <mutex>

namespace talkserve::media::detail {

FrameHandle make_frame() {
  FrameHandle frame(av_frame_alloc());
  if (!frame) throw MediaError(MediaError::Kind::internal, "out of memory allocating an AVFrame");
  return frame;
}

PacketHandle make_packet() {
  PacketHandle packet(av_packet_alloc());
  if (!packet) throw MediaError(MediaError::Kind::internal, "out of memory allocating an AVPacket");
  return packet;
}

std::string av_error_string(int errnum) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(errnum, text, sizeof text);
  return text;
}

void throw_av_error(MediaError::Kind kind, const std::string& context, int errnum) {
  throw MediaError(kind, context + ": " + av_error_string(errnum));
}

namespace {

void log_to_spdlog(void* avcl, int level, const char* format, va_list args) {
  if (level > AV_LOG_WARNING || !spdlog::should_log(spdlog::level::debug)) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, format, args, line, sizeof line, &print_prefix);
  std::size_t length = std::strlen(line);
  while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r')) --length;
  spdlog::debug("ffmpeg: {}", std::string_view(line, length));
}

}  // namespace

void route_ffmpeg_logging_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    av_log_set_level(AV_LOG_WARNING);
    av_log_set_callback(&log_to_spdlog);
  });
}

}  // namespace talkserve::media::detail
