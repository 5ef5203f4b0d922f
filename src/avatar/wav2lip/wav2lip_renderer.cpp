// The Wav2Lip LipSyncRenderer: one resident network behind one BatchingExecutor; every video
// frame is one request, so the frames of all concurrent render() calls share forward passes.
// Everything but the network (resampling, mel, crop, paste, blinks) runs on the caller's thread.

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "avatar/avatar_rig.hpp"
#include "avatar/blink_schedule.hpp"
#include "avatar/face_compositor.hpp"
#include "avatar/wav2lip/wav2lip_face.hpp"
#include "talkserve/avatar/wav2lip.hpp"
#include "talkserve/media/resampler.hpp"
#include "talkserve/sched/batching_executor.hpp"

namespace talkserve::avatar {
namespace {

constexpr std::size_t kMelValues = static_cast<std::size_t>(kWav2LipMelBands) * kWav2LipMelStep;
constexpr std::size_t kFaceValues = 6ull * kWav2LipFaceSize * kWav2LipFaceSize;
constexpr std::size_t kOutValues = 3ull * kWav2LipFaceSize * kWav2LipFaceSize;
// The shortest 16 kHz audio whose mel has a full 16-frame window: 1 + 3000 / 200 = 16 frames.
constexpr std::size_t kMinSamples = static_cast<std::size_t>(kWav2LipMelStep - 1) * kWav2LipHopSize;

struct FrameJob {
  std::vector<float> mel;                          // [1, 80, 16]
  std::shared_ptr<const std::vector<float>> face;  // [6, 96, 96], shared by a call's frames
};
using FrameOutput = std::vector<float>;            // [3, 96, 96]
using Executor = sched::BatchingExecutor<FrameJob, FrameOutput>;

// The frames of one render() call in flight; callbacks hold it, so it outlives an early throw.
struct CallWait {
  std::mutex mutex;
  std::condition_variable done;
  std::size_t remaining = 0;
  std::vector<FrameOutput> outputs;
  std::optional<std::string> error;
};

void check_avatar(const Avatar& avatar) {
  const media::RgbFrame& p = avatar.portrait;
  if (p.width <= 0 || p.height <= 0 || p.data.size() != static_cast<std::size_t>(p.width) * p.height * 3)
    throw std::invalid_argument("wav2lip renderer: avatar '" + avatar.id + "' has no valid portrait");
}

std::vector<float> to_16k(std::span<const float> audio, int rate) {
  std::vector<float> out;
  if (rate == kWav2LipSampleRate) {
    out.assign(audio.begin(), audio.end());
  } else {
    media::AudioResampler resampler(rate, kWav2LipSampleRate);
    out = resampler.push(audio);
    const std::vector<float> tail = resampler.flush();
    out.insert(out.end(), tail.begin(), tail.end());
  }
  if (out.size() < kMinSamples) out.resize(kMinSamples, 0.0f);  // silence after a short chunk
  return out;
}

std::string format_version(const Wav2LipModel& model, const Wav2LipOptions& o) {
  char params[96];
  std::snprintf(params, sizeof params, "-pad%.3f-top%.3f-feather%.3f%s", o.face_pad_bottom, o.blend_top, o.feather,
                o.blink ? "-blink" : "");
  return "wav2lip-1-" + model.fingerprint() + params;  // bump the 1 when the pipeline's output changes
}

class Wav2LipRendererImpl final : public Wav2LipRenderer {
 public:
  Wav2LipRendererImpl(std::shared_ptr<const Wav2LipModel> model, Wav2LipOptions options, sched::Clock& clock,
                      std::function<void(const sched::BatchReport&)> observer)
      : model_(std::move(model)),
        options_(std::move(options)),
        version_(format_version(*model_, options_)),
        executor_(options_.batching, clock, [this](std::vector<FrameJob>& jobs) { return run_batch(jobs); },
                  std::move(observer)) {}

  ~Wav2LipRendererImpl() override { executor_.stop(sched::StopMode::drain); }

