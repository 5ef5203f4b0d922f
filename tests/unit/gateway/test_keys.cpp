#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "talkserve/gateway/api_key.hpp"
#include "talkserve/gateway/gateway_config.hpp"
#include "talkserve/gateway/keys_file.hpp"

using namespace talkserve::gateway;

namespace {

// sha256("test") from any sha256 tool.
const std::string kTestSha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

// A file in the test binary directory, removed when the test ends.
struct TempFile {
  explicit TempFile(const std::string& contents) {
    const char* dir = std::getenv("TALKSERVE_BINARY_DIR");
    path = (dir ? std::filesystem::path(dir) : std::filesystem::temp_directory_path()) /
           ("keys-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::ofstream(path) << contents;
  }
  ~TempFile() { std::filesystem::remove(path); }
  std::filesystem::path path;
  static inline int counter = 0;
};

std::vector<ApiKey> parse(const std::string& text, const GatewayConfig& cfg = {}) {
  std::istringstream in(text);
  return parse_keys_file(in, "keys.txt", cfg);
}

}  // namespace

TEST_CASE("keys: sha256 hashing", "[gateway][keys]") {
  CHECK(sha256_hex("test") == kTestSha);
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const auto d =
      parse_sha256_hex("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08");
  REQUIRE(d);
  CHECK(to_hex(*d) == kTestSha);
  CHECK_FALSE(parse_sha256_hex(kTestSha.substr(1)));
  CHECK_FALSE(parse_sha256_hex(kTestSha.substr(1) + "g"));
}

TEST_CASE("keys: store finds the right key and rejects others", "[gateway][keys]") {
  KeyStore store(
      {{"alice", sha256_hex("sk-alice"), Tier::vip, 1, 1}, {"bob", kTestSha, Tier::batch, 1, 1}});
  CHECK(store.find("sk-alice") == std::optional<std::size_t>(0));
  CHECK(store.find("test") == std::optional<std::size_t>(1));
  CHECK_FALSE(store.find("sk-alic"));
  CHECK_FALSE(store.find(""));
  CHECK_THROWS_WITH(
      KeyStore({{"a", kTestSha, Tier::vip, 1, 1}, {"a", sha256_hex("x"), Tier::vip, 1, 1}}),
      Catch::Contains("'a'"));
  CHECK_THROWS_WITH(KeyStore({{"a", kTestSha, Tier::vip, 1, 1}, {"b", kTestSha, Tier::vip, 1, 1}}),
                    Catch::Contains("same secret"));
}

TEST_CASE("keys file: good lines", "[gateway][keys]") {
  GatewayConfig cfg;
  const auto keys = parse(
      "# comment\n"
      "\n"
      "   # indented comment\n"
      "alice vip sha256:" +
      kTestSha +
      "\n"
      "bob\tBATCH\tkey:sk-bob   0.5 5\r\n"
      "carol standard key:sk-carol\n");
  REQUIRE(keys.size() == 3);
  CHECK(keys[0].name == "alice");
  CHECK(keys[0].tier == Tier::vip);
  CHECK(keys[0].sha256_hex == kTestSha);
  CHECK(keys[0].rate_per_s == cfg.vip.rate_per_s);
  CHECK(keys[0].burst == cfg.vip.burst);
  CHECK(keys[1].name == "bob");
  CHECK(keys[1].tier == Tier::batch);
  CHECK(keys[1].sha256_hex == sha256_hex("sk-bob"));
  CHECK(keys[1].rate_per_s == 0.5);
  CHECK(keys[1].burst == 5);
  CHECK(keys[2].tier == Tier::standard);
  CHECK(keys[2].rate_per_s == cfg.standard.rate_per_s);
}

TEST_CASE("keys file: bad lines name the file and line, never the secret", "[gateway][keys]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"alice vip\n", "2 fields"},
      {"alice vip key:s 1\n", "4 fields"},
      {"alice gold key:s\n", "unknown tier 'gold'"},
      {"alice vip sk-secret-without-prefix\n", "'sha256:' or 'key:'"},
      {"alice vip sha256:abc\n", "64 hex"},
      {"alice vip key:\n", "followed by the secret"},
      {"alice vip key:s 0 5\n", "rate_per_s '0'"},
      {"alice vip key:s 1 0.5\n", "burst '0.5'"},
      {"alice vip key:s x 5\n", "rate_per_s 'x'"},
      {"alice vip key:s\nalice batch key:t\n", "used twice"},
  };
  for (const auto& [text, what] : cases) {
    INFO(text);
    const std::string full = "# header\n" + text;
    try {
      parse(full);
      FAIL("expected an error");
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      CHECK(msg.find(what) != std::string::npos);
      const bool second_key_line = text.find("alice batch") != std::string::npos;
      CHECK(msg.rfind(second_key_line ? "keys.txt:3:" : "keys.txt:2:", 0) == 0);
      CHECK(msg.find("sk-secret") == std::string::npos);
    }
  }
}

