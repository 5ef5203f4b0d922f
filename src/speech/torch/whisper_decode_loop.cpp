#include "speech/torch/whisper_decode_loop.hpp"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>

namespace talkserve::speech::detail {

struct WhisperDecodeLoop::Active {
  WhisperJob job;
  std::promise<WhisperOutcome> promise;
  std::size_t temperature_index = 0;
  std::unique_ptr<WhisperSearch> search;
  WhisperDecodeRules rules;
  double no_speech_prob = 0;
  std::int64_t len = 0;  // positions in the slot's K/V cache
};

namespace {

class Timer {
 public:
  explicit Timer(std::atomic<std::uint64_t>& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~Timer() {
    total_ += static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count());
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

 private:
  std::atomic<std::uint64_t>& total_;
  std::chrono::steady_clock::time_point start_;
};

WhisperOutcome cancelled_outcome() {
  WhisperOutcome o;
  o.cancelled = true;
  return o;
}

}  // namespace

WhisperDecodeLoop::WhisperDecodeLoop(const WhisperModel& model, const WhisperSpecialTokens& special,
                                     TextOf text_of, WhisperLoopOptions options)
    : model_(model),
      special_(special),
      text_of_(std::move(text_of)),
      options_(std::move(options)),
      state_(model, options_.beams) {
  if (options_.temperatures.empty()) options_.temperatures = {0.0};
  thread_ = std::thread([this] { run(); });
}

WhisperDecodeLoop::~WhisperDecodeLoop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  for (auto& a : pending_) a->promise.set_value(cancelled_outcome());
  for (auto& a : active_) a->promise.set_value(cancelled_outcome());
}

std::future<WhisperOutcome> WhisperDecodeLoop::submit(WhisperJob job) {
  auto a = std::make_unique<Active>();
  a->job = std::move(job);
  auto future = a->promise.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      a->promise.set_value(cancelled_outcome());
      return future;
    }
    pending_.push_back(std::move(a));
  }
  wake_.notify_one();
  return future;
}

void WhisperDecodeLoop::run() {
  for (;;) {
    std::vector<std::unique_ptr<Active>> joining;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !pending_.empty() || !active_.empty(); });
      if (stopping_) return;
      while (!pending_.empty() && static_cast<int>(active_.size() + joining.size()) < options_.max_active) {
        joining.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    try {
      for (auto& a : joining) admit(std::move(a));
      joining.clear();
      // Windows whose client left are dropped before the step.
      std::vector<int> gone;
      for (std::size_t r = 0; r < active_.size(); ++r) {
        const auto& c = active_[r]->job.cancelled;
        if (c && c->load(std::memory_order_relaxed)) gone.push_back(static_cast<int>(r));
      }
      for (int r : gone) active_[static_cast<std::size_t>(r)]->promise.set_value(cancelled_outcome());
      remove(std::move(gone));
      if (!active_.empty()) step_all();
    } catch (...) {
      // A model failure fails every window in the loop; the state is rebuilt empty.
      const std::exception_ptr error = std::current_exception();
      for (auto& a : joining) {
        if (a) a->promise.set_exception(error);
      }
      for (auto& a : active_) a->promise.set_exception(error);
      active_.clear();
      while (state_.requests() > 0) state_.remove_request(state_.requests() - 1);
    }
  }
}

void WhisperDecodeLoop::admit(std::unique_ptr<Active> a) {
  const int slot = state_.add_request(a->job.cross);
  a->job.cross.clear();  // the slot holds a copy
  active_.push_back(std::move(a));
  Active& ref = *active_.back();
  try {
    start_attempt(ref, slot);
    if (ref.search->done() && finish_attempt(ref, slot)) remove({slot});
  } catch (...) {
    ref.promise.set_exception(std::current_exception());
    remove({slot});
  }
}

