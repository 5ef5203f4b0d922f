#include "support/checks.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <stdexcept>

namespace talkserve::itest {

void check_error(const HttpResponse& res, unsigned status, const std::string& type,
                 const std::string& message_mentions) {
  INFO("status " << res.status << " body: " << res.body);
  CHECK(res.status == status);
  nlohmann::json j;
  REQUIRE_NOTHROW(j = res.json());
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["message"].is_string());
  CHECK(j["error"]["type"].is_string());
  CHECK(j["error"].contains("code"));
  if (!type.empty()) CHECK(j["error"]["type"] == type);
  if (!message_mentions.empty()) {
    CHECK_THAT(j["error"]["message"].get<std::string>(), Catch::Contains(message_mentions));
  }
}

std::string run_command(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("cannot run: " + command);
  char buf[65536];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  pclose(p);
  return out;
}

}  // namespace talkserve::itest
