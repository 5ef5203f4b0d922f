#include "speech/torch/whisper_decoding.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace talkserve::speech::detail {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr double kSecondsPerTimestamp = 0.02;

void fill(std::span<float> logits, int from, int to) {
  from = std::max(from, 0);
  to = std::min(to, static_cast<int>(logits.size()));
  for (int i = from; i < to; ++i) logits[static_cast<std::size_t>(i)] = kNegInf;
}

float log_sum_exp(std::span<const float> x) {
  float m = kNegInf;
  for (float v : x) m = std::max(m, v);
  if (m == kNegInf) return kNegInf;
  double s = 0;
  for (float v : x) s += std::exp(v - m);  // float exp: one pass over the vocabulary per row
  return m + static_cast<float>(std::log(s));
}

int argmax(std::span<const float> x) {
  return static_cast<int>(std::max_element(x.begin(), x.end()) - x.begin());
}

}  // namespace

std::vector<float> log_softmax(std::span<const float> logits) {
  const float lse = log_sum_exp(logits);
  std::vector<float> out(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - lse;
  return out;
}

void apply_whisper_rules(std::span<float> logits, std::span<const int> sampled,
                         const WhisperSpecialTokens& special, const WhisperDecodeRules& rules) {
  const int V = static_cast<int>(logits.size());
  if (sampled.empty()) {
    for (int t : special.begin_suppress) fill(logits, t, t + 1);
  }
  for (int t : special.suppress) fill(logits, t, t + 1);
  // Every special token but eot (and, with timestamps, the timestamps) is never sampled.
  const int ts = special.timestamp_begin;
  fill(logits, special.eot + 1, rules.timestamps && ts > 0 ? ts : V);
  if (!rules.timestamps || ts <= 0) return;

  const std::size_t n = sampled.size();
  const bool last_was_ts = n >= 1 && sampled[n - 1] >= ts;
  const bool penultimate_was_ts = n < 2 || sampled[n - 2] >= ts;
  if (last_was_ts) {
    if (penultimate_was_ts) {
      fill(logits, ts, V);  // a pair is closed: text (or eot) comes next
    } else {
      fill(logits, 0, special.eot);  // an open pair: a timestamp or eot
    }
  }
  // Timestamps never decrease (and a closed pair's next one moves forward).
  for (std::size_t i = n; i-- > 0;) {
    if (sampled[i] >= ts) {
      const int last = (last_was_ts && !penultimate_was_ts) ? sampled[i] : sampled[i] + 1;
      fill(logits, ts, last);
      break;
    }
  }
  if (n == 0) {
    fill(logits, 0, ts);  // the window starts with a timestamp
    if (rules.max_initial_timestamp_index >= 0) fill(logits, ts + rules.max_initial_timestamp_index + 1, V);
  }
  // When the timestamps together are likelier than any single text token, take a timestamp.
  // (Compared in log-probabilities; the normaliser is the same on both sides and cancels.)
  const float ts_mass = log_sum_exp(std::span<const float>(logits).subspan(static_cast<std::size_t>(ts)));
  const float max_text = *std::max_element(logits.begin(), logits.begin() + ts);
  if (ts_mass > max_text) fill(logits, 0, ts);
}

double compression_ratio(const std::string& text) {
  if (text.empty()) return 0;
  uLongf size = compressBound(static_cast<uLong>(text.size()));
  std::vector<Bytef> out(size);
  if (compress2(out.data(), &size, reinterpret_cast<const Bytef*>(text.data()),
                static_cast<uLong>(text.size()), Z_DEFAULT_COMPRESSION) != Z_OK) {
    return 0;
  }
  return static_cast<double>(text.size()) / static_cast<double>(size);
}

std::vector<WhisperSegment> split_segments(std::span<const int> tokens, int timestamp_begin,
                                           double window_seconds) {
  std::vector<WhisperSegment> out;
  const auto is_ts = [&](int t) { return timestamp_begin > 0 && t >= timestamp_begin; };
  const auto time_of = [&](int t) { return (t - timestamp_begin) * kSecondsPerTimestamp; };
  WhisperSegment cur;
  bool open = false;  // a start timestamp was seen
  bool any_ts = false;
  for (const int t : tokens) {
    if (!is_ts(t)) {
      if (!open) {  // text before any timestamp: a segment from the previous end
        cur.start = out.empty() ? 0.0 : out.back().end;
        open = true;
      }
      cur.tokens.push_back(t);
      continue;
    }
    any_ts = true;
    if (!open) {
      cur.start = time_of(t);
      open = true;
    } else {
      cur.end = time_of(t);
      if (!cur.tokens.empty()) out.push_back(std::move(cur));
      cur = WhisperSegment{};
      open = false;
    }
  }
  if (open && !cur.tokens.empty()) {
    cur.end = std::max(cur.start, window_seconds);
    out.push_back(std::move(cur));
  }
  if (!any_ts) {
    for (WhisperSegment& s : out) {
      s.start = 0;
      s.end = window_seconds;
    }
  }
  for (WhisperSegment& s : out) {
    s.end = std::min(std::max(s.end, s.start), std::max(window_seconds, s.start));
  }
  return out;
}

WhisperSeek plan_seek(std::span<const int> tokens, int timestamp_begin, double window_seconds) {
  const auto is_ts = [&](int t) { return timestamp_begin > 0 && t >= timestamp_begin; };
  const std::size_t n = tokens.size();
  std::size_t last_pair = 0;  // index of the second timestamp of the last consecutive pair
  for (std::size_t i = 1; i < n; ++i) {
    if (is_ts(tokens[i - 1]) && is_ts(tokens[i])) last_pair = i;
  }
  const bool single_timestamp_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
  if (last_pair == 0 || single_timestamp_ending) return {n, window_seconds};
  const double at = (tokens[last_pair - 1] - timestamp_begin) * kSecondsPerTimestamp;
  if (at <= 0) return {n, window_seconds};  // no progress: take the window as done
  return {last_pair, std::min(at, window_seconds)};
}

WhisperSearch::WhisperSearch(int beams, double temperature, int max_tokens, std::uint64_t seed,
                             const WhisperSpecialTokens& special, const WhisperDecodeRules& rules)
    : beams_(temperature > 0 ? 1 : std::max(1, beams)),
      temperature_(temperature),
      max_tokens_(max_tokens),
      rng_(seed),
      special_(special),
      rules_(rules) {
  live_.push_back(Beam{});
}

void WhisperSearch::advance(std::span<float> logits) {
  if (done_) throw std::logic_error("whisper: advance after done");
  const auto V = static_cast<std::size_t>(rules_.vocab);
  const int rows = live_rows();
  if (logits.size() != V * static_cast<std::size_t>(rows)) throw std::invalid_argument("whisper: logits rows");
  struct Candidate {
    double score;
    int parent;
    int token;
  };
  std::vector<Candidate> cands;
  for (int j = 0; j < rows; ++j) {
    std::span<float> row = logits.subspan(static_cast<std::size_t>(j) * V, V);
    apply_whisper_rules(row, live_[static_cast<std::size_t>(j)].tokens, special_, rules_);
    const float lse = log_sum_exp(row);  // log-probability of token t: row[t] - lse
    const double base = live_[static_cast<std::size_t>(j)].sum_logprob;
    if (beams_ == 1) {
      int tok;
      if (temperature_ > 0) {
        std::vector<double> w(V);
        const float m = *std::max_element(row.begin(), row.end());
        for (std::size_t i = 0; i < V; ++i) {
          w[i] = row[i] == kNegInf ? 0.0 : std::exp((row[i] - m) / temperature_);
        }
        std::discrete_distribution<int> dist(w.begin(), w.end());
        tok = dist(rng_);
      } else {
        tok = argmax(row);
      }
      cands.push_back({base + (row[static_cast<std::size_t>(tok)] - lse), j, tok});
    } else {
      std::vector<int> idx(V);
      std::iota(idx.begin(), idx.end(), 0);
      const auto k = static_cast<std::size_t>(beams_ + 1);
      std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                        [&](int a, int b) { return row[static_cast<std::size_t>(a)] > row[static_cast<std::size_t>(b)]; });
      for (std::size_t c = 0; c < k; ++c) cands.push_back({base + (row[static_cast<std::size_t>(idx[c])] - lse), j, idx[c]});
    }
  }
  std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  std::vector<Beam> next;
  next_.clear();
  parents_.clear();
  for (const Candidate& c : cands) {
    const Beam& parent = live_[static_cast<std::size_t>(c.parent)];
    if (c.token == special_.eot) {
      if (static_cast<int>(finished_.size()) < beams_) finished_.push_back({parent.tokens, c.score});
      continue;
    }
    Beam b{parent.tokens, c.score};
    b.tokens.push_back(c.token);
    next.push_back(std::move(b));
    next_.push_back(c.token);
    parents_.push_back(c.parent);
    if (static_cast<int>(next.size()) == beams_) break;
  }
  live_ = std::move(next);
  first_ = false;
  ++step_;
  if (static_cast<int>(finished_.size()) >= beams_ || live_.empty()) {
    done_ = true;
  } else if (step_ >= max_tokens_) {
    finish_unfinished();
    done_ = true;
  }
  // Beam search may have fewer live beams than slots at the very end; pad so the caller
  // always feeds beams() rows.
  while (!done_ && static_cast<int>(live_.size()) < beams_) {
    live_.push_back(live_.back());
    next_.push_back(next_.back());
    parents_.push_back(parents_.back());
  }
}

