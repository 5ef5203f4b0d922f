#include "cli.hpp"

#include <string_view>

namespace talkserve::app {

std::string usage_text() {
  return "usage: talkserve [--config FILE] [--set section.key=value]... [--check-config]\n"
         "                 [--version] [--help] [--hash-key]\n"
         "\n"
         "  --config FILE        TOML configuration (see config/talkserve.toml)\n"
         "  --set KEY=VALUE      override one key, e.g. --set http.port=9000 (repeatable)\n"
         "  --check-config       validate the configuration and exit (0 ok, 2 bad)\n"
         "  --version            print the version and exit\n"
         "  --help               print this help and exit\n"
         "  --hash-key           read an API key on stdin, print sha256:<hex> for the keys\n"
         "                       file (or key_sha256) and exit; the secret is not stored\n"
         "\n"
         "Exit status: 0 after a clean shutdown, 1 on a runtime failure, 2 on bad usage or\n"
         "configuration.\n";
}

CliParse parse_cli(int argc, const char* const* argv) {
  CliOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view flag) -> std::optional<std::string> {
      if (a.size() > flag.size() && a.substr(0, flag.size()) == flag && a[flag.size()] == '=') {
        return std::string(a.substr(flag.size() + 1));
      }
      if (a == flag) {
        if (i + 1 >= argc) return std::nullopt;
        return std::string(argv[++i]);
      }
      return std::nullopt;
    };
    if (a == "--help" || a == "-h") {
      o.show_help = true;
    } else if (a == "--version") {
      o.show_version = true;
    } else if (a == "--hash-key") {
      o.hash_key = true;
    } else if (a == "--check-config") {
      o.check_config = true;
    } else if (a == "--config" || a.starts_with("--config=")) {
      auto v = value("--config");
      if (!v || v->empty()) return {std::nullopt, "--config needs a file name"};
      o.config_path = *v;
    } else if (a == "--set" || a.starts_with("--set=")) {
      auto v = value("--set");
      if (!v) return {std::nullopt, "--set needs section.key=value"};
      o.overrides.push_back(*v);
    } else {
      return {std::nullopt, "unknown argument: " + std::string(a)};
    }
  }
  return {o, {}};
}

}  // namespace talkserve::app
