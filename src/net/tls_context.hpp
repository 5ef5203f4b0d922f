#pragma once
// The listener's TLS context (internal to src/net), built from [http] tls_cert / tls_key.

#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "talkserve/net/http_config.hpp"

namespace talkserve::net {

// Loads the PEM certificate chain and private key and checks that they belong together.
// Throws std::invalid_argument naming the key: "http.tls_cert cannot be loaded from '...':
// <OpenSSL's reason>", "http.tls_key does not match the certificate in http.tls_cert".
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const HttpConfig& config);

}  // namespace talkserve::net
