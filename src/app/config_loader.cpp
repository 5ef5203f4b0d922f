// TOML -> AppConfig. Every key read is named "section.key" in errors; keys nobody reads are
// reported as unknown.

#include <algorithm>
#include <toml++/toml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "talkserve/app/config.hpp"
#ifdef TALKSERVE_HAVE_REDIS
#include "talkserve/cache/redis_clip_tier.hpp"
#endif
#ifdef TALKSERVE_HAVE_LLM
#include "talkserve/llm/remote_protocol.hpp"
#endif

namespace talkserve::app {

namespace {

// Reads typed values from one TOML table and remembers which keys were used.
class Section {
 public:
  Section(const toml::table* table, std::string name) : table_(table), name_(std::move(name)) {}

  std::string key(std::string_view k) const {
    return name_.empty() ? std::string(k) : name_ + "." + std::string(k);
  }

  template <typename T>
  void get(std::string_view k, T& out) {
    const toml::node* node = find(k);
    if (!node) return;
    if constexpr (std::is_same_v<T, bool>) {
      // value<bool>() also converts integers; 1 is not a valid boolean here.
      auto v = node->value<bool>();
      if (!v || !node->is_boolean()) fail(k, "must be true or false");
      out = *v;
    } else if constexpr (std::is_integral_v<T>) {
      auto v = node->value<int64_t>();
      if (!v || !node->is_integer()) fail(k, "must be an integer");
      // std::in_range compares signed and unsigned correctly: -1 fits an int (so validate()
      // can say why it is wrong) but not a uint16_t port.
      if (!std::in_range<T>(*v)) fail(k, "is out of range");
      out = static_cast<T>(*v);
    } else if constexpr (std::is_floating_point_v<T>) {
      auto v = node->value<double>();
      if (!v) fail(k, "must be a number");
      out = static_cast<T>(*v);
    } else if constexpr (std::is_same_v<T, std::string>) {
      auto v = node->value<std::string>();
      if (!v || !node->is_string()) fail(k, "must be a string");
      out = *v;
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      const auto* arr = node->as_array();
      if (!arr) fail(k, "must be an array of strings");
      out.clear();
      for (const auto& el : *arr) {
        auto v = el.value<std::string>();
        if (!v || !el.is_string()) fail(k, "must be an array of strings");
        out.push_back(*v);
      }
    } else {
      static_assert(sizeof(T) == 0, "unsupported config type");
    }
  }

  void get_ms(std::string_view k, std::chrono::milliseconds& out) {
    int64_t v = out.count();
    get(k, v);
    if (v < 0) fail(k, "must be >= 0");
    out = std::chrono::milliseconds(v);
  }

  const toml::node* find(std::string_view k) {
    used_.insert(std::string(k));
    return table_ ? table_->get(k) : nullptr;
  }

  [[noreturn]] void fail(std::string_view k, std::string_view why) const {
    throw ConfigError(key(k) + ": " + std::string(why));
  }

  // Every key present in the table must have been read.
  void finish() const {
    if (!table_) return;
    for (const auto& [k, v] : *table_) {
      std::string name(k.str());
      if (!used_.count(name)) throw ConfigError(key(name) + ": unknown key");
    }
  }

