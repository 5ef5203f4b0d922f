// --set section.key=value overrides: the value is parsed as a TOML value when it is one
// (numbers, booleans, quoted strings, arrays), else taken as a bare string.

#include <catch2/catch.hpp>

#include "app_test_support.hpp"
#include "talkserve/app/config.hpp"

using namespace talkserve;
using namespace talkserve::app;
using namespace talkserve::app::test;
using namespace std::chrono_literals;
using Catch::Contains;

TEST_CASE("overrides (--set): integers, floats and booleans", "[app][config][set]") {
  const AppConfig c =
      load_config("", {"http.port=9000", "http.io_threads=8", "http.max_body_bytes=4096",
                       "gateway.max_in_flight=7", "gateway.tiers.vip.rate_per_s=7.5",
                       "gateway.tiers.batch.burst=3", "llm.prefix_caching=false",
                       "llm.enabled=true", "llm.threads=2"});
  CHECK(c.http.port == 9000);
  CHECK(c.http.io_threads == 8);
  CHECK(c.http.max_body_bytes == 4096);
  CHECK(c.gateway.max_in_flight == 7);
  CHECK(c.gateway.vip.rate_per_s == 7.5);
  CHECK(c.gateway.vip.burst == 40.0);  // a sibling key keeps its default
  CHECK(c.gateway.batch.burst == 3.0);
  CHECK_FALSE(c.llm.prefix_caching);
  CHECK(c.llm.enabled);
  CHECK(c.llm.threads == 2);
}

TEST_CASE("overrides (--set): port 0 (ephemeral) and 65535 are valid", "[app][config][set]") {
  CHECK(load_config("", {"http.port=0"}).http.port == 0);
  CHECK(load_config("", {"http.port=65535"}).http.port == 65535);
}

TEST_CASE("overrides (--set): durations are integer milliseconds in *_ms keys",
          "[app][config][set]") {
  const AppConfig c =
      load_config("", {"server.drain_grace_ms=2500", "http.header_timeout_ms=1",
                       "http.body_timeout_ms=1_000", "http.write_timeout_ms=45000",
                       "http.keepalive_timeout_ms=5000", "http.ws_ping_interval_ms=250"});
  CHECK(c.server.drain_grace == 2500ms);
  CHECK(c.http.header_timeout == 1ms);
  CHECK(c.http.body_timeout == 1000ms);  // TOML digit separators work
  CHECK(c.http.write_timeout == 45s);
  CHECK(c.http.keepalive_timeout == 5s);
  CHECK(c.http.ws_ping_interval == 250ms);
  // A drain grace of 0 means "do not wait".
  CHECK(load_config("", {"server.drain_grace_ms=0"}).server.drain_grace == 0ms);
}

TEST_CASE("overrides (--set): a duration with a unit or a fraction is rejected naming the key",
          "[app][config][set]") {
  for (const char* v : {"10s", "\"10000\"", "1.5"}) {
    INFO("value " << v);
    auto msg = config_error("", {std::string("server.drain_grace_ms=") + v});
    CHECK_THAT(msg, Contains("server.drain_grace_ms") && Contains("must be an integer"));
  }
}

TEST_CASE("overrides (--set): strings bare, quoted, empty and with dots", "[app][config][set]") {
  const AppConfig c =
      load_config("", {"log.level=debug", "log.format=\"json\"", "http.host=0.0.0.0",
                       "llm.model=models/qwen2/model.safetensors", "llm.name=\"42\"",
                       "http.static_dir=", "server.models_dir=/var/lib/talkserve models",
                       "llm.tokenizer=\"\""});
  CHECK(c.log.log_level == "debug");
  CHECK(c.log.log_format == "json");
  CHECK(c.http.host == "0.0.0.0");
  CHECK(c.llm.model == "models/qwen2/model.safetensors");
  CHECK(c.llm.name == "42");  // quoted: a string, not the integer 42
  CHECK(c.http.static_dir.empty());
  CHECK(c.server.models_dir == "/var/lib/talkserve models");
  CHECK(c.llm.tokenizer.empty());
  // Only the first '=' separates key and value.
  CHECK(load_config("", {"llm.name=a=b"}).llm.name == "a=b");
}

