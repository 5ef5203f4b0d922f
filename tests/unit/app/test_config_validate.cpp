// Every validate() rule of every section, reached through load_config (--set) so the message
// the operator sees is what is checked: a ConfigError that starts with the key.

#include <catch2/catch.hpp>
#include <stdexcept>

#include "app_test_support.hpp"
#include "talkserve/app/config.hpp"

using namespace talkserve;
using namespace talkserve::app;
using namespace talkserve::app::test;
using namespace std::chrono_literals;
using Catch::Contains;
using Catch::StartsWith;

namespace {

constexpr const char* kSha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

struct Rule {
  std::vector<std::string> overrides;
  const char* expected;  // the message starts with this
};

void check_rules(const std::vector<Rule>& rules) {
  for (const auto& r : rules) {
    std::string desc;
    for (const auto& o : r.overrides) desc += " --set " + o;
    INFO("overrides:" << desc);
    CHECK_THAT(config_error("", r.overrides), StartsWith(r.expected));
  }
}

void check_valid(const std::vector<std::vector<std::string>>& cases) {
  for (const auto& overrides : cases) {
    std::string desc;
    for (const auto& o : overrides) desc += " --set " + o;
    INFO("overrides:" << desc);
    CHECK_NOTHROW(load_config("", overrides));
  }
}

}  // namespace

TEST_CASE("validate: [server]", "[app][config][validate]") {
  check_rules({
      {{"server.models_dir=\"\""}, "server.models_dir must not be empty"},
      {{"server.drain_grace_ms=-1"}, "server.drain_grace_ms: must be >= 0"},
      {{"server.malloc_arena_max=-1"}, "server.malloc_arena_max must be in [0, 1024]"},
      {{"server.malloc_arena_max=1025"}, "server.malloc_arena_max must be in [0, 1024]"},
      {{"server.malloc_mmap_threshold_kb=-1"}, "server.malloc_mmap_threshold_kb must be in [0, 32768]"},
      {{"server.malloc_mmap_threshold_kb=32769"}, "server.malloc_mmap_threshold_kb must be in [0, 32768]"},
  });
  check_valid({
      {"server.malloc_arena_max=0", "server.malloc_mmap_threshold_kb=0"},  // glibc's defaults
      {"server.malloc_arena_max=1024", "server.malloc_mmap_threshold_kb=32768"},
  });
  // The shipped defaults: two arenas, a fixed 256 KiB mmap threshold.
  CHECK(ServerConfig{}.malloc_arena_max == 2);
  CHECK(ServerConfig{}.malloc_mmap_threshold_kb == 256);
  // The struct rule itself (a negative duration cannot come from the loader).
  ServerConfig s;
  s.drain_grace = -1ms;
  CHECK_THROWS_WITH(s.validate(), StartsWith("server.drain_grace_ms"));
}

