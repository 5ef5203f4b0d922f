#pragma once
// Helpers for the src/app tests: a private temporary directory, and a load_config wrapper that
// returns the ConfigError message (any other exception escapes and fails the test).

#include <filesystem>
#include <string>
#include <vector>

#include "talkserve/app/config.hpp"

namespace talkserve::app::test {

// A fresh directory under the system temp dir (mkdtemp), removed with its contents on
// destruction. Each instance is unique, so tests may run in parallel processes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Writes `text` to path()/name and returns the full path.
  std::string write(const std::string& name, const std::string& text) const;

 private:
  std::filesystem::path path_;
};

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
