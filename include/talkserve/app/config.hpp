#pragma once
// The whole server configuration, composed of each module's config struct. Loaded once at
// start from a TOML file plus `--set section.key=value` overrides; validated before anything
// starts. Unknown keys are errors (a typo must not silently fall back to a default).

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "talkserve/gateway/gateway_config.hpp"
#include "talkserve/net/http_config.hpp"
#include "talkserve/obs/log.hpp"

namespace talkserve::app {

struct ServerConfig {
  std::chrono::milliseconds drain_grace{10'000};  // SIGTERM: time in-flight work may take
  std::string models_dir = "models";              // where fetch-models.sh puts models
  void validate() const;
};

struct LlmSection {
  bool enabled = true;
  std::string model = "stories260K/stories260K.bin";  // relative to server.models_dir
  std::string tokenizer = "stories260K/tok512.bin";
  std::string name = "stories260K";                   // served model id
  std::string chat_template = "auto";                 // auto|chatml|llama3|llama2|plain
  std::string device = "cpu";
  int threads = 0;                                     // 0 = all cores
  int block_size = 16;
  int num_blocks = 0;                                  // 0 = derive from kv_cache_mb
  int kv_cache_mb = 64;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 2048;
  int max_prefill_chunk = 512;
  bool prefix_caching = true;
  int max_queue = 1024;                                // waiting requests before 503
  int default_max_tokens = 256;
  void validate() const;
};

struct AppConfig {
  ServerConfig server;
  net::HttpConfig http;
  gateway::GatewayConfig gateway;
  obs::ObsConfig log;
  LlmSection llm;
  void validate() const;
};

// A configuration problem: `what()` names the key and why ("http.port: must be ...").
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads `path` ("" = defaults only), applies overrides ("section.key=value", the value parsed
// as a TOML value when it is one, else taken as a string), and validates.
AppConfig load_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace talkserve::app
