#pragma once
// Helpers for the src/app tests: a private temporary directory, and a load_config wrapper that
// returns the ConfigError message (any other exception escapes and fails the test).

#include <filesystem>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

#include "talkserve/app/config.hpp"

namespace talkserve::app::test {

using TempDir = talkserve::test::TempDir;

// load_config from TOML text written to a temp file (text "" = no file at all).
AppConfig load_toml(const std::string& toml, const std::vector<std::string>& overrides = {});

// The ConfigError message of load_toml(toml, overrides); fails the current test if it loads.
std::string config_error(const std::string& toml, const std::vector<std::string>& overrides = {});
// The same for a file path.
std::string config_error_for_path(const std::string& path,
                                  const std::vector<std::string>& overrides = {});

// Every field of the configuration as "section.key=value" lines, in the file's key names, so
// two configurations can be compared as strings (and a difference shows which key differs).
std::string describe(const AppConfig& c);

}  // namespace talkserve::app::test
