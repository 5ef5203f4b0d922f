#include "support/tls_cert.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace talkserve::test {

namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("self-signed certificate: ") + what + " failed");
}

}  // namespace

TlsFiles write_self_signed_cert(const std::filesystem::path& dir, const std::string& name) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  check(key != nullptr, "EVP_EC_gen");
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), 2) == 1, "X509_set_version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) == 1, "serial");
  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600) != nullptr, "notAfter");
  check(X509_set_pubkey(cert.get(), key.get()) == 1, "X509_set_pubkey");
  X509_NAME* subject = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                                   0) == 1,
        "subject");
  check(X509_set_issuer_name(cert.get(), subject) == 1, "issuer");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    const int added = X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
    check(added == 1, "X509_add_ext");
  }
  check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "X509_sign");

  TlsFiles files{(dir / (name + ".crt")).string(), (dir / (name + ".key")).string()};
  {
    std::unique_ptr<FILE, FileCloser> f(std::fopen(files.cert.c_str(), "w"));
    check(f && PEM_write_X509(f.get(), cert.get()) == 1, "writing the certificate");
  }
  {
    std::unique_ptr<FILE, FileCloser> f(std::fopen(files.key.c_str(), "w"));
    check(f && PEM_write_PrivateKey(f.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "writing the key");
  }
  return files;
}

}  // namespace talkserve::test