 private:
  const toml::table* table_;
  std::string name_;
  std::set<std::string> used_;
};

const toml::table* subtable(const toml::table& root, std::string_view name) {
  const toml::node* n = root.get(name);
  if (!n) return nullptr;
  if (!n->is_table())
    throw ConfigError(std::string(name) + ": must be a table ([" + std::string(name) + "])");
  return n->as_table();
}

void read_server(const toml::table& root, ServerConfig& c) {
  Section s(subtable(root, "server"), "server");
  s.get_ms("drain_grace_ms", c.drain_grace);
  s.get("models_dir", c.models_dir);
  s.get("malloc_arena_max", c.malloc_arena_max);
  s.get("malloc_mmap_threshold_kb", c.malloc_mmap_threshold_kb);
  s.finish();
}

void read_http(const toml::table& root, net::HttpConfig& c) {
  Section s(subtable(root, "http"), "http");
  s.get("host", c.host);
  s.get("port", c.port);
  s.get("io_threads", c.io_threads);
  s.get("max_header_bytes", c.max_header_bytes);
  s.get("max_body_bytes", c.max_body_bytes);
  s.get_ms("header_timeout_ms", c.header_timeout);
  s.get_ms("body_timeout_ms", c.body_timeout);
  s.get_ms("write_timeout_ms", c.write_timeout);
  s.get_ms("keepalive_timeout_ms", c.keepalive_timeout);
  s.get("cors_allowed_origins", c.cors_allowed_origins);
  s.get("static_dir", c.static_dir);
  s.get("stream_queue_limit", c.stream_queue_limit);
  s.get_ms("ws_ping_interval_ms", c.ws_ping_interval);
  s.get("ws_max_message_bytes", c.ws_max_message_bytes);
  s.get("tls_cert", c.tls_cert);
  s.get("tls_key", c.tls_key);
  s.get("tls_min_version", c.tls_min_version);
  s.finish();
}

void read_tier(const toml::table* tiers, std::string_view name, gateway::TierLimits& limits) {
  if (!tiers) return;
  const toml::node* n = tiers->get(name);
  if (!n) return;
  if (!n->is_table()) throw ConfigError("gateway.tiers." + std::string(name) + ": must be a table");
  Section s(n->as_table(), "gateway.tiers." + std::string(name));
  s.get("rate_per_s", limits.rate_per_s);
  s.get("burst", limits.burst);
  s.get("requests_per_day", limits.requests_per_day);
  s.finish();
}

void read_gateway(const toml::table& root, gateway::GatewayConfig& c) {
  const toml::table* t = subtable(root, "gateway");
  Section s(t, "gateway");
  s.get("keys_file", c.keys_file);
  s.get("max_in_flight", c.max_in_flight);
  int64_t quota_window_s = c.quota_window.count();
  s.get("quota_window_s", quota_window_s);
  c.quota_window = std::chrono::seconds(quota_window_s);
  if (const toml::node* tiers = s.find("tiers")) {
    if (!tiers->is_table()) s.fail("tiers", "must be a table");
    Section ts(tiers->as_table(), "gateway.tiers");
    ts.find("vip");
    ts.find("standard");
    ts.find("batch");
    ts.finish();
    read_tier(tiers->as_table(), "vip", c.vip);
    read_tier(tiers->as_table(), "standard", c.standard);
    read_tier(tiers->as_table(), "batch", c.batch);
  }
  if (const toml::node* keys = s.find("keys")) {
    const auto* arr = keys->as_array();
    if (!arr) s.fail("keys", "must be an array of tables ([[gateway.keys]])");
    c.keys.clear();
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const auto* kt = (*arr)[i].as_table();
      std::string name = "gateway.keys[" + std::to_string(i) + "]";
      if (!kt) throw ConfigError(name + ": must be a table");
      Section ks(kt, name);
      gateway::ApiKeyConfig k;
      ks.get("name", k.name);
      ks.get("key", k.key);
      ks.get("key_sha256", k.key_sha256);
      std::string tier = "standard";
      ks.get("tier", tier);
      auto parsed = gateway::parse_tier(tier);
      if (!parsed) ks.fail("tier", "must be vip, standard or batch (got \"" + tier + "\")");
      k.tier = *parsed;
      double rate = -1, burst = -1;
      ks.get("rate_per_s", rate);
      ks.get("burst", burst);
      if (kt->get("rate_per_s")) k.rate_per_s = rate;
      if (kt->get("burst")) k.burst = burst;
      std::uint64_t quota = 0;
      ks.get("requests_per_day", quota);
      if (kt->get("requests_per_day")) k.requests_per_day = quota;
      ks.finish();
      c.keys.push_back(std::move(k));
    }
  }
  s.finish();
}

void read_log(const toml::table& root, obs::ObsConfig& c) {
  Section s(subtable(root, "log"), "log");
  s.get("level", c.log_level);
  s.get("format", c.log_format);
  s.finish();
}

void read_gpu(const toml::table& root, obs::GpuMonitorConfig& c) {
  Section s(subtable(root, "gpu"), "gpu");
  s.get("mode", c.mode);
  s.get_ms("sample_interval_ms", c.sample_interval);
  s.get("max_memory_fraction", c.max_memory_fraction);
  s.get("max_temperature_c", c.max_temperature_c);
  s.get("max_rss_mb", c.max_rss_mb);
  s.get("memory_hysteresis", c.memory_hysteresis);
  s.get("temperature_hysteresis_c", c.temperature_hysteresis_c);
  s.finish();
}

void read_llm(const toml::table& root, LlmSection& c) {
  Section s(subtable(root, "llm"), "llm");
  s.get("enabled", c.enabled);
  s.get("model", c.model);
  s.get("tokenizer", c.tokenizer);
  s.get("name", c.name);
  s.get("chat_template", c.chat_template);
  s.get("device", c.device);
  s.get("threads", c.threads);
  s.get("block_size", c.block_size);
  s.get("num_blocks", c.num_blocks);
  s.get("kv_cache_mb", c.kv_cache_mb);
  s.get("max_num_seqs", c.max_num_seqs);
  s.get("max_num_batched_tokens", c.max_num_batched_tokens);
  s.get("max_prefill_chunk", c.max_prefill_chunk);
  s.get("prefix_caching", c.prefix_caching);
  s.get("max_queue", c.max_queue);
  s.get("max_queue_delay_ms", c.max_queue_delay_ms);
  s.get("default_max_tokens", c.default_max_tokens);
  s.get("backend", c.backend);
  if (const toml::node* r = s.find("remote")) {
    if (!r->is_table()) s.fail("remote", "must be a table ([llm.remote])");
    Section rs(r->as_table(), "llm.remote");
    LlmRemoteSection& rc = c.remote;
    rs.get("url", rc.url);
    rs.get("api_key", rc.api_key);
    rs.get("api_key_env", rc.api_key_env);
    rs.get("model", rc.model);
    rs.get("context_length", rc.context_length);
    rs.get("connect_timeout_ms", rc.connect_timeout_ms);
    rs.get("timeout_ms", rc.timeout_ms);
    rs.get("idle_timeout_ms", rc.idle_timeout_ms);
    rs.get("max_retries", rc.max_retries);
    rs.get("backoff_ms", rc.backoff_ms);
    rs.get("max_backoff_ms", rc.max_backoff_ms);
    rs.get("ca_file", rc.ca_file);
    rs.get("keepalive_ms", rc.keepalive_ms);
    rs.get("max_idle_connections", rc.max_idle_connections);
    rs.get("probe", rc.probe);
    rs.finish();
  }
  s.finish();
}

void read_asr(const toml::table& root, AsrSection& c) {
  Section s(subtable(root, "asr"), "asr");
  s.get("enabled", c.enabled);
  s.get("backend", c.backend);
  s.get("decoders", c.decoders);
  s.get("pocketsphinx_hmm", c.pocketsphinx_hmm);
  s.get("pocketsphinx_lm", c.pocketsphinx_lm);
  s.get("pocketsphinx_dict", c.pocketsphinx_dict);
  s.get("wav2vec2_model", c.wav2vec2_model);
  s.get("whisper_model", c.whisper_model);
  s.get("whisper_beam_size", c.whisper_beam_size);
  s.get("whisper_encoder_dtype", c.whisper_encoder_dtype);
  s.get("whisper_word_timestamps", c.whisper_word_timestamps);
  s.get("whisper_max_active", c.whisper_max_active);
  s.get("device", c.device);
  s.get("threads", c.threads);
  s.get("vad", c.vad);
  s.get("vad_model", c.vad_model);
  s.get("vad_threshold", c.vad_threshold);
  s.get("vad_min_silence_ms", c.vad_min_silence_ms);
  s.get("vad_min_speech_ms", c.vad_min_speech_ms);
  s.get("vad_speech_pad_ms", c.vad_speech_pad_ms);
  s.get("vad_merge_gap_ms", c.vad_merge_gap_ms);
  s.get("max_segment_seconds", c.max_segment_seconds);
  s.get("max_batch", c.max_batch);
  s.get("max_wait_ms", c.max_wait_ms);
  s.get("max_batch_seconds", c.max_batch_seconds);
  s.get("workers", c.workers);
  s.get("max_queue", c.max_queue);
  s.get("max_queue_delay_ms", c.max_queue_delay_ms);
  s.get("max_audio_seconds", c.max_audio_seconds);
  s.get("max_upload_mb", c.max_upload_mb);
  s.finish();
}

void read_tts(const toml::table& root, TtsSection& c) {
  Section s(subtable(root, "tts"), "tts");
  s.get("enabled", c.enabled);
  s.get("backend", c.backend);
  s.get("default_voice", c.default_voice);
  s.get("workers", c.workers);
  s.get("max_input_chars", c.max_input_chars);
  s.get("max_queue", c.max_queue);
  s.get("output_sample_rate", c.output_sample_rate);
  s.finish();
}

void read_talk(const toml::table& root, TalkSection& c) {
  Section s(subtable(root, "talk"), "talk");
  s.get("enabled", c.enabled);
  s.get("avatar", c.avatar);
  s.get("voice", c.voice);
  s.get("system_prompt", c.system_prompt);
  s.get("max_tokens", c.max_tokens);
  s.get("temperature", c.temperature);
  s.get("session_ttl_s", c.session_ttl_s);
  s.get("max_sessions", c.max_sessions);
  s.get("max_history_turns", c.max_history_turns);
  s.get("fps", c.fps);
  s.get("video_crf", c.video_crf);
  s.get("cache_dir", c.cache_dir);
  s.get("cache_max_mb", c.cache_max_mb);
  s.get("max_audio_seconds", c.max_audio_seconds);
  s.get("max_queue_delay_ms", c.max_queue_delay_ms);
  s.get("renderer", c.renderer);
  s.get("wav2lip_weights", c.wav2lip_weights);
  s.get("wav2lip_device", c.wav2lip_device);
  s.get("stream_size", c.stream_size);
  s.get("stream_preset", c.stream_preset);
  s.finish();
}

void read_redis(const toml::table& root, RedisSection& c) {
  Section s(subtable(root, "redis"), "redis");
  s.get("url", c.url);
  s.get("clip_ttl_s", c.clip_ttl_s);
  s.get("max_clip_mb", c.max_clip_mb);
  s.get("timeout_ms", c.timeout_ms);
  s.get("key_prefix", c.key_prefix);
  s.get("sessions", c.sessions);
  s.get("session_lock_s", c.session_lock_s);
  s.get("session_key_prefix", c.session_key_prefix);
  s.get("quotas", c.quotas);
  s.get("quota_sync_ms", c.quota_sync_ms);
  s.get("quota_key_prefix", c.quota_key_prefix);
  s.finish();
}

// "a.b.c=value" -> sets root[a][b][c], creating tables on the way.
void apply_override(toml::table& root, const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("--set " + text + ": expected section.key=value");
  }
  std::string path = text.substr(0, eq);
  std::string value = text.substr(eq + 1);
  // getline drops a trailing empty segment, so "http.=1" would otherwise set the table "http".
  if (path.back() == '.') throw ConfigError("--set " + text + ": empty key segment");
  std::vector<std::string> parts;
  std::stringstream ss(path);
  for (std::string p; std::getline(ss, p, '.');) {
    if (p.empty()) throw ConfigError("--set " + text + ": empty key segment");
    parts.push_back(p);
  }
  toml::table* t = &root;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    toml::node* n = t->get(parts[i]);
    if (!n) {
      t->insert(parts[i], toml::table{});
      n = t->get(parts[i]);
    }
    if (!n->is_table()) throw ConfigError("--set " + text + ": " + parts[i] + " is not a table");
    t = n->as_table();
  }
  // Parse the value as TOML ("8080", "true", "[\"a\"]", "\"x\""); a bare word is a string.
  try {
    auto parsed = toml::parse("v = " + value);
    t->insert_or_assign(parts.back(), *parsed.get("v"));
  } catch (const toml::parse_error&) {
    t->insert_or_assign(parts.back(), value);
  }
}

}  // namespace

