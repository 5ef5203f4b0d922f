#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "talkserve/obs/trace.hpp"

using namespace talkserve::obs;

namespace {
const std::string kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
const std::string kParent = "00f067aa0ba902b7";
}  // namespace

TEST_CASE("trace: valid traceparent", "[obs][trace]") {
  auto tp = parse_traceparent("00-" + kTrace + "-" + kParent + "-01");
  REQUIRE(tp);
  CHECK(tp->trace_id == kTrace);
  CHECK(tp->parent_id == kParent);
  CHECK(tp->flags == 1);
  // Optional whitespace around the header value is allowed.
  CHECK(parse_traceparent(" \t00-" + kTrace + "-" + kParent + "-00 "));
  // A future version may append fields after a dash.
  auto future = parse_traceparent("01-" + kTrace + "-" + kParent + "-03-extra");
  REQUIRE(future);
  CHECK(future->flags == 3);
}

TEST_CASE("trace: invalid traceparent", "[obs][trace]") {
  const std::string zero_trace(32, '0');
  const std::string zero_parent(16, '0');
  const std::vector<std::string> bad = {
      "",
      "garbage",
      "00-" + zero_trace + "-" + kParent + "-01",                // all-zero trace id
      "00-" + kTrace + "-" + zero_parent + "-01",                // all-zero parent id
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + kParent + "-01",  // uppercase hex
      "00-" + kTrace.substr(1) + "-" + kParent + "-01",          // short trace id
      "00-" + kTrace + "-" + kParent + "-01-extra",              // version 00 must be exact
      "00-" + kTrace + "-" + kParent + "-1",                     // short flags
      "00_" + kTrace + "-" + kParent + "-01",                    // wrong separator
      "ff-" + kTrace + "-" + kParent + "-01",                    // forbidden version
      "0g-" + kTrace + "-" + kParent + "-01",                    // non-hex version
      "00-" + kTrace.substr(0, 31) + "x-" + kParent + "-01",     // non-hex trace id
      "01-" + kTrace + "-" + kParent + "-01x",                   // future version, no dash
  };
  for (const auto& h : bad) {
    INFO(h);
    CHECK_FALSE(parse_traceparent(h));
  }
}

TEST_CASE("trace: request id sanity", "[obs][trace]") {
  CHECK(is_sane_request_id("req-123_abc.DEF"));
  CHECK(is_sane_request_id(std::string(128, 'a')));
  CHECK_FALSE(is_sane_request_id(std::string(129, 'a')));
  CHECK_FALSE(is_sane_request_id(""));
  CHECK_FALSE(is_sane_request_id("has space"));
  CHECK_FALSE(is_sane_request_id("new\nline"));
  CHECK_FALSE(is_sane_request_id("tab\t"));
  CHECK_FALSE(is_sane_request_id("caf\xc3\xa9"));
  CHECK_FALSE(is_sane_request_id(std::string("nul\0x", 5)));
}

TEST_CASE("trace: resolve prefers traceparent, then request id, then generates", "[obs][trace]") {
  const std::string tp = "00-" + kTrace + "-" + kParent + "-01";
  CHECK(resolve_trace_id(tp, "req-1") == kTrace);
  CHECK(resolve_trace_id("bogus", "req-1") == "req-1");
  CHECK(resolve_trace_id(std::nullopt, " req-2 ") == "req-2");
  const std::string gen = resolve_trace_id("bogus", "bad id");
  CHECK(gen.size() == 32);
  CHECK(gen.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(resolve_trace_id(std::nullopt, std::nullopt).size() == 32);
}

TEST_CASE("trace: generated ids are valid and distinct across threads", "[obs][trace]") {
  std::vector<std::vector<std::string>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& v : per_thread)
    threads.emplace_back([&v] {
      for (int i = 0; i < 5000; ++i) v.push_back(generate_trace_id());
    });
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& v : per_thread)
    for (const auto& id : v) {
      REQUIRE(id.size() == 32);
      REQUIRE(id.find_first_not_of("0123456789abcdef") == std::string::npos);
      all.insert(id);
    }
  CHECK(all.size() == 20000);
  // A generated id round-trips through a traceparent header.
  const std::string id = generate_trace_id();
  const std::string span = generate_span_id();
  CHECK(span.size() == 16);
  auto parsed = parse_traceparent(format_traceparent(id, span));
  REQUIRE(parsed);
  CHECK(parsed->trace_id == id);
  CHECK(parsed->parent_id == span);
  // A non-hex id (from X-Request-Id) still yields a valid header.
  CHECK(parse_traceparent(format_traceparent("req-1", span, false)));
}
