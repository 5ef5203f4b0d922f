#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "avatar_test_support.hpp"
#include "talkserve/avatar/viseme_renderer.hpp"

using namespace talkserve;
using namespace talkserve::avatar;
using speech::PhonemeEvent;
using speech::Viseme;

namespace {

constexpr int kRate = 24000;

RenderInput input_for(const std::vector<float>& audio, int fps = 25, int rate = kRate) {
  RenderInput in;
  in.audio = audio;
  in.sample_rate = rate;
  in.fps = fps;
  return in;
}

// Silence, then a 300 Hz tone amplitude-modulated like syllables at 4 Hz, then silence.
std::vector<float> syllable_audio(double silence_before, double voiced, double silence_after) {
  std::vector<float> audio(static_cast<std::size_t>((silence_before + voiced + silence_after) * kRate), 0);
  for (std::size_t i = 0; i < audio.size(); ++i) {
    const double t = static_cast<double>(i) / kRate - silence_before;
    if (t < 0 || t >= voiced) continue;
    const double env = 0.5 - 0.5 * std::cos(2 * M_PI * 4 * t);
    audio[i] = static_cast<float>(0.6 * env * std::sin(2 * M_PI * 300 * t));
  }
  return audio;
}

// A steady 300 Hz tone: constant loudness, so a phoneme timeline alone shapes the mouth (the
// renderer scales the timeline's opening by the audio level and closes it in silence).
std::vector<float> steady_voice(double seconds) {
  std::vector<float> audio(static_cast<std::size_t>(seconds * kRate));
  for (std::size_t i = 0; i < audio.size(); ++i) {
    audio[i] = static_cast<float>(0.5 * std::sin(2 * M_PI * 300 * static_cast<double>(i) / kRate));
  }
  return audio;
}

// Every pixel outside `regions` equals the portrait.
bool outside_regions_unchanged(const media::RgbFrame& frame, const Avatar& a, const std::vector<Box>& regions) {
  if (frame.width != a.portrait.width || frame.height != a.portrait.height) return false;
  for (int y = 0; y < frame.height; ++y)
    for (int x = 0; x < frame.width; ++x) {
      if (std::any_of(regions.begin(), regions.end(), [&](const Box& b) { return avatar_test::inside(b, x, y); }))
        continue;
      const std::size_t i = (static_cast<std::size_t>(y) * frame.width + x) * 3;
      if (frame.data[i] != a.portrait.data[i] || frame.data[i + 1] != a.portrait.data[i + 1] ||
          frame.data[i + 2] != a.portrait.data[i + 2])
        return false;
    }
  return true;
}

Box grown(const Box& b, double f) {
  const int dx = static_cast<int>(b.width * f), dy = static_cast<int>(b.height * f);
  return Box{b.x - dx, b.y - dy, b.width + 2 * dx, b.height + 2 * dy};
}

bool box_within(const Box& outer, const Box& inner) {
  return inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.width <= outer.x + outer.width &&
         inner.y + inner.height <= outer.y + outer.height;
}

}  // namespace

TEST_CASE("render gives round(seconds * fps) frames of the portrait's size", "[avatar][renderer]") {
  const auto a = avatar_test::grace_hopper();
  const auto renderer = make_viseme_renderer();
  CHECK(renderer->name() == "viseme");
  CHECK_FALSE(renderer->version().empty());
  struct Case { std::size_t samples; int rate; int fps; std::size_t frames; };
  for (const Case c : {Case{24000, 24000, 25, 25}, Case{24001, 24000, 25, 25}, Case{12000, 24000, 25, 13},
                       Case{11999, 24000, 25, 12}, Case{7, 24000, 25, 0}, Case{0, 24000, 25, 0},
                       Case{16000 * 3 / 2, 16000, 30, 45}, Case{22050, 22050, 24, 24}}) {
    RenderState state;
    const std::vector<float> audio(c.samples, 0.0f);
    const auto frames = renderer->render(*a, input_for(audio, c.fps, c.rate), state);
    INFO(c.samples << " samples at " << c.rate << " Hz, " << c.fps << " fps");
    CHECK(frames.size() == c.frames);
    CHECK(state.time == Approx(c.frames / static_cast<double>(c.fps)));
    for (const auto& f : frames) {
      CHECK(f.width == 512);
      CHECK(f.height == 512);
      CHECK(f.data.size() == 512u * 512u * 3u);
    }
  }
}

