#pragma once
// Gateway configuration. In the TOML config file:
//
//   [gateway]
//   max_in_flight = 256                    # global bound on admitted, unfinished requests
//   keys_file = "/etc/talkserve/api-keys"  # optional, format in keys_file.hpp
//   [gateway.tiers.vip]                    # per-tier defaults for keys without their own
//   rate_per_s = 20.0
//   burst = 40.0
//   requests_per_day = 0                   # quota per key per day; 0 = none
//   [[gateway.keys]]
//   name = "alice"
//   key_sha256 = "<64 hex>"                # or key = "<plaintext secret>"
//   tier = "vip"
//   rate_per_s = 50.0                      # optional
//   burst = 100.0                          # optional
//   requests_per_day = 10000               # optional, overrides the tier's
//
// Authentication is on as soon as any key is configured inline or a keys_file is set (an empty
// keys file then rejects everyone: fail closed rather than silently open).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "talkserve/gateway/tier.hpp"

namespace talkserve::gateway {

struct TierLimits {
  double rate_per_s = 5.0;  // requests per second, sustained
  double burst = 10.0;      // requests allowed at once after idling (>= 1)
  std::uint64_t requests_per_day = 0;  // per key per quota window; 0 = no quota
};

struct ApiKeyConfig {
  std::string name;
  std::string key;         // plaintext secret; hashed at load, never kept
  std::string key_sha256;  // or its sha256, 64 hex characters
  Tier tier = Tier::standard;
  std::optional<double> rate_per_s;  // default: the tier's
  std::optional<double> burst;       // default: the tier's
  std::optional<std::uint64_t> requests_per_day;  // default: the tier's (0 = no quota)
};

struct GatewayConfig {
  std::vector<ApiKeyConfig> keys;
  std::string keys_file;
  TierLimits vip{20.0, 40.0};
  TierLimits standard{5.0, 10.0};
  TierLimits batch{2.0, 20.0};
  std::size_t max_in_flight = 256;
  // The quota window (requests_per_day counts per window). A day in production; the knob is
  // for operators who want hourly quotas (and scales requests_per_day with it).
  std::chrono::seconds quota_window{86'400};

  const TierLimits& limits(Tier t) const;
  bool auth_configured() const { return !keys.empty() || !keys_file.empty(); }

  // Throws std::invalid_argument naming the key, e.g. "gateway.max_in_flight must be > 0",
  // "gateway.tiers.vip.burst must be >= 1", "gateway.keys[1] ('bob'): set exactly one of key
  // or key_sha256". Checks that keys_file exists; its contents are checked when loaded.
  void validate() const;
};

}  // namespace talkserve::gateway
