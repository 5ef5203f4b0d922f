#pragma once
// Priority tiers. The numeric value is the scheduling priority handed to executors:
// 0 is served first and preempted last.

#include <cstddef>
#include <optional>
#include <string_view>

namespace talkserve::gateway {

enum class Tier { vip = 0, standard = 1, batch = 2 };

inline constexpr std::size_t kTierCount = 3;

// "vip" | "standard" | "batch", case-insensitive; nullopt otherwise.
std::optional<Tier> parse_tier(std::string_view s);
std::string_view to_string(Tier t);
// The scheduling priority (0 highest).
constexpr int priority(Tier t) {
  return static_cast<int>(t);
}

}  // namespace talkserve::gateway
