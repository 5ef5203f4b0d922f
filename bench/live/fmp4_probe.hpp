#pragma once
// Just enough ISO-BMFF reading to time a live fragmented MP4 stream at the client: the video
// track's id and timescale from the init segment (moov), and the decode time of the first
// video sample of each media segment (moof/traf/tfdt). Segments start with a key frame, so the
// decode time is where the segment starts on the playback timeline.

#include <cstdint>
#include <optional>
#include <string_view>

namespace talkserve::bench {

struct VideoTrackInfo {
  std::uint32_t track_id = 0;
  std::uint32_t timescale = 0;  // ticks per second
};

// The video track ('vide' handler) of an init segment (ftyp + moov), or nullopt.
std::optional<VideoTrackInfo> probe_init_segment(std::string_view init);

// The baseMediaDecodeTime of `track_id` in a media segment (moof + mdat), in timescale ticks,
// or nullopt when the segment has no such track fragment.
std::optional<std::uint64_t> probe_media_segment(std::string_view segment, std::uint32_t track_id);

}  // namespace talkserve::bench
