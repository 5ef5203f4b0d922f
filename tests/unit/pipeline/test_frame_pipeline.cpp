// The live frame pipeline: every frame of the pushed speech is rendered and encoded in order
// into one playable fragmented MP4, the queue between render and encode stays bounded, and
// cancel() stops the callbacks.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "pipeline/frame_pipeline.hpp"
#include "support/temp_dir.hpp"

using namespace talkserve;
using namespace std::chrono_literals;

namespace {

avatar::Avatar grey_avatar() {
  avatar::Avatar a;
  a.id = "grey";
  a.portrait.width = 64;
  a.portrait.height = 64;
  a.portrait.data.assign(64 * 64 * 3, 128);
  return a;
}

// Follows the frame accounting contract of renderer.hpp; frame n of the stream has a distinct
// brightness. Records how far rendering runs ahead of encoding.
class CountingRenderer final : public avatar::LipSyncRenderer {
 public:
  std::string name() const override { return "counting"; }
  std::string version() const override { return "1"; }
  std::vector<media::RgbFrame> render(const avatar::Avatar& a, const avatar::RenderInput& in,
                                      avatar::RenderState& state) const override {
    const double exact = state.frame_debt + static_cast<double>(in.audio.size()) * in.fps / in.sample_rate;
    const int n = static_cast<int>(std::max<long long>(0, std::llround(exact)));
    state.frame_debt = exact - n;
    std::vector<media::RgbFrame> out;
    for (int i = 0; i < n; ++i) {
      media::RgbFrame f = a.portrait;
      std::fill(f.data.begin(), f.data.end(), static_cast<std::uint8_t>((frames_ + i) * 7 % 256));
      out.push_back(std::move(f));
    }
    frames_ += n;
    ++calls_;
    if (probe) probe();
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    return out;
  }
  std::vector<media::RgbFrame> idle(const avatar::Avatar&, int, int, avatar::RenderState&) const override {
    return {};
  }
  mutable std::atomic<int> frames_{0};
  mutable std::atomic<int> calls_{0};
  std::function<void()> probe;
  std::chrono::milliseconds delay{0};
};

struct Collected {
  std::mutex m;
  std::condition_variable cv;
  std::string mp4;
  int init = 0, media = 0;
  bool last = false;
  bool media_before_init = false;
  std::string error;
};

std::shared_ptr<pipeline::FramePipeline> make_pipeline(boost::asio::thread_pool& pool, const avatar::Avatar& a,
                                                       const CountingRenderer& r, Collected& c,
                                                       std::size_t max_chunks = 2) {
  pipeline::FramePipelineOptions o;
  o.chunk_frames = 5;
  o.max_chunks = max_chunks;
  o.sample_rate = 24000;
  return std::make_shared<pipeline::FramePipeline>(
      pool, a, r, o,
      [&c](pipeline::FramePipeline::SegmentKind kind, std::string bytes, bool last) {
        std::lock_guard lock(c.m);
        if (kind == pipeline::FramePipeline::SegmentKind::init) {
          ++c.init;
        } else {
          if (c.init == 0) c.media_before_init = true;
          ++c.media;
        }
        c.mp4 += bytes;
        c.last = c.last || last;
        c.cv.notify_all();
      },
      [&c](const std::string& e) {
        std::lock_guard lock(c.m);
        c.error = e;
        c.cv.notify_all();
      });
}

std::vector<float> tone(double seconds) {
  std::vector<float> v(static_cast<std::size_t>(seconds * 24000));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.3f * static_cast<float>(std::sin(i * 0.05));
  return v;
}

int ffprobe_frames(const std::string& mp4) {
  test::TempDir dir;
  const auto path = dir.path() / "live.mp4";
  std::ofstream(path, std::ios::binary) << mp4;
  const std::string cmd = "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
                          "stream=nb_read_frames -of csv=p=0 '" + path.string() + "'";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[64] = {0};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  pclose(p);
  return got ? std::atoi(buf) : -1;
}

}  // namespace

TEST_CASE("frame pipeline: all speech becomes one playable stream, in order", "[pipeline][frames]") {
  boost::asio::thread_pool pool(2);
  const auto a = grey_avatar();
  CountingRenderer r;
  Collected c;
  auto p = make_pipeline(pool, a, r, c);
  CHECK(p->mime_type().find("avc1.") != std::string::npos);
  // Three sentences of 1.3 s, 0.5 s and 2.02 s: 95.5 frames in all.
  for (double s : {1.3, 0.5, 2.02}) p->push_speech(tone(s), {});
  p->finish();
  {
    std::unique_lock lock(c.m);
    REQUIRE(c.cv.wait_for(lock, 60s, [&] { return c.last || !c.error.empty(); }));
  }
  pool.join();
  INFO(c.error);
  CHECK(c.error.empty());
  CHECK(c.init == 1);
  CHECK_FALSE(c.media_before_init);
  CHECK(c.media >= 4);  // about half a second each
  CHECK(r.frames_ == std::lround(3.82 * 25));
  CHECK(p->frames_encoded() == static_cast<std::size_t>(r.frames_.load()));
  CHECK(ffprobe_frames(c.mp4) == r.frames_);
}

TEST_CASE("frame pipeline: rendering never runs more than max_chunks ahead of encoding", "[pipeline][frames]") {
  boost::asio::thread_pool pool(2);
  const auto a = grey_avatar();
  CountingRenderer r;
  Collected c;
  std::shared_ptr<pipeline::FramePipeline> p;
  std::atomic<int> worst{0};
  const std::size_t max_chunks = 2;
  r.probe = [&] {
    // Chunks rendered (this one included) but not yet encoded: at most the queue, the one
    // being encoded, and this one.
    const int ahead = r.calls_ - static_cast<int>(p->frames_encoded() / 5);
    int w = worst.load();
    while (ahead > w && !worst.compare_exchange_weak(w, ahead)) {
    }
  };
  p = make_pipeline(pool, a, r, c, max_chunks);
  p->push_speech(tone(8.0), {});
  p->finish();
  {
    std::unique_lock lock(c.m);
    REQUIRE(c.cv.wait_for(lock, 120s, [&] { return c.last || !c.error.empty(); }));
  }
  pool.join();
  CHECK(c.error.empty());
  CHECK(r.calls_ == 40);
  CHECK(worst.load() <= static_cast<int>(max_chunks) + 2);
  CHECK(worst.load() >= 1);
}

TEST_CASE("frame pipeline: cancel stops rendering and callbacks", "[pipeline][frames]") {
  boost::asio::thread_pool pool(2);
  const auto a = grey_avatar();
  CountingRenderer r;
  r.delay = 5ms;
  Collected c;
  auto p = make_pipeline(pool, a, r, c);
  p->push_speech(tone(20.0), {});  // 100 render calls if left alone
  std::this_thread::sleep_for(50ms);
  p->cancel();
  int media_at_cancel;
  {
    std::lock_guard lock(c.m);
    media_at_cancel = c.media;
  }
  p->finish();
  pool.join();
  CHECK(r.calls_ < 100);
  std::lock_guard lock(c.m);
  CHECK_FALSE(c.last);
  CHECK(c.media <= media_at_cancel + 1);  // at most the segment of the task running at cancel
}
