#pragma once
// API keys file: one key per line, fields separated by spaces or tabs.
//
//   # comment lines start with '#'; blank lines are ignored
//   <name> <tier> sha256:<64 hex> [<rate_per_s> <burst> [<requests_per_day>]]
//   <name> <tier> key:<secret>    [<rate_per_s> <burst> [<requests_per_day>]]
//
//   alice vip sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//   ci-bot batch key:sk-test-123 0.5 5
//
// tier is vip|standard|batch; rate, burst and the request quota default to the tier's limits
// from the config (requests_per_day 0 = no quota). Use sha256: lines, made with
// `talkserve --hash-key` or `printf %s "$KEY" | sha256sum`, so the file holds no secrets.
// Errors name the file and line and never echo the secret.

#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/gateway/api_key.hpp"
#include "talkserve/gateway/gateway_config.hpp"

namespace talkserve::gateway {

// Parses keys from `in`; `source` names it in errors ("<source>:<line>: ...").
// Throws std::invalid_argument on a malformed line.
std::vector<ApiKey> parse_keys_file(std::istream& in, std::string_view source,
                                    const GatewayConfig& config);
// Opens and parses `path`. Throws std::invalid_argument if it cannot be read or is malformed.
std::vector<ApiKey> load_keys_file(const std::string& path, const GatewayConfig& config);

// All keys of a validated config: the inline keys (hashed) followed by the keys file's.
// Throws std::invalid_argument on any error, including a name or secret used twice.
std::vector<ApiKey> load_api_keys(const GatewayConfig& config);

}  // namespace talkserve::gateway