void ServerConfig::validate() const {
  if (drain_grace.count() < 0) throw std::invalid_argument("server.drain_grace_ms must be >= 0");
  if (models_dir.empty()) throw std::invalid_argument("server.models_dir must not be empty");
  if (malloc_arena_max < 0 || malloc_arena_max > 1024)
    throw std::invalid_argument("server.malloc_arena_max must be in [0, 1024] (0: glibc's default)");
  if (malloc_mmap_threshold_kb < 0 || malloc_mmap_threshold_kb > 32 * 1024)
    throw std::invalid_argument("server.malloc_mmap_threshold_kb must be in [0, 32768] (0: glibc's default)");
}

void LlmSection::validate() const {
  auto bad = [](const std::string& k, const std::string& why) {
    throw std::invalid_argument("llm." + k + " " + why);
  };
  if (!enabled) return;
  if (backend == "remote") return remote.validate();  // the local model keys are not used
  if (backend != "local") bad("backend", "must be local or remote");
  if (model.empty()) bad("model", "must name a checkpoint");
  if (name.empty()) bad("name", "must not be empty");
  static const std::set<std::string> templates{"auto", "chatml", "llama3", "llama2", "plain"};
  if (!templates.count(chat_template))
    bad("chat_template", "must be auto, chatml, llama3, llama2 or plain");
  if (device != "cpu" && !device.starts_with("cuda")) bad("device", "must be cpu or cuda[:N]");
  if (threads < 0) bad("threads", "must be >= 0");
  if (block_size < 1 || block_size > 1024) bad("block_size", "must be between 1 and 1024");
  if (num_blocks < 0) bad("num_blocks", "must be >= 0");
  if (num_blocks == 0 && kv_cache_mb < 1) bad("kv_cache_mb", "must be >= 1 when num_blocks is 0");
  if (max_num_seqs < 1) bad("max_num_seqs", "must be >= 1");
  if (max_num_batched_tokens < max_num_seqs)
    bad("max_num_batched_tokens", "must be >= max_num_seqs");
  if (max_prefill_chunk < 1) bad("max_prefill_chunk", "must be >= 1");
  if (max_queue < 1) bad("max_queue", "must be >= 1");
  if (max_queue_delay_ms < 0) bad("max_queue_delay_ms", "must be >= 0 (0 = no shedding)");
  if (default_max_tokens < 1) bad("default_max_tokens", "must be >= 1");
}

