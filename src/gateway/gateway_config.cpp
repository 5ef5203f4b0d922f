#include "talkserve/gateway/gateway_config.hpp"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <unordered_set>

#include "talkserve/gateway/api_key.hpp"

namespace talkserve::gateway {

namespace {

void check_limits(double rate, double burst, const std::string& where) {
  if (!std::isfinite(rate) || !(rate > 0))
    throw std::invalid_argument(fmt::format("{}rate_per_s must be a finite number > 0", where));
  if (!std::isfinite(burst) || !(burst >= 1))
    throw std::invalid_argument(fmt::format("{}burst must be a finite number >= 1", where));
}

bool has_space_or_control(const std::string& s) {
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7f) return true;
  return false;
}

}  // namespace

const TierLimits& GatewayConfig::limits(Tier t) const {
  switch (t) {
    case Tier::vip:
      return vip;
    case Tier::batch:
      return batch;
    case Tier::standard:
      break;
  }
  return standard;
}

void GatewayConfig::validate() const {
  if (max_in_flight == 0) throw std::invalid_argument("gateway.max_in_flight must be > 0");
  if (quota_window.count() <= 0)
    throw std::invalid_argument("gateway.quota_window_s must be > 0");
  for (Tier t : {Tier::vip, Tier::standard, Tier::batch})
    check_limits(limits(t).rate_per_s, limits(t).burst,
                 fmt::format("gateway.tiers.{}.", to_string(t)));

  std::unordered_set<std::string> names;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto& k = keys[i];
    const std::string where = fmt::format("gateway.keys[{}] ('{}'): ", i, k.name);
    if (k.name.empty() || has_space_or_control(k.name))
      throw std::invalid_argument(
          fmt::format("gateway.keys[{}].name must be non-empty without spaces", i));
    if (!names.insert(k.name).second) throw std::invalid_argument(where + "name is used twice");
    if (k.key.empty() == k.key_sha256.empty())
      throw std::invalid_argument(where + "set exactly one of key or key_sha256");
    if (!k.key.empty() && has_space_or_control(k.key))
      throw std::invalid_argument(where + "key must not contain spaces or control characters");
    if (!k.key_sha256.empty() && !parse_sha256_hex(k.key_sha256))
      throw std::invalid_argument(where + "key_sha256 must be 64 hex characters");
    const auto& def = limits(k.tier);
    check_limits(k.rate_per_s.value_or(def.rate_per_s), k.burst.value_or(def.burst), where);
  }

  if (!keys_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(keys_file, ec))
      throw std::invalid_argument(
          fmt::format("gateway.keys_file: '{}' does not exist or is not a file", keys_file));
  }
}

}  // namespace talkserve::gateway
