// load_config with no file: the built-in defaults, and the shipped config file that documents
// them.

#include <catch2/catch.hpp>
#include <filesystem>

#include "app_test_support.hpp"
#include "talkserve/app/config.hpp"

using namespace talkserve;
using namespace talkserve::app;
using namespace talkserve::app::test;
using namespace std::chrono_literals;

TEST_CASE("config: path \"\" loads the defaults of every section", "[app][config]") {
  const AppConfig c = load_config("", {});

  CHECK(c.server.drain_grace == 10'000ms);
  CHECK(c.server.models_dir == "models");

  CHECK(c.http.host == "127.0.0.1");
  CHECK(c.http.port == 8080);
  CHECK(c.http.io_threads == 0);  // auto
  CHECK(c.http.effective_io_threads() >= 1);
  CHECK(c.http.max_header_bytes == 16 * 1024);
  CHECK(c.http.max_body_bytes == 1024 * 1024);
  CHECK(c.http.header_timeout == 10'000ms);
  CHECK(c.http.body_timeout == 30'000ms);
  CHECK(c.http.write_timeout == 30'000ms);
  CHECK(c.http.keepalive_timeout == 60'000ms);
  CHECK(c.http.cors_allowed_origins.empty());
  CHECK(c.http.static_dir == "web");
  CHECK(c.http.stream_queue_limit == 256);
  CHECK(c.http.ws_ping_interval == 15'000ms);
  CHECK(c.http.ws_max_message_bytes == 4u * 1024 * 1024);

  CHECK(c.gateway.keys.empty());
  CHECK(c.gateway.keys_file.empty());
  CHECK_FALSE(c.gateway.auth_configured());
  CHECK(c.gateway.max_in_flight == 256);
  CHECK(c.gateway.vip.rate_per_s == 20.0);
  CHECK(c.gateway.vip.burst == 40.0);
  CHECK(c.gateway.standard.rate_per_s == 5.0);
  CHECK(c.gateway.standard.burst == 10.0);
  CHECK(c.gateway.batch.rate_per_s == 2.0);
  CHECK(c.gateway.batch.burst == 20.0);

  CHECK(c.log.log_level == "info");
  CHECK(c.log.log_format == "text");

  CHECK(c.llm.enabled);
  CHECK(c.llm.model == "stories260K/stories260K.bin");
  CHECK(c.llm.tokenizer == "stories260K/tok512.bin");
  CHECK(c.llm.name == "stories260K");
  CHECK(c.llm.chat_template == "auto");
  CHECK(c.llm.device == "cpu");
  CHECK(c.llm.threads == 0);
  CHECK(c.llm.block_size == 16);
  CHECK(c.llm.num_blocks == 0);
  CHECK(c.llm.kv_cache_mb == 64);
  CHECK(c.llm.max_num_seqs == 64);
  CHECK(c.llm.max_num_batched_tokens == 2048);
  CHECK(c.llm.max_prefill_chunk == 512);
  CHECK(c.llm.prefix_caching);
  CHECK(c.llm.max_queue == 1024);
  CHECK(c.llm.default_max_tokens == 256);
}

TEST_CASE("config: the loaded defaults equal a default-constructed AppConfig", "[app][config]") {
  CHECK(describe(load_config("", {})) == describe(AppConfig{}));
  CHECK_NOTHROW(AppConfig{}.validate());
}

TEST_CASE("config: an empty file and a file of empty sections load the defaults", "[app][config]") {
  TempDir dir;
  const std::string defaults = describe(AppConfig{});
  CHECK(describe(load_config(dir.write("empty.toml", ""), {})) == defaults);
  CHECK(describe(load_config(dir.write("comments.toml", "# nothing here\n\n"), {})) == defaults);
  CHECK(describe(load_config(dir.write("sections.toml",
                                       "[server]\n[http]\n[gateway]\n[gateway.tiers]\n"
                                       "[gateway.tiers.vip]\n[log]\n[llm]\n"),
                             {})) == defaults);
}

TEST_CASE("config: the shipped config/talkserve.toml is valid and states the defaults",
          "[app][config]") {
  const std::filesystem::path shipped =
      std::filesystem::path(TALKSERVE_TEST_SOURCE_DIR) / "config" / "talkserve.toml";
  REQUIRE(std::filesystem::is_regular_file(shipped));
  CHECK(describe(load_config(shipped.string(), {})) == describe(AppConfig{}));
}
