#include "cache/sha256.hpp"

#include <openssl/evp.h>

#include <stdexcept>
#include <utility>

namespace talkserve::cache::detail {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx_);
    throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(ctx_);
}

Sha256::Sha256(Sha256&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), finished_(other.finished_) {}

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
    finished_ = other.finished_;
  }
  return *this;
}

void Sha256::update(const void* data, std::size_t size) {
  if (!ctx_ || finished_) throw std::logic_error("Sha256::update after finish or move");
  if (size == 0) return;
  if (EVP_DigestUpdate(ctx_, data, size) != 1) {
    throw std::runtime_error("OpenSSL: SHA-256 update failed");
  }
}

std::string Sha256::finish_hex() {
  if (!ctx_ || finished_) throw std::logic_error("Sha256::finish_hex called twice or after move");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_, digest, &len) != 1) {
    throw std::runtime_error("OpenSSL: SHA-256 final failed");
  }
  finished_ = true;
  return to_hex(digest, len);
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish_hex();
}

std::string to_hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0x0f];
  }
  return out;
}

}  // namespace talkserve::cache::detail
