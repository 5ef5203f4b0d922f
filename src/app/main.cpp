// talkserve: the server executable.

#include <cstdio>
#include <exception>
#include <spdlog/spdlog.h>

#include "cli.hpp"
#include "server_app.hpp"
#include "talkserve/app/config.hpp"

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
    ServerApp app(std::move(config));
    return app.run();
  } catch (const std::exception& e) {
    spdlog::critical("talkserve failed: {}", e.what());
    return 1;
  }
}
