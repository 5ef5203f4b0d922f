#include "talkserve/llm/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace talkserve::llm {

std::string SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) return "temperature must be >= 0";
  if (!(top_p > 0.0f && top_p <= 1.0f)) return "top_p must be in (0, 1]";
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty))
    return "repetition_penalty must be > 0";
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    return "presence_penalty must be in [-2, 2]";
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    return "frequency_penalty must be in [-2, 2]";
  if (max_tokens < 1) return "max_tokens must be >= 1";
  if (logprobs && (*logprobs < 0 || *logprobs > 20)) return "logprobs must be in [0, 20]";
  for (const auto& s : stop)
    if (s.empty()) return "stop strings must not be empty";
  return {};
}

SamplingState::SamplingState(std::uint64_t seed, std::span<const int32_t> prompt)
    : rng_(seed), prompt_tokens_(prompt.begin(), prompt.end()) {}

namespace {

// A double in [0, 1) from exactly one draw: defined by us, not by the standard library's
// distribution implementation, so seeded output is the same with every toolchain.
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

void apply_penalties(std::vector<float>& logits, const SamplingParams& p,
                     const SamplingState& state) {
  const auto vocab = static_cast<int32_t>(logits.size());
  auto valid = [&](int32_t t) { return t >= 0 && t < vocab; };
  if (p.repetition_penalty != 1.0f) {
    auto penalise = [&](int32_t t) {
      if (!valid(t)) return;
      float& l = logits[static_cast<std::size_t>(t)];
      l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    };
    for (int32_t t : state.prompt_tokens()) penalise(t);
    for (const auto& [t, n] : state.output_counts())
      if (!state.prompt_tokens().count(t)) penalise(t);
  }
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    for (const auto& [t, n] : state.output_counts()) {
      if (!valid(t) || n <= 0) continue;
      logits[static_cast<std::size_t>(t)] -=
          p.presence_penalty + p.frequency_penalty * static_cast<float>(n);
    }
  }
}

void fill_logprobs(std::span<const float> raw, int32_t chosen, int top_n, SampleResult& r) {
  const float mx = *std::max_element(raw.begin(), raw.end());
  double sum = 0.0;
  for (float l : raw) sum += std::exp(static_cast<double>(l - mx));
  const float lse = mx + static_cast<float>(std::log(sum));
  r.logprob = raw[static_cast<std::size_t>(chosen)] - lse;
  if (top_n <= 0) return;
  std::vector<int32_t> idx(raw.size());
  std::iota(idx.begin(), idx.end(), 0);
  const auto n = std::min<std::size_t>(static_cast<std::size_t>(top_n), idx.size());
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n), idx.end(),
                    [&](int32_t a, int32_t b) {
                      const float la = raw[static_cast<std::size_t>(a)];
                      const float lb = raw[static_cast<std::size_t>(b)];
                      return la != lb ? la > lb : a < b;
                    });
  for (std::size_t i = 0; i < n; ++i)
    r.top.push_back({idx[i], raw[static_cast<std::size_t>(idx[i])] - lse});
}

}  // namespace

SampleResult sample_token(std::span<const float> raw, const SamplingParams& p,
                          SamplingState& state) {
  SampleResult r;
  std::vector<float> logits(raw.begin(), raw.end());
  apply_penalties(logits, p, state);

  if (p.temperature == 0.0f) {
    r.token = argmax(logits);
  } else {
    struct Cand {
      float logit;
      int32_t id;
    };
    std::vector<Cand> cands(logits.size());
    for (std::size_t i = 0; i < logits.size(); ++i)
      cands[i] = {logits[i] / p.temperature, static_cast<int32_t>(i)};
    // Ties broken by id so the candidate order, hence the sample, is fully determined.
    auto higher = [](const Cand& a, const Cand& b) {
      return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
    };
    if (p.top_k > 0 && static_cast<std::size_t>(p.top_k) < cands.size()) {
      std::nth_element(cands.begin(), cands.begin() + p.top_k, cands.end(), higher);
      cands.resize(static_cast<std::size_t>(p.top_k));
    }
    std::sort(cands.begin(), cands.end(), higher);
    std::vector<double> probs(cands.size());
    const double mx = cands.front().logit;
    double sum = 0.0;
    for (std::size_t i = 0; i < cands.size(); ++i) {
      probs[i] = std::exp(static_cast<double>(cands[i].logit) - mx);
      sum += probs[i];
    }
    std::size_t keep = cands.size();
    if (p.top_p < 1.0f) {
      // Smallest prefix (most likely first) whose mass reaches top_p; always at least one.
      double cum = 0.0;
      for (std::size_t i = 0; i < cands.size(); ++i) {
        cum += probs[i] / sum;
        if (cum >= static_cast<double>(p.top_p)) {
          keep = i + 1;
          break;
        }
      }
      sum = std::accumulate(probs.begin(), probs.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
    }
    const double u = uniform01(state.rng()) * sum;
    double acc = 0.0;
    r.token = cands[keep - 1].id;  // guards against rounding at the top end
    for (std::size_t i = 0; i < keep; ++i) {
      acc += probs[i];
      if (u < acc) {
        r.token = cands[i].id;
        break;
      }
    }
  }
  if (p.logprobs) fill_logprobs(raw, r.token, *p.logprobs, r);
  return r;
}

}  // namespace talkserve::llm
