#pragma once
// Configuration of the HTTP/WebSocket listener ([http] in talkserve.toml).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace talkserve::net {

struct HttpConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;              // 0 picks an ephemeral port (tests)
  // 0 = auto (effective_io_threads()): one per four cores, at least 1 and at most 8. Socket I/O
  // is light next to the models; on a 2-core box one I/O thread leaves the other core to the
  // rest and keeps the tail latency down (bench_http_ingress, docs/deploy.md).
  int io_threads = 0;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 1024 * 1024;       // default per-route body limit
  std::chrono::milliseconds header_timeout{10'000};  // whole request head must arrive in this
  std::chrono::milliseconds body_timeout{30'000};    // whole body must arrive in this
  std::chrono::milliseconds write_timeout{30'000};   // a client that stops reading is dropped
  std::chrono::milliseconds keepalive_timeout{60'000};  // idle time between requests
  std::vector<std::string> cors_allowed_origins;  // exact origins, or "*"; empty = no CORS
  std::string static_dir = "web";                 // served at "/" ("" disables)
  std::size_t stream_queue_limit = 256;           // SSE / WebSocket pending messages per client
  std::chrono::milliseconds ws_ping_interval{15'000};
  std::size_t ws_max_message_bytes = 4 * 1024 * 1024;
  // TLS on the listener: PEM certificate chain and private key, both or neither. With them
  // the port speaks only TLS (https://, wss://); a plain-HTTP request there gets a 400.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_min_version = "1.2";  // "1.2" or "1.3"

  bool tls_enabled() const { return !tls_cert.empty(); }

  // Throws std::invalid_argument naming the offending key ("http.port ..."). With TLS on it
  // also loads the certificate and key, so a bad path or a key that does not match the
  // certificate stops the server at start (exit 2) rather than at the first handshake.
  void validate() const;
  // io_threads, or the automatic count when it is 0.
  int effective_io_threads() const;
};

}  // namespace talkserve::net