  std::string name() const override { return "wav2lip"; }
  std::string version() const override { return version_; }
  sched::ExecutorStats stats() const override { return executor_.stats(); }
  const Wav2LipModel& model() const override { return *model_; }

  std::vector<media::RgbFrame> render(const Avatar& avatar, const RenderInput& input,
                                      RenderState& state) const override {
    check_avatar(avatar);
    if (input.fps <= 0) throw std::invalid_argument("wav2lip renderer: fps must be positive");
    if (input.sample_rate <= 0) throw std::invalid_argument("wav2lip renderer: sample_rate must be positive");

    // Frame accounting (see RenderState).
    const double exact =
        state.frame_debt + static_cast<double>(input.audio.size()) * input.fps / input.sample_rate;
    const int frames = static_cast<int>(std::max<long long>(0, std::llround(exact)));
    std::vector<media::RgbFrame> out;
    if (frames > 0) {
      const detail::FaceCrop crop = detail::prepare_face(avatar, options_);
      const std::vector<FrameOutput> generated = generate(crop, input, state.frame_debt, frames);
      const auto rig = options_.blink ? rig_of(avatar) : nullptr;
      out.reserve(static_cast<std::size_t>(frames));
      for (int n = 0; n < frames; ++n) {
        media::RgbFrame frame = avatar.portrait;
        detail::paste_face(crop, generated[static_cast<std::size_t>(n)], frame);
        if (rig) draw_blink(*rig, avatar, state.time + static_cast<double>(n) / input.fps, frame);
        out.push_back(std::move(frame));
      }
    }
    state.frame_debt = exact - frames;
    state.time += static_cast<double>(frames) / input.fps;
    state.mouth_open = 0;  // the network keeps no pose between calls
    state.last_viseme = static_cast<int>(speech::Viseme::rest);
    return out;
  }

  std::vector<media::RgbFrame> idle(const Avatar& avatar, int frames, int fps, RenderState& state) const override {
    check_avatar(avatar);
    if (fps <= 0) throw std::invalid_argument("wav2lip renderer: fps must be positive");
    const auto rig = options_.blink ? rig_of(avatar) : nullptr;
    std::vector<media::RgbFrame> out;
    out.reserve(static_cast<std::size_t>(std::max(0, frames)));
    for (int n = 0; n < frames; ++n) {
      media::RgbFrame frame = avatar.portrait;
      if (rig) draw_blink(*rig, avatar, state.time + static_cast<double>(n) / fps, frame);
      out.push_back(std::move(frame));
    }
    state.time += static_cast<double>(std::max(0, frames)) / fps;
    state.mouth_open = 0;
    state.last_viseme = static_cast<int>(speech::Viseme::rest);
    return out;
  }

 private:
  static std::shared_ptr<const AvatarRig> rig_of(const Avatar& avatar) {
    if (avatar.rig) return avatar.rig;
    return std::make_shared<const AvatarRig>(build_rig(avatar));
  }

  static void draw_blink(const AvatarRig& rig, const Avatar& avatar, double t, media::RgbFrame& frame) {
    const float closure = blink_closure(t);
    if (closure <= 0) return;
    for (const EyeRig& eye : rig.eyes) draw_eyelid(eye, avatar.portrait, closure, frame.data.data());
  }

