#include <algorithm>
#include <stdexcept>

#include "talkserve/speech/vad.hpp"

namespace talkserve::speech {
namespace {

std::size_t ms_to_samples(int ms) {
  return static_cast<std::size_t>(ms) * static_cast<std::size_t>(kVadSampleRate / 1000);
}

}  // namespace

VadStream::VadStream(const VadModel& model, VadParams params)
    : model_(model), params_(params), state_(model.new_state()) {
  params_.validate();
  if (model_.chunk_samples() == 0) throw std::invalid_argument("VadStream: the model has a chunk size of 0");
}

std::vector<VadStream::Event> VadStream::push(std::span<const float> samples) {
  std::vector<Event> out;
  const std::size_t chunk = model_.chunk_samples();
  std::span<const float> whole;
  if (pending_.empty() && samples.size() >= chunk) {
    // Common case (large pushes): no copy for the whole chunks.
    const std::size_t n = samples.size() / chunk * chunk;
    whole = samples.first(n);
    pending_.assign(samples.begin() + static_cast<std::ptrdiff_t>(n), samples.end());
    process_chunk_probs(model_.probabilities(*state_, whole), out);
    return out;
  }
  pending_.insert(pending_.end(), samples.begin(), samples.end());
  const std::size_t n = pending_.size() / chunk * chunk;
  if (n == 0) return out;
  std::vector<float> probs = model_.probabilities(*state_, std::span<const float>(pending_.data(), n));
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n));
  process_chunk_probs(probs, out);
  return out;
}

void VadStream::process_chunk_probs(const std::vector<float>& probs, std::vector<Event>& out,
                                    std::size_t audio_end) {
  const std::size_t chunk = model_.chunk_samples();
  const std::size_t min_speech = ms_to_samples(params_.min_speech_ms);
  const std::size_t min_silence = ms_to_samples(params_.min_silence_ms);
  const std::size_t pad = ms_to_samples(params_.speech_pad_ms);
  for (float p : probs) {
    const std::size_t start = consumed_;
    consumed_ += chunk;
    if (p >= params_.threshold) {
      silence_begin_.reset();
      if (!triggered_) {
        triggered_ = true;
        speech_begin_ = start;
      }
    } else if (p < params_.neg_threshold && triggered_ && !silence_begin_) {
      silence_begin_ = start;
    }
    if (!triggered_) continue;
    const std::size_t now = std::max(std::min(consumed_, audio_end), speech_begin_);
    if (!in_speech_ && !silence_begin_ && now - speech_begin_ >= min_speech) {
      in_speech_ = true;
      const std::size_t padded = speech_begin_ - std::min(pad, speech_begin_);
      out.push_back({Event::Kind::speech_start, std::max(padded, last_end_)});
    }
    if (silence_begin_ && now >= *silence_begin_ && now - *silence_begin_ >= min_silence) {
      // A region that never reached min_speech_ms is dropped without events.
      if (in_speech_) close_region(*silence_begin_, now, out);
      triggered_ = false;
      in_speech_ = false;
      silence_begin_.reset();
    }
  }
}

void VadStream::close_region(std::size_t end, std::size_t limit, std::vector<Event>& out) {
  const std::size_t padded = std::min(end + ms_to_samples(params_.speech_pad_ms), limit);
  out.push_back({Event::Kind::speech_end, padded});
  last_end_ = padded;
}

std::vector<VadStream::Event> VadStream::flush() {
  std::vector<Event> out;
  const std::size_t audio_end = consumed_ + pending_.size();
  if (!pending_.empty()) {
    pending_.resize(model_.chunk_samples(), 0.0f);
    std::vector<float> probs = model_.probabilities(*state_, pending_);
    pending_.clear();
    process_chunk_probs(probs, out, audio_end);
  }
  if (triggered_) {
    const std::size_t end = std::min(silence_begin_.value_or(audio_end), audio_end);
    if (!in_speech_ && end >= speech_begin_ && end - speech_begin_ >= ms_to_samples(params_.min_speech_ms)) {
      in_speech_ = true;
      const std::size_t pad = ms_to_samples(params_.speech_pad_ms);
      const std::size_t padded = speech_begin_ - std::min(pad, speech_begin_);
      out.push_back({Event::Kind::speech_start, std::max(padded, last_end_)});
    }
    if (in_speech_) close_region(end, audio_end, out);
    triggered_ = false;
    in_speech_ = false;
    silence_begin_.reset();
  }
  return out;
}

std::vector<SpeechRegion> detect_speech(const VadModel& model, std::span<const float> samples,
                                        const VadParams& params) {
  VadStream stream(model, params);
  std::vector<VadStream::Event> events = stream.push(samples);
  std::vector<VadStream::Event> tail = stream.flush();
  events.insert(events.end(), tail.begin(), tail.end());
  std::vector<SpeechRegion> regions;
  std::size_t begin = 0;
  for (const auto& e : events) {
    if (e.kind == VadStream::Event::Kind::speech_start) {
      begin = e.sample;
      continue;
    }
    if (!regions.empty() && begin <= regions.back().end) {
      regions.back().end = std::max(regions.back().end, e.sample);  // touching: merge
    } else {
      regions.push_back({begin, e.sample});
    }
  }
  return regions;
}

}  // namespace talkserve::speech
