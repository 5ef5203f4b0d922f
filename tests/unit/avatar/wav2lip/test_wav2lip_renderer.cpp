#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>
#include <vector>

#include "talkserve/sched/clock.hpp"
#include "unit/avatar/avatar_test_support.hpp"
#include "wav2lip_test_support.hpp"

using namespace talkserve;
using namespace talkserve::avatar;

namespace {

constexpr int kRate = 24000;

// A voiced sound whose pitch and syllable rate differ per session.
std::vector<float> voice(double seconds, int session) {
  std::vector<float> v(static_cast<std::size_t>(seconds * kRate));
  const double f0 = 110 + 60 * session, rate = 3 + session;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double t = static_cast<double>(i) / kRate;
    const double env = 0.5 - 0.5 * std::cos(2 * M_PI * rate * t);
    v[i] = static_cast<float>(env * (0.4 * std::sin(2 * M_PI * f0 * t) + 0.2 * std::sin(2 * M_PI * 3.1 * f0 * t)));
  }
  return v;
}

RenderInput input_for(const std::vector<float>& audio) {
  RenderInput in;
  in.audio = audio;
  in.sample_rate = kRate;
  in.fps = 25;
  return in;
}

Wav2LipOptions options_with(std::size_t max_batch, std::chrono::nanoseconds wait) {
  Wav2LipOptions o;
  o.weights = wav2lip_test::random_weights();
  o.batching.max_batch = max_batch;
  o.batching.min_wait = wait;
  o.batching.max_wait = wait;
  return o;
}

int max_pixel_diff(const media::RgbFrame& a, const media::RgbFrame& b) {
  int worst = 0;
  for (std::size_t i = 0; i < a.data.size(); ++i) worst = std::max(worst, std::abs(a.data[i] - b.data[i]));
  return worst;
}

}  // namespace

TEST_CASE("wav2lip renderer: round(duration x fps) portrait-sized frames, only the lower face changes", "[wav2lip][renderer]") {
  const auto avatar = avatar_test::grace_hopper();
  const auto renderer = make_wav2lip_renderer(options_with(4, std::chrono::milliseconds(1)));
  CHECK(renderer->name() == "wav2lip");
  CHECK(renderer->version().find(renderer->model().fingerprint()) != std::string::npos);

  RenderState state;
  const std::vector<float> audio = voice(0.1, 0);  // 2.5 frames each call
  const auto first = renderer->render(*avatar, input_for(audio), state);
  const auto second = renderer->render(*avatar, input_for(audio), state);
  CHECK(first.size() + second.size() == 5);  // round(0.2 s x 25): the debt carries over
  CHECK(std::abs(state.frame_debt) <= 0.5);
  CHECK(state.time == Approx(0.2));

  const Box& f = avatar->face;
  const int lower_start = f.y + f.height * 2 / 5;  // above the blend (no blink before 1.5 s)
  bool lower_changed = false;
  for (const auto& frame : first) {
    REQUIRE(frame.width == avatar->portrait.width);
    REQUIRE(frame.height == avatar->portrait.height);
    for (int y = 0; y < frame.height; ++y)
      for (int x = 0; x < frame.width; ++x) {
        const std::size_t i = (static_cast<std::size_t>(y) * frame.width + x) * 3;
        const bool same = std::equal(frame.data.begin() + i, frame.data.begin() + i + 3, avatar->portrait.data.begin() + i);
        const bool in_lower_face = x >= f.x && x < f.x + f.width && y >= lower_start;
        if (!in_lower_face && !same) FAIL("pixel (" << x << ", " << y << ") outside the lower face changed");
        if (in_lower_face && !same) lower_changed = true;
      }
  }
  CHECK(lower_changed);

  // idle(): the portrait (blinks only), no network.
  const auto idle = renderer->idle(*avatar, 3, 25, state);
  REQUIRE(idle.size() == 3);
  CHECK(idle[0].data == avatar->portrait.data);
  CHECK(state.time == Approx(0.32));
  CHECK(renderer->render(*avatar, input_for({}), state).empty());
}

TEST_CASE("wav2lip renderer: frames of concurrent sessions share forward passes and equal solo renders", "[wav2lip][renderer]") {
  const auto grace = avatar_test::grace_hopper();
  const auto eileen = avatar_test::eileen_collins();
  const std::vector<const Avatar*> avatars = {grace.get(), eileen.get(), grace.get()};
  constexpr int kSessions = 3;
  std::vector<std::vector<float>> audio;
  for (int s = 0; s < kSessions; ++s) audio.push_back(voice(0.12, s));  // 3 frames each

  // Batched: the clock never moves, so a batch forms only when all 9 frames are queued.
  sched::ManualClock clock;
  std::vector<std::size_t> seen;
  std::mutex seen_mutex;
  const auto batched = make_wav2lip_renderer(options_with(3 * kSessions, std::chrono::hours(1)), clock,
                                             [&](const sched::BatchReport& r) {
                                               std::lock_guard lock(seen_mutex);
                                               seen.push_back(r.batch_size);
                                             });
  std::vector<std::vector<media::RgbFrame>> together(kSessions);
  {
    std::vector<std::thread> threads;
    for (int s = 0; s < kSessions; ++s) {
      threads.emplace_back([&, s] {
        RenderState state;
        together[s] = batched->render(*avatars[s], input_for(audio[s]), state);
      });
    }
    for (auto& t : threads) t.join();
  }
  const auto stats = batched->stats();
  CHECK(stats.batches == 1);
  CHECK(stats.batch_size_histogram[3 * kSessions] == 1);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == 3 * kSessions);

  // Solo: one frame per forward pass, one session at a time.
  const auto solo = make_wav2lip_renderer(options_with(1, std::chrono::nanoseconds(0)));
  for (int s = 0; s < kSessions; ++s) {
    RenderState state;
    const auto alone = solo->render(*avatars[s], input_for(audio[s]), state);
    REQUIRE(alone.size() == 3);
    REQUIRE(together[s].size() == 3);
    for (std::size_t n = 0; n < alone.size(); ++n) {
      INFO("session " << s << " frame " << n);
      CHECK(max_pixel_diff(alone[n], together[s][n]) <= 1);
    }
  }
  // Different audio gives different mouths (sessions 0 and 2 share the avatar).
  CHECK(max_pixel_diff(together[0][1], together[2][1]) > 1);
}

TEST_CASE("wav2lip renderer: bad options and weights are clear errors", "[wav2lip][renderer]") {
  using Catch::Matchers::Contains;
  Wav2LipOptions o;
  CHECK_THROWS_WITH(make_wav2lip_renderer(o), Contains("wav2lip.weights"));
  o.weights = (wav2lip_test::temp_dir().path() / "absent.safetensors").string();
  CHECK_THROWS_WITH(make_wav2lip_renderer(o), Contains("absent.safetensors"));
  o.weights = wav2lip_test::random_weights();
  o.feather = 0;
  CHECK_THROWS_WITH(make_wav2lip_renderer(o), Contains("wav2lip.feather"));
  o.feather = 0.08f;
  o.batching.max_batch = 0;
  CHECK_THROWS_WITH(make_wav2lip_renderer(o), Contains("wav2lip.batching") && Contains("max_batch"));
  o.batching = Wav2LipOptions::default_batching();
  o.device = "tpu";
  CHECK_THROWS_WITH(make_wav2lip_renderer(o), Contains("wav2lip.device"));
}
