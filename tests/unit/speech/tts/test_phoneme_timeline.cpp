#include <catch2/catch.hpp>

#include "talkserve/speech/phoneme_timeline.hpp"

using namespace talkserve::speech;

TEST_CASE("timeline from onsets: leading rest, zero-length dropped, last to audio end",
          "[tts][timeline]") {
  const std::vector<PhonemeMark> onsets = {
      {"h", 0.010, Viseme::kk}, {"@", 0.060, Viseme::aa}, {"_", 0.100, Viseme::rest},
      {"r", 0.100, Viseme::rr}, {"i:", 0.090, Viseme::ee}};  // out of order: clamped
  const auto events = timeline_from_onsets(onsets, 0.2);
  REQUIRE(events.size() == 4);
  CHECK(events[0].phoneme == "_");
  CHECK(events[0].start == 0);
  CHECK(events[0].duration == Approx(0.010));
  CHECK(events[1].phoneme == "h");
  CHECK(events[1].duration == Approx(0.050));
  CHECK(events[2].phoneme == "@");
  CHECK(events[2].duration == Approx(0.040));
  CHECK(events[3].phoneme == "i:");  // "_" and "r" are zero-length
  CHECK(events[3].start == Approx(0.100));
  CHECK(events[3].start + events[3].duration == Approx(0.2));
}

TEST_CASE("timeline from onsets: empty input", "[tts][timeline]") {
  CHECK(timeline_from_onsets({}, 0).empty());
  const auto silence = timeline_from_onsets({}, 0.5);
  REQUIRE(silence.size() == 1);
  CHECK(silence[0].viseme == Viseme::rest);
  CHECK(silence[0].duration == Approx(0.5));
}

TEST_CASE("timeline from ends: covers the audio exactly", "[tts][timeline]") {
  const std::vector<PhonemeMark> ends = {
      {"pau", 0.05, Viseme::rest}, {"m", 0.12, Viseme::mbp}, {"aa", 0.12, Viseme::aa},
      {"pau", 0.30, Viseme::rest}};
  auto events = timeline_from_ends(ends, 0.35);  // audio longer than the last end
  REQUIRE(events.size() == 3);
  CHECK(events[1].phoneme == "m");
  CHECK(events[1].start == Approx(0.05));
  CHECK(events[2].start + events[2].duration == Approx(0.35));
  events = timeline_from_ends(ends, 0.20);  // audio shorter: clipped
  REQUIRE(events.size() == 3);
  CHECK(events[2].start + events[2].duration == Approx(0.20));
}