TEST_CASE("keys file: loaded from disk and merged with inline keys", "[gateway][keys]") {
  TempFile file("bob batch key:sk-bob\n");
  GatewayConfig cfg;
  cfg.keys_file = file.path.string();
  cfg.keys.push_back({"alice", "sk-alice", "", Tier::vip, 7.0, std::nullopt, {}});
  REQUIRE_NOTHROW(cfg.validate());
  const auto keys = load_api_keys(cfg);
  REQUIRE(keys.size() == 2);
  CHECK(keys[0].name == "alice");
  CHECK(keys[0].sha256_hex == sha256_hex("sk-alice"));
  CHECK(keys[0].rate_per_s == 7.0);
  CHECK(keys[0].burst == cfg.vip.burst);
  CHECK(keys[1].name == "bob");

  TempFile clash("alice standard key:other\n");
  cfg.keys_file = clash.path.string();
  CHECK_THROWS_WITH(load_api_keys(cfg), Catch::Contains("'alice'"));

  TempFile bad("ok vip key:a\nbroken\n");
  cfg.keys_file = bad.path.string();
  CHECK_THROWS_WITH(load_api_keys(cfg), Catch::StartsWith(bad.path.string() + ":2:"));
  CHECK_THROWS_WITH(load_keys_file("/nonexistent/keys", cfg), Catch::Contains("cannot open"));
}

TEST_CASE("gateway config: validate names the bad key", "[gateway][config]") {
  GatewayConfig ok;
  CHECK_NOTHROW(ok.validate());
  const auto fails = [](auto mutate, const std::string& what) {
    GatewayConfig c;
    mutate(c);
    INFO(what);
    CHECK_THROWS_WITH(c.validate(), Catch::Contains(what));
  };
  fails([](GatewayConfig& c) { c.max_in_flight = 0; }, "gateway.max_in_flight must be > 0");
  fails([](GatewayConfig& c) { c.vip.rate_per_s = 0; }, "gateway.tiers.vip.rate_per_s");
  fails([](GatewayConfig& c) { c.batch.burst = 0.5; }, "gateway.tiers.batch.burst");
  fails(
      [](GatewayConfig& c) {
        c.keys.push_back({"", "k", "", Tier::vip, {}, {}, {}});
      },
      "gateway.keys[0].name");
  fails(
      [](GatewayConfig& c) {
        c.keys.push_back({"a", "", "", Tier::vip, {}, {}, {}});
      },
      "gateway.keys[0] ('a'): set exactly one of key or key_sha256");
  fails(
      [](GatewayConfig& c) {
        c.keys.push_back({"a", "k", kTestSha, Tier::vip, {}, {}, {}});
      },
      "exactly one");
  fails(
      [](GatewayConfig& c) {
        c.keys.push_back({"a", "", "12ab", Tier::vip, {}, {}, {}});
      },
      "key_sha256 must be 64 hex");
  fails(
      [](GatewayConfig& c) {
        c.keys.push_back({"a", "k1", "", Tier::vip, {}, {}, {}});
        c.keys.push_back({"a", "k2", "", Tier::vip, {}, {}, {}});
      },
      "gateway.keys[1] ('a'): name is used twice");
  fails(
      [](GatewayConfig& c) {
        c.keys.push_back({"a", "k", "", Tier::vip, -1.0, {}, {}});
      },
      "gateway.keys[0] ('a'): rate_per_s");
  fails([](GatewayConfig& c) { c.keys_file = "/nonexistent/keys"; }, "gateway.keys_file");
}

TEST_CASE("tiers parse and print", "[gateway][tier]") {
  CHECK(parse_tier("vip") == Tier::vip);
  CHECK(parse_tier("Standard") == Tier::standard);
  CHECK(parse_tier("BATCH") == Tier::batch);
  CHECK_FALSE(parse_tier("gold"));
  CHECK(to_string(Tier::batch) == "batch");
  CHECK(priority(Tier::vip) < priority(Tier::standard));
  CHECK(priority(Tier::standard) < priority(Tier::batch));
}
