#include "talkserve/speech/tts_stage.hpp"

#include <algorithm>

#include "talkserve/obs/executor_metrics.hpp"

namespace talkserve::speech {

using Executor = sched::BatchingExecutor<TtsRequest, TtsResult>;

struct TtsStage::Impl {
  std::vector<VoiceInfo> voices;
  std::unique_ptr<obs::ExecutorMetrics> metrics;
  std::unique_ptr<Executor> executor;
};

TtsStage::TtsStage(std::unique_ptr<TtsBackend> backend, sched::BatchingConfig batching,
                   sched::Clock& clock, obs::MetricsRegistry* metrics)
    : backend_(std::move(backend)), impl_(std::make_unique<Impl>()) {
  if (!backend_->thread_safe()) batching.num_workers = 1;
  impl_->voices = backend_->voices();
  if (metrics != nullptr) {
    impl_->metrics = std::make_unique<obs::ExecutorMetrics>(*metrics, batching.name);
  }
  TtsBackend* b = backend_.get();
  impl_->executor = std::make_unique<Executor>(
      std::move(batching), clock,
      [b](std::vector<TtsRequest>& batch) {
        // Synthesis is sequential per worker; a batch is a few sentences run back to back.
        std::vector<TtsResult> out;
        out.reserve(batch.size());
        for (const TtsRequest& r : batch) out.push_back(b->synthesize(r));
        return out;
      },
      impl_->metrics ? Executor::Observer(impl_->metrics->observer()) : Executor::Observer{});
  if (impl_->metrics) {
    impl_->metrics->attach_queue_depth(
        [e = impl_->executor.get()] { return static_cast<double>(e->stats().queue_depth); });
  }
}

TtsStage::~TtsStage() {
  impl_->executor->stop(sched::StopMode::fail);
  impl_->metrics.reset();
}

bool TtsStage::has_voice(const std::string& voice) const {
  if (voice.empty()) return true;
  return std::any_of(impl_->voices.begin(), impl_->voices.end(),
                     [&](const VoiceInfo& v) { return v.name == voice; });
}

sched::Expected<sched::RequestId> TtsStage::synthesize(TtsRequest request, int priority,
                                                       Callback done) {
  sched::EnqueueOptions opts;
  opts.priority = priority;
  auto id = impl_->executor->enqueue(std::move(request), std::move(done), opts);
  if (!id && impl_->metrics) impl_->metrics->count_rejection(id.error().code);
  return id;
}

bool TtsStage::cancel(sched::RequestId id) { return impl_->executor->cancel(id); }
void TtsStage::drain() { impl_->executor->stop(sched::StopMode::drain); }
void TtsStage::stop() { impl_->executor->stop(sched::StopMode::fail); }
std::size_t TtsStage::queue_depth() const { return impl_->executor->stats().queue_depth; }

}  // namespace talkserve::speech
