#pragma once
// glibc heap settings for a long-running server, applied once at start-up.

#include "talkserve/app/config.hpp"

namespace talkserve::app {

// Applies server.malloc_arena_max and server.malloc_mmap_threshold_kb with mallopt(3), unless
// the operator set the matching MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ environment variable
// (which then wins). Logs what is in effect. A no-op outside glibc.
void tune_heap(const ServerConfig& config);

}  // namespace talkserve::app
