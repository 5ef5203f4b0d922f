// A TOML file overriding keys in every section.

#include <catch2/catch.hpp>

#include "app_test_support.hpp"
#include "talkserve/app/config.hpp"

using namespace talkserve;
using namespace talkserve::app;
using namespace talkserve::app::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kSha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

}  // namespace

TEST_CASE("config file: every key of every section is read", "[app][config]") {
  TempDir dir;
  const std::string keys_file = dir.write("api-keys", "");
  const std::string toml = R"(
[server]
drain_grace_ms = 2500
models_dir = "/srv/models"

[http]
host = "0.0.0.0"
port = 9000
io_threads = 4
max_header_bytes = 8192
max_body_bytes = 2097152
header_timeout_ms = 1000
body_timeout_ms = 2000
write_timeout_ms = 3000
keepalive_timeout_ms = 4000
cors_allowed_origins = ["http://localhost:3000", "https://app.example"]
static_dir = ""
stream_queue_limit = 32
ws_ping_interval_ms = 5000
ws_max_message_bytes = 65536

[gateway]
max_in_flight = 64
keys_file = ")" + keys_file +
                           R"("
[gateway.tiers.vip]
rate_per_s = 50.0
burst = 100.0
[gateway.tiers.standard]
rate_per_s = 6
burst = 12
[gateway.tiers.batch]
rate_per_s = 0.5
burst = 1.0
[[gateway.keys]]
name = "alice"
key = "sk-alice-secret"
tier = "vip"
[[gateway.keys]]
name = "bob"
key_sha256 = ")" + std::string(kSha) +
                           R"("
tier = "BATCH"
rate_per_s = 1.5
burst = 3

[log]
level = "debug"
format = "json"

[llm]
enabled = true
model = "qwen2-0.5b"
tokenizer = ""
name = "qwen2"
chat_template = "chatml"
device = "cuda:1"
threads = 3
block_size = 32
num_blocks = 500
kv_cache_mb = 1
max_num_seqs = 8
max_num_batched_tokens = 1024
max_prefill_chunk = 128
prefix_caching = false
max_queue = 16
default_max_tokens = 64
)";
  const AppConfig c = load_config(dir.write("talkserve.toml", toml), {});

  CHECK(c.server.drain_grace == 2500ms);
  CHECK(c.server.models_dir == "/srv/models");

  CHECK(c.http.host == "0.0.0.0");
  CHECK(c.http.port == 9000);
  CHECK(c.http.io_threads == 4);
  CHECK(c.http.max_header_bytes == 8192);
  CHECK(c.http.max_body_bytes == 2097152);
  CHECK(c.http.header_timeout == 1000ms);
  CHECK(c.http.body_timeout == 2000ms);
  CHECK(c.http.write_timeout == 3000ms);
  CHECK(c.http.keepalive_timeout == 4000ms);
  CHECK(c.http.cors_allowed_origins ==
        std::vector<std::string>{"http://localhost:3000", "https://app.example"});
  CHECK(c.http.static_dir.empty());
  CHECK(c.http.stream_queue_limit == 32);
  CHECK(c.http.ws_ping_interval == 5000ms);
  CHECK(c.http.ws_max_message_bytes == 65536);

  CHECK(c.gateway.max_in_flight == 64);
  CHECK(c.gateway.keys_file == keys_file);
  CHECK(c.gateway.auth_configured());
  CHECK(c.gateway.vip.rate_per_s == 50.0);
  CHECK(c.gateway.vip.burst == 100.0);
  CHECK(c.gateway.standard.rate_per_s == 6.0);  // integers are accepted for numbers
  CHECK(c.gateway.standard.burst == 12.0);
  CHECK(c.gateway.batch.rate_per_s == 0.5);
  CHECK(c.gateway.batch.burst == 1.0);
  REQUIRE(c.gateway.keys.size() == 2);
  CHECK(c.gateway.keys[0].name == "alice");
  CHECK(c.gateway.keys[0].key == "sk-alice-secret");
  CHECK(c.gateway.keys[0].key_sha256.empty());
  CHECK(c.gateway.keys[0].tier == gateway::Tier::vip);
  CHECK_FALSE(c.gateway.keys[0].rate_per_s.has_value());  // the tier's
  CHECK_FALSE(c.gateway.keys[0].burst.has_value());
  CHECK(c.gateway.keys[1].name == "bob");
  CHECK(c.gateway.keys[1].key.empty());
  CHECK(c.gateway.keys[1].key_sha256 == kSha);
  CHECK(c.gateway.keys[1].tier == gateway::Tier::batch);  // tier names are case-insensitive
  CHECK(c.gateway.keys[1].rate_per_s == 1.5);
  CHECK(c.gateway.keys[1].burst == 3.0);

  CHECK(c.log.log_level == "debug");
  CHECK(c.log.log_format == "json");

  CHECK(c.llm.enabled);
  CHECK(c.llm.model == "qwen2-0.5b");
  CHECK(c.llm.tokenizer.empty());
  CHECK(c.llm.name == "qwen2");
  CHECK(c.llm.chat_template == "chatml");
  CHECK(c.llm.device == "cuda:1");
  CHECK(c.llm.threads == 3);
  CHECK(c.llm.block_size == 32);
  CHECK(c.llm.num_blocks == 500);
  CHECK(c.llm.kv_cache_mb == 1);
  CHECK(c.llm.max_num_seqs == 8);
  CHECK(c.llm.max_num_batched_tokens == 1024);
  CHECK(c.llm.max_prefill_chunk == 128);
  CHECK_FALSE(c.llm.prefix_caching);
  CHECK(c.llm.max_queue == 16);
  CHECK(c.llm.default_max_tokens == 64);
}

TEST_CASE("config file: keys it does not set keep their defaults", "[app][config]") {
  const AppConfig c = load_toml("[http]\nport = 9001\n[llm]\nmax_num_seqs = 4\n");
  AppConfig expected;
  expected.http.port = 9001;
  expected.llm.max_num_seqs = 4;
  CHECK(describe(c) == describe(expected));
}

TEST_CASE("config file: inline tables and dotted keys are the same as [sections]",
          "[app][config]") {
  const AppConfig a = load_toml(
      "http = { port = 9002, io_threads = 3 }\n"
      "gateway.tiers.vip.burst = 7.0\n"
      "gateway.keys = [ { name = \"carol\", key = \"sk-carol\" } ]\n");
  CHECK(a.http.port == 9002);
  CHECK(a.http.io_threads == 3);
  CHECK(a.gateway.vip.burst == 7.0);
  REQUIRE(a.gateway.keys.size() == 1);
  CHECK(a.gateway.keys[0].name == "carol");
  CHECK(a.gateway.keys[0].tier == gateway::Tier::standard);  // the default tier
}

TEST_CASE("config file: a disabled LLM section is not validated", "[app][config]") {
  // An operator switching the LLM off need not fix its other keys first.
  const AppConfig c =
      load_toml("[llm]\nenabled = false\nmodel = \"\"\nmax_num_seqs = 0\n[talk]\nenabled = false\n");
  CHECK_FALSE(c.llm.enabled);
  CHECK(c.llm.model.empty());
}
