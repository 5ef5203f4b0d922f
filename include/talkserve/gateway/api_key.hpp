#pragma once
// API keys, held only as sha256 digests, and the lookup of a presented bearer token.
//
// Timing: the token is hashed first and only its digest is compared. Lookup goes through a
// hash map keyed on the digest whose equality test is CRYPTO_memcmp (constant time over the
// 32 bytes). The bucket choice depends on the digest of the attacker's own token, which gives
// them nothing they could not compute themselves, and learning that a candidate's digest shares
// bytes with a stored digest would require a sha256 preimage to exploit. So neither the map
// walk nor the compare leaks anything useful about stored keys, and lookup stays O(1) for
// large key sets (iterating all keys would also be safe, but O(n) per request).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "talkserve/gateway/tier.hpp"

namespace talkserve::gateway {

struct ApiKey {
  std::string name;        // who this is, for logs; never the secret
  std::string sha256_hex;  // 64 lowercase hex characters of sha256(secret)
  Tier tier = Tier::standard;
  double rate_per_s = 0;  // token bucket refill rate
  double burst = 0;       // token bucket capacity
  std::uint64_t requests_per_day = 0;  // request quota per window; 0 = none
};

using Sha256Digest = std::array<std::uint8_t, 32>;

Sha256Digest sha256(std::string_view data);
std::string sha256_hex(std::string_view data);
std::string to_hex(const Sha256Digest& d);
// Parses 64 hex characters (either case); nullopt otherwise.
std::optional<Sha256Digest> parse_sha256_hex(std::string_view hex);

// An immutable set of keys. Thread-safety: const methods may be called concurrently.
class KeyStore {
 public:
  KeyStore() = default;
  // Throws std::invalid_argument on a malformed sha256_hex, a duplicate name, or two names
  // sharing one secret (the identity of a request would be ambiguous).
  explicit KeyStore(std::vector<ApiKey> keys);

  // The index into keys() of the key whose secret is `token`, or nullopt.
  std::optional<std::size_t> find(std::string_view token) const;
  const std::vector<ApiKey>& keys() const { return keys_; }
  bool empty() const { return keys_.empty(); }

 private:
  struct DigestHash {
    std::size_t operator()(const Sha256Digest& d) const;
  };
  struct DigestEqual {  // constant time
    bool operator()(const Sha256Digest& a, const Sha256Digest& b) const;
  };
  std::vector<ApiKey> keys_;
  std::unordered_map<Sha256Digest, std::size_t, DigestHash, DigestEqual> by_digest_;
};

}  // namespace talkserve::gateway
