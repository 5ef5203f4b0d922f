#include "talkserve/speech/pocketsphinx_backend.hpp"

#include <pocketsphinx.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

namespace talkserve::speech {

void PocketsphinxConfig::validate() const {
  if (decoders < 1 || decoders > 64) {
    throw std::invalid_argument("decoders: must be between 1 and 64 (got " +
                                std::to_string(decoders) + ")");
  }
  if (hmm.empty()) throw std::invalid_argument("hmm: must not be empty");
  if (lm.empty()) throw std::invalid_argument("lm: must not be empty");
  if (dict.empty()) throw std::invalid_argument("dict: must not be empty");
}

namespace {

constexpr double kFramesPerSecond = 100.0;  // pocketsphinx's default -frate

struct DecoderDeleter {
  void operator()(ps_decoder_t* ps) const { ps_free(ps); }
};
using DecoderPtr = std::unique_ptr<ps_decoder_t, DecoderDeleter>;

DecoderPtr make_decoder(const PocketsphinxConfig& cfg) {
  namespace fs = std::filesystem;
  for (const auto& [what, path] : {std::pair{"acoustic model", cfg.hmm}, {"language model", cfg.lm},
                                   {"dictionary", cfg.dict}}) {
    if (!fs::exists(path)) {
      throw AsrError(std::string("pocketsphinx: ") + what + " not found: " + path +
                     " (install Debian's pocketsphinx-en-us)");
    }
  }
  // -logfn /dev/null: the library logs to stderr by default, a line per utterance.
  cmd_ln_t* config = cmd_ln_init(nullptr, ps_args(), TRUE, "-hmm", cfg.hmm.c_str(), "-lm",
                                 cfg.lm.c_str(), "-dict", cfg.dict.c_str(), "-logfn", "/dev/null",
                                 nullptr);
  if (config == nullptr) throw AsrError("pocketsphinx: invalid decoder configuration");
  ps_decoder_t* ps = ps_init(config);
  cmd_ln_free_r(config);  // the decoder keeps its own reference
  if (ps == nullptr) {
    throw AsrError("pocketsphinx: failed to load the model from " + cfg.hmm + ", " + cfg.lm +
                   ", " + cfg.dict);
  }
  return DecoderPtr(ps);
}

// A recognised token is a word unless it is a filler (<s>, </s>, <sil>, [NOISE], ++NOISE++).
// Alternative pronunciations come back as "word(2)".
std::optional<std::string> word_of(const char* token) {
  if (token == nullptr || *token == '\0') return std::nullopt;
  std::string w(token);
  if (w.front() == '<' || w.front() == '[' || w.front() == '+') return std::nullopt;
  if (const auto p = w.find('('); p != std::string::npos && p > 0) w.resize(p);
  return w;
}

AsrResult recognise(ps_decoder_t* ps, const std::vector<float>& samples) {
  std::vector<std::int16_t> pcm(samples.size());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const float s = std::clamp(samples[i], -1.0f, 1.0f);
    pcm[i] = static_cast<std::int16_t>(std::lrint(s * 32767.0f));
  }
  AsrResult result;
  if (pcm.empty()) return result;
  if (ps_start_utt(ps) < 0) throw AsrError("pocketsphinx: cannot start an utterance");
  // full_utt = TRUE: the whole utterance at once, so cepstral mean normalisation uses all of it.
  if (ps_process_raw(ps, pcm.data(), pcm.size(), FALSE, TRUE) < 0) {
    ps_end_utt(ps);
    throw AsrError("pocketsphinx: decoding failed");
  }
  if (ps_end_utt(ps) < 0) throw AsrError("pocketsphinx: cannot end the utterance");
  for (ps_seg_t* seg = ps_seg_iter(ps); seg != nullptr; seg = ps_seg_next(seg)) {
    auto word = word_of(ps_seg_word(seg));
    if (!word) continue;
    int sf = 0, ef = 0;
    ps_seg_frames(seg, &sf, &ef);
    result.words.push_back(AsrWord{*word, sf / kFramesPerSecond, (ef + 1) / kFramesPerSecond});
  }
  for (const AsrWord& w : result.words) {
    if (!result.text.empty()) result.text += ' ';
    result.text += w.word;
  }
  return result;
}

class PocketsphinxBackend final : public AsrBackend {
 public:
  explicit PocketsphinxBackend(const PocketsphinxConfig& config) {
    config.validate();
    decoders_.reserve(config.decoders);
    for (int i = 0; i < config.decoders; ++i) decoders_.push_back(make_decoder(config));
    workers_.reserve(decoders_.size());
    for (std::size_t i = 0; i < decoders_.size(); ++i) {
      workers_.emplace_back([this, i] { run_worker(decoders_[i].get()); });
    }
  }

  ~PocketsphinxBackend() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  std::string name() const override { return "pocketsphinx"; }
  std::vector<std::string> languages() const override { return {"en"}; }

  std::vector<AsrResult> transcribe_batch(std::vector<AsrInput>& batch) override {
    Job job;
    job.inputs = &batch;
    job.results.resize(batch.size());
    job.errors.resize(batch.size());
    job.remaining = batch.size();
    if (batch.empty()) return {};
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(&job);
    }
    work_cv_.notify_all();
    {
      std::unique_lock lock(mutex_);
      job.done_cv.wait(lock, [&] { return job.remaining == 0; });
    }
    for (const auto& e : job.errors) {
      if (!e.empty()) throw AsrError(e);
    }
    return std::move(job.results);
  }

 private:
  // One transcribe_batch() call: its clips are taken one at a time by whichever decoder is free.
  struct Job {
    std::vector<AsrInput>* inputs = nullptr;
    std::vector<AsrResult> results;
    std::vector<std::string> errors;
    std::size_t next = 0;       // next clip to hand out (under mutex_)
    std::size_t remaining = 0;  // clips not finished yet (under mutex_)
    std::condition_variable done_cv;
  };

  void run_worker(ps_decoder_t* ps) {
    std::unique_lock lock(mutex_);
    while (true) {
      work_cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      Job* job = jobs_.front();
      const std::size_t i = job->next++;
      if (job->next == job->inputs->size()) jobs_.erase(jobs_.begin());
      lock.unlock();
      try {
        // A clip whose request was cancelled while it waited for a decoder is skipped.
        const AsrInput& input = (*job->inputs)[i];
        if (!input.is_cancelled()) job->results[i] = recognise(ps, input.samples);
      } catch (const std::exception& e) {
        job->errors[i] = e.what();
      }
      lock.lock();
      if (--job->remaining == 0) job->done_cv.notify_all();
    }
  }

  std::vector<DecoderPtr> decoders_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::vector<Job*> jobs_;  // FIFO of calls with clips not yet handed out
  bool stopping_ = false;
};

}  // namespace

std::unique_ptr<AsrBackend> make_pocketsphinx_backend(const PocketsphinxConfig& config) {
  return std::make_unique<PocketsphinxBackend>(config);
}

}  // namespace talkserve::speech
