#pragma once
// Command-line parsing for the talkserve executable.

#include <optional>
#include <string>
#include <vector>

namespace talkserve::app {

struct CliOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set section.key=value
  bool check_config = false;
  bool show_version = false;
  bool show_help = false;
  bool hash_key = false;  // read an API key on stdin, print its keys-file form and exit
};

// Returns the options, or an error message for bad usage (exit status 2).
struct CliParse {
  std::optional<CliOptions> options;
  std::string error;
};
CliParse parse_cli(int argc, const char* const* argv);
std::string usage_text();

}  // namespace talkserve::app
