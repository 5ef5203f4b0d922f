#include "media/memory_io.hpp"

#include <algorithm>
#include <cstring>

namespace talkserve::media::detail {

namespace {

constexpr int kAvioBufferSize = 32 * 1024;

AvioHandle make_avio(bool writable, void* opaque, int (*read)(void*, std::uint8_t*, int),
#if LIBAVFORMAT_VERSION_MAJOR >= 61
                     int (*write)(void*, const std::uint8_t*, int),
#else
                     int (*write)(void*, std::uint8_t*, int),
#endif
                     std::int64_t (*seek)(void*, std::int64_t, int)) {
  auto* buffer = static_cast<std::uint8_t*>(av_malloc(kAvioBufferSize));
  if (!buffer) throw MediaError(MediaError::Kind::internal, "out of memory allocating AVIO buffer");
  AVIOContext* io =
      avio_alloc_context(buffer, kAvioBufferSize, writable ? 1 : 0, opaque, read, write, seek);
  if (!io) {
    av_free(buffer);
    throw MediaError(MediaError::Kind::internal, "out of memory allocating AVIOContext");
  }
  return AvioHandle(io);
}

// Resolves an avio seek request against a buffer of `size` bytes; -1 if out of range.
std::int64_t seek_target(std::int64_t offset, int whence, std::size_t current, std::size_t size) {
  std::int64_t base = 0;
  switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET:
      base = 0;
      break;
    case SEEK_CUR:
      base = static_cast<std::int64_t>(current);
      break;
    case SEEK_END:
      base = static_cast<std::int64_t>(size);
      break;
    default:
      return -1;
  }
  const std::int64_t target = base + offset;
  return target < 0 ? -1 : target;
}

}  // namespace

MemoryReader::MemoryReader(std::span<const std::uint8_t> bytes)
    : bytes_(bytes),
      io_(make_avio(false, this, &MemoryReader::read, nullptr, &MemoryReader::seek)) {}

int MemoryReader::read(void* opaque, std::uint8_t* buffer, int size) {
  auto* self = static_cast<MemoryReader*>(opaque);
  const std::size_t left = self->bytes_.size() - self->position_;
  if (left == 0) return AVERROR_EOF;
  const std::size_t count = std::min(left, static_cast<std::size_t>(std::max(size, 0)));
  std::memcpy(buffer, self->bytes_.data() + self->position_, count);
  self->position_ += count;
  return static_cast<int>(count);
}

std::int64_t MemoryReader::seek(void* opaque, std::int64_t offset, int whence) {
  auto* self = static_cast<MemoryReader*>(opaque);
  if (whence == AVSEEK_SIZE) return static_cast<std::int64_t>(self->bytes_.size());
  const std::int64_t target = seek_target(offset, whence, self->position_, self->bytes_.size());
  if (target < 0 || target > static_cast<std::int64_t>(self->bytes_.size())) return AVERROR(EINVAL);
  self->position_ = static_cast<std::size_t>(target);
  return target;
}

StringSink::StringSink(bool seekable)
    : io_(make_avio(true, this, nullptr, &StringSink::write,
                    seekable ? &StringSink::seek : nullptr)) {}

#if LIBAVFORMAT_VERSION_MAJOR >= 61
int StringSink::write(void* opaque, const std::uint8_t* buffer, int size) {
#else
int StringSink::write(void* opaque, std::uint8_t* buffer, int size) {
#endif
  auto* self = static_cast<StringSink*>(opaque);
  if (size <= 0) return 0;
  const auto count = static_cast<std::size_t>(size);
  const std::size_t end = self->position_ + count;
  if (end > self->data_.size()) self->data_.resize(end);
  std::memcpy(self->data_.data() + self->position_, buffer, count);
  self->position_ = end;
  return size;
}

std::int64_t StringSink::seek(void* opaque, std::int64_t offset, int whence) {
  auto* self = static_cast<StringSink*>(opaque);
  if (whence == AVSEEK_SIZE) return static_cast<std::int64_t>(self->data_.size());
  const std::int64_t target = seek_target(offset, whence, self->position_, self->data_.size());
  if (target < 0) return AVERROR(EINVAL);
  // Seeking past the end is allowed (the gap is zero-filled by the next write).
  self->position_ = static_cast<std::size_t>(target);
  if (self->position_ > self->data_.size()) self->data_.resize(self->position_);
  return target;
}

std::string StringSink::drain() {
  avio_flush(io_.get());
  std::string out;
  out.swap(data_);
  position_ = 0;
  return out;
}

}  // namespace talkserve::media::detail
