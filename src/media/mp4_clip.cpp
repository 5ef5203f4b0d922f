// encode_mp4_clip(): H.264 + AAC muxed into a seekable in-memory MP4, then made "fast start"
// by moving the moov box in front of the mdat. FFmpeg's own movflags=+faststart cannot be used
// with custom IO in libavformat 59: it re-opens the output by file name to shift the data.

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "media/memory_io.hpp"
#include "media/video_encoder.hpp"
#include "talkserve/media/video.hpp"

namespace talkserve::media {

namespace {

using detail::PacketHandle;
using Kind = MediaError::Kind;

std::uint64_t read_be(const std::string& bytes, std::size_t at, int size) {
  std::uint64_t value = 0;
  for (int i = 0; i < size; ++i) value = (value << 8) | static_cast<std::uint8_t>(bytes[at + i]);
  return value;
}

void write_be(std::string& bytes, std::size_t at, std::uint64_t value, int size) {
  for (int i = size - 1; i >= 0; --i) {
    bytes[at + i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

struct Box {
  std::size_t offset = 0;  // of the size field
  std::size_t header = 0;  // 8, or 16 with a 64-bit size
  std::size_t size = 0;    // header included
  std::string type;
};

// The boxes laid end to end in bytes[begin, end). Throws if they do not tile it exactly.
std::vector<Box> parse_boxes(const std::string& bytes, std::size_t begin, std::size_t end) {
  std::vector<Box> boxes;
  std::size_t at = begin;
  while (at < end) {
    if (end - at < 8) throw MediaError(Kind::internal, "MP4 faststart: truncated box header");
    Box box;
    box.offset = at;
    box.header = 8;
    box.size = read_be(bytes, at, 4);
    box.type = bytes.substr(at + 4, 4);
    if (box.size == 1) {
      if (end - at < 16) throw MediaError(Kind::internal, "MP4 faststart: truncated box header");
      box.header = 16;
      box.size = read_be(bytes, at + 8, 8);
    } else if (box.size == 0) {
      box.size = end - at;  // extends to the end
    }
    if (box.size < box.header || box.size > end - at) {
      throw MediaError(Kind::internal, "MP4 faststart: bad size of box '" + box.type + "'");
    }
    boxes.push_back(box);
    at += box.size;
  }
  return boxes;
}

// Adds `delta` to every chunk offset (stco, co64) in the moov box held in `moov`.
void shift_chunk_offsets(std::string& moov, std::size_t begin, std::size_t end,
                         std::uint64_t delta) {
  for (const Box& box : parse_boxes(moov, begin, end)) {
    const std::size_t body = box.offset + box.header;
    if (box.type == "trak" || box.type == "mdia" || box.type == "minf" || box.type == "stbl") {
      shift_chunk_offsets(moov, body, box.offset + box.size, delta);
    } else if (box.type == "stco" || box.type == "co64") {
      const int width = box.type == "stco" ? 4 : 8;
      // version/flags (4 bytes), entry count (4 bytes), then the offsets.
      if (box.size - box.header < 8) throw MediaError(Kind::internal, "MP4 faststart: bad stco");
      const std::uint64_t count = read_be(moov, body + 4, 4);
      if (count * width > box.size - box.header - 8) {
        throw MediaError(Kind::internal, "MP4 faststart: bad chunk offset table");
      }
      for (std::uint64_t i = 0; i < count; ++i) {
        const std::size_t at = body + 8 + i * width;
        const std::uint64_t shifted = read_be(moov, at, width) + delta;
        if (width == 4 && shifted > std::numeric_limits<std::uint32_t>::max()) {
          throw MediaError(Kind::internal, "MP4 faststart: clip too large for 32-bit offsets");
        }
        write_be(moov, at, shifted, width);
      }
    }
  }
}

// ftyp, moov, then the other top-level boxes in their order. The media data moves down by the
// size of the moov, so its chunk offsets are shifted by that much.
std::string move_moov_to_front(const std::string& file) {
  const std::vector<Box> boxes = parse_boxes(file, 0, file.size());
  const Box* moov = nullptr;
  for (const Box& box : boxes) {
    if (box.type == "moov") moov = &box;
  }
  if (boxes.empty() || boxes.front().type != "ftyp" || !moov) {
    throw MediaError(Kind::internal, "MP4 faststart: expected ftyp ... moov from the muxer");
  }
  if (moov == &boxes[1]) return file;  // already in front
  if (moov != &boxes.back()) {
    throw MediaError(Kind::internal, "MP4 faststart: moov is not the last box");
  }
  std::string moov_bytes = file.substr(moov->offset, moov->size);
  shift_chunk_offsets(moov_bytes, moov->header, moov_bytes.size(), moov_bytes.size());

  std::string out;
  out.reserve(file.size());
  const Box& ftyp = boxes.front();
  out.append(file, ftyp.offset, ftyp.size);
  out += moov_bytes;
  out.append(file, ftyp.size, moov->offset - ftyp.size);
  return out;
}

void write_packets(AVFormatContext& muxer, std::deque<PacketHandle>& queue,
                   const AVCodecContext& codec, const AVStream& stream) {
  while (!queue.empty()) {
    PacketHandle packet = std::move(queue.front());
    queue.pop_front();
    detail::prepare_packet(*packet, codec, stream);
    const int rc = av_interleaved_write_frame(&muxer, packet.get());
    if (rc < 0) detail::throw_av_error(Kind::internal, "muxing the MP4 clip", rc);
  }
}

}  // namespace

std::string encode_mp4_clip(const std::vector<RgbFrame>& frames, std::span<const float> audio,
                            const VideoParams& params) {
  params.validate();
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const RgbFrame& frame = frames[i];
    if (frame.width != params.width || frame.height != params.height ||
        frame.data.size() != static_cast<std::size_t>(params.width) * params.height * 3) {
      throw std::invalid_argument("frame " + std::to_string(i) + " is " +
                                  std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                                  " with " + std::to_string(frame.data.size()) +
                                  " bytes; expected " + std::to_string(params.width) + "x" +
                                  std::to_string(params.height) + " RGB24");
    }
  }

  detail::H264AacEncoder encoder(params, detail::H264Use::clip);
  // Declared before the muxer, so destroyed after it: the muxer writes through its AVIO.
  detail::StringSink sink(/*seekable=*/true);
  detail::OutputFormatHandle muxer;
  {
    AVFormatContext* raw = nullptr;
    const int rc = avformat_alloc_output_context2(&raw, nullptr, "mp4", nullptr);
    if (rc < 0 || !raw) {
      detail::throw_av_error(Kind::internal, "this FFmpeg build has no mp4 muxer",
                             rc < 0 ? rc : AVERROR_MUXER_NOT_FOUND);
    }
    muxer.reset(raw);
  }
  muxer->pb = sink.context();
  muxer->flags |= AVFMT_FLAG_CUSTOM_IO;
  AVStream* video = detail::add_stream(*muxer, encoder.video_codec());
  AVStream* audio_stream = detail::add_stream(*muxer, encoder.audio_codec());
  int rc = avformat_write_header(muxer.get(), nullptr);
  if (rc < 0) detail::throw_av_error(Kind::internal, "writing the MP4 header", rc);

  // Audio and video go in together so that the muxer's interleaving queue stays short.
  const double samples_per_frame = static_cast<double>(params.audio_sample_rate) / params.fps;
  std::size_t audio_at = 0;
  auto push_audio_until = [&](std::size_t end) {
    end = std::min(end, audio.size());
    if (end > audio_at) encoder.push_audio(audio.subspan(audio_at, end - audio_at));
    audio_at = std::max(audio_at, end);
  };
  for (std::size_t i = 0; i < frames.size(); ++i) {
    push_audio_until(static_cast<std::size_t>(std::llround((i + 1) * samples_per_frame)));
    encoder.push_frame(frames[i]);
    write_packets(*muxer, encoder.video_packets(), encoder.video_codec(), *video);
    write_packets(*muxer, encoder.audio_packets(), encoder.audio_codec(), *audio_stream);
  }
  push_audio_until(audio.size());
  encoder.finish();
  write_packets(*muxer, encoder.video_packets(), encoder.video_codec(), *video);
  write_packets(*muxer, encoder.audio_packets(), encoder.audio_codec(), *audio_stream);
  rc = av_write_trailer(muxer.get());
  if (rc < 0) detail::throw_av_error(Kind::internal, "writing the MP4 trailer", rc);
  muxer.reset();
  return move_moov_to_front(sink.drain());
}

}  // namespace talkserve::media
