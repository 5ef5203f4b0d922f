#include <catch2/catch.hpp>

#include <condition_variable>
#include <future>
#include <mutex>

#include "talkserve/speech/asr_stage.hpp"

using namespace talkserve;
using namespace talkserve::speech;

namespace {

// A backend whose "text" is the clip length, recording every batch it gets. It can be held
// at the start of a batch so tests control what is queued.
class RecordingBackend final : public AsrBackend {
 public:
  std::string name() const override { return "recording"; }
  std::vector<std::string> languages() const override { return {"en"}; }
  std::vector<AsrResult> transcribe_batch(std::vector<AsrInput>& batch) override {
    {
      std::unique_lock lock(m);
      batches.push_back(batch.size());
      ++started;
      cv.notify_all();
      cv.wait(lock, [&] { return !hold; });
    }
    std::vector<AsrResult> out;
    for (const auto& in : batch) {
      if (in.samples.empty()) throw AsrError("empty clip");
      AsrResult r;
      r.text = "n" + std::to_string(in.samples.size());
      r.words = {{r.text, 0.0, in.samples.size() / 16000.0}};
      out.push_back(r);
    }
    return out;
  }
  void release() {
    std::lock_guard lock(m);
    hold = false;
    cv.notify_all();
  }
  void wait_started(int n) {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return started >= n; });
  }
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::size_t> batches;
  int started = 0;
  bool hold = false;
};

AsrStageConfig config(std::size_t max_batch, std::size_t max_queue) {
  AsrStageConfig c;
  c.batching.name = "asr-test";
  c.batching.max_batch = max_batch;
  c.batching.max_queue = max_queue;
  c.batching.max_wait = std::chrono::milliseconds(0);
  c.max_segment_seconds = 2;
  return c;
}

}  // namespace

TEST_CASE("without a VAD a clip is one segment, cut at max_segment_seconds") {
  auto backend = std::make_unique<RecordingBackend>();
  AsrStage stage(std::move(backend), nullptr, config(8, 16), sched::steady_clock(), nullptr);
  const std::vector<float> audio(16000 * 5, 0.1f);  // 5 s -> three parts of <= 2 s
  auto segs = stage.segment(audio);
  REQUIRE(segs.size() == 3);
  CHECK(segs[0].begin == 0);
  CHECK(segs[2].end == audio.size());
  CHECK(segs[0].end == segs[1].begin);
  CHECK(stage.segment({}).empty());
}

TEST_CASE("a clip's segments are recognised and reassembled in order with clip times") {
  auto owned = std::make_unique<RecordingBackend>();
  AsrStage stage(std::move(owned), nullptr, config(8, 16), sched::steady_clock(), nullptr);
  auto audio = std::make_shared<const std::vector<float>>(16000 * 3, 0.1f);
  std::vector<SpeechRegion> regions{{0, 8000}, {16000, 40000}};
  std::promise<sched::Expected<Transcript>> p;
  auto t = stage.transcribe(audio, regions, "en", 1,
                            [&](sched::Expected<Transcript> r) { p.set_value(std::move(r)); });
  REQUIRE(t);
  auto r = p.get_future().get();
  REQUIRE(r);
  CHECK(r->text == "n8000 n24000");
  REQUIRE(r->segments.size() == 2);
  CHECK(r->segments[1].start == Approx(1.0));
  CHECK(r->segments[1].end == Approx(2.5));
  CHECK(r->segments[1].result.words.at(0).start == Approx(1.0));  // shifted to clip time
  CHECK(r->duration == Approx(3.0));
}

TEST_CASE("no speech segments give an empty transcript at once") {
  AsrStage stage(std::make_unique<RecordingBackend>(), nullptr, config(8, 16),
                 sched::steady_clock(), nullptr);
  auto audio = std::make_shared<const std::vector<float>>(16000, 0.0f);
  std::optional<sched::Expected<Transcript>> got;
  auto t = stage.transcribe(audio, {}, "", 1, [&](sched::Expected<Transcript> r) { got = r; });
  REQUIRE(t);
  REQUIRE(got.has_value());
  REQUIRE(got->has_value());
  CHECK((*got)->text.empty());
}