TEST_CASE("frame counts do not drift over many chunks of odd lengths", "[avatar][renderer]") {
  const auto a = avatar_test::eileen_collins();
  const auto renderer = make_viseme_renderer();
  RenderState state;
  std::size_t total_samples = 0, total_frames = 0;
  for (int call = 0; call < 100; ++call) {
    const std::size_t n = 1777 + 311 * static_cast<std::size_t>(call % 13);  // 74..224 ms, never whole frames
    const std::vector<float> audio(n, 0.0f);
    const auto frames = renderer->render(*a, input_for(audio), state);
    const double exact = static_cast<double>(n) * 25 / kRate;
    CHECK(std::abs(static_cast<double>(frames.size()) - exact) < 1.0);
    CHECK(std::abs(state.frame_debt) <= 0.5);
    total_samples += n;
    total_frames += frames.size();
  }
  CHECK(total_frames == static_cast<std::size_t>(std::llround(static_cast<double>(total_samples) * 25 / kRate)));
  CHECK(state.time == Approx(total_frames / 25.0));
}

TEST_CASE("pixels outside the mouth and eye regions equal the portrait", "[avatar][renderer]") {
  for (const auto& a : {avatar_test::grace_hopper(), avatar_test::eileen_collins()}) {
    const auto renderer = make_viseme_renderer();
    const std::vector<Box> regions = viseme_editable_regions(*a);
    REQUIRE(regions.size() == 3);
    // The regions hug the mouth and eyes.
    CHECK(box_within(grown(a->mouth, 0.3), regions[0]));
    CHECK(box_within(grown(a->left_eye, 0.3), regions[1]));
    CHECK(box_within(grown(a->right_eye, 0.3), regions[2]));
    CHECK(box_within(grown(a->face, 0.1), regions[0]));

    // 3 s of speech with every viseme, spanning the first blink (1.5..2.5 s).
    std::vector<PhonemeEvent> events;
    for (int k = 0; k < 30; ++k) events.push_back({"x", 0.1 * k, 0.1, static_cast<Viseme>(k % 12)});
    RenderState state;
    const std::vector<float> audio = syllable_audio(0, 3, 0);
    RenderInput in = input_for(audio);
    in.phonemes = events;
    const auto frames = renderer->render(*a, in, state);
    REQUIRE(frames.size() == 75);
    int mouth_changed = 0, eyes_changed = 0;
    for (const auto& f : frames) {
      REQUIRE(outside_regions_unchanged(f, *a, regions));
      if (avatar_test::mean_abs_diff(f, a->portrait, a->mouth) > 0.5) ++mouth_changed;
      if (avatar_test::mean_abs_diff(f, a->portrait, a->left_eye) > 0.5) ++eyes_changed;
    }
    CHECK(mouth_changed > 40);
    CHECK(eyes_changed >= 2);
  }
}