void WhisperSearch::finish_unfinished() {
  for (const Beam& b : live_) {
    if (static_cast<int>(finished_.size()) >= beams_) break;
    finished_.push_back({b.tokens, b.sum_logprob});
  }
}

WhisperHypothesis WhisperSearch::best() const {
  if (finished_.empty()) return {};
  const WhisperHypothesis* best = &finished_.front();
  double best_score = -std::numeric_limits<double>::infinity();
  for (const WhisperHypothesis& h : finished_) {
    const double score = h.sum_logprob / static_cast<double>(std::max<std::size_t>(1, h.tokens.size()));
    if (score > best_score) {
      best_score = score;
      best = &h;
    }
  }
  return *best;
}

std::vector<std::pair<int, int>> dtw_path(std::span<const float> cost, int rows, int cols) {
  if (rows <= 0 || cols <= 0 || cost.size() != static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols)) {
    throw std::invalid_argument("dtw: cost matrix size");
  }
  const auto W = static_cast<std::size_t>(cols) + 1;
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> D((static_cast<std::size_t>(rows) + 1) * W, inf);
  std::vector<std::uint8_t> trace(D.size(), 0);
  D[0] = 0;
  for (int j = 1; j <= cols; ++j) {
    for (int i = 1; i <= rows; ++i) {
      const double c0 = D[(i - 1) * W + (j - 1)], c1 = D[(i - 1) * W + j], c2 = D[i * W + (j - 1)];
      double c;
      std::uint8_t t;
      if (c0 < c1 && c0 < c2) {
        c = c0, t = 0;
      } else if (c1 < c0 && c1 < c2) {
        c = c1, t = 1;
      } else {
        c = c2, t = 2;
      }
      D[i * W + j] = cost[static_cast<std::size_t>(i - 1) * static_cast<std::size_t>(cols) + static_cast<std::size_t>(j - 1)] + c;
      trace[i * W + j] = t;
    }
  }
  std::vector<std::pair<int, int>> path;
  int i = rows, j = cols;
  while (i > 0 || j > 0) {
    path.emplace_back(i - 1, j - 1);
    const std::uint8_t t = i == 0 ? 2 : j == 0 ? 1 : trace[static_cast<std::size_t>(i) * W + static_cast<std::size_t>(j)];
    if (t == 0) {
      --i, --j;
    } else if (t == 1) {
      --i;
    } else {
      --j;
    }
  }
  std::reverse(path.begin(), path.end());
  // The walk may step through row or column -1 at the edges; keep the cells inside.
  std::erase_if(path, [](const auto& p) { return p.first < 0 || p.second < 0; });
  return path;
}

}  // namespace talkserve::speech::detail
