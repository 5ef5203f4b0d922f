// Command-line parsing. A parse error is what main() turns into exit status 2 with the usage
// on stderr (see main.cpp); these tests check the parser's half of that contract.

#include <catch2/catch.hpp>
#include <initializer_list>
#include <string>
#include <vector>

#include "app_test_support.hpp"
#include "cli.hpp"
#include "talkserve/app/config.hpp"

using namespace talkserve::app;
using Catch::Contains;

namespace {

// parse_cli over {"talkserve", args...}.
CliParse parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv{"talkserve"};
  argv.insert(argv.end(), args.begin(), args.end());
  return parse_cli(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("cli: no arguments means defaults and run the server", "[app][cli]") {
  auto r = parse({});
  REQUIRE(r.options);
  CHECK(r.error.empty());
  CHECK(r.options->config_path.empty());
  CHECK(r.options->overrides.empty());
  CHECK_FALSE(r.options->check_config);
  CHECK_FALSE(r.options->show_help);
  CHECK_FALSE(r.options->show_version);
}

TEST_CASE("cli: --help, -h and --version", "[app][cli]") {
  CHECK(parse({"--help"}).options->show_help);
  CHECK(parse({"-h"}).options->show_help);
  auto v = parse({"--version"});
  REQUIRE(v.options);
  CHECK(v.options->show_version);
  CHECK_FALSE(v.options->show_help);
}

TEST_CASE("cli: --check-config with a file and overrides", "[app][cli]") {
  auto r = parse({"--config", "/etc/talkserve.toml", "--check-config", "--set", "http.port=0"});
  REQUIRE(r.options);
  CHECK(r.options->check_config);
  CHECK(r.options->config_path == "/etc/talkserve.toml");
  CHECK(r.options->overrides == std::vector<std::string>{"http.port=0"});
}

TEST_CASE("cli: --config FILE and --config=FILE", "[app][cli]") {
  CHECK(parse({"--config", "a.toml"}).options->config_path == "a.toml");
  CHECK(parse({"--config=b.toml"}).options->config_path == "b.toml");
  // The last one wins.
  CHECK(parse({"--config=a.toml", "--config", "c.toml"}).options->config_path == "c.toml");
}

TEST_CASE("cli: --set is repeatable and keeps the order", "[app][cli]") {
  auto r = parse({"--set", "http.port=9000", "--set=log.level=debug", "--set", "http.port=9001",
                  "--set", "llm.name=a=b"});
  REQUIRE(r.options);
  CHECK(r.options->overrides == std::vector<std::string>{"http.port=9000", "log.level=debug",
                                                         "http.port=9001", "llm.name=a=b"});
}

TEST_CASE("cli: repeated --set reaches load_config in order (last wins)", "[app][cli]") {
  auto r = parse({"--check-config", "--set", "http.port=9000", "--set", "http.port=9001", "--set",
                  "llm.enabled=false", "--set", "talk.enabled=false"});
  REQUIRE(r.options);
  AppConfig c = load_config(r.options->config_path, r.options->overrides);
  CHECK(c.http.port == 9001);
  CHECK_FALSE(c.llm.enabled);
}

TEST_CASE("cli: a flag missing its value is a usage error", "[app][cli]") {
  auto c = parse({"--config"});
  CHECK_FALSE(c.options);
  CHECK_THAT(c.error, Contains("--config needs a file name"));
  auto e = parse({"--config="});
  CHECK_FALSE(e.options);
  CHECK_THAT(e.error, Contains("--config needs a file name"));
  auto s = parse({"--check-config", "--set"});
  CHECK_FALSE(s.options);
  CHECK_THAT(s.error, Contains("--set needs section.key=value"));
}

TEST_CASE("cli: an unknown argument is a usage error naming it", "[app][cli]") {
  for (const char* arg : {"--frobnicate", "-x", "talkserve.toml", "--configure", "--settings",
                          "--set-port=1", "--help=yes", "-"}) {
    INFO(arg);
    auto r = parse({"--check-config", arg});
    CHECK_FALSE(r.options);
    CHECK(r.error == std::string("unknown argument: ") + arg);
  }
}

TEST_CASE("cli: the usage text lists every flag and the exit statuses", "[app][cli]") {
  const std::string u = usage_text();
  CHECK_THAT(u, Contains("usage: talkserve"));
  for (const char* flag : {"--config", "--set", "--check-config", "--version", "--help"}) {
    CHECK_THAT(u, Contains(flag));
  }
  CHECK_THAT(u, Contains("2 on bad usage"));
}
