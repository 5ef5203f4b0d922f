#pragma once
// The one place where media failures become HTTP errors.

#include <string>

#include "talkserve/media/audio.hpp"
#include "talkserve/net/api_error.hpp"

namespace talkserve::speech::api {

inline net::ApiError media_api_error(const media::MediaError& e, const std::string& param) {
  using Kind = media::MediaError::Kind;
  switch (e.kind()) {
    case Kind::empty:
      return net::ApiError(400, param + ": " + e.what(), param, "empty_file");
    case Kind::corrupt:
      return net::ApiError(400, param + ": " + e.what(), param, "invalid_audio");
    case Kind::unsupported:
      return net::ApiError(415, param + ": " + e.what(), param, "unsupported_media_type");
    case Kind::too_long:
      return net::ApiError(413, param + ": " + e.what(), param, "audio_too_long");
    case Kind::internal:
      break;
  }
  return net::ApiError(500, std::string("media error: ") + e.what());
}

}  // namespace talkserve::speech::api