void LlmRemoteSection::validate() const {
  auto bad = [](const std::string& k, const std::string& why) {
    throw std::invalid_argument("llm.remote." + k + " " + why);
  };
  if (url.empty()) bad("url", "must be set when llm.backend = \"remote\"");
#ifdef TALKSERVE_HAVE_LLM
  try {
    llm::remote::parse_upstream_url(url);
  } catch (const std::invalid_argument& e) {
    bad("url", e.what());
  }
#endif
  if (!api_key.empty() && !api_key_env.empty()) bad("api_key", "and api_key_env: set one, not both");
  if (!api_key_env.empty()) {
    const char* v = std::getenv(api_key_env.c_str());
    if (v == nullptr || *v == '\0') {
      bad("api_key_env", "names the environment variable " + api_key_env + ", which is not set");
    }
  }
  if (model.empty()) bad("model", "must name the upstream's model id");
  if (context_length < 1) bad("context_length", "must be >= 1");
  auto ms = [&](const char* k, int v) {
    if (v < 1 || v > 3'600'000) bad(k, "must be between 1 and 3600000");
  };
  ms("connect_timeout_ms", connect_timeout_ms);
  ms("timeout_ms", timeout_ms);
  ms("idle_timeout_ms", idle_timeout_ms);
  if (max_retries < 0 || max_retries > 10) bad("max_retries", "must be between 0 and 10");
  if (backoff_ms < 0) bad("backoff_ms", "must be >= 0");
  if (max_backoff_ms < backoff_ms) bad("max_backoff_ms", "must be >= llm.remote.backoff_ms");
  if (keepalive_ms < 0 || keepalive_ms > 3'600'000) bad("keepalive_ms", "must be between 0 and 3600000");
  if (max_idle_connections < 0 || max_idle_connections > 1024) {
    bad("max_idle_connections", "must be between 0 and 1024");
  }
  if (!ca_file.empty() && !std::filesystem::is_regular_file(ca_file)) {
    bad("ca_file", "'" + ca_file + "' is not a readable file");
  }
}