TEST_CASE("overrides (--set): a bare number where a string is expected is a type error",
          "[app][config][set]") {
  // "42" parses as a TOML integer; the message must say what is wrong and where.
  CHECK_THAT(config_error("", {"llm.name=42"}), Contains("llm.name: must be a string"));
}

TEST_CASE("overrides (--set): arrays of strings", "[app][config][set]") {
  const AppConfig c =
      load_config("", {R"(http.cors_allowed_origins=["*", "https://app.example"])"});
  CHECK(c.http.cors_allowed_origins == std::vector<std::string>{"*", "https://app.example"});
  CHECK(load_config("", {"http.cors_allowed_origins=[]"}).http.cors_allowed_origins.empty());
}

TEST_CASE("overrides (--set): overrides win over the file, later overrides over earlier ones",
          "[app][config][set]") {
  TempDir dir;
  const auto path =
      dir.write("talkserve.toml", "[http]\nport = 9000\nio_threads = 3\n[log]\nlevel = \"warn\"\n");
  const AppConfig c = load_config(path, {"http.port=9100", "log.level=error", "http.port=9200"});
  CHECK(c.http.port == 9200);
  CHECK(c.http.io_threads == 3);  // untouched file key
  CHECK(c.log.log_level == "error");
}

TEST_CASE("overrides (--set): a section or nested table missing from the file is created",
          "[app][config][set]") {
  TempDir dir;
  const auto path = dir.write("talkserve.toml", "[http]\nport = 9000\n");
  const AppConfig c = load_config(
      path, {"llm.enabled=false", "talk.enabled=false", "gateway.tiers.standard.burst=11", "server.models_dir=m"});
  CHECK(c.http.port == 9000);
  CHECK_FALSE(c.llm.enabled);
  CHECK(c.gateway.standard.burst == 11.0);
  CHECK(c.gateway.standard.rate_per_s == 5.0);
  CHECK(c.server.models_dir == "m");
}

TEST_CASE("overrides (--set): a bad override is a ConfigError that quotes it",
          "[app][config][set]") {
  CHECK_THAT(config_error("", {"http.port"}),
             Contains("--set http.port") && Contains("expected section.key=value"));
  CHECK_THAT(config_error("", {"=5"}), Contains("expected section.key=value"));
  CHECK_THAT(config_error("", {""}), Contains("expected section.key=value"));
  CHECK_THAT(config_error("", {"http..port=1"}), Contains("empty key segment"));
  CHECK_THAT(config_error("", {".port=1"}), Contains("empty key segment"));
  CHECK_THAT(config_error("", {"http.=1"}), Contains("empty key segment"));
}

TEST_CASE("overrides (--set): a key below a non-table value is an error naming it",
          "[app][config][set]") {
  // From the file, http.port is an integer, so http.port.x cannot be set.
  CHECK_THAT(config_error("[http]\nport = 1\n", {"http.port.x=1"}),
             Contains("http.port.x=1") && Contains("port is not a table"));
  // Without a file the table is created, and then http.port has the wrong type.
  CHECK_THAT(config_error("", {"http.port.x=1"}), Contains("http.port: must be an integer"));
}

TEST_CASE("overrides (--set): unknown keys and sections are rejected like in a file",
          "[app][config][set]") {
  CHECK_THAT(config_error("", {"llm.max_num_seqz=3"}), Contains("llm.max_num_seqz: unknown key"));
  CHECK_THAT(config_error("", {"htpp.port=80"}), Contains("htpp: unknown section"));
  CHECK_THAT(config_error("", {"port=80"}), Contains("port: unknown section"));
  CHECK_THAT(config_error("", {"gateway.tiers.gold.burst=3"}),
             Contains("gateway.tiers.gold: unknown key"));
}
