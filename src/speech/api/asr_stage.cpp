#include "talkserve/speech/asr_stage.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>

#include "talkserve/obs/executor_metrics.hpp"
#include "talkserve/sched/batching_executor.hpp"

namespace talkserve::speech {
namespace {

struct SegmentJob {
  std::shared_ptr<const std::vector<float>> audio;
  SpeechRegion region;
  std::string language;
  std::shared_ptr<const std::atomic<bool>> cancelled;  // the clip's (ClipState::cancelled())
  std::shared_ptr<const std::string> prompt;           // may be null
};

using Executor = sched::BatchingExecutor<SegmentJob, AsrResult>;

// Splits regions longer than `max_len` samples into equal parts no longer than it.
std::vector<SpeechRegion> cut_long(std::vector<SpeechRegion> regions, std::size_t max_len) {
  std::vector<SpeechRegion> out;
  for (const SpeechRegion& r : regions) {
    const std::size_t len = r.end - r.begin;
    const std::size_t parts = std::max<std::size_t>(1, (len + max_len - 1) / max_len);
    for (std::size_t i = 0; i < parts; ++i) {
      out.push_back({r.begin + len * i / parts, r.begin + len * (i + 1) / parts});
    }
  }
  return out;
}

class ClipState final : public AsrTicket, public std::enable_shared_from_this<ClipState> {
 public:
  ClipState(Executor& exec, std::vector<SpeechRegion> regions, double duration,
            AsrStage::Callback done, obs::ExecutorMetrics* metrics = nullptr)
      : exec_(exec),
        metrics_(metrics),
        regions_(std::move(regions)),
        duration_(duration),
        done_(std::move(done)) {
    results_.resize(regions_.size());
    remaining_ = regions_.size();
  }

  // Queued segments are withdrawn; those already in a batch are skipped by the backend if it
  // has not started on them (AsrInput::cancelled).
  void cancel() override {
    cancelled_->store(true, std::memory_order_relaxed);
    std::vector<sched::RequestId> ids;
    {
      std::lock_guard lock(mutex_);
      ids = ids_;
    }
    for (auto id : ids) exec_.cancel(id);  // callbacks run here: no lock held
  }

  // The clip was refused part-way: withdraw the queued segments without calling `done`.
  void abandon() {
    {
      std::lock_guard lock(mutex_);
      finished_ = true;
      done_ = nullptr;
    }
    cancel();
  }

  std::shared_ptr<const std::atomic<bool>> cancelled() const { return cancelled_; }

  void add_id(sched::RequestId id) {
    std::lock_guard lock(mutex_);
    ids_.push_back(id);
  }

  void on_segment(std::size_t index, sched::Expected<AsrResult> r) {
    AsrStage::Callback done;
    sched::Expected<Transcript> out = sched::ExecError{};
    bool cancel_rest = false;
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      if (!r) {
        finished_ = true;
        cancel_rest = true;
        out = r.error();
        if (r.error().code == sched::ExecErrc::deadline_exceeded) {
          if (metrics_ != nullptr) metrics_->count_rejection(r.error().code);
          // The deadline is the stage's own queue bound (AsrStage::transcribe): overload.
          out = sched::ExecError{sched::ExecErrc::overloaded,
                                 "a segment waited over twice asr.max_queue_delay_ms in the queue"};
        }
        done = std::move(done_);
      } else {
        results_[index] = std::move(r.value());
        if (--remaining_ == 0) {
          finished_ = true;
          out = compose();
          done = std::move(done_);
        }
      }
    }
    if (done) done(std::move(out));
    if (cancel_rest) cancel();
  }

 private:
  Transcript compose() {
    Transcript t;
    t.duration = duration_;
    for (std::size_t i = 0; i < regions_.size(); ++i) {
      AsrResult& r = results_[i];
      if (r.text.empty()) continue;
      TranscriptSegment seg;
      seg.start = regions_[i].begin / static_cast<double>(kAsrSampleRate);
      seg.end = regions_[i].end / static_cast<double>(kAsrSampleRate);
      for (AsrWord& w : r.words) {
        w.start += seg.start;
        w.end += seg.start;
      }
      for (AsrSegment& s : r.segments) {
        s.start += seg.start;
        s.end += seg.start;
      }
      if (!t.text.empty()) t.text += ' ';
      t.text += r.text;
      seg.result = std::move(r);
      t.segments.push_back(std::move(seg));
    }
    return t;
  }

  Executor& exec_;
  obs::ExecutorMetrics* metrics_;  // may be null
  std::mutex mutex_;
  std::vector<SpeechRegion> regions_;
  std::vector<AsrResult> results_;
  std::vector<sched::RequestId> ids_;
  std::size_t remaining_ = 0;
  bool finished_ = false;
  double duration_ = 0;
  AsrStage::Callback done_;
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace

struct AsrStage::Impl {
  Impl(AsrBackend& backend, std::shared_ptr<const VadModel> vad, AsrStageConfig cfg,
       sched::Clock& clock, obs::MetricsRegistry* registry)
      : vad(std::move(vad)), config(std::move(cfg)), clock(clock) {
    if (registry != nullptr) {
      metrics = std::make_unique<obs::ExecutorMetrics>(*registry, config.batching.name);
      audio_seconds = &registry->counter(
          "talkserve_asr_audio_seconds_total",
          "Seconds of audio segmented for recognition (uploads and talk turns; an upload whose "
          "client left before its turn is not counted)");
    }
    executor = std::make_unique<Executor>(
        config.batching, clock,
        [&backend](std::vector<SegmentJob>& jobs) {
          std::vector<AsrInput> inputs;
          inputs.reserve(jobs.size());
          for (const SegmentJob& j : jobs) {
            const auto first = j.audio->begin() + static_cast<std::ptrdiff_t>(j.region.begin);
            const auto last = j.audio->begin() + static_cast<std::ptrdiff_t>(j.region.end);
            inputs.push_back(AsrInput{std::vector<float>(first, last), j.language, j.cancelled,
                                      j.prompt ? *j.prompt : std::string()});
          }
          return backend.transcribe_batch(inputs);
        },
        metrics ? Executor::Observer(metrics->observer()) : Executor::Observer{});
    if (metrics) {
      metrics->attach_queue_depth(
          [this] { return static_cast<double>(executor->stats().queue_depth); });
    }
  }
  ~Impl() {
    executor->stop(sched::StopMode::fail);
    metrics.reset();  // removes the gauge reading `executor` before it goes
  }