void WhisperDecodeLoop::start_attempt(Active& a, int slot) {
  const double temperature = options_.temperatures[a.temperature_index];
  a.rules.timestamps = a.job.timestamps;
  a.rules.max_initial_timestamp_index = options_.max_initial_timestamp_index;
  a.rules.vocab = model_.config().vocab_size;
  const auto prefix_len = static_cast<int>(a.job.prefix.size());
  const int max_tokens = std::min(options_.max_new_tokens, model_.config().max_target_positions - prefix_len);
  torch::Tensor logits;
  {
    Timer t(decoder_ns_);
    logits = model_.prefill(state_, slot, slot * state_.beams(), a.job.prefix);
  }
  if (a.temperature_index == 0 && special_.no_speech >= 0) {
    const torch::Tensor p = torch::softmax(logits[a.job.sot_index], -1);
    a.no_speech_prob = p[special_.no_speech].item<float>();
  }
  a.search = std::make_unique<WhisperSearch>(state_.beams(), temperature, std::max(1, max_tokens),
                                             a.job.seed + a.temperature_index, special_, a.rules);
  torch::Tensor last = logits[prefix_len - 1].contiguous();
  a.search->advance(std::span<float>(last.data_ptr<float>(), static_cast<std::size_t>(last.numel())));
  ++tokens_;
  a.len = prefix_len;
  if (!a.search->done()) state_.reorder(slot, a.search->parents(), a.len);
}

bool WhisperDecodeLoop::finish_attempt(Active& a, int slot) {
  WhisperOutcome o;
  o.best = a.search->best();
  o.text = text_of_(o.best.tokens);
  o.temperature = options_.temperatures[a.temperature_index];
  o.avg_logprob = o.best.sum_logprob / static_cast<double>(o.best.tokens.size() + 1);
  o.compression_ratio = compression_ratio(o.text);
  o.no_speech_prob = a.no_speech_prob;
  bool fallback = (options_.compression_ratio_threshold > 0 &&
                   o.compression_ratio > options_.compression_ratio_threshold) ||
                  o.avg_logprob < options_.logprob_threshold;
  // A silent window with a weak transcript is not retried: it is dropped as silence.
  if (o.no_speech_prob > options_.no_speech_threshold && o.avg_logprob < options_.logprob_threshold) {
    fallback = false;
  }
  if (fallback && a.temperature_index + 1 < options_.temperatures.size()) {
    ++a.temperature_index;
    start_attempt(a, slot);
    return a.search->done() ? finish_attempt(a, slot) : false;
  }
  a.promise.set_value(std::move(o));
  return true;
}

void WhisperDecodeLoop::step_all() {
  const int beams = state_.beams();
  const std::size_t n = active_.size() * static_cast<std::size_t>(beams);
  std::vector<std::int64_t> tokens(n, special_.eot), lens(n, -1);
  for (std::size_t r = 0; r < active_.size(); ++r) {
    const Active& a = *active_[r];
    const auto& next = a.search->next_tokens();
    for (std::size_t j = 0; j < next.size(); ++j) {
      tokens[r * static_cast<std::size_t>(beams) + j] = next[j];
      lens[r * static_cast<std::size_t>(beams) + j] = a.len;
    }
  }
  torch::Tensor logits;
  {
    Timer t(decoder_ns_);
    logits = model_.step(state_, tokens, lens).contiguous();
  }
  ++steps_;
  std::uint64_t rows = n, prev = max_rows_.load();
  while (rows > prev && !max_rows_.compare_exchange_weak(prev, rows)) {
  }
  const auto V = static_cast<std::size_t>(logits.size(1));
  float* data = logits.data_ptr<float>();
  std::vector<int> done;
  for (std::size_t r = 0; r < active_.size(); ++r) {
    Active& a = *active_[r];
    const int slot = static_cast<int>(r);
    try {
      const auto live = static_cast<std::size_t>(a.search->live_rows());
      a.search->advance(std::span<float>(data + r * static_cast<std::size_t>(beams) * V, live * V));
      tokens_ += live;
      ++a.len;
      if (!a.search->done()) {
        state_.reorder(slot, a.search->parents(), a.len);
      } else if (finish_attempt(a, slot)) {
        done.push_back(slot);
      }
    } catch (...) {
      a.promise.set_exception(std::current_exception());
      done.push_back(slot);
    }
  }
  remove(std::move(done));
}

void WhisperDecodeLoop::remove(std::vector<int> slots) {
  // Highest first: the request that moves into a freed slot is never one still to remove.
  std::sort(slots.rbegin(), slots.rend());
  for (int r : slots) {
    const int moved = state_.remove_request(r);
    if (moved != r) active_[static_cast<std::size_t>(r)] = std::move(active_[static_cast<std::size_t>(moved)]);
    active_.pop_back();
  }
}

}  // namespace talkserve::speech::detail
