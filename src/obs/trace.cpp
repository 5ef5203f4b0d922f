#include "talkserve/obs/trace.hpp"

#include <cstdint>
#include <random>

namespace talkserve::obs {

namespace {

constexpr std::size_t kV00Length = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool all_lower_hex(std::string_view s) {
  for (char c : s)
    if (!is_lower_hex(c)) return false;
  return true;
}

bool all_zero(std::string_view s) {
  return s.find_first_not_of('0') == std::string_view::npos;
}

unsigned hex_value(char c) {
  return c <= '9' ? unsigned(c - '0') : unsigned(c - 'a' + 10);
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// splitmix64: tiny and fast; a per-thread state seeded from the OS is plenty for ids that must
// be unique, not unguessable.
struct IdGenerator {
  std::uint64_t state;
  IdGenerator() {
    std::random_device rd;
    state = (std::uint64_t(rd()) << 32) ^ rd();
  }
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

void append_hex64(std::string& out, std::uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out += kDigits[(v >> shift) & 0xf];
}

std::string random_hex(int words) {
  thread_local IdGenerator gen;
  std::string out;
  out.reserve(std::size_t(words) * 16);
  std::uint64_t any = 0;
  for (int i = 0; i < words; ++i) {
    std::uint64_t w = gen.next();
    if (i == words - 1 && (any | w) == 0) w = 1;  // all-zero ids are invalid in W3C
    any |= w;
    append_hex64(out, w);
  }
  return out;
}

}  // namespace

std::optional<TraceParent> parse_traceparent(std::string_view header) {
  const std::string_view s = trim_ows(header);
  if (s.size() < kV00Length) return std::nullopt;
  const std::string_view version = s.substr(0, 2);
  if (!all_lower_hex(version) || version == "ff") return std::nullopt;
  if (version == "00" ? s.size() != kV00Length : (s.size() > kV00Length && s[kV00Length] != '-'))
    return std::nullopt;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-') return std::nullopt;
  const std::string_view trace_id = s.substr(3, 32);
  const std::string_view parent_id = s.substr(36, 16);
  const std::string_view flags = s.substr(53, 2);
  if (!all_lower_hex(trace_id) || !all_lower_hex(parent_id) || !all_lower_hex(flags))
    return std::nullopt;
  if (all_zero(trace_id) || all_zero(parent_id)) return std::nullopt;
  return TraceParent{std::string(trace_id), std::string(parent_id),
                     hex_value(flags[0]) * 16 + hex_value(flags[1])};
}

bool is_sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

std::string generate_trace_id() {
  return random_hex(2);
}
std::string generate_span_id() {
  return random_hex(1);
}

std::string resolve_trace_id(std::optional<std::string_view> traceparent,
                             std::optional<std::string_view> request_id) {
  if (traceparent)
    if (auto tp = parse_traceparent(*traceparent)) return std::move(tp->trace_id);
  if (request_id) {
    const std::string_view id = trim_ows(*request_id);
    if (is_sane_request_id(id)) return std::string(id);
  }
  return generate_trace_id();
}

std::string format_traceparent(std::string_view trace_id, std::string_view span_id, bool sampled) {
  std::string tid(trace_id);
  if (tid.size() != 32 || !all_lower_hex(tid) || all_zero(tid)) tid = generate_trace_id();
  std::string sid(span_id);
  if (sid.size() != 16 || !all_lower_hex(sid) || all_zero(sid)) sid = generate_span_id();
  return "00-" + tid + "-" + sid + (sampled ? "-01" : "-00");
}

}  // namespace talkserve::obs