  // Runs the network on every frame of one call through the shared executor; blocks until all
  // are done. Frame n shows time (n - debt) / fps into this call's audio.
  std::vector<FrameOutput> generate(const detail::FaceCrop& crop, const RenderInput& input, double debt,
                                    int frames) const {
    const Wav2LipMel mel = wav2lip_melspectrogram(to_16k(input.audio, input.sample_rate));
    const auto face = std::make_shared<const std::vector<float>>(crop.input);
    auto wait = std::make_shared<CallWait>();
    wait->outputs.resize(static_cast<std::size_t>(frames));
    wait->remaining = static_cast<std::size_t>(frames);
    std::vector<sched::RequestId> ids;
    ids.reserve(static_cast<std::size_t>(frames));
    for (int n = 0; n < frames; ++n) {
      FrameJob job{std::vector<float>(kMelValues), face};
      wav2lip_mel_window(mel, wav2lip_mel_window_start(n - debt, input.fps, mel.frames), job.mel);
      auto callback = [wait, n](sched::Expected<FrameOutput> result) {
        std::lock_guard lock(wait->mutex);
        if (result) {
          wait->outputs[static_cast<std::size_t>(n)] = std::move(result.value());
        } else if (!wait->error) {
          wait->error = result.error().message;
        }
        if (--wait->remaining == 0) wait->done.notify_all();
      };
      const auto id = executor_.enqueue(std::move(job), std::move(callback));
      if (!id) {
        // Nothing more will be queued: withdraw what is still waiting, then wait for the rest.
        {
          std::lock_guard lock(wait->mutex);
          wait->remaining -= static_cast<std::size_t>(frames - n);
          if (!wait->error) wait->error = id.error().message;
        }
        for (sched::RequestId queued : ids) executor_.cancel(queued);
        break;
      }
      ids.push_back(*id);
    }
    std::unique_lock lock(wait->mutex);
    wait->done.wait(lock, [&] { return wait->remaining == 0; });
    if (wait->error) throw std::runtime_error("wav2lip renderer: " + *wait->error);
    return std::move(wait->outputs);
  }

  // The executor's batch function: one forward pass over the frames of whichever calls are
  // waiting.
  std::vector<FrameOutput> run_batch(std::vector<FrameJob>& jobs) const {
    const std::size_t n = jobs.size();
    std::vector<float> mels, faces;
    mels.reserve(n * kMelValues);
    faces.reserve(n * kFaceValues);
    for (const FrameJob& j : jobs) {
      mels.insert(mels.end(), j.mel.begin(), j.mel.end());
      faces.insert(faces.end(), j.face->begin(), j.face->end());
    }
    const std::vector<float> out = model_->forward(mels, faces, n);
    std::vector<FrameOutput> results(n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto begin = out.begin() + static_cast<std::ptrdiff_t>(i * kOutValues);
      results[i].assign(begin, begin + static_cast<std::ptrdiff_t>(kOutValues));
    }
    return results;
  }

  std::shared_ptr<const Wav2LipModel> model_;
  Wav2LipOptions options_;
  std::string version_;
  mutable Executor executor_;  // enqueue/cancel are thread-safe; render() is const per the interface
};

}  // namespace

sched::BatchingConfig Wav2LipOptions::default_batching() {
  sched::BatchingConfig c;
  c.name = "wav2lip";
  c.max_batch = 16;
  c.max_queue = 4096;  // frames, not calls: 16 streams x 10 s at 25 fps
  c.max_wait = std::chrono::milliseconds(20);
  return c;
}

void Wav2LipOptions::validate() const {
  if (weights.empty()) throw std::invalid_argument("wav2lip.weights is empty");
  if (threads < 0 || threads > 1024) {
    throw std::invalid_argument("wav2lip.threads must be in [0, 1024], got " + std::to_string(threads));
  }
  if (!(face_pad_bottom >= 0 && face_pad_bottom <= 1)) {
    throw std::invalid_argument("wav2lip.face_pad_bottom must be in [0, 1]");
  }
  if (!(blend_top >= 0 && blend_top <= 1)) throw std::invalid_argument("wav2lip.blend_top must be in [0, 1]");
  if (!(feather > 0 && feather <= 0.5f)) throw std::invalid_argument("wav2lip.feather must be in (0, 0.5]");
  try {
    batching.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("wav2lip.batching: ") + e.what());
  }
}

std::unique_ptr<Wav2LipRenderer> make_wav2lip_renderer(const Wav2LipOptions& options, sched::Clock& clock,
                                                       std::function<void(const sched::BatchReport&)> observer) {
  options.validate();
  auto model = Wav2LipModel::load(options.weights, options.device, options.threads);
  return std::make_unique<Wav2LipRendererImpl>(std::move(model), options, clock, std::move(observer));
}

}  // namespace talkserve::avatar
