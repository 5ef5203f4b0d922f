#include "talkserve/gateway/tier.hpp"

#include <cctype>

namespace talkserve::gateway {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}
}  // namespace

std::optional<Tier> parse_tier(std::string_view s) {
  if (iequals(s, "vip")) return Tier::vip;
  if (iequals(s, "standard")) return Tier::standard;
  if (iequals(s, "batch")) return Tier::batch;
  return std::nullopt;
}

std::string_view to_string(Tier t) {
  switch (t) {
    case Tier::vip:
      return "vip";
    case Tier::standard:
      return "standard";
    case Tier::batch:
      return "batch";
  }
  return "standard";
}

}  // namespace talkserve::gateway
