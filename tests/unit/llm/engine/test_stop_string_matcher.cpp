#include <catch2/catch.hpp>

#include "talkserve/llm/stop_string_matcher.hpp"

using namespace talkserve::llm;

TEST_CASE("stop strings: text that may start a stop string is held back", "[llm][stop]") {
  StopStringMatcher m({"END"});
  CHECK(m.push("hello ").text == "hello ");
  auto r = m.push("wE");
  CHECK(r.text == "w");  // "E" may start "END"
  CHECK_FALSE(r.stopped);
  r = m.push("Nx");  // "ENx" cannot: released
  CHECK(r.text == "ENx");
  r = m.push(" E");
  CHECK(r.text == " ");
  r = m.push("ND and more");
  CHECK(r.stopped);
  CHECK(r.text.empty());
  CHECK(r.matched == "END");
  CHECK(m.push("ignored").text.empty());
  CHECK(m.flush().empty());
}

TEST_CASE("stop strings: earliest match wins, text before it is emitted", "[llm][stop]") {
  StopStringMatcher m({"world", "lo w"});
  auto r = m.push("hello world");
  CHECK(r.stopped);
  CHECK(r.text == "hel");
  CHECK(r.matched == "lo w");
}

TEST_CASE("stop strings: flush releases held text at the end", "[llm][stop]") {
  StopStringMatcher m({"\n\n"});
  CHECK(m.push("a\n").text == "a");
  CHECK(m.flush() == "\n");
  StopStringMatcher none({});
  CHECK(none.push("x").text == "x");
}
