// Structural errors: unknown sections and keys, wrong types, out-of-range integers, missing
// and unreadable files, TOML syntax errors. Every message names the key (or file and line).

#include <catch2/catch.hpp>
#include <filesystem>

#include "app_test_support.hpp"
#include "talkserve/app/config.hpp"

using namespace talkserve;
using namespace talkserve::app;
using namespace talkserve::app::test;
using Catch::Contains;
using Catch::StartsWith;

TEST_CASE("config errors: an unknown section names it", "[app][config][errors]") {
  CHECK_THAT(config_error("[htpp]\nport = 8080\n"), StartsWith("htpp: unknown section"));
  CHECK_THAT(config_error("[avatars]\n"), StartsWith("avatars: unknown section"));
  // A top-level key outside any section is not a section either.
  CHECK_THAT(config_error("port = 8080\n"), StartsWith("port: unknown section"));
}

TEST_CASE("config errors: an unknown key names section.key", "[app][config][errors]") {
  struct Case {
    const char* toml;
    const char* expected;
  };
  const Case cases[] = {
      {"[server]\ndrain_grace = 5\n", "server.drain_grace: unknown key"},
      {"[http]\nportt = 8080\n", "http.portt: unknown key"},
      {"[http]\nheader_timeout = 5\n", "http.header_timeout: unknown key"},
      {"[gateway]\nmax_inflight = 5\n", "gateway.max_inflight: unknown key"},
      {"[gateway.tiers.gold]\nburst = 5.0\n", "gateway.tiers.gold: unknown key"},
      {"[gateway.tiers.vip]\nrate = 5.0\n", "gateway.tiers.vip.rate: unknown key"},
      {"[[gateway.keys]]\nname = \"a\"\nkey = \"k\"\ntierr = \"vip\"\n",
       "gateway.keys[0].tierr: unknown key"},
      {"[log]\nlevel = \"info\"\nfile = \"/var/log/x\"\n", "log.file: unknown key"},
      {"[llm]\nmax_num_seqz = 3\n", "llm.max_num_seqz: unknown key"},
  };
  for (const auto& c : cases) {
    INFO(c.toml);
    CHECK_THAT(config_error(c.toml), StartsWith(c.expected));
  }
}

TEST_CASE("config errors: a value of the wrong type names the key and the type",
          "[app][config][errors]") {
  struct Case {
    const char* toml;
    const char* expected;
  };
  const Case cases[] = {
      {"[http]\nport = \"eighty\"\n", "http.port: must be an integer"},
      {"[http]\nport = 80.0\n", "http.port: must be an integer"},
      {"[http]\nio_threads = true\n", "http.io_threads: must be an integer"},
      {"[server]\ndrain_grace_ms = \"10s\"\n", "server.drain_grace_ms: must be an integer"},
      {"[server]\nmodels_dir = 5\n", "server.models_dir: must be a string"},
      {"[http]\nhost = 127\n", "http.host: must be a string"},
      {"[http]\ncors_allowed_origins = \"*\"\n",
       "http.cors_allowed_origins: must be an array of strings"},
      {"[http]\ncors_allowed_origins = [\"*\", 1]\n",
       "http.cors_allowed_origins: must be an array of strings"},
      {"[llm]\nprefix_caching = 3\n", "llm.prefix_caching: must be true or false"},
      {"[llm]\nenabled = 1\n", "llm.enabled: must be true or false"},
      {"[llm]\nenabled = \"yes\"\n", "llm.enabled: must be true or false"},
      {"[log]\nlevel = 3\n", "log.level: must be a string"},
      {"[gateway.tiers.vip]\nrate_per_s = \"fast\"\n",
       "gateway.tiers.vip.rate_per_s: must be a number"},
      {"[gateway.tiers.vip]\nburst = false\n", "gateway.tiers.vip.burst: must be a number"},
      {"[gateway]\ntiers = 1\n", "gateway.tiers: must be a table"},
      {"[gateway.tiers]\nvip = 1\n", "gateway.tiers.vip: must be a table"},
      {"[gateway]\nkeys = 1\n", "gateway.keys: must be an array of tables"},
      {"[gateway]\nkeys = [1]\n", "gateway.keys[0]: must be a table"},
      {"[[gateway.keys]]\nname = \"a\"\nkey = \"k\"\nburst = \"lots\"\n",
       "gateway.keys[0].burst: must be a number"},
      {"[[gateway.keys]]\nname = 7\nkey = \"k\"\n", "gateway.keys[0].name: must be a string"},
      {"http = 8080\n", "http: must be a table"},
  };
  for (const auto& c : cases) {
    INFO(c.toml);
    CHECK_THAT(config_error(c.toml), StartsWith(c.expected));
  }
}

