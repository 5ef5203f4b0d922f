#include "fmp4_probe.hpp"

#include <cstring>

namespace talkserve::bench {
namespace {

std::uint32_t be32(std::string_view b, std::size_t at) {
  if (at + 4 > b.size()) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

std::uint64_t be64(std::string_view b, std::size_t at) {
  return (std::uint64_t{be32(b, at)} << 32) | be32(b, at + 4);
}

struct Box {
  std::string_view type;
  std::string_view body;  // after the (large)size and type
};

// Calls f(box) for each box directly inside `data`; stops early when f returns true.
template <typename F>
bool for_each_box(std::string_view data, F&& f) {
  std::size_t pos = 0;
  while (pos + 8 <= data.size()) {
    std::uint64_t size = be32(data, pos);
    std::size_t header = 8;
    if (size == 1) {
      if (pos + 16 > data.size()) return false;
      size = be64(data, pos + 8);
      header = 16;
    } else if (size == 0) {
      size = data.size() - pos;
    }
    if (size < header || pos + size > data.size()) return false;
    const Box box{data.substr(pos + 4, 4), data.substr(pos + header, size - header)};
    if (f(box)) return true;
    pos += size;
  }
  return false;
}

std::optional<std::string_view> child(std::string_view data, std::string_view type) {
  std::optional<std::string_view> found;
  for_each_box(data, [&](const Box& b) {
    if (b.type != type) return false;
    found = b.body;
    return true;
  });
  return found;
}

}  // namespace

std::optional<VideoTrackInfo> probe_init_segment(std::string_view init) {
  const auto moov = child(init, "moov");
  if (!moov) return std::nullopt;
  std::optional<VideoTrackInfo> info;
  for_each_box(*moov, [&](const Box& trak) {
    if (trak.type != "trak") return false;
    const auto tkhd = child(trak.body, "tkhd");
    const auto mdia = child(trak.body, "mdia");
    if (!tkhd || !mdia) return false;
    const auto hdlr = child(*mdia, "hdlr");
    const auto mdhd = child(*mdia, "mdhd");
    // hdlr: version/flags, pre_defined, handler_type.
    if (!hdlr || !mdhd || hdlr->size() < 12 || hdlr->substr(8, 4) != "vide") return false;
    const bool tkhd_v1 = !tkhd->empty() && (*tkhd)[0] == 1;
    const bool mdhd_v1 = !mdhd->empty() && (*mdhd)[0] == 1;
    VideoTrackInfo v;
    v.track_id = be32(*tkhd, tkhd_v1 ? 20 : 12);   // after creation/modification times
    v.timescale = be32(*mdhd, mdhd_v1 ? 20 : 12);
    if (v.timescale == 0) return false;
    info = v;
    return true;
  });
  return info;
}

std::optional<std::uint64_t> probe_media_segment(std::string_view segment, std::uint32_t track_id) {
  const auto moof = child(segment, "moof");
  if (!moof) return std::nullopt;
  std::optional<std::uint64_t> time;
  for_each_box(*moof, [&](const Box& traf) {
    if (traf.type != "traf") return false;
    const auto tfhd = child(traf.body, "tfhd");
    const auto tfdt = child(traf.body, "tfdt");
    if (!tfhd || !tfdt || be32(*tfhd, 4) != track_id || tfdt->size() < 8) return false;
    time = (*tfdt)[0] == 1 ? be64(*tfdt, 4) : be32(*tfdt, 4);
    return true;
  });
  return time;
}

}  // namespace talkserve::bench
