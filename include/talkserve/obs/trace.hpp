#pragma once
// Trace ids: every request carries one, taken from the caller when it sent a usable one
// (W3C Trace Context `traceparent`, else `X-Request-Id`), otherwise freshly generated, so a
// request can be followed through logs across a load balancer and our own executors.
//
// All functions are thread-safe.

#include <optional>
#include <string>
#include <string_view>

namespace talkserve::obs {

struct TraceParent {
  std::string trace_id;   // 32 lowercase hex, not all zero
  std::string parent_id;  // 16 lowercase hex, not all zero
  unsigned flags = 0;     // bit 0: sampled
};

// Parses a `traceparent` header value: "00-<32 hex>-<16 hex>-<2 hex>", lowercase hex, ids not
// all zero. Surrounding spaces/tabs (HTTP optional whitespace) are ignored. A higher version
// (not "ff") is accepted when its first 55 characters follow the version-00 layout and any
// remainder starts with '-', as the W3C spec asks of forward-compatible parsers.
// Returns nullopt for anything else.
std::optional<TraceParent> parse_traceparent(std::string_view header);

// True for a usable caller-supplied request id: 1..128 printable ASCII characters without
// spaces (0x21..0x7e). It is echoed into logs and headers, so nothing else is trusted.
bool is_sane_request_id(std::string_view id);

// 32 random lowercase hex characters, never all zero. Fast: per-thread generator, no locks.
std::string generate_trace_id();
// 16 random lowercase hex characters, never all zero (a span/parent id for outgoing calls).
std::string generate_span_id();

// The trace id for a request: traceparent's trace id if it parses, else the X-Request-Id if
// sane, else a generated id. Pass nullopt for an absent header.
std::string resolve_trace_id(std::optional<std::string_view> traceparent,
                             std::optional<std::string_view> request_id);

// "00-<trace_id>-<span_id>-01" for propagating to a downstream service (e.g. a remote LLM).
// `trace_id` need not be hex (it may come from X-Request-Id); a non-conforming id is replaced
// by a generated one so the downstream header is always valid.
std::string format_traceparent(std::string_view trace_id, std::string_view span_id,
                               bool sampled = true);

}  // namespace talkserve::obs
