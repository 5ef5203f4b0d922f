// Why: with glibc's defaults a server like this one grows its resident memory for minutes
// under steady load without leaking. Every thread that allocates may get its own arena (up
// to 8 per core), and each arena keeps freed memory for reuse by that arena only. And the
// mmap threshold is dynamic: once a large block (an audio upload, a video frame) has been
// freed, blocks of that size come from the arenas instead of mmap, where they fragment the
// heap instead of going back to the kernel on free. A 10-minute soak at twice the capacity
// (docs/load.md) grew 5% with the defaults and shrank with these settings.

#include "heap_tuning.hpp"

#include <cstdlib>
#include <spdlog/spdlog.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace talkserve::app {

void tune_heap(const ServerConfig& config) {
#if defined(__GLIBC__)
  const auto apply = [](const char* env, int param, long value, const char* key) {
    if (std::getenv(env) != nullptr) {
      spdlog::info("heap: {} from the environment ({}={}) instead of server.{}", key, env,
                   std::getenv(env), key);
      return;
    }
    if (value <= 0) return;  // glibc's default
    if (mallopt(param, static_cast<int>(value)) != 1) {
      spdlog::warn("heap: mallopt refused server.{} = {}", key, value);
    }
  };
  apply("MALLOC_ARENA_MAX", M_ARENA_MAX, config.malloc_arena_max, "malloc_arena_max");
  apply("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, static_cast<long>(config.malloc_mmap_threshold_kb) * 1024,
        "malloc_mmap_threshold_kb");
  spdlog::debug("heap: malloc_arena_max {}, malloc_mmap_threshold_kb {}", config.malloc_arena_max,
                config.malloc_mmap_threshold_kb);
#else
  (void)config;
#endif
}

}  // namespace talkserve::app
