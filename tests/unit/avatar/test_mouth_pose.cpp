#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "avatar/blink_schedule.hpp"
#include "avatar/mouth_pose.hpp"

using namespace talkserve::avatar;
using talkserve::speech::PhonemeEvent;
using talkserve::speech::Viseme;

TEST_CASE("viseme poses: aa widest, mbp pressed shut, ou rounded", "[avatar][pose]") {
  CHECK(is_rest(viseme_pose(Viseme::rest)));
  CHECK(viseme_pose(Viseme::mbp).open == 0);
  CHECK(viseme_pose(Viseme::mbp).press > 0.5f);
  for (int v = 0; v < talkserve::speech::kVisemeCount; ++v)
    CHECK(viseme_pose(static_cast<Viseme>(v)).open <= viseme_pose(Viseme::aa).open);
  CHECK(viseme_pose(Viseme::ou).width < 0.8f);
  CHECK(viseme_pose(Viseme::ee).width > 1.0f);
}

TEST_CASE("the timeline gives the sounding viseme, rest in gaps", "[avatar][pose]") {
  const std::vector<PhonemeEvent> events = {
      {"a", 0.1, 0.2, Viseme::aa}, {"m", 0.3, 0.1, Viseme::mbp}, {"u", 0.6, 0.2, Viseme::ou}};
  CHECK(viseme_at(events, 0.0) == Viseme::rest);
  CHECK(viseme_at(events, 0.15) == Viseme::aa);
  CHECK(viseme_at(events, 0.35) == Viseme::mbp);
  CHECK(viseme_at(events, 0.5) == Viseme::rest);
  CHECK(viseme_at(events, 0.7) == Viseme::ou);
  CHECK(viseme_at(events, 0.9) == Viseme::rest);
  // In the middle of a long sound the pose is that viseme's; bilabials close even between
  // open vowels.
  CHECK(timeline_pose(events, 0.2).open == Approx(viseme_pose(Viseme::aa).open));
  CHECK(timeline_pose(events, 0.35).open < 0.2f);
}

TEST_CASE("smoothing has no jumps and settles within ~100 ms", "[avatar][pose]") {
  MouthPose p;
  const MouthPose aa = viseme_pose(Viseme::aa);
  const double dt = 1.0 / 25;
  p = smooth_pose(p, aa, dt);
  CHECK(p.open > 0.4f);
  CHECK(p.open < 0.9f);
  for (int i = 0; i < 4; ++i) p = smooth_pose(p, aa, dt);
  CHECK(p.open == Approx(aa.open).margin(0.02));
  for (int i = 0; i < 8; ++i) p = smooth_pose(p, MouthPose{}, dt);
  CHECK(is_rest(p));
  CHECK(p.open == 0);  // snapped exactly: a closed mouth renders the portrait unchanged
}

TEST_CASE("audio level: noise gate and peak normalisation", "[avatar][pose]") {
  CHECK(audio_level(0.0f, 0.3f) == 0);
  CHECK(audio_level(kAudioNoiseGate * 0.9f, 0.3f) == 0);
  CHECK(audio_level(0.3f, 0.3f) == Approx(1));
  CHECK(audio_level(0.155f, 0.3f) == Approx(0.5).margin(0.01));
  CHECK(audio_level(0.04f, 0.0f) < 1);  // a quiet start is not blown up to fully open

  std::vector<float> audio(24000, 0.0f);
  for (int i = 12000; i < 24000; ++i) audio[i] = (i % 2 ? 0.5f : -0.5f);
  const auto rms = frame_rms(audio, 24000, 25, 25, 0.0);
  REQUIRE(rms.size() == 25);
  CHECK(rms[5] == 0);
  CHECK(rms[20] == Approx(0.5));
}

TEST_CASE("blinks every 3-5 s on a fixed schedule", "[avatar][blink]") {
  std::vector<double> onsets;
  bool closed = false;
  for (double t = 0; t < 60; t += 0.005) {
    const float c = blink_closure(t);
    CHECK(c >= 0);
    CHECK(c <= 1);
    if (!closed && c > 0.5f) onsets.push_back(t);
    closed = c > 0.5f;
  }
  REQUIRE(onsets.size() >= 12);
  CHECK(onsets.front() < 3.0);
  for (std::size_t i = 1; i < onsets.size(); ++i) {
    CHECK(onsets[i] - onsets[i - 1] >= 3.0 - 0.01);
    CHECK(onsets[i] - onsets[i - 1] <= 5.0 + 0.01);
  }
  CHECK(blink_closure(onsets[2] + 0.04) == blink_closure(onsets[2] + 0.04));
}
