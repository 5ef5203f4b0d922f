#include "talkserve/net/http_config.hpp"

#include <algorithm>
#include <thread>

#include <stdexcept>
#include <string>

#include "tls_context.hpp"

namespace talkserve::net {

namespace {
void require(bool ok, const std::string& key, const std::string& why) {
  if (!ok) throw std::invalid_argument("http." + key + " " + why);
}
}  // namespace

void HttpConfig::validate() const {
  require(!host.empty(), "host", "must not be empty");
  require(io_threads >= 0 && io_threads <= 256, "io_threads",
          "must be between 0 (auto) and 256");
  require(max_header_bytes >= 1024, "max_header_bytes", "must be at least 1024");
  require(max_body_bytes >= 1, "max_body_bytes", "must be at least 1");
  require(header_timeout.count() > 0, "header_timeout_ms", "must be > 0");
  require(body_timeout.count() > 0, "body_timeout_ms", "must be > 0");
  require(write_timeout.count() > 0, "write_timeout_ms", "must be > 0");
  require(keepalive_timeout.count() > 0, "keepalive_timeout_ms", "must be > 0");
  require(stream_queue_limit >= 1, "stream_queue_limit", "must be at least 1");
  require(ws_ping_interval.count() > 0, "ws_ping_interval_ms", "must be > 0");
  require(ws_max_message_bytes >= 1024, "ws_max_message_bytes", "must be at least 1024");
  for (const auto& origin : cors_allowed_origins) {
    require(origin == "*" || origin.starts_with("http://") || origin.starts_with("https://"),
            "cors_allowed_origins", "entries must be \"*\" or start with http:// or https:// (got \"" +
                                        origin + "\")");
  }
  require(tls_cert.empty() == tls_key.empty(), tls_cert.empty() ? "tls_cert" : "tls_key",
          "must be set together with http." + std::string(tls_cert.empty() ? "tls_key" : "tls_cert") +
              " (both or neither)");
  require(tls_min_version == "1.2" || tls_min_version == "1.3", "tls_min_version",
          "must be \"1.2\" or \"1.3\" (got \"" + tls_min_version + "\")");
  if (tls_enabled()) make_tls_context(*this);
}

int HttpConfig::effective_io_threads() const {
  if (io_threads > 0) return io_threads;
  const unsigned cores = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(cores / 4, 1u, 8u));
}

}  // namespace talkserve::net