void AsrSection::validate() const {
  auto bad = [](const std::string& k, const std::string& why) {
    throw std::invalid_argument("asr." + k + " " + why);
  };
  if (!enabled) return;
  if (backend != "whisper" && backend != "pocketsphinx" && backend != "wav2vec2")
    bad("backend", "must be whisper, pocketsphinx or wav2vec2");
  if (backend == "whisper" && whisper_model.empty()) bad("whisper_model", "must name a model directory");
  if (whisper_beam_size < 1 || whisper_beam_size > 16) bad("whisper_beam_size", "must be between 1 and 16");
  if (whisper_encoder_dtype != "auto" && whisper_encoder_dtype != "float32" && whisper_encoder_dtype != "bfloat16") {
    bad("whisper_encoder_dtype", "must be auto, float32 or bfloat16");
  }
  if (whisper_max_active < 1 || whisper_max_active > 1024) bad("whisper_max_active", "must be between 1 and 1024");
  if (decoders < 1 || decoders > 64) bad("decoders", "must be between 1 and 64");
  if (backend == "wav2vec2" && wav2vec2_model.empty()) bad("wav2vec2_model", "must name a model");
  if (device != "cpu" && !device.starts_with("cuda")) bad("device", "must be cpu or cuda[:N]");
  if (threads < 0) bad("threads", "must be >= 0");
  if (vad && vad_model.empty()) bad("vad_model", "must name the Silero VAD file when vad is on");
  if (!(vad_threshold > 0 && vad_threshold < 1)) bad("vad_threshold", "must be in (0, 1)");
  if (vad_min_silence_ms < 0) bad("vad_min_silence_ms", "must be >= 0");
  if (vad_min_speech_ms < 0) bad("vad_min_speech_ms", "must be >= 0");
  if (vad_speech_pad_ms < 0) bad("vad_speech_pad_ms", "must be >= 0");
  if (vad_merge_gap_ms < 0) bad("vad_merge_gap_ms", "must be >= 0");
  if (!(max_segment_seconds >= 1)) bad("max_segment_seconds", "must be >= 1");
  if (max_batch < 1) bad("max_batch", "must be >= 1");
  if (max_wait_ms < 0) bad("max_wait_ms", "must be >= 0");
  if (!(max_batch_seconds >= 0)) bad("max_batch_seconds", "must be >= 0");
  if (workers < 1) bad("workers", "must be >= 1");
  if (max_queue < 1) bad("max_queue", "must be >= 1");
  if (max_queue_delay_ms < 0) bad("max_queue_delay_ms", "must be >= 0 (0 = off)");
  if (max_queue_delay_ms > 0 && max_queue_delay_ms <= max_wait_ms) {
    bad("max_queue_delay_ms", "must be 0 (off) or longer than max_wait_ms");
  }
  if (!(max_audio_seconds > 0)) bad("max_audio_seconds", "must be > 0");
  if (max_upload_mb < 1) bad("max_upload_mb", "must be >= 1");
}