TEST_CASE("segments of concurrent clips are batched together") {
  auto owned = std::make_unique<RecordingBackend>();
  RecordingBackend* backend = owned.get();
  backend->hold = true;
  AsrStage stage(std::move(owned), nullptr, config(8, 64), sched::steady_clock(), nullptr);
  auto audio = std::make_shared<const std::vector<float>>(16000, 0.1f);
  std::vector<std::promise<sched::Expected<Transcript>>> ps(4);
  // The first clip occupies the worker; the next three queue up and form one batch.
  for (std::size_t i = 0; i < ps.size(); ++i) {
    auto t = stage.transcribe(audio, {{0, 16000}}, "", 1,
                              [&, i](sched::Expected<Transcript> r) { ps[i].set_value(r); });
    REQUIRE(t);
    if (i == 0) backend->wait_started(1);
  }
  backend->release();
  for (auto& p : ps) CHECK(p.get_future().get().has_value());
  std::lock_guard lock(backend->m);
  CHECK(backend->batches == std::vector<std::size_t>{1, 3});
}

TEST_CASE("a failed segment fails the clip once, and cancel withdraws queued segments") {
  auto owned = std::make_unique<RecordingBackend>();
  RecordingBackend* backend = owned.get();
  AsrStage stage(std::move(owned), nullptr, config(1, 64), sched::steady_clock(), nullptr);
  auto audio = std::make_shared<const std::vector<float>>(16000, 0.1f);

  std::promise<sched::Expected<Transcript>> failed;
  int calls = 0;
  auto t = stage.transcribe(audio, {{0, 100}, {200, 200}, {300, 400}}, "", 1,
                            [&](sched::Expected<Transcript> r) {
                              ++calls;
                              failed.set_value(std::move(r));
                            });
  REQUIRE(t);
  auto r = failed.get_future().get();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == sched::ExecErrc::failed);
  CHECK(r.error().message.find("empty clip") != std::string::npos);

  int before = 0;
  {
    std::lock_guard lock(backend->m);
    backend->hold = true;
    before = backend->started;
  }
  std::promise<sched::Expected<Transcript>> blocker;
  auto b = stage.transcribe(audio, {{0, 100}}, "", 1,
                            [&](sched::Expected<Transcript> r2) { blocker.set_value(r2); });
  REQUIRE(b);
  backend->wait_started(before + 1);
  std::promise<sched::Expected<Transcript>> cancelled;
  auto c = stage.transcribe(audio, {{0, 100}, {100, 200}}, "", 1,
                            [&](sched::Expected<Transcript> r2) { cancelled.set_value(r2); });
  REQUIRE(c);
  (*c)->cancel();
  auto cr = cancelled.get_future().get();
  REQUIRE_FALSE(cr);
  CHECK(cr.error().code == sched::ExecErrc::cancelled);
  backend->release();
  CHECK(blocker.get_future().get().has_value());
  CHECK(calls == 1);
}

TEST_CASE("a clip that does not fit the queue is refused whole and never called back") {
  auto owned = std::make_unique<RecordingBackend>();
  RecordingBackend* backend = owned.get();
  backend->hold = true;
  AsrStage stage(std::move(owned), nullptr, config(1, 2), sched::steady_clock(), nullptr);
  auto audio = std::make_shared<const std::vector<float>>(16000, 0.1f);
  std::promise<sched::Expected<Transcript>> first;
  auto a = stage.transcribe(audio, {{0, 100}}, "", 1,
                            [&](sched::Expected<Transcript> r) { first.set_value(r); });
  backend->wait_started(1);
  bool called = false;
  auto refused = stage.transcribe(audio, {{0, 100}, {100, 200}, {200, 300}}, "", 1,
                                  [&](sched::Expected<Transcript>) { called = true; });
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == sched::ExecErrc::queue_full);
  CHECK(stage.queue_depth() == 0);  // the two queued parts were withdrawn
  backend->release();
  CHECK(first.get_future().get().has_value());
  CHECK_FALSE(called);
}