TEST_CASE("validate: [http]", "[app][config][validate]") {
  check_rules({
      {{"http.host=\"\""}, "http.host must not be empty"},
      {{"http.io_threads=257"}, "http.io_threads must be between 0 (auto) and 256"},
      {{"http.io_threads=-3"}, "http.io_threads must be between 0 (auto) and 256"},
      {{"http.max_header_bytes=1023"}, "http.max_header_bytes must be at least 1024"},
      {{"http.max_body_bytes=0"}, "http.max_body_bytes must be at least 1"},
      {{"http.header_timeout_ms=0"}, "http.header_timeout_ms must be > 0"},
      {{"http.body_timeout_ms=0"}, "http.body_timeout_ms must be > 0"},
      {{"http.write_timeout_ms=0"}, "http.write_timeout_ms must be > 0"},
      {{"http.keepalive_timeout_ms=0"}, "http.keepalive_timeout_ms must be > 0"},
      {{"http.stream_queue_limit=0"}, "http.stream_queue_limit must be at least 1"},
      {{"http.ws_ping_interval_ms=0"}, "http.ws_ping_interval_ms must be > 0"},
      {{"http.ws_max_message_bytes=1023"}, "http.ws_max_message_bytes must be at least 1024"},
      {{R"(http.cors_allowed_origins=["ftp://x.example"])"}, "http.cors_allowed_origins"},
      {{R"(http.cors_allowed_origins=["app.example"])"}, "http.cors_allowed_origins"},
  });
  CHECK_THAT(config_error("", {R"(http.cors_allowed_origins=["*", "ftp://x"])"}),
             Contains("\"ftp://x\""));
  // The boundaries themselves are valid.
  check_valid({
      {"http.io_threads=0"},
      {"http.io_threads=1"},
      {"http.io_threads=256"},
      {"http.max_header_bytes=1024"},
      {"http.max_body_bytes=1"},
      {"http.header_timeout_ms=1", "http.body_timeout_ms=1", "http.write_timeout_ms=1",
       "http.keepalive_timeout_ms=1", "http.ws_ping_interval_ms=1"},
      {"http.stream_queue_limit=1"},
      {"http.ws_max_message_bytes=1024"},
      {R"(http.cors_allowed_origins=["*", "http://a.example", "https://b.example:8443"])"},
  });
}

TEST_CASE("validate: [gateway] limits and tiers", "[app][config][validate]") {
  check_rules({
      {{"gateway.max_in_flight=0"}, "gateway.max_in_flight must be > 0"},
      {{"gateway.tiers.vip.rate_per_s=0"}, "gateway.tiers.vip.rate_per_s must be a finite"},
      {{"gateway.tiers.standard.rate_per_s=-1"},
       "gateway.tiers.standard.rate_per_s must be a finite"},
      {{"gateway.tiers.batch.rate_per_s=inf"}, "gateway.tiers.batch.rate_per_s must be a finite"},
      {{"gateway.tiers.vip.rate_per_s=nan"}, "gateway.tiers.vip.rate_per_s must be a finite"},
      {{"gateway.tiers.vip.burst=0.5"}, "gateway.tiers.vip.burst must be a finite number >= 1"},
      {{"gateway.tiers.standard.burst=0"}, "gateway.tiers.standard.burst must be"},
      {{"gateway.tiers.batch.burst=inf"}, "gateway.tiers.batch.burst must be"},
  });
  check_valid({{"gateway.max_in_flight=1"},
               {"gateway.tiers.vip.burst=1", "gateway.tiers.vip.rate_per_s=0.001"}});
}

TEST_CASE("validate: [[gateway.keys]]", "[app][config][validate]") {
  const std::string sha = kSha;
  struct Case {
    std::string toml;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"[[gateway.keys]]\nkey = \"k\"\n", "gateway.keys[0].name must be non-empty"},
      {"[[gateway.keys]]\nname = \"a b\"\nkey = \"k\"\n", "gateway.keys[0].name must be non-empty"},
      {"[[gateway.keys]]\nname = \"a\"\nkey = \"k1\"\n[[gateway.keys]]\nname = \"a\"\nkey = "
       "\"k2\"\n",
       "gateway.keys[1] ('a'): name is used twice"},
      {"[[gateway.keys]]\nname = \"a\"\n",
       "gateway.keys[0] ('a'): set exactly one of key or key_sha256"},
      {"[[gateway.keys]]\nname = \"a\"\nkey = \"k\"\nkey_sha256 = \"" + sha + "\"\n",
       "gateway.keys[0] ('a'): set exactly one of key or key_sha256"},
      {"[[gateway.keys]]\nname = \"a\"\nkey = \"sk with space\"\n",
       "gateway.keys[0] ('a'): key must not contain spaces"},
      {"[[gateway.keys]]\nname = \"a\"\nkey_sha256 = \"abc\"\n",
       "gateway.keys[0] ('a'): key_sha256 must be 64 hex characters"},
      {"[[gateway.keys]]\nname = \"a\"\nkey_sha256 = \"" + std::string(64, 'g') + "\"\n",
       "gateway.keys[0] ('a'): key_sha256 must be 64 hex characters"},
      {"[[gateway.keys]]\nname = \"a\"\nkey = \"k\"\nrate_per_s = 0\n",
       "gateway.keys[0] ('a'): rate_per_s must be a finite number > 0"},
      {"[[gateway.keys]]\nname = \"a\"\nkey = \"k\"\nburst = 0.5\n",
       "gateway.keys[0] ('a'): burst must be a finite number >= 1"},
      {"[[gateway.keys]]\nname = \"a\"\nkey = \"k\"\ntier = \"gold\"\n",
       "gateway.keys[0].tier: must be vip, standard or batch (got \"gold\")"},
      {"[[gateway.keys]]\nname = \"a\"\nkey = \"k\"\ntier = \"\"\n",
       "gateway.keys[0].tier: must be vip, standard or batch"},
  };
  for (const auto& c : cases) {
    INFO(c.toml);
    CHECK_THAT(config_error(c.toml), StartsWith(c.expected));
  }
  // A key inherits its tier's limits, so a bad tier limit is reported for the tier first.
  CHECK_THAT(config_error("[gateway.tiers.batch]\nburst = 0\n[[gateway.keys]]\nname = \"a\"\n"
                          "key = \"k\"\ntier = \"batch\"\n"),
             StartsWith("gateway.tiers.batch.burst"));
  // Tier names are case-insensitive.
  CHECK(load_toml("[[gateway.keys]]\nname = \"a\"\nkey = \"k\"\ntier = \"Vip\"\n")
            .gateway.keys.at(0)
            .tier == gateway::Tier::vip);
}

TEST_CASE("validate: gateway.keys_file must be an existing file", "[app][config][validate]") {
  TempDir dir;
  const std::string missing = (dir.path() / "no-such-keys").string();
  CHECK_THAT(config_error("", {"gateway.keys_file=" + missing}),
             StartsWith("gateway.keys_file: '" + missing + "' does not exist or is not a file"));
  CHECK_THAT(config_error("", {"gateway.keys_file=" + dir.path().string()}),
             StartsWith("gateway.keys_file"));
  const auto file = dir.write("keys", "");
  CHECK(load_config("", {"gateway.keys_file=" + file}).gateway.keys_file == file);
}

TEST_CASE("validate: [log] names log.level and log.format", "[app][config][validate]") {
  check_rules({
      {{"log.level=loud"}, "log.level: unknown log level 'loud'"},
      {{"log.level=INFO"}, "log.level: unknown log level 'INFO'"},
      {{"log.level=\"\""}, "log.level: unknown log level"},
      {{"log.format=xml"}, "log.format: unknown log format 'xml'"},
  });
  check_valid({{"log.level=trace"},
               {"log.level=debug"},
               {"log.level=info"},
               {"log.level=warn"},
               {"log.level=warning"},
               {"log.level=error"},
               {"log.format=text"},
               {"log.format=json"}});
}

TEST_CASE("validate: [llm]", "[app][config][validate]") {
  check_rules({
      {{"llm.model=\"\""}, "llm.model must name a checkpoint"},
      {{"llm.name=\"\""}, "llm.name must not be empty"},
      {{"llm.chat_template=jinja"},
       "llm.chat_template must be auto, chatml, llama3, llama2 or plain"},
      {{"llm.device=tpu"}, "llm.device must be cpu or cuda[:N]"},
      {{"llm.device=\"\""}, "llm.device must be cpu or cuda[:N]"},
      {{"llm.threads=-1"}, "llm.threads must be >= 0"},
      {{"llm.block_size=0"}, "llm.block_size must be between 1 and 1024"},
      {{"llm.block_size=1025"}, "llm.block_size must be between 1 and 1024"},
      {{"llm.num_blocks=-1"}, "llm.num_blocks must be >= 0"},
      {{"llm.kv_cache_mb=0"}, "llm.kv_cache_mb must be >= 1 when num_blocks is 0"},
      {{"llm.max_num_seqs=0"}, "llm.max_num_seqs must be >= 1"},
      {{"llm.max_num_seqs=64", "llm.max_num_batched_tokens=63"},
       "llm.max_num_batched_tokens must be >= max_num_seqs"},
      {{"llm.max_prefill_chunk=0"}, "llm.max_prefill_chunk must be >= 1"},
      {{"llm.max_queue=0"}, "llm.max_queue must be >= 1"},
      {{"llm.max_queue_delay_ms=-1"}, "llm.max_queue_delay_ms must be >= 0 (0 = no shedding)"},
      {{"llm.default_max_tokens=0"}, "llm.default_max_tokens must be >= 1"},
  });
  check_valid({
      {"llm.chat_template=chatml"},
      {"llm.max_queue_delay_ms=0"},
      {"llm.chat_template=llama3"},
      {"llm.chat_template=llama2"},
      {"llm.chat_template=plain"},
      {"llm.device=cuda"},
      {"llm.device=cuda:0"},
      {"llm.block_size=1"},
      {"llm.block_size=1024"},
      {"llm.kv_cache_mb=0", "llm.num_blocks=16"},  // explicit block count: no MB budget needed
      {"llm.max_num_seqs=1", "llm.max_num_batched_tokens=1"},
      // Disabled: nothing in the section is checked.
      {"llm.enabled=false", "talk.enabled=false", "llm.model=\"\"", "llm.max_num_seqs=0", "llm.device=tpu"},
  });
}

TEST_CASE("validate: AppConfig::validate turns every module's error into a ConfigError",
          "[app][config][validate]") {
  AppConfig c;
  SECTION("http") {
    c.http.io_threads = -1;
  }
  SECTION("gateway") {
    c.gateway.max_in_flight = 0;
  }
  SECTION("log") {
    c.log.log_format = "xml";
  }
  SECTION("llm") {
    c.llm.max_queue = 0;
  }
  SECTION("server") {
    c.server.models_dir.clear();
  }
  CHECK_THROWS_AS(c.validate(), ConfigError);
}

TEST_CASE("validate: [talk] renderer and live stream", "[app][config][validate]") {
  check_rules({
      {{"talk.renderer=\"sketch\""}, "talk.renderer must be \"viseme\" or \"wav2lip\""},
      {{"talk.renderer=\"wav2lip\"", "talk.wav2lip_weights=\"\""}, "talk.wav2lip_weights must name"},
      {{"talk.stream_size=32"}, "talk.stream_size must be 0"},
      {{"talk.stream_size=4096"}, "talk.stream_size must be 0"},
      {{"talk.stream_preset=\"quick\""}, "talk.stream_preset must be an x264 preset"},
      {{"talk.video_crf=52"}, "talk.video_crf must be between 0 and 51"},
      // A turn needs the LLM and speech synthesis: caught at load, not after the listener is up.
      {{"llm.enabled=false"}, "talk.enabled: talking turns need the LLM"},
      {{"tts.enabled=false"}, "talk.enabled: talking turns need speech synthesis"},
  });
  check_valid({
      {"talk.renderer=\"wav2lip\""},
      {"talk.stream_size=0"},
      {"talk.stream_size=256", "talk.stream_preset=\"ultrafast\""},
      {"llm.enabled=false", "tts.enabled=false", "talk.enabled=false"},
  });
}

TEST_CASE("validate: [redis] the shared clip tier", "[app][config][validate]") {
  check_rules({
      {{"redis.clip_ttl_s=0"}, "redis.clip_ttl_s must be >= 1"},
      {{"redis.max_clip_mb=0"}, "redis.max_clip_mb must be between 1 and 512"},
      {{"redis.max_clip_mb=1024"}, "redis.max_clip_mb must be between 1 and 512"},
      {{"redis.timeout_ms=0"}, "redis.timeout_ms must be between 1 and 60000"},
      {{"redis.key_prefix=\"\""}, "redis.key_prefix must not be empty"},
      {{"redis.dbname=1"}, "redis.dbname: unknown key"},
      {{"redis.quota_sync_ms=9"}, "redis.quota_sync_ms must be between 10 and 60000"},
      {{"redis.quota_sync_ms=60001"}, "redis.quota_sync_ms must be between 10 and 60000"},
      {{"redis.quota_key_prefix=\"\""}, "redis.quota_key_prefix must not be empty"},
      {{"redis.quota_key_prefix=\"talkserve:clip:\""},
       "redis.quota_key_prefix must differ from redis.key_prefix and redis.session_key_prefix"},
      {{"redis.quotas=1"}, "redis.quotas"},
#ifdef TALKSERVE_HAVE_REDIS
      {{"redis.url=\"http://127.0.0.1:6379\""}, "redis.url must start with redis://"},
      {{"redis.url=\"redis://127.0.0.1:0\""}, "redis.url port must be 1..65535"},
      {{"redis.url=\"redis://:6379/0\""}, "redis.url no host"},
      {{"redis.url=\"redis://127.0.0.1/x\""}, "redis.url database must be a number"},
#else
      {{"redis.url=\"redis://127.0.0.1:6379/0\""}, "redis.url must be empty: this build has no Redis tier"},
#endif
  });
  check_valid({
      {"redis.url=\"\""},
      {"redis.clip_ttl_s=60", "redis.max_clip_mb=512", "redis.timeout_ms=60000"},
      {"redis.quotas=false", "redis.quota_sync_ms=10", "redis.quota_key_prefix=\"q:\""},
      {"redis.quota_sync_ms=60000"},
#ifdef TALKSERVE_HAVE_REDIS
      {"redis.url=\"redis://127.0.0.1:6379/0\""},
      {"redis.url=\"redis://:secret@cache.internal/2\"", "redis.key_prefix=\"a:\""},
#endif
  });
  CHECK(AppConfig{}.redis.url.empty());  // off unless configured
}

TEST_CASE("validate: [asr] batch cost cap", "[app][config][validate]") {
  check_rules({{{"asr.max_batch_seconds=-1"}, "asr.max_batch_seconds"}});
  check_valid({{"asr.max_batch_seconds=0"}, {"asr.max_batch_seconds=8.5"}});
}