void TtsSection::validate() const {
  auto bad = [](const std::string& k, const std::string& why) {
    throw std::invalid_argument("tts." + k + " " + why);
  };
  if (!enabled) return;
  if (backend != "espeak-ng" && backend != "flite") bad("backend", "must be espeak-ng or flite");
  if (workers < 1) bad("workers", "must be >= 1");
  if (max_input_chars < 1) bad("max_input_chars", "must be >= 1");
  if (max_queue < 1) bad("max_queue", "must be >= 1");
  if (output_sample_rate < 8000 || output_sample_rate > 48000)
    bad("output_sample_rate", "must be between 8000 and 48000");
}

void TalkSection::validate() const {
  auto bad = [](const std::string& k, const std::string& why) {
    throw std::invalid_argument("talk." + k + " " + why);
  };
  if (!enabled) return;
  if (avatar.empty()) bad("avatar", "must name a portrait or avatar directory");
  if (max_tokens < 1) bad("max_tokens", "must be >= 1");
  if (!(temperature >= 0 && temperature <= 2)) bad("temperature", "must be between 0 and 2");
  if (session_ttl_s < 1) bad("session_ttl_s", "must be >= 1");
  if (max_sessions < 1) bad("max_sessions", "must be >= 1");
  if (max_history_turns < 1) bad("max_history_turns", "must be >= 1");
  if (fps < 1 || fps > 60) bad("fps", "must be between 1 and 60");
  if (video_crf < 0 || video_crf > 51) bad("video_crf", "must be between 0 and 51");
  if (cache_dir.empty()) bad("cache_dir", "must not be empty");
  if (cache_max_mb < 1) bad("cache_max_mb", "must be >= 1");
  if (!(max_audio_seconds > 0)) bad("max_audio_seconds", "must be > 0");
  if (max_queue_delay_ms < 0) bad("max_queue_delay_ms", "must be >= 0 (0 = off)");
  if (renderer != "viseme" && renderer != "wav2lip") bad("renderer", "must be \"viseme\" or \"wav2lip\"");
  if (renderer == "wav2lip" && wav2lip_weights.empty()) bad("wav2lip_weights", "must name the converted weights");
  if (stream_size != 0 && (stream_size < 64 || stream_size > 2048)) {
    bad("stream_size", "must be 0 (the portrait's size) or between 64 and 2048");
  }
  static const char* kPresets[] = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                   "medium",    "slow",      "slower",   "veryslow"};
  if (std::find(std::begin(kPresets), std::end(kPresets), stream_preset) == std::end(kPresets)) {
    bad("stream_preset", "must be an x264 preset (ultrafast ... veryslow)");
  }
}