TEST_CASE("config errors: an integer out of the field's range names the key",
          "[app][config][errors]") {
  CHECK_THAT(config_error("", {"http.port=65536"}), StartsWith("http.port: is out of range"));
  CHECK_THAT(config_error("", {"http.port=-1"}), StartsWith("http.port: is out of range"));
  CHECK_THAT(config_error("", {"http.max_body_bytes=-1"}),
             StartsWith("http.max_body_bytes: is out of range"));
  CHECK_THAT(config_error("", {"gateway.max_in_flight=-5"}),
             StartsWith("gateway.max_in_flight: is out of range"));
  CHECK_THAT(config_error("", {"llm.max_queue=3000000000"}),
             StartsWith("llm.max_queue: is out of range"));
  // A negative value that fits a signed field reaches validate(), which says why it is wrong.
  CHECK_THAT(config_error("", {"llm.threads=-1"}), StartsWith("llm.threads must be >= 0"));
  CHECK_THAT(config_error("", {"server.drain_grace_ms=-1"}),
             StartsWith("server.drain_grace_ms: must be >= 0"));
}

TEST_CASE("config errors: a missing config file is a clear error", "[app][config][errors]") {
  TempDir dir;
  const std::string missing = (dir.path() / "nope.toml").string();
  auto msg = config_error_for_path(missing);
  CHECK_THAT(msg, Contains(missing) && Contains("not found"));

  auto dir_msg = config_error_for_path(dir.path().string());
  CHECK_THAT(dir_msg, Contains(dir.path().string()) && Contains("is a directory"));
}

TEST_CASE("config errors: a TOML syntax error reports file, line and column",
          "[app][config][errors]") {
  TempDir dir;
  struct Case {
    const char* toml;
    const char* line;  // ":<line>:" expected right after the path
  };
  const Case cases[] = {
      {"[http\nport = 1\n", ":1:"},
      {"[server]\ndrain_grace_ms = 1\n[http]\nport = \n", ":4:"},
      {"[http]\nport = 1\n\n\nport = 2\n", ":5:"},          // duplicate key
      {"[llm]\nmodel = \"unterminated\n", ":2:"},           // unterminated string
      {"[log]\nlevel = info\n", ":2:"},                     // bare word value
      {"[http]\nhost = \"a\"\n[http]\nport = 1\n", ":3:"},  // table defined twice
  };
  for (const auto& c : cases) {
    const auto path = dir.write("bad.toml", c.toml);
    auto msg = config_error_for_path(path);
    INFO(c.toml << "\n=> " << msg);
    CHECK_THAT(msg, StartsWith(path + c.line));
    // Line, then column, then toml++'s description of the problem.
    CHECK(msg.size() > path.size() + std::string(c.line).size() + 3);
  }
}

TEST_CASE("config errors: overrides are applied before the checks", "[app][config][errors]") {
  // A bad value in the file can be fixed with --set (the merged result is what is checked).
  CHECK(load_toml("[http]\nio_threads = -1\n", {"http.io_threads=2"}).http.io_threads == 2);
  // And --set can break a good file.
  CHECK_THAT(config_error("[http]\nio_threads = 2\n", {"http.io_threads=-1"}),
             StartsWith("http.io_threads"));
}
