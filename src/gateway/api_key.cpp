#include "talkserve/gateway/api_key.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>
#include <unordered_set>

namespace talkserve::gateway {

Sha256Digest sha256(std::string_view data) {
  Sha256Digest d{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != d.size())
    throw std::runtime_error("sha256: OpenSSL EVP_Digest failed");
  return d;
}

std::string to_hex(const Sha256Digest& d) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (std::uint8_t b : d) {
    out += kDigits[b >> 4];
    out += kDigits[b & 0xf];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  return to_hex(sha256(data));
}

std::optional<Sha256Digest> parse_sha256_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Sha256Digest d{};
  for (std::size_t i = 0; i < d.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return d;
}

std::size_t KeyStore::DigestHash::operator()(const Sha256Digest& d) const {
  // The digest is already uniformly distributed; its first bytes are a fine hash.
  std::size_t h;
  std::memcpy(&h, d.data(), sizeof h);
  return h;
}

bool KeyStore::DigestEqual::operator()(const Sha256Digest& a, const Sha256Digest& b) const {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

KeyStore::KeyStore(std::vector<ApiKey> keys) : keys_(std::move(keys)) {
  std::unordered_set<std::string> names;
  by_digest_.reserve(keys_.size());
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    auto& k = keys_[i];
    const auto digest = parse_sha256_hex(k.sha256_hex);
    if (!digest)
      throw std::invalid_argument(
          fmt::format("API key '{}': sha256 must be 64 hex characters", k.name));
    k.sha256_hex = to_hex(*digest);  // normalise to lowercase
    if (!names.insert(k.name).second)
      throw std::invalid_argument(fmt::format("API key name '{}' is used twice", k.name));
    if (!by_digest_.emplace(*digest, i).second)
      throw std::invalid_argument(fmt::format("API keys '{}' and '{}' have the same secret",
                                              keys_[by_digest_.at(*digest)].name, k.name));
  }
}

std::optional<std::size_t> KeyStore::find(std::string_view token) const {
  const auto it = by_digest_.find(sha256(token));
  if (it == by_digest_.end()) return std::nullopt;
  return it->second;
}

}  // namespace talkserve::gateway
