#pragma once
// A throwaway self-signed certificate for TLS tests, made with the OpenSSL API at test time
// (no key material in the repository, no openssl CLI needed): P-256 key, valid for a day,
// subjectAltName IP:127.0.0.1 and DNS:localhost, so a client can verify it as its own CA.

#include <filesystem>
#include <string>

namespace talkserve::test {

struct TlsFiles {
  std::string cert;  // PEM certificate
  std::string key;   // PEM private key (unencrypted)
};

// Writes <dir>/<name>.crt and <dir>/<name>.key. Throws std::runtime_error on failure.
TlsFiles write_self_signed_cert(const std::filesystem::path& dir, const std::string& name = "server");

}  // namespace talkserve::test