void RedisSection::validate() const {
  auto bad = [](const std::string& k, const std::string& why) {
    throw std::invalid_argument("redis." + k + " " + why);
  };
  if (clip_ttl_s < 1) bad("clip_ttl_s", "must be >= 1");
  if (max_clip_mb < 1 || max_clip_mb > 512) bad("max_clip_mb", "must be between 1 and 512");
  if (timeout_ms < 1 || timeout_ms > 60000) bad("timeout_ms", "must be between 1 and 60000");
  if (key_prefix.empty()) bad("key_prefix", "must not be empty");
  if (session_lock_s < 1 || session_lock_s > 86400) bad("session_lock_s", "must be between 1 and 86400");
  if (session_key_prefix.empty()) bad("session_key_prefix", "must not be empty");
  if (session_key_prefix == key_prefix) bad("session_key_prefix", "must differ from redis.key_prefix");
  if (quota_sync_ms < 10 || quota_sync_ms > 60000) bad("quota_sync_ms", "must be between 10 and 60000");
  if (quota_key_prefix.empty()) bad("quota_key_prefix", "must not be empty");
  if (quota_key_prefix == key_prefix || quota_key_prefix == session_key_prefix)
    bad("quota_key_prefix", "must differ from redis.key_prefix and redis.session_key_prefix");
  if (url.empty()) return;
#ifdef TALKSERVE_HAVE_REDIS
  try {
    cache::parse_redis_url(url);
  } catch (const std::invalid_argument& e) {
    // "redis.url: why (...)" -> "redis.url why (...)", as the other keys read.
    std::string msg = e.what();
    if (msg.starts_with("redis.url: ")) msg.erase(9, 1);
    throw std::invalid_argument(msg);
  }
#else
  bad("url", "must be empty: this build has no Redis tier (hiredis was not found when it was "
             "configured; install libhiredis-dev and rebuild)");
#endif
}