  std::shared_ptr<const VadModel> vad;
  AsrStageConfig config;
  sched::Clock& clock;
  std::unique_ptr<obs::ExecutorMetrics> metrics;
  obs::Counter* audio_seconds = nullptr;
  std::unique_ptr<Executor> executor;
};

AsrStage::AsrStage(std::unique_ptr<AsrBackend> backend, std::shared_ptr<const VadModel> vad,
                   AsrStageConfig config, sched::Clock& clock, obs::MetricsRegistry* metrics)
    : backend_(std::move(backend)) {
  config.vad.validate();
  if (!(config.merge_gap_seconds >= 0)) throw std::invalid_argument("merge_gap_seconds: must be >= 0");
  if (!(config.max_segment_seconds >= 1)) {
    throw std::invalid_argument("max_segment_seconds: must be >= 1");
  }
  impl_ = std::make_unique<Impl>(*backend_, std::move(vad), std::move(config), clock, metrics);
}

AsrStage::~AsrStage() { impl_.reset(); }

const VadModel* AsrStage::vad_model() const { return impl_->vad.get(); }
const VadParams& AsrStage::vad_params() const { return impl_->config.vad; }

std::vector<SpeechRegion> AsrStage::segment(const std::vector<float>& audio) const {
  const auto max_len = static_cast<std::size_t>(impl_->config.max_segment_seconds * kAsrSampleRate);
  if (audio.empty()) return {};
  if (impl_->audio_seconds) impl_->audio_seconds->inc(static_cast<double>(audio.size()) / kAsrSampleRate);
  if (!impl_->vad) return cut_long({{0, audio.size()}}, max_len);
  auto regions = detect_speech(*impl_->vad, audio, impl_->config.vad);
  for (auto& r : regions) r.end = std::min(r.end, audio.size());
  std::erase_if(regions, [](const SpeechRegion& r) { return r.end <= r.begin; });
  const auto gap = static_cast<std::size_t>(impl_->config.merge_gap_seconds * kAsrSampleRate);
  std::vector<SpeechRegion> merged;
  for (const SpeechRegion& r : regions) {
    if (!merged.empty() && r.begin <= merged.back().end + gap &&
        r.end - merged.back().begin <= max_len) {
      merged.back().end = r.end;
    } else {
      merged.push_back(r);
    }
  }
  return cut_long(std::move(merged), max_len);
}

sched::Expected<std::shared_ptr<AsrTicket>> AsrStage::transcribe(
    std::shared_ptr<const std::vector<float>> audio, std::vector<SpeechRegion> segments,
    std::string language, int priority, Callback done, std::string prompt) {
  const double duration = audio->size() / static_cast<double>(kAsrSampleRate);
  if (segments.empty()) {  // no speech: an empty transcript at once
    Transcript empty;
    empty.duration = duration;
    done(std::move(empty));
    return std::shared_ptr<AsrTicket>(std::make_shared<ClipState>(*impl_->executor, segments,
                                                                  duration, nullptr));
  }
  auto state = std::make_shared<ClipState>(*impl_->executor, segments, duration, std::move(done),
                                           impl_->metrics.get());
  const auto shared_prompt = prompt.empty() ? nullptr : std::make_shared<const std::string>(std::move(prompt));
  sched::EnqueueOptions opts;
  opts.priority = priority;
  // Admitted work is not kept for ever either: a segment still queued at twice the admission
  // bound is answered `overloaded` instead of being recognised after its client has likely
  // given up (and taking the recogniser from requests that can still be served in time).
  if (const auto bound = impl_->config.batching.max_queue_delay; bound.count() > 0) {
    opts.deadline = impl_->clock.now() +
                    std::chrono::duration_cast<sched::Clock::duration>(2 * bound);
  }
  for (std::size_t i = 0; i < segments.size(); ++i) {
    // A segment costs its seconds of audio (BatchingConfig::max_batch_cost).
    opts.cost = (segments[i].end - segments[i].begin) / static_cast<double>(kAsrSampleRate);
    auto id = impl_->executor->enqueue(
        SegmentJob{audio, segments[i], language, state->cancelled(), shared_prompt},
        [state, i](sched::Expected<AsrResult> r) { state->on_segment(i, std::move(r)); }, opts);
    if (!id) {
      if (impl_->metrics) impl_->metrics->count_rejection(id.error().code);
      state->abandon();  // no half-recognised clips: withdraw what was queued
      return id.error();
    }
    state->add_id(*id);
  }
  return std::shared_ptr<AsrTicket>(state);
}

void AsrStage::drain() { impl_->executor->stop(sched::StopMode::drain); }
void AsrStage::stop() { impl_->executor->stop(sched::StopMode::fail); }
std::size_t AsrStage::queue_depth() const { return impl_->executor->stats().queue_depth; }
bool AsrStage::overloaded(int priority) const {
  if (!impl_->executor->overloaded(priority)) return false;
  if (impl_->metrics) impl_->metrics->count_rejection(sched::ExecErrc::overloaded);
  return true;
}

}  // namespace talkserve::speech