TEST_CASE("audio-driven mouth follows the audio envelope and stays shut in silence", "[avatar][renderer]") {
  for (const auto& a : {avatar_test::grace_hopper(), avatar_test::eileen_collins()}) {
    const auto renderer = make_viseme_renderer();
    const std::vector<float> audio = syllable_audio(1.0, 2.0, 1.0);
    // Rendered in 0.2 s chunks, as a stream would be.
    RenderState state;
    std::vector<media::RgbFrame> frames;
    for (std::size_t start = 0; start < audio.size(); start += 4800) {
      const std::vector<float> chunk(audio.begin() + static_cast<std::ptrdiff_t>(start),
                                     audio.begin() + static_cast<std::ptrdiff_t>(std::min(audio.size(), start + 4800)));
      for (auto& f : renderer->render(*a, input_for(chunk), state)) frames.push_back(std::move(f));
    }
    REQUIRE(frames.size() == 100);
    std::vector<double> change, rms;
    for (std::size_t n = 0; n < frames.size(); ++n) {
      change.push_back(avatar_test::mean_abs_diff(frames[n], a->portrait, a->mouth));
      const std::size_t mid = n * kRate / 25, lo = mid >= 480 ? mid - 480 : 0,
                        hi = std::min(audio.size(), mid + 480);
      double sum = 0;
      for (std::size_t i = lo; i < hi; ++i) sum += audio[i] * audio[i];
      rms.push_back(std::sqrt(sum / static_cast<double>(hi - lo)));
    }
    const double r = avatar_test::pearson(change, rms);
    INFO("avatar " << a->id << ": Pearson r = " << r);
    CHECK(r > 0.6);
    double max_change = 0;
    for (double c : change) max_change = std::max(max_change, c);
    CHECK(max_change > 3.0);
    // Silence: before the tone, and from 0.4 s after it (the mouth has closed again).
    for (std::size_t n = 0; n < 24; ++n) CHECK(change[n] < 0.05);
    for (std::size_t n = 85; n < 100; ++n) CHECK(change[n] < 0.05);
  }
}

TEST_CASE("phoneme timeline: aa opens the mouth far more than mbp or rest", "[avatar][renderer]") {
  for (const auto& a : {avatar_test::grace_hopper(), avatar_test::eileen_collins()}) {
    const auto renderer = make_viseme_renderer();
    // aa, mbp, rest, 0.32 s each, three times.
    std::vector<PhonemeEvent> events;
    const Viseme cycle[] = {Viseme::aa, Viseme::mbp, Viseme::rest};
    for (int k = 0; k < 9; ++k) events.push_back({"x", 0.32 * k, 0.32, cycle[k % 3]});
    RenderState state;
    const std::vector<float> audio = steady_voice(2.88);
    RenderInput in = input_for(audio);
    in.phonemes = events;
    const auto frames = renderer->render(*a, in, state);
    REQUIRE(frames.size() == 72);
    double min_aa = 1e9, max_other = 0;
    for (std::size_t n = 0; n < frames.size(); ++n) {
      const double t = n / 25.0, into = std::fmod(t, 0.32);
      if (into < 0.12 || into > 0.28) continue;  // settled frames only
      const double d = avatar_test::mean_abs_diff(frames[n], a->portrait, a->mouth);
      if (static_cast<int>(t / 0.32) % 3 == 0) min_aa = std::min(min_aa, d);
      else max_other = std::max(max_other, d);
    }
    INFO("avatar " << a->id << ": aa >= " << min_aa << ", mbp/rest <= " << max_other);
    CHECK(min_aa > 3.0);
    CHECK(min_aa > 3 * max_other);
  }
}

