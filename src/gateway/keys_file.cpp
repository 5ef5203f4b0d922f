#include "talkserve/gateway/keys_file.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <stdexcept>

namespace talkserve::gateway {

namespace {

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::optional<double> parse_number(std::string_view s) {
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

bool has_control(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

}  // namespace

std::vector<ApiKey> parse_keys_file(std::istream& in, std::string_view source,
                                    const GatewayConfig& config) {
  std::vector<ApiKey> keys;
  std::string line;
  for (std::size_t line_no = 1; std::getline(in, line); ++line_no) {
    const auto fail = [&](std::string_view what) {
      return std::invalid_argument(fmt::format("{}:{}: {}", source, line_no, what));
    };
    const auto fields = split_fields(line);
    if (fields.empty() || fields[0].front() == '#') continue;
    if (fields.size() != 3 && fields.size() != 5 && fields.size() != 6)
      throw fail(
          fmt::format("expected '<name> <tier> sha256:<hex>|key:<secret> [<rate_per_s> <burst> "
                      "[<requests_per_day>]]', got {} fields",
                      fields.size()));

    ApiKey key;
    key.name = std::string(fields[0]);
    if (has_control(key.name)) throw fail("name contains control characters");

    const auto tier = parse_tier(fields[1]);
    if (!tier)
      throw fail(fmt::format("unknown tier '{}' (expected vip|standard|batch)", fields[1]));
    key.tier = *tier;

    const std::string_view secret = fields[2];
    if (secret.rfind("sha256:", 0) == 0) {
      const auto digest = parse_sha256_hex(secret.substr(7));
      if (!digest) throw fail("sha256: must be followed by 64 hex characters");
      key.sha256_hex = to_hex(*digest);
    } else if (secret.rfind("key:", 0) == 0) {
      const std::string_view plain = secret.substr(4);
      if (plain.empty()) throw fail("key: must be followed by the secret");
      if (has_control(plain)) throw fail("key contains control characters");
      key.sha256_hex = sha256_hex(plain);
    } else {
      // Do not echo the field: it may be a secret missing its prefix.
      throw fail("third field must start with 'sha256:' or 'key:'");
    }

    const auto& def = config.limits(key.tier);
    key.rate_per_s = def.rate_per_s;
    key.burst = def.burst;
    key.requests_per_day = def.requests_per_day;
    if (fields.size() >= 5) {
      const auto rate = parse_number(fields[3]);
      const auto burst = parse_number(fields[4]);
      if (!rate || !std::isfinite(*rate) || !(*rate > 0))
        throw fail(fmt::format("rate_per_s '{}' must be a number > 0", fields[3]));
      if (!burst || !std::isfinite(*burst) || !(*burst >= 1))
        throw fail(fmt::format("burst '{}' must be a number >= 1", fields[4]));
      key.rate_per_s = *rate;
      key.burst = *burst;
    }
    if (fields.size() == 6) {
      std::uint64_t quota = 0;
      const auto f = fields[5];
      const auto [ptr, ec] = std::from_chars(f.data(), f.data() + f.size(), quota);
      if (ec != std::errc{} || ptr != f.data() + f.size())
        throw fail(fmt::format("requests_per_day '{}' must be a whole number >= 0 (0 = no quota)", f));
      key.requests_per_day = quota;
    }
    for (const auto& k : keys)
      if (k.name == key.name) throw fail(fmt::format("key name '{}' is used twice", key.name));
    keys.push_back(std::move(key));
  }
  if (in.bad()) throw std::invalid_argument(fmt::format("{}: read error", source));
  return keys;
}

std::vector<ApiKey> load_keys_file(const std::string& path, const GatewayConfig& config) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(fmt::format("gateway.keys_file: cannot open '{}'", path));
  return parse_keys_file(in, path, config);
}

std::vector<ApiKey> load_api_keys(const GatewayConfig& config) {
  std::vector<ApiKey> keys;
  for (const auto& k : config.keys) {
    const auto& def = config.limits(k.tier);
    keys.push_back(ApiKey{k.name, k.key.empty() ? k.key_sha256 : sha256_hex(k.key), k.tier,
                          k.rate_per_s.value_or(def.rate_per_s), k.burst.value_or(def.burst),
                          k.requests_per_day.value_or(def.requests_per_day)});
  }
  if (!config.keys_file.empty()) {
    auto from_file = load_keys_file(config.keys_file, config);
    keys.insert(keys.end(), std::make_move_iterator(from_file.begin()),
                std::make_move_iterator(from_file.end()));
  }
  KeyStore check(keys);  // throws on duplicate names/secrets across inline and file keys
  return check.keys();
}

}  // namespace talkserve::gateway
