// Silero VAD (v5/v6 TorchScript) as a VadModel.
//
// The top-level module (VADRNNJITMerge) keeps the LSTM state and the 64-sample context as
// module attributes, so calling its forward() from several streams would mix their state. Its
// 16 kHz submodule `_model` (VADRNNJIT) is a pure function instead:
//   forward(x [batch, 64 + 512], state [0] or [2, batch, 128]) -> (prob [batch, 1], state)
// so this file calls `_model` directly and keeps state and context in each SileroVadState.
// One loaded module then serves every stream without a lock: a TorchScript method that does
// not set attributes may run on several threads at once.

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/script.h>

#include <filesystem>
#include <stdexcept>

#include "talkserve/speech/vad.hpp"

namespace talkserve::speech {
namespace {

constexpr std::size_t kChunk = 512;  // 32 ms at 16 kHz: the only size the 16 kHz model accepts

class SileroVadState final : public VadState {
 public:
  explicit SileroVadState(std::int64_t context_size) : context_size_(context_size) { reset(); }
  void reset() override {
    c10::InferenceMode guard;
    state = torch::zeros({0});
    context = torch::zeros({1, context_size_});
  }
  torch::Tensor state;
  torch::Tensor context;

 private:
  std::int64_t context_size_;
};

class SileroVadModel final : public VadModel {
 public:
  SileroVadModel(torch::jit::Module model, std::int64_t context_size, std::string path)
      : model_(std::move(model)), context_size_(context_size), path_(std::move(path)) {}

  std::size_t chunk_samples() const override { return kChunk; }

  std::unique_ptr<VadState> new_state() const override {
    return std::make_unique<SileroVadState>(context_size_);
  }

  std::vector<float> probabilities(VadState& state, std::span<const float> samples) const override {
    auto* st = dynamic_cast<SileroVadState*>(&state);
    if (st == nullptr) throw std::invalid_argument("silero VAD: state was not created by this model");
    if (samples.size() % kChunk != 0) {
      throw std::invalid_argument("silero VAD: " + std::to_string(samples.size()) +
                                  " samples is not a multiple of the 512-sample chunk");
    }
    std::vector<float> probs;
    probs.reserve(samples.size() / kChunk);
    try {
      c10::InferenceMode guard;
      // The module is only read, but forward() is not a const member.
      auto& model = const_cast<torch::jit::Module&>(model_);
      // Copy the whole input once; chunks are then views of it.
      torch::Tensor audio =
          torch::from_blob(const_cast<float*>(samples.data()),
                           {static_cast<std::int64_t>(samples.size())}, torch::kFloat32)
              .clone();
      for (std::size_t off = 0; off < samples.size(); off += kChunk) {
        torch::Tensor chunk =
            audio.narrow(0, static_cast<std::int64_t>(off), static_cast<std::int64_t>(kChunk)).unsqueeze(0);
        torch::Tensor x = torch::cat({st->context, chunk}, 1);
        auto out = model.forward({x, st->state}).toTuple();
        probs.push_back(out->elements()[0].toTensor().item<float>());
        st->state = out->elements()[1].toTensor();
        st->context = x.narrow(1, x.size(1) - context_size_, context_size_);
      }
    } catch (const c10::Error& e) {
      throw std::runtime_error("silero VAD " + path_ + ": inference failed: " + e.what_without_backtrace());
    }
    return probs;
  }

 private:
  torch::jit::Module model_;
  std::int64_t context_size_;
  std::string path_;
};

}  // namespace

std::unique_ptr<VadModel> load_silero_vad(const std::string& path, int threads) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error("silero VAD model " + path + ": no such file");
  }
  try {
    // at::set_num_threads is process-wide (torch has one intra-op pool): the last loader that
    // sets it wins. 0 leaves it alone. The VAD itself is too small to gain from threads.
    if (threads > 0) at::set_num_threads(threads);
    torch::jit::Module top = torch::jit::load(path, torch::kCPU);
    top.eval();
    if (!top.hasattr("_model")) {
      throw std::runtime_error("silero VAD model " + path +
                               ": not a Silero VAD v5+ TorchScript file (no 16 kHz submodule _model)");
    }
    torch::jit::Module model = top.attr("_model").toModule();
    if (!model.hasattr("context_size_samples") || !model.hasattr("sample_rate") ||
        model.attr("sample_rate").toInt() != kVadSampleRate) {
      throw std::runtime_error("silero VAD model " + path +
                               ": submodule _model lacks context_size_samples or is not 16 kHz");
    }
    const std::int64_t context = model.attr("context_size_samples").toInt();
    if (context < 0 || context > 4096) {
      throw std::runtime_error("silero VAD model " + path + ": implausible context size " +
                               std::to_string(context));
    }
    auto vad = std::make_unique<SileroVadModel>(std::move(model), context, path);
    // One chunk of silence: checks the call signature now rather than on the first stream.
    auto state = vad->new_state();
    std::vector<float> zeros(kChunk, 0.0f);
    vad->probabilities(*state, zeros);
    return vad;
  } catch (const c10::Error& e) {
    throw std::runtime_error("silero VAD model " + path + ": cannot load: " + e.what_without_backtrace());
  }
}

}  // namespace talkserve::speech
