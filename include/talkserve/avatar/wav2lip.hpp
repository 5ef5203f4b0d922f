#pragma once
// Wav2Lip lip sync on libtorch: the published Wav2Lip generator (Prajwal et al., 2020; weights
// converted from the original wav2lip.pth / wav2lip_gan.pth by scripts/convert-wav2lip.py) as
// the second LipSyncRenderer. See docs/wav2lip.md.
//
//   wav2lip_melspectrogram()  the original's audio features (audio.py + hparams.py), exactly
//   Wav2LipModel              the resident network: 80x16 mel window + 6x96x96 face -> 3x96x96
//   make_wav2lip_renderer()   per frame: crop the face box, run the network, paste back the
//                             lower face; frames of all concurrent render() calls share forward
//                             passes through one sched::BatchingExecutor
//   write_random_wav2lip()    a random-weight checkpoint for tests and benchmarks
//
// Plain C++: libtorch stays inside src/avatar/wav2lip.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "talkserve/avatar/renderer.hpp"
#include "talkserve/sched/batching_config.hpp"
#include "talkserve/sched/batching_stats.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::avatar {

// ---- Audio features (hparams.py of the original) ----

inline constexpr int kWav2LipSampleRate = 16000;
inline constexpr int kWav2LipFftSize = 800;      // n_fft = win_size (50 ms), periodic Hann
inline constexpr int kWav2LipHopSize = 200;      // 12.5 ms: 80 mel frames per second
inline constexpr int kWav2LipMelBands = 80;      // slaney mel scale and area norm, 55 .. 7600 Hz
inline constexpr int kWav2LipMelStep = 16;       // mel frames per video frame window (0.2 s)
inline constexpr int kWav2LipFaceSize = 96;      // the network's face crop

// mel[band][frame], row-major: values[band * frames + frame], in [-4, 4].
struct Wav2LipMel {
  int frames = 0;
  std::vector<float> values;
  float at(int band, int frame) const { return values[static_cast<std::size_t>(band) * frames + frame]; }
};

// audio.melspectrogram() of 16 kHz mono audio: preemphasis 0.97, |STFT| (librosa: centred,
// reflect-padded frames, n_fft 800, hop 200, periodic Hann), 80 slaney mel bands (55 .. 7600 Hz,
// area-normalised), 20 log10(max(1e-5, .)) - 20 dB, then clip(8 (S + 100) / 100 - 4, -4, 4).
// frames = 1 + samples / 200. Throws std::invalid_argument for fewer than 401 samples (the
// reflect padding needs more than n_fft / 2).
Wav2LipMel wav2lip_melspectrogram(std::span<const float> audio_16k);

// The mel filterbank: [80][401] row-major (librosa.filters.mel(sr=16000, n_fft=800, n_mels=80,
// fmin=55, fmax=7600), slaney scale and norm).
const std::vector<float>& wav2lip_mel_filterbank();

// First mel frame of the window of video frame `position` (frames since the start of the audio;
// fractional when the stream carries a frame debt): int(position * (80 / fps)) as inference.py
// computes it, clamped into [0, mel_frames - 16] (the original takes the last 16 frames when
// the window would run past the end). Requires mel_frames >= 16.
int wav2lip_mel_window_start(double position, double fps, int mel_frames);

// Copies mel[:, start : start + 16] into out (80 x 16 row-major, as the network's 1x80x16 input).
void wav2lip_mel_window(const Wav2LipMel& mel, int start, std::span<float> out);

// ---- The network ----

// The Wav2Lip generator with weights from a safetensors file (tensor names of the original
// checkpoint without the "module." prefix; F32, F16 or BF16, computed in float32; BatchNorm
// folded into the convolutions at load).
//
// Thread-safety: immutable after load(); forward() may run on several threads at once (they
// share torch's process-wide intra-op pool).
class Wav2LipModel {
 public:
  // device: "cpu", "cuda", "cuda:N". threads > 0 sets torch's (process-wide) intra-op threads.
  // Throws std::runtime_error naming the file and, for a missing or wrong-shaped tensor, the
  // tensor and both shapes.
  static std::shared_ptr<const Wav2LipModel> load(const std::string& safetensors_path,
                                                  const std::string& device = "cpu", int threads = 0);
  ~Wav2LipModel();

  // One forward pass over n frames. mels: n x [1, 80, 16]; faces: n x [6, 96, 96] (channels 0-2
  // the target face with rows 48..95 zeroed, 3-5 the reference face; BGR order as the original
  // was trained on OpenCV images; values in [0, 1]). Returns n x [3, 96, 96] (BGR, in (0, 1)).
  // Each frame's output does not depend on the others in the batch (eval-mode BatchNorm).
  // Throws std::runtime_error (wrong buffer sizes, torch errors).
  std::vector<float> forward(std::span<const float> mels, std::span<const float> faces, std::size_t n) const;

  // First 16 hex digits of the sha256 of the weights file.
  const std::string& fingerprint() const;
  const std::string& path() const;

  struct Impl;
  explicit Wav2LipModel(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- The renderer ----

struct Wav2LipOptions {
  std::string weights;    // the converted safetensors file (required)
  std::string device = "cpu";
  int threads = 0;        // torch intra-op threads (process-wide); 0 = leave as is
  // The lip-sync executor. max_batch = frames per forward pass; every frame is one request.
  sched::BatchingConfig batching = default_batching();
  // The face box (Avatar::face, from the Haar cascade) is extended downwards by this fraction of
  // its height so that the crop includes the chin, as inference.py's default --pads 0 10 0 0 do
  // for the S3FD box; clamped to the portrait.
  float face_pad_bottom = 0.1f;
  // The generated face replaces the portrait below this fraction of the crop height (the
  // network regenerates the masked lower half), blended over `feather` of the crop height.
  float blend_top = 0.5f;
  float feather = 0.08f;
  bool blink = true;  // draw the viseme renderer's blinks over the eyes (speech and idle)

  static sched::BatchingConfig default_batching();
  void validate() const;  // throws std::invalid_argument naming the field
};

class Wav2LipRenderer : public LipSyncRenderer {
 public:
  // The executor's counters (batch_size_histogram shows how frames were batched).
  // Thread-safety: any thread.
  virtual sched::ExecutorStats stats() const = 0;
  virtual const Wav2LipModel& model() const = 0;
};

// Loads the weights and starts the executor. render() runs on the caller's thread up to the
// network (resampling to 16 kHz, mel, face crop), enqueues one request per frame and blocks until
// they are done, then composites on the caller's thread; frames of concurrent render() calls
// (any sessions, any avatars) share forward passes. idle() runs no network: the portrait with
// blinks. `clock` (must outlive the renderer) drives the batch window; `observer` gets each
// batch's report on the executor thread (wire it to metrics).
// Throws std::invalid_argument (options) or std::runtime_error (weights).
std::unique_ptr<Wav2LipRenderer> make_wav2lip_renderer(
    const Wav2LipOptions& options, sched::Clock& clock = sched::steady_clock(),
    std::function<void(const sched::BatchReport&)> observer = {});

// ---- Test and benchmark weights ----

// Writes a safetensors file with every tensor of the generator, random but scaled so that
// activations stay O(1) and the output varies with the audio. Deterministic for a seed.
// dtype: "F32", "F16" or "BF16". Throws std::runtime_error on I/O failure.
void write_random_wav2lip(const std::string& path, std::uint64_t seed, const std::string& dtype = "F32");

}  // namespace talkserve::avatar
