#include "tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>
#include <string>

namespace talkserve::net {

namespace ssl = boost::asio::ssl;

namespace {

// OpenSSL's reason for the last failure ("no start line", "key values mismatch" ...), and
// clears its error queue so it does not leak into the next caller's report.
std::string openssl_reason() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    if (const char* r = ERR_reason_error_string(e)) out = r;  // the last one is the closest
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const HttpConfig& config) {
  ERR_clear_error();
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  // No SSLv2/3, TLS 1.0/1.1 (deprecated by RFC 8996); no compression (CRIME); a fresh DH/ECDH
  // key per handshake. The minimum version is the operator's choice between 1.2 and 1.3.
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::no_compression | ssl::context::single_dh_use);
  SSL_CTX* native = ctx->native_handle();
  const int min_version = config.tls_min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(native, min_version) != 1) {
    throw std::invalid_argument("http.tls_min_version cannot be applied: " + openssl_reason());
  }
  // Renegotiation by the client is a denial-of-service lever and no HTTP client needs it.
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(native, config.tls_cert.c_str()) != 1) {
    throw std::invalid_argument("http.tls_cert cannot be loaded from '" + config.tls_cert +
                                "': " + openssl_reason() + " (expected a PEM certificate chain)");
  }
  // An encrypted key would make OpenSSL prompt on the terminal; a service has none: fail.
  SSL_CTX_set_default_passwd_cb(native, [](char*, int, int, void*) { return 0; });
  if (SSL_CTX_use_PrivateKey_file(native, config.tls_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    const std::string reason = openssl_reason();
    // OpenSSL reports a key that does not fit the certificate while loading it.
    if (reason.find("mismatch") != std::string::npos) {
      throw std::invalid_argument("http.tls_key '" + config.tls_key +
                                  "' does not match the certificate in http.tls_cert");
    }
    throw std::invalid_argument("http.tls_key cannot be loaded from '" + config.tls_key +
                                "': " + reason + " (expected an unencrypted PEM private key)");
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    openssl_reason();
    throw std::invalid_argument("http.tls_key '" + config.tls_key +
                                "' does not match the certificate in http.tls_cert");
  }
  return ctx;
}

}  // namespace talkserve::net
