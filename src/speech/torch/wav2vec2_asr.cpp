// Wav2Vec2Asr: the AsrBackend over the wav2vec2 network (wav2vec2_model.cpp) and greedy CTC.

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "speech/torch/torch_device.hpp"
#include "speech/torch/ctc_greedy_decoder.hpp"
#include "speech/torch/wav2vec2_config.hpp"
#include "speech/torch/wav2vec2_model.hpp"
#include "talkserve/speech/wav2vec2.hpp"

// Debian's libtorch runs its GEMMs through OpenBLAS, whose pool ignores at::set_num_threads
// (see llm/model/model_loader.cpp). Weak: the build does not depend on the BLAS.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace talkserve::speech {

struct Wav2Vec2Asr::Impl {
  Wav2Vec2Options options;
  detail::Wav2Vec2Config config;
  detail::CtcVocabulary vocab;
  detail::Wav2Vec2Weights weights;
  torch::Device device = torch::kCPU;
  double frame_seconds = 0;
};

void Wav2Vec2Options::validate() const {
  if (path.empty()) throw std::invalid_argument("wav2vec2.path is empty");
  if (name.empty()) throw std::invalid_argument("wav2vec2.name is empty");
  if (threads < 0 || threads > 1024) {
    throw std::invalid_argument("wav2vec2.threads must be in [0, 1024], got " + std::to_string(threads));
  }
  if (!detail::valid_device_name(device)) throw std::invalid_argument("wav2vec2.device must be cpu, cuda or cuda:N, got \"" + device + "\"");
}

Wav2Vec2Asr::Wav2Vec2Asr(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Wav2Vec2Asr::~Wav2Vec2Asr() = default;

std::unique_ptr<Wav2Vec2Asr> Wav2Vec2Asr::load(const Wav2Vec2Options& options) {
  try {
    options.validate();
  } catch (const std::invalid_argument& e) {
    throw AsrError(e.what());
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(options.path, ec)) {
    throw AsrError("wav2vec2: model directory " + options.path + " does not exist");
  }
  const fs::path dir(options.path);
  for (const char* file : {"config.json", "vocab.json", "model.safetensors"}) {
    if (!fs::is_regular_file(dir / file, ec)) {
      throw AsrError("wav2vec2: " + (dir / file).string() + " is missing");
    }
  }
  try {
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    impl->config = detail::parse_wav2vec2_config((dir / "config.json").string());
    impl->vocab.tokens = detail::parse_wav2vec2_vocab((dir / "vocab.json").string(), impl->config.vocab_size);
    impl->vocab.blank_id = impl->config.pad_token_id;
    impl->device = detail::parse_device(options.device, "wav2vec2");
    if (options.threads > 0) {
      at::set_num_threads(options.threads);
      if (openblas_set_num_threads != nullptr) openblas_set_num_threads(options.threads);
    }
    {
      c10::InferenceMode guard;
      impl->weights = detail::load_wav2vec2_weights((dir / "model.safetensors").string(), impl->config, impl->device);
    }
    double stride = 1;
    for (int s : impl->config.conv_stride) stride *= s;
    impl->frame_seconds = stride / kAsrSampleRate;
    return std::make_unique<Wav2Vec2Asr>(std::move(impl));
  } catch (const AsrError&) {
    throw;
  } catch (const c10::Error& e) {
    throw AsrError("wav2vec2: loading " + options.path + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw AsrError(e.what());
  }
}

std::string Wav2Vec2Asr::name() const { return impl_->options.name; }
std::vector<std::string> Wav2Vec2Asr::languages() const { return impl_->options.languages; }
double Wav2Vec2Asr::frame_seconds() const { return impl_->frame_seconds; }
std::size_t Wav2Vec2Asr::vocab_size() const { return impl_->vocab.tokens.size(); }
const std::vector<std::string>& Wav2Vec2Asr::vocabulary() const { return impl_->vocab.tokens; }
std::size_t Wav2Vec2Asr::frames_for(std::size_t samples) const {
  return detail::conv_output_length(impl_->config, samples);
}

std::vector<CtcLogits> Wav2Vec2Asr::logits_batch(const std::vector<std::span<const float>>& clips) const {
  std::vector<CtcLogits> out(clips.size());
  try {
    c10::InferenceMode guard;
    std::vector<std::int64_t> frames;
    torch::Tensor logits = detail::wav2vec2_forward(impl_->weights, impl_->config, impl_->device, clips, frames);
    const auto V = static_cast<std::size_t>(impl_->config.vocab_size);
    const float* row = logits.data_ptr<float>();
    for (std::size_t b = 0; b < clips.size(); ++b) {  // packed: clip after clip, no padding
      out[b].frames = static_cast<std::size_t>(frames[b]);
      out[b].vocab = V;
      out[b].values.assign(row, row + out[b].frames * V);
      row += out[b].frames * V;
    }
  } catch (const c10::Error& e) {
    throw AsrError(std::string("wav2vec2 ") + impl_->options.path + ": inference failed: " + e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw AsrError("wav2vec2 " + impl_->options.path + ": out of memory for a batch of " +
                   std::to_string(clips.size()) + " clips");
  }
  return out;
}

AsrResult Wav2Vec2Asr::decode(const CtcLogits& logits) const {
  std::vector<int> best(logits.frames);
  for (std::size_t f = 0; f < logits.frames; ++f) {
    const float* row = logits.values.data() + f * logits.vocab;
    best[f] = static_cast<int>(std::max_element(row, row + logits.vocab) - row);
  }
  return detail::ctc_greedy_decode(best, impl_->vocab, impl_->frame_seconds);
}

std::vector<AsrResult> Wav2Vec2Asr::transcribe_batch(std::vector<AsrInput>& batch) {
  // Inputs whose requests were cancelled before the batch ran are left out (empty results).
  std::vector<std::span<const float>> clips;
  std::vector<std::size_t> live;
  clips.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].is_cancelled()) continue;
    clips.emplace_back(batch[i].samples);
    live.push_back(i);
  }
  std::vector<AsrResult> results(batch.size());
  if (clips.empty()) return results;
  std::vector<CtcLogits> logits = logits_batch(clips);
  for (std::size_t k = 0; k < logits.size(); ++k) results[live[k]] = decode(logits[k]);
  return results;
}

}  // namespace talkserve::speech
