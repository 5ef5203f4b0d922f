#pragma once
// Test clips: deterministic bytes of a given size that differ per name, so a mixed-up clip is
// noticed.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace talkserve::cache::test {

inline std::string bytes_of(std::string_view name, std::size_t size) {
  std::string out(size, '\0');
  std::uint32_t x = 2166136261u;
  for (char c : name) x = (x ^ static_cast<unsigned char>(c)) * 16777619u;
  for (auto& c : out) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return out;
}

}  // namespace talkserve::cache::test
