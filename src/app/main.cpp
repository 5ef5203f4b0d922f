// talkserve: the server executable.

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <spdlog/spdlog.h>

#include "cli.hpp"
#include "heap_tuning.hpp"
#include "server_app.hpp"
#include "talkserve/app/config.hpp"
#include "talkserve/gateway/api_key.hpp"

int main(int argc, char** argv) {
  using namespace talkserve::app;
  auto cli = parse_cli(argc, argv);
  if (!cli.options) {
    std::fprintf(stderr, "talkserve: %s\n\n%s", cli.error.c_str(), usage_text().c_str());
    return 2;
  }
  const auto& opts = *cli.options;
  if (opts.show_help) {
    std::fputs(usage_text().c_str(), stdout);
    return 0;
  }
  if (opts.hash_key) {
    // The key comes on stdin, not argv, so it does not land in the shell history or `ps`.
    std::string key;
    std::getline(std::cin, key);
    if (!key.empty() && key.back() == '\r') key.pop_back();
    bool printable = !key.empty();
    for (unsigned char c : key) printable = printable && c > 0x20 && c < 0x7f;
    if (!printable) {
      std::fprintf(stderr,
                   "talkserve: --hash-key: expected one API key on stdin (printable ASCII, no "
                   "spaces)\n");
      return 2;
    }
    std::printf("sha256:%s\n", talkserve::gateway::sha256_hex(key).c_str());
    return 0;
  }
  if (opts.show_version) {
    std::printf("talkserve %s\n", TALKSERVE_VERSION);
    return 0;
  }
  AppConfig config;
  try {
    config = load_config(opts.config_path, opts.overrides);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "talkserve: bad configuration: %s\n", e.what());
    return 2;
  }
  if (opts.check_config) {
    std::printf("configuration ok\n");
    return 0;
  }
  try {
    talkserve::obs::init_logging(config.log);
    tune_heap(config.server);
    ServerApp app(std::move(config));
    return app.run();
  } catch (const std::exception& e) {
    spdlog::critical("talkserve failed: {}", e.what());
    return 1;
  }
}
