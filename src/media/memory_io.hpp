#pragma once
// Custom AVIOContexts over memory: MemoryReader lets libavformat demux a byte span without a
// temporary file; StringSink collects what a muxer writes so AudioEncoder can hand it out.
// Both pass `this` to FFmpeg as the opaque pointer, so they are neither copyable nor movable.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "media/ffmpeg_raii.hpp"

namespace talkserve::media::detail {

class MemoryReader {
 public:
  explicit MemoryReader(std::span<const std::uint8_t> bytes);
  MemoryReader(const MemoryReader&) = delete;
  MemoryReader& operator=(const MemoryReader&) = delete;

  AVIOContext* context() const noexcept { return io_.get(); }

 private:
  static int read(void* opaque, std::uint8_t* buffer, int size);
  static std::int64_t seek(void* opaque, std::int64_t offset, int whence);

  std::span<const std::uint8_t> bytes_;
  std::size_t position_ = 0;
  AvioHandle io_;
};

// seekable = false: bytes only ever append, and drain() hands out what has been written so
//                   far (streaming; muxers then skip their seek-back header rewrites).
// seekable = true:  muxers may seek back to patch headers (exact FLAC STREAMINFO, MP3 Xing/
//                   LAME frame); drain() is only meaningful once the muxer is done.
class StringSink {
 public:
  explicit StringSink(bool seekable);
  StringSink(const StringSink&) = delete;
  StringSink& operator=(const StringSink&) = delete;

  AVIOContext* context() const noexcept { return io_.get(); }
  // Flushes the AVIOContext buffer and returns (and forgets) everything written since the
  // last drain().
  std::string drain();

 private:
#if LIBAVFORMAT_VERSION_MAJOR >= 61
  static int write(void* opaque, const std::uint8_t* buffer, int size);
#else
  static int write(void* opaque, std::uint8_t* buffer, int size);
#endif
  static std::int64_t seek(void* opaque, std::int64_t offset, int whence);

  std::string data_;
  std::size_t position_ = 0;  // write position within data_ (== size unless seeked back)
  AvioHandle io_;
};

}  // namespace talkserve::media::detail
