#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "talkserve/obs/log.hpp"

using namespace talkserve::obs;

namespace {
std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}
}  // namespace

TEST_CASE("log: text lines carry the trace id", "[obs][log]") {
  std::ostringstream os;
  init_logging("info", "text", std::make_shared<spdlog::sinks::ostream_sink_mt>(os));
  RequestLogger log{"abc123"};
  log.info("admitted key={} tier={}", "alice", "vip");
  log.debug("below the level: {}", 1);
  spdlog::warn("not about a request");
  const auto lines = lines_of(os.str());
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find(" info trace_id=abc123 admitted key=alice tier=vip") != std::string::npos);
  CHECK(lines[1].find(" warn not about a request") != std::string::npos);
  CHECK(lines[1].find("trace_id") == std::string::npos);
}

TEST_CASE("log: json lines are valid JSON with escaped messages", "[obs][log]") {
  std::ostringstream os;
  init_logging(ObsConfig{"debug", "json"}, std::make_shared<spdlog::sinks::ostream_sink_mt>(os));
  RequestLogger log{"req\"1"};
  log.debug("quote \" backslash \\ newline \n tab \t ctrl \x01 bad utf8 \xff\xfe ok \xc3\xa9");
  log.error("{}", "plain");
  spdlog::info("no trace");
  const auto lines = lines_of(os.str());
  REQUIRE(lines.size() == 3);
  const auto a = nlohmann::json::parse(lines[0]);
  CHECK(a["level"] == "debug");
  CHECK(a["trace_id"] == "req\"1");
  CHECK(a["msg"] ==
        "quote \" backslash \\ newline \n tab \t ctrl \x01 bad utf8 \xef\xbf\xbd\xef\xbf\xbd ok "
        "\xc3\xa9");
  CHECK(a["ts"].get<std::string>().size() == 24);  // 2024-05-01T12:00:00.123Z
  const auto b = nlohmann::json::parse(lines[1]);
  CHECK(b["level"] == "error");
  CHECK(b["msg"] == "plain");
  const auto c = nlohmann::json::parse(lines[2]);
  CHECK_FALSE(c.contains("trace_id"));
  CHECK(c["msg"] == "no trace");
}

TEST_CASE("log: bad level or format is rejected", "[obs][log]") {
  CHECK_THROWS_AS(init_logging("loud", "text"), std::invalid_argument);
  CHECK_THROWS_AS(init_logging("info", "xml"), std::invalid_argument);
  CHECK(parse_log_level("warning") == LogLevel::warn);
  ObsConfig cfg;
  CHECK_NOTHROW(cfg.validate());
  cfg.log_level = "verbose";
  CHECK_THROWS_WITH(cfg.validate(), Catch::Contains("obs.log_level") && Catch::Contains("verbose"));
  cfg.log_level = "error";
  cfg.log_format = "yaml";
  CHECK_THROWS_WITH(cfg.validate(), Catch::Contains("obs.log_format"));
}
