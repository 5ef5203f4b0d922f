#pragma once
// GET / HEAD /v1/clips/{id}.mp4: rendered clips over HTTP.
//
//   200  the clip (Content-Type video/mp4, ETag "\"<id>\"", immutable for a year: the URL is
//        a content address, so its bytes never change), Accept-Ranges: bytes
//   206  one byte range (Range: bytes=a-b | a- | -n), with Content-Range
//   304  If-None-Match names the ETag (or is *)
//   404  anything that is not exactly "<64 lowercase hex>.mp4", or an unknown or damaged clip
//        (OpenAI error shape); a malformed name is refused before the store is asked
//   416  an unsatisfiable range, with Content-Range: bytes */<size>
// A Range with several ranges, a malformed Range, or an If-Range that does not name the ETag
// is answered with the whole clip (200), as RFC 9110 allows.
//
// The body is read on the handler's coroutine (clips are a few MB at most).

#include <cstdint>
#include <string_view>

#include "talkserve/cache/clip_store.hpp"
#include "talkserve/net/router.hpp"

namespace talkserve::cache {

inline constexpr std::string_view kClipRoutePattern = "/v1/clips/{file}";
inline constexpr std::string_view kClipRouteName = "/v1/clips/{id}";

// Adds the route (requires_auth, like every /v1 route). `store` must outlive the server.
// ClipCache is a ClipStore. Call during start-up (Router::add is not thread-safe).
void register_clip_routes(net::Router& router, ClipStore& store);

// A Range header resolved against a representation of `size` bytes.
struct ByteRangeRequest {
  enum class Kind {
    whole,          // no Range, a malformed one, or several ranges: send everything (200)
    single,         // bytes [first, last] (inclusive): 206
    unsatisfiable,  // 416
  };
  Kind kind = Kind::whole;
  std::uint64_t first = 0;
  std::uint64_t last = 0;
};
ByteRangeRequest parse_byte_range(std::string_view header, std::uint64_t size);

// If-None-Match against an entity tag, with weak comparison ("*", lists and W/ prefixes).
bool if_none_match_matches(std::string_view header, std::string_view etag);

}  // namespace talkserve::cache
