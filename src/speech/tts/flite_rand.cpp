// No <cstdlib> here: this file defines rand() itself (see flite_rand.hpp).
#include "speech/tts/flite_rand.hpp"

#include <dlfcn.h>

#include <cstdint>

namespace {

thread_local bool t_deterministic = false;
thread_local std::uint64_t t_state = 0;

constexpr std::uint64_t kSeed = 0x853c49e6748fea9bULL;

using RandFn = int (*)();

RandFn libc_rand() {
  static const RandFn real = reinterpret_cast<RandFn>(dlsym(RTLD_NEXT, "rand"));
  return real;
}

}  // namespace

namespace talkserve::speech::detail {

FliteRandScope::FliteRandScope() noexcept {
  t_deterministic = true;
  t_state = kSeed;
}

FliteRandScope::~FliteRandScope() { t_deterministic = false; }

}  // namespace talkserve::speech::detail

extern "C" int rand() noexcept {
  if (t_deterministic) {
    // 64-bit LCG (Knuth's MMIX constants); the top 31 bits span [0, RAND_MAX] like glibc.
    t_state = t_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int>(t_state >> 33);
  }
  const RandFn real = libc_rand();
  return real != nullptr ? real() : 0;
}
