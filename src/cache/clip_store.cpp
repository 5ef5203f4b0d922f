#include "talkserve/cache/clip_store.hpp"

namespace talkserve::cache {

std::string_view to_string(PutStatus s) {
  switch (s) {
    case PutStatus::stored:
      return "stored";
    case PutStatus::exists:
      return "exists";
    case PutStatus::too_large:
      return "too_large";
    case PutStatus::invalid_id:
      return "invalid_id";
    case PutStatus::io_error:
      return "io_error";
  }
  return "unknown";
}

}  // namespace talkserve::cache
