#pragma once
// Incremental SHA-256 over OpenSSL's EVP interface, private to the cache module.
// Not thread-safe: one hasher per thread.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace talkserve::cache::detail {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // The digest as 64 lowercase hex characters. The hasher cannot be updated afterwards.
  std::string finish_hex();

 private:
  evp_md_ctx_st* ctx_ = nullptr;
  bool finished_ = false;
};

std::string sha256_hex(std::string_view data);
std::string to_hex(const unsigned char* bytes, std::size_t size);

}  // namespace talkserve::cache::detail
