#include "media/riff_chunks.hpp"

#include <array>
#include <string>
#include <string_view>

#include "talkserve/media/audio.hpp"

namespace talkserve::media::detail {

namespace {

std::string_view tag_at(std::span<const std::uint8_t> bytes, std::size_t offset) {
  return {reinterpret_cast<const char*>(bytes.data() + offset), 4};
}

std::uint64_t read_le(std::span<const std::uint8_t> bytes, std::size_t offset, int count) {
  std::uint64_t value = 0;
  for (int i = count - 1; i >= 0; --i) value = (value << 8) | bytes[offset + i];
  return value;
}

std::uint32_t read_u32(std::span<const std::uint8_t> bytes, std::size_t offset, bool big_endian) {
  if (!big_endian) return static_cast<std::uint32_t>(read_le(bytes, offset, 4));
  return (std::uint32_t{bytes[offset]} << 24) | (std::uint32_t{bytes[offset + 1]} << 16) |
         (std::uint32_t{bytes[offset + 2]} << 8) | std::uint32_t{bytes[offset + 3]};
}

// The chunks whose declared size the demuxer allocates (libavformat wavdec.c, riffdec.c).
bool read_into_memory(std::string_view tag) {
  constexpr std::array<std::string_view, 5> kTags{"LIST", "bext", "iXML", "ID3 ", "id3 "};
  for (auto t : kTags) {
    if (t == tag) return true;
  }
  return false;
}

[[noreturn]] void refuse(std::string_view what, std::uint64_t claimed, std::size_t upload) {
  throw MediaError(MediaError::Kind::corrupt,
                   std::string(what) + " claims " + std::to_string(claimed) +
                       " bytes, more than the whole upload (" + std::to_string(upload) + " bytes)");
}

// ff_read_riff_info() allocates each entry at its size, bounded only by the list's claim.
void check_info_lists(std::span<const std::uint8_t> bytes) {
  const bool big_endian = bytes.size() >= 4 && tag_at(bytes, 0) == "RIFX";
  constexpr std::string_view kList = "LIST";
  const auto* begin = reinterpret_cast<const char*>(bytes.data());
  const std::string_view text(begin, bytes.size());
  for (std::size_t at = text.find(kList); at != std::string_view::npos && text.size() - at >= 12;
       at = text.find(kList, at + 1)) {
    if (text.substr(at + 8, 4) != "INFO") continue;
    const std::uint32_t claimed = read_u32(bytes, at + 4, big_endian);
    if (claimed > bytes.size()) refuse("a LIST INFO chunk", claimed, bytes.size());
  }
}

void check_wav_chunks(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < 12 || tag_at(bytes, 8) != "WAVE") return;
  const std::string_view riff = tag_at(bytes, 0);
  const bool big_endian = riff == "RIFX";
  const bool rf64 = riff == "RF64" || riff == "BW64";
  if (!big_endian && !rf64 && riff != "RIFF") return;

  std::size_t offset = 12;
  std::uint64_t rf64_data_size = 0;  // RF64 keeps the data size in its ds64 chunk
  if (rf64) {
    if (bytes.size() < 36 || tag_at(bytes, 12) != "ds64") return;  // the demuxer refuses it
    rf64_data_size = read_le(bytes, 28, 8);
    offset = 20 + std::size_t{read_u32(bytes, 16, false)};  // no padding after ds64
  }
  while (offset <= bytes.size() && bytes.size() - offset >= 8) {
    const std::string_view tag = tag_at(bytes, offset);
    const std::uint32_t size = read_u32(bytes, offset + 4, big_endian);
    const std::size_t body = offset + 8;
    const std::uint64_t left = bytes.size() - body;
    std::uint64_t length = size;
    if (tag == "data") {
      // 0 and 0xFFFFFFFF mean "to the end" (streamed WAV); the demuxer looks no further.
      if (!rf64 && (size == 0 || size == 0xFFFFFFFFu)) return;
      if (rf64) length = rf64_data_size;
    } else if (length > bytes.size() && read_into_memory(tag)) {
      // Only the last chunk can run past the end (the walk stops there), so what the demuxer
      // allocates stays under twice the upload. A chunk merely cut short by the end of a
      // cut-off upload claims less than the whole upload and is left to the demuxer.
      refuse("WAV '" + std::string(tag) + "' chunk", length, bytes.size());
    }
    if (length >= left) return;  // the last chunk: the demuxer stops here too
    offset = body + static_cast<std::size_t>(length);
    offset += offset & 1;  // chunks are padded to an even offset
  }
}

}  // namespace

void check_riff_chunk_claims(std::span<const std::uint8_t> bytes) {
  check_wav_chunks(bytes);
  check_info_lists(bytes);
}

}  // namespace talkserve::media::detail
