// The systemd unit keeps its hardening (docs/security.md lists why each line is there), and
// systemd itself accepts the file: `systemd-analyze verify` finds no unknown or bad keys and
// `systemd-analyze security --offline` rates its exposure low. A box without systemd-analyze
// skips those two checks and says so.

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

namespace {

// key -> every value assigned to it in [Service], comments and other sections left out.
std::multimap<std::string, std::string> service_section(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  std::multimap<std::string, std::string> out;
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      section = line;
      continue;
    }
    if (section != "[Service]") continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    out.emplace(line.substr(0, eq), line.substr(eq + 1));
  }
  return out;
}

std::vector<std::string> values(const std::multimap<std::string, std::string>& s,
                                const std::string& key) {
  std::vector<std::string> out;
  auto [a, b] = s.equal_range(key);
  for (auto it = a; it != b; ++it) out.push_back(it->second);
  return out;
}

// The single value of `key` ("" if absent; a test failure if assigned twice).
std::string value(const std::multimap<std::string, std::string>& s, const std::string& key) {
  auto v = values(s, key);
  INFO(key);
  REQUIRE(v.size() <= 1);
  return v.empty() ? std::string{} : v.front();
}

struct Run {
  int status = -1;
  std::string output;  // stdout and stderr
};

Run run(const std::string& command) {
  Run r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// A copy of the unit whose ExecStart names an executable that exists here (verify checks it).
std::string unit_copy(const std::filesystem::path& dir) {
  std::ifstream in(TALKSERVE_UNIT_FILE);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  const std::string from = "/opt/talkserve/bin/talkserve";
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), "/bin/true");
  const auto path = dir / "talkserve.service";
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST_CASE("systemd unit: dedicated user and no privileges", "[deploy]") {
  const auto s = service_section(TALKSERVE_UNIT_FILE);
  const bool dynamic = value(s, "DynamicUser") == "yes";
  CHECK((dynamic || value(s, "User") == "talkserve"));
  CHECK(value(s, "NoNewPrivileges") == "yes");
  // An empty CapabilityBoundingSet= drops every capability; nothing may add one back.
  CHECK(values(s, "CapabilityBoundingSet") == std::vector<std::string>{""});
  CHECK(values(s, "AmbientCapabilities").empty());
  CHECK(value(s, "RestrictSUIDSGID") == "yes");
}

TEST_CASE("systemd unit: file system, kernel and syscall hardening", "[deploy]") {
  const auto s = service_section(TALKSERVE_UNIT_FILE);
  CHECK(value(s, "ProtectSystem") == "strict");
  CHECK(value(s, "ProtectHome") == "yes");
  CHECK(value(s, "PrivateTmp") == "yes");
  // The only writable place is the cache (clips, CUDA JIT), set up by systemd.
  CHECK((!value(s, "CacheDirectory").empty() || !values(s, "ReadWritePaths").empty()));
  for (const char* key : {"ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                          "ProtectControlGroups", "ProtectClock", "ProtectHostname",
                          "LockPersonality", "RestrictRealtime", "RestrictNamespaces"}) {
    INFO(key);
    CHECK(value(s, key) == "yes");
  }
  CHECK(value(s, "SystemCallFilter") == "@system-service");
  CHECK(value(s, "SystemCallArchitectures") == "native");
  CHECK(value(s, "RestrictAddressFamilies") == "AF_UNIX AF_INET AF_INET6 AF_NETLINK");
  CHECK_FALSE(value(s, "MemoryMax").empty());
  CHECK(value(s, "DevicePolicy") == "closed");
  CHECK(value(s, "UMask") == "0027");
}

TEST_CASE("systemd unit: systemd-analyze verify and security accept it", "[deploy]") {
  const std::string analyze = TALKSERVE_SYSTEMD_ANALYZE;
  if (analyze.empty() || analyze.ends_with("-NOTFOUND")) {
    WARN("systemd-analyze is not installed: skipping `systemd-analyze verify` of the unit");
    return;
  }
  talkserve::test::TempDir dir;
  const auto unit = unit_copy(dir.path());
  const auto verify = run(analyze + " verify '" + unit + "'");
  INFO(verify.output);
  CHECK(verify.status == 0);
  // verify exits 0 on unknown keys, only warning about them (naming the file).
  CHECK(verify.output.find("talkserve.service") == std::string::npos);

  // Exposure on systemd's 0 (locked down) .. 10 (unprotected) scale, x10: below 3.0.
  const auto security = run(analyze + " security --offline=true --threshold=30 '" + unit + "'");
  INFO(security.output);
  if (security.output.find("--offline") != std::string::npos &&
      security.output.find("nrecognized") != std::string::npos) {
    WARN("this systemd-analyze has no `security --offline`: exposure not checked");
    return;
  }
  CHECK(security.status == 0);
  CHECK(security.output.find("Overall exposure level") != std::string::npos);
}