void AppConfig::validate() const {
  try {
    server.validate();
    http.validate();
    gateway.validate();
    // ObsConfig names its keys "obs.log_*"; in the file they are log.level and log.format.
    try {
      obs::parse_log_level(log.log_level);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(std::string("log.level: ") + e.what());
    }
    try {
      obs::parse_log_format(log.log_format);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(std::string("log.format: ") + e.what());
    }
    llm.validate();
    asr.validate();
    tts.validate();
    talk.validate();
    redis.validate();
    gpu.validate();
    // A turn runs the LLM and speech synthesis: refuse the combination here, at --check-config,
    // rather than after the listener is up.
    if (talk.enabled && !llm.enabled) {
      throw ConfigError("talk.enabled: talking turns need the LLM; set llm.enabled = true or talk.enabled = false");
    }
    if (talk.enabled && !tts.enabled) {
      throw ConfigError("talk.enabled: talking turns need speech synthesis; set tts.enabled = true or talk.enabled = false");
    }
  } catch (const std::invalid_argument& e) {
    throw ConfigError(e.what());
  }
}

AppConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  toml::table root;
  if (!path.empty()) {
    // toml++ reports an unreadable file as "path:0:0: File could not be opened"; say why.
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(st)) throw ConfigError("config file '" + path + "': not found");
    if (std::filesystem::is_directory(st)) {
      throw ConfigError("config file '" + path + "': is a directory");
    }
    if (std::ifstream probe(path); !probe) {
      throw ConfigError("config file '" + path + "': cannot be opened (" + std::strerror(errno) +
                        ")");
    }
    try {
      root = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
      std::ostringstream msg;
      msg << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
          << e.description();
      throw ConfigError(msg.str());
    }
  }
  for (const auto& o : overrides) apply_override(root, o);

  static const std::set<std::string> sections{"server", "http", "gateway", "log", "llm", "asr", "tts", "talk", "redis", "gpu"};
  for (const auto& [k, v] : root) {
    if (!sections.count(std::string(k.str()))) {
      throw ConfigError(std::string(k.str()) + ": unknown section");
    }
  }
  AppConfig c;
  read_server(root, c.server);
  read_http(root, c.http);
  read_gateway(root, c.gateway);
  read_log(root, c.log);
  read_llm(root, c.llm);
  read_asr(root, c.asr);
  read_tts(root, c.tts);
  read_talk(root, c.talk);
  read_redis(root, c.redis);
  read_gpu(root, c.gpu);
  c.validate();
  return c;
}

}  // namespace talkserve::app