TEST_CASE("idle blinks within 6 s and keeps the mouth at rest", "[avatar][renderer]") {
  const auto a = avatar_test::eileen_collins();
  const auto renderer = make_viseme_renderer();
  RenderState state;
  const auto frames = renderer->idle(*a, 150, 25, state);
  REQUIRE(frames.size() == 150);
  CHECK(state.time == Approx(6.0));
  const std::vector<Box> regions = viseme_editable_regions(*a);
  int blink_frames = 0;
  double deepest = 0;
  for (const auto& f : frames) {
    const double d = avatar_test::mean_abs_diff(f, a->portrait, a->left_eye) + avatar_test::mean_abs_diff(f, a->portrait, a->right_eye);
    deepest = std::max(deepest, d);
    if (d > 1.0) ++blink_frames;
    CHECK(avatar_test::mean_abs_diff(f, a->portrait, a->mouth) == 0);
    REQUIRE(outside_regions_unchanged(f, *a, {regions[1], regions[2]}));
  }
  CHECK(blink_frames >= 3);    // one blink of ~0.3 s is several frames
  CHECK(blink_frames <= 20);   // and not a permanently shut eye
  CHECK(deepest > 10);

  SECTION("after speech, idle relaxes the mouth smoothly back to the portrait") {
    RenderState s;
    const std::vector<float> audio = steady_voice(0.5);
    RenderInput in = input_for(audio);
    in.phonemes = {{"a", 0.0, 0.5, Viseme::aa}};
    const auto speech = renderer->render(*a, in, s);
    CHECK(avatar_test::mean_abs_diff(speech.back(), a->portrait, a->mouth) > 3.0);
    const auto rest = renderer->idle(*a, 15, 25, s);
    double previous = avatar_test::mean_abs_diff(speech.back(), a->portrait, a->mouth);
    for (const auto& f : rest) {
      const double d = avatar_test::mean_abs_diff(f, a->portrait, a->mouth);
      CHECK(d <= previous + 1e-9);  // monotonic closing, no pop
      previous = d;
    }
    CHECK(previous == 0);
  }
}

TEST_CASE("rendering is deterministic, also from concurrent threads", "[avatar][renderer]") {
  const auto a = avatar_test::grace_hopper();
  const auto renderer = make_viseme_renderer();
  const std::vector<float> audio = syllable_audio(0.2, 1.5, 0.3);
  std::vector<PhonemeEvent> events;
  for (int k = 0; k < 20; ++k) events.push_back({"x", 0.1 * k, 0.1, static_cast<Viseme>((k * 5) % 12)});
  auto run = [&](bool with_phonemes) {
    RenderState state;
    state.time = 1.2;  // crosses the first blink
    RenderInput in = input_for(audio);
    if (with_phonemes) in.phonemes = events;
    return renderer->render(*a, in, state);
  };
  for (bool with_phonemes : {true, false}) {
    const auto first = run(with_phonemes);
    std::vector<media::RgbFrame> second, third;
    std::thread t1([&] { second = run(with_phonemes); });
    std::thread t2([&] { third = run(with_phonemes); });
    t1.join();
    t2.join();
    REQUIRE(first.size() == 50);
    for (std::size_t i = 0; i < first.size(); ++i) {
      REQUIRE(first[i].data == second[i].data);
      REQUIRE(first[i].data == third[i].data);
    }
  }
}

TEST_CASE("a hand-made avatar without a rig renders the same frames", "[avatar][renderer]") {
  const auto loaded = avatar_test::eileen_collins();
  Avatar bare = *loaded;
  bare.rig = nullptr;
  const auto renderer = make_viseme_renderer();
  const std::vector<float> audio = syllable_audio(0, 1.0, 0);
  RenderState s1, s2;
  const auto a = renderer->render(*loaded, input_for(audio), s1);
  const auto b = renderer->render(bare, input_for(audio), s2);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(a[i].data == b[i].data);
}

TEST_CASE("bad render arguments are rejected", "[avatar][renderer]") {
  const auto renderer = make_viseme_renderer();
  RenderState state;
  const std::vector<float> audio(100, 0.0f);
  CHECK_THROWS_AS(renderer->render(*avatar_test::grace_hopper(), input_for(audio, 0), state), std::invalid_argument);
  CHECK_THROWS_AS(renderer->render(*avatar_test::grace_hopper(), input_for(audio, 25, 0), state), std::invalid_argument);
  CHECK_THROWS_AS(renderer->render(Avatar{}, input_for(audio), state), std::invalid_argument);
  CHECK_THROWS_AS(renderer->idle(*avatar_test::grace_hopper(), 3, 0, state), std::invalid_argument);
}
