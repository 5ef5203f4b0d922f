#include "app_test_support.hpp"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace talkserve::app::test {

AppConfig load_toml(const std::string& toml, const std::vector<std::string>& overrides) {
  if (toml.empty()) return load_config("", overrides);
  TempDir dir;
  return load_config(dir.write("talkserve.toml", toml), overrides);
}

std::string config_error_for_path(const std::string& path,
                                  const std::vector<std::string>& overrides) {
  try {
    load_config(path, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("expected a ConfigError, but the configuration loaded");
  return {};
}

std::string config_error(const std::string& toml, const std::vector<std::string>& overrides) {
  if (toml.empty()) return config_error_for_path("", overrides);
  TempDir dir;
  return config_error_for_path(dir.write("talkserve.toml", toml), overrides);
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += '"';
    out += v[i];
    out += '"';
  }
  return out + "]";
}

}  // namespace

std::string describe(const AppConfig& c) {
  std::ostringstream o;
  o << "server.drain_grace_ms=" << c.server.drain_grace.count() << "\n"
    << "server.models_dir=" << c.server.models_dir << "\n";
  const auto& h = c.http;
  o << "http.host=" << h.host << "\n"
    << "http.port=" << h.port << "\n"
    << "http.io_threads=" << h.io_threads << "\n"
    << "http.max_header_bytes=" << h.max_header_bytes << "\n"
    << "http.max_body_bytes=" << h.max_body_bytes << "\n"
    << "http.header_timeout_ms=" << h.header_timeout.count() << "\n"
    << "http.body_timeout_ms=" << h.body_timeout.count() << "\n"
    << "http.write_timeout_ms=" << h.write_timeout.count() << "\n"
    << "http.keepalive_timeout_ms=" << h.keepalive_timeout.count() << "\n"
    << "http.cors_allowed_origins=" << join(h.cors_allowed_origins) << "\n"
    << "http.static_dir=" << h.static_dir << "\n"
    << "http.stream_queue_limit=" << h.stream_queue_limit << "\n"
    << "http.ws_ping_interval_ms=" << h.ws_ping_interval.count() << "\n"
    << "http.ws_max_message_bytes=" << h.ws_max_message_bytes << "\n";
  const auto& g = c.gateway;
  o << "gateway.keys_file=" << g.keys_file << "\n"
    << "gateway.max_in_flight=" << g.max_in_flight << "\n";
  for (auto [name, t] : {std::pair{"vip", &g.vip}, std::pair{"standard", &g.standard},
                         std::pair{"batch", &g.batch}}) {
    o << "gateway.tiers." << name << ".rate_per_s=" << t->rate_per_s << "\n"
      << "gateway.tiers." << name << ".burst=" << t->burst << "\n";
  }
  for (std::size_t i = 0; i < g.keys.size(); ++i) {
    const auto& k = g.keys[i];
    o << "gateway.keys[" << i << "]=" << k.name << "|" << k.key << "|" << k.key_sha256 << "|"
      << gateway::to_string(k.tier) << "|" << (k.rate_per_s ? std::to_string(*k.rate_per_s) : "-")
      << "|" << (k.burst ? std::to_string(*k.burst) : "-") << "\n";
  }
  o << "log.level=" << c.log.log_level << "\n"
    << "log.format=" << c.log.log_format << "\n";
  const auto& l = c.llm;
  o << std::boolalpha << "llm.enabled=" << l.enabled << "\n"
    << "llm.model=" << l.model << "\n"
    << "llm.tokenizer=" << l.tokenizer << "\n"
    << "llm.name=" << l.name << "\n"
    << "llm.chat_template=" << l.chat_template << "\n"
    << "llm.device=" << l.device << "\n"
    << "llm.threads=" << l.threads << "\n"
    << "llm.block_size=" << l.block_size << "\n"
    << "llm.num_blocks=" << l.num_blocks << "\n"
    << "llm.kv_cache_mb=" << l.kv_cache_mb << "\n"
    << "llm.max_num_seqs=" << l.max_num_seqs << "\n"
    << "llm.max_num_batched_tokens=" << l.max_num_batched_tokens << "\n"
    << "llm.max_prefill_chunk=" << l.max_prefill_chunk << "\n"
    << "llm.prefix_caching=" << l.prefix_caching << "\n"
    << "llm.max_queue=" << l.max_queue << "\n"
    << "llm.default_max_tokens=" << l.default_max_tokens << "\n";
  return o.str();
}

}  // namespace talkserve::app::test
