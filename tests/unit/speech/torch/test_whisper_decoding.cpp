// Whisper's decoding rules without a model: the timestamp grammar and suppressions of
// apply_whisper_rules, segment splitting, the compression ratio, greedy / beam / sampled token
// choice of WhisperSearch over synthetic logits, and dynamic time warping.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <vector>

#include "speech/torch/whisper_decoding.hpp"

using namespace talkserve::speech::detail;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A toy vocabulary laid out like Whisper's: text 0..9 (0 plays " "), <|endoftext|> 10, the
// specials 11..17, timestamps 18..29 (<|0.00|> .. <|0.22|>).
constexpr int kV = 30;
constexpr int kEot = 10;
constexpr int kTs = 18;

WhisperSpecialTokens toy_special() {
  WhisperSpecialTokens s;
  s.eot = kEot;
  s.sot = 11;
  s.sot_prev = 12;
  s.sot_lm = 13;
  s.no_speech = 14;
  s.no_timestamps = 15;
  s.transcribe = 16;
  s.translate = 17;
  s.timestamp_begin = kTs;
  s.suppress = {5};
  s.begin_suppress = {0, kEot};
  return s;
}

WhisperDecodeRules toy_rules(bool timestamps, int max_initial = 3) {
  WhisperDecodeRules r;
  r.timestamps = timestamps;
  r.max_initial_timestamp_index = max_initial;
  r.vocab = kV;
  return r;
}

// The ids left finite after the rules, for logits that are all `fill` before them.
std::set<int> allowed_after(std::vector<int> sampled, bool timestamps, float fill = 0.0f,
                            std::function<void(std::vector<float>&)> tweak = {}) {
  const WhisperSpecialTokens s = toy_special();
  std::vector<float> logits(kV, fill);
  if (tweak) tweak(logits);
  apply_whisper_rules(logits, sampled, s, toy_rules(timestamps));
  std::set<int> out;
  for (int i = 0; i < kV; ++i) {
    if (logits[static_cast<std::size_t>(i)] != kNegInf) out.insert(i);
  }
  return out;
}

std::set<int> range(int from, int to) {  // [from, to)
  std::set<int> s;
  for (int i = from; i < to; ++i) s.insert(i);
  return s;
}

std::set<int> unite(std::set<int> a, const std::set<int>& b) {
  a.insert(b.begin(), b.end());
  return a;
}

std::set<int> without(std::set<int> a, std::initializer_list<int> b) {
  for (int x : b) a.erase(x);
  return a;
}

double log_sum_exp(const std::vector<double>& x) {
  double m = -std::numeric_limits<double>::infinity();
  for (double v : x) m = std::max(m, v);
  double s = 0;
  for (double v : x) s += std::exp(v - m);
  return m + std::log(s);
}

// The log-probability of `token` among the ids in `allowed`.
double logprob(const std::vector<float>& logits, const std::set<int>& allowed, int token) {
  std::vector<double> xs;
  for (int i : allowed) xs.push_back(logits[static_cast<std::size_t>(i)]);
  return logits[static_cast<std::size_t>(token)] - log_sum_exp(xs);
}

// Drives a WhisperSearch the way the decode loop does: row j of a step continues the
// hypothesis parents()[j] of the previous step with next_tokens()[j]. `oracle` gives the
// (unsuppressed) logits after a token sequence.
WhisperHypothesis run_search(WhisperSearch& search,
                             const std::function<std::vector<float>(const std::vector<int>&)>& oracle,
                             int max_steps = 100) {
  std::vector<std::vector<int>> rows{{}};
  for (int step = 0; step < max_steps && !search.done(); ++step) {
    REQUIRE(static_cast<int>(rows.size()) == search.live_rows());
    std::vector<float> logits;
    for (const auto& r : rows) {
      const auto l = oracle(r);
      REQUIRE(l.size() == static_cast<std::size_t>(kV));
      logits.insert(logits.end(), l.begin(), l.end());
    }
    search.advance(logits);
    if (search.done()) break;
    REQUIRE(static_cast<int>(search.next_tokens().size()) == search.beams());
    REQUIRE(static_cast<int>(search.parents().size()) == search.beams());
    std::vector<std::vector<int>> next;
    for (int j = 0; j < search.beams(); ++j) {
      const int p = search.parents()[static_cast<std::size_t>(j)];
      REQUIRE(p >= 0);
      REQUIRE(p < static_cast<int>(rows.size()));
      auto r = rows[static_cast<std::size_t>(p)];
      r.push_back(search.next_tokens()[static_cast<std::size_t>(j)]);
      next.push_back(std::move(r));
    }
    rows = std::move(next);
  }
  REQUIRE(search.done());
  return search.best();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// apply_whisper_rules

TEST_CASE("whisper rules: the first step with timestamps is a timestamp within max_initial", "[whisper][rules]") {
  // begin_suppress (0, eot) and all text are out; only <|0.00|> .. <|0.06|> (index <= 3).
  CHECK(allowed_after({}, true) == range(kTs, kTs + 4));
  // Even when a text token is far likelier.
  CHECK(allowed_after({}, true, 0.0f, [](auto& l) { l[3] = 50; }) == range(kTs, kTs + 4));
  // max_initial_timestamp_index < 0: no limit.
  const WhisperSpecialTokens s = toy_special();
  std::vector<float> logits(kV, 0.0f);
  apply_whisper_rules(logits, {}, s, toy_rules(true, -1));
  for (int i = 0; i < kV; ++i) CHECK((logits[static_cast<std::size_t>(i)] != kNegInf) == (i >= kTs));
}

TEST_CASE("whisper rules: the first step without timestamps suppresses begin_suppress and specials", "[whisper][rules]") {
  // Text minus " " (0) and the suppressed 5; eot is begin-suppressed; nothing above eot.
  CHECK(allowed_after({}, false) == without(range(0, kEot), {0, 5}));
  // Later steps: " " and eot come back, 5 stays suppressed, still nothing above eot.
  CHECK(allowed_after({3}, false) == without(range(0, kEot + 1), {5}));
  CHECK(allowed_after({3, 4, 7}, false) == without(range(0, kEot + 1), {5}));
  // Timestamp-shaped history changes nothing in no-timestamp mode.
  CHECK(allowed_after({kTs, 3}, false) == without(range(0, kEot + 1), {5}));
}

TEST_CASE("whisper rules: after text closed by a timestamp only timestamps or eot follow", "[whisper][rules]") {
  // <|0.00|> 1 2 <|0.04|>: the next is <|0.04|> or later (a new segment may start where the
  // last one ended) or eot. (eot is made likely: with all logits equal the timestamps' mass
  // would rule it out.)
  const auto a = allowed_after({kTs, 1, 2, kTs + 2}, true, 0.0f, [](auto& l) { l[kEot] = 5; });
  CHECK(a == unite({kEot}, range(kTs + 2, kV)));
  // With all logits equal: ten timestamps outweigh eot, only timestamps remain.
  CHECK(allowed_after({kTs, 1, 2, kTs + 2}, true) == range(kTs + 2, kV));
}

TEST_CASE("whisper rules: after a timestamp pair (or the first timestamp) text follows", "[whisper][rules]") {
  // <|0.00|> 1 <|0.04|><|0.04|>: text (no 5) or eot; no timestamp at all.
  CHECK(allowed_after({kTs, 1, kTs + 2, kTs + 2}, true) == without(range(0, kEot + 1), {5}));
  // Right after the initial timestamp: text, no second timestamp.
  CHECK(allowed_after({kTs + 1}, true) == without(range(0, kEot + 1), {5}));
}

TEST_CASE("whisper rules: timestamps never decrease", "[whisper][rules]") {
  // Inside a segment started at <|0.04|>: text or a strictly later timestamp. Text is made
  // likelier so the timestamp-mass rule does not fire.
  const auto tweak = [](std::vector<float>& l) {
    for (int i = 0; i <= kEot; ++i) l[static_cast<std::size_t>(i)] = 5;
  };
  const auto a = allowed_after({kTs + 2, 1, 2}, true, 0.0f, tweak);
  CHECK(a == unite(without(range(0, kEot + 1), {5}), range(kTs + 3, kV)));
  // After <|0.02|> 1 <|0.08|><|0.08|> 3: the next timestamp is after <|0.08|>.
  const auto b = allowed_after({kTs + 1, 1, kTs + 4, kTs + 4, 3}, true, 0.0f, tweak);
  CHECK(b == unite(without(range(0, kEot + 1), {5}), range(kTs + 5, kV)));
}

TEST_CASE("whisper rules: the special tokens are never sampled", "[whisper][rules]") {
  for (bool ts : {true, false}) {
    for (const std::vector<int>& sampled : std::vector<std::vector<int>>{{}, {1}, {kTs, 1}, {kTs, 1, kTs + 1}}) {
      const auto a = allowed_after(sampled, ts, 0.0f, [](auto& l) {
        for (int i = kEot + 1; i < kTs; ++i) l[static_cast<std::size_t>(i)] = 100;  // very likely specials
      });
      for (int i = kEot + 1; i < kTs; ++i) CHECK(a.count(i) == 0);
      CHECK(a.count(5) == 0);
      if (!ts) CHECK(*a.rbegin() <= kEot);
    }
  }
}

TEST_CASE("whisper rules: timestamp mass above the best text token forces a timestamp", "[whisper][rules]") {
  // Inside a segment: text token 2 has logit 1, other text -10; eleven later timestamps of 0.5
  // each sum to 0.5 + ln 11 ~ 2.9 > 1: only timestamps remain.
  const auto tweak = [](float ts_logit) {
    return [ts_logit](std::vector<float>& l) {
      for (int i = 0; i <= kEot; ++i) l[static_cast<std::size_t>(i)] = -10;
      l[2] = 1;
      for (int i = kTs; i < kV; ++i) l[static_cast<std::size_t>(i)] = ts_logit;
    };
  };
  CHECK(allowed_after({kTs, 1}, true, 0.0f, tweak(0.5f)) == range(kTs + 1, kV));
  // Timestamps at -3 each: mass -3 + ln 11 ~ -0.6 < 1: text stays, timestamps stay too.
  const auto kept = allowed_after({kTs, 1}, true, 0.0f, tweak(-3.0f));
  CHECK(kept == unite(without(range(0, kEot + 1), {5}), range(kTs + 1, kV)));
  // The comparison is of the mass, not of the best timestamp: each timestamp (0.5) is below
  // the text token (1) in the first case.
}

TEST_CASE("whisper rules: log_softmax", "[whisper][rules]") {
  const std::vector<float> x{1.0f, 2.0f, kNegInf, 0.5f};
  const auto lp = log_softmax(x);
  double s = 0;
  for (float v : lp) s += std::exp(static_cast<double>(v));
  CHECK(s == Approx(1.0).epsilon(1e-6));
  CHECK(lp[2] == kNegInf);
  CHECK(lp[1] - lp[0] == Approx(1.0f));
}

// ---------------------------------------------------------------------------------------------
// split_segments

TEST_CASE("whisper split_segments: timestamp pairs", "[whisper][segments]") {
  // <|0.00|> 1 2 <|0.04|><|0.04|> 3 <|0.14|>
  const std::vector<int> t{kTs, 1, 2, kTs + 2, kTs + 2, 3, kTs + 7};
  const auto s = split_segments(t, kTs, 30.0);
  REQUIRE(s.size() == 2);
  CHECK(s[0].start == Approx(0.0));
  CHECK(s[0].end == Approx(0.04));
  CHECK(s[0].tokens == std::vector<int>{1, 2});
  CHECK(s[1].start == Approx(0.04));
  CHECK(s[1].end == Approx(0.14));
  CHECK(s[1].tokens == std::vector<int>{3});
}

TEST_CASE("whisper split_segments: an open segment at the end runs to the window's end", "[whisper][segments]") {
  // <|0.02|> 1 <|0.06|><|0.06|> 3 4
  const std::vector<int> t{kTs + 1, 1, kTs + 3, kTs + 3, 3, 4};
  const auto s = split_segments(t, kTs, 5.0);
  REQUIRE(s.size() == 2);
  CHECK(s[0].start == Approx(0.02));
  CHECK(s[0].end == Approx(0.06));
  CHECK(s[1].start == Approx(0.06));
  CHECK(s[1].end == Approx(5.0));
  CHECK(s[1].tokens == std::vector<int>{3, 4});
}

TEST_CASE("whisper split_segments: a single closing timestamp and text after it and empty pairs", "[whisper][segments]") {
  // <|0.00|> 1 <|0.04|> 3 <|0.08|>: text after a closed segment starts where it ended.
  const auto a = split_segments(std::vector<int>{kTs, 1, kTs + 2, 3, kTs + 4}, kTs, 30.0);
  REQUIRE(a.size() == 2);
  CHECK(a[1].start == Approx(0.04));
  CHECK(a[1].end == Approx(0.08));
  CHECK(a[1].tokens == std::vector<int>{3});
  // <|0.00|><|0.04|><|0.04|> 1 <|0.08|>: the empty first pair is dropped.
  const auto b = split_segments(std::vector<int>{kTs, kTs + 2, kTs + 2, 1, kTs + 4}, kTs, 30.0);
  REQUIRE(b.size() == 1);
  CHECK(b[0].start == Approx(0.04));
  CHECK(b[0].end == Approx(0.08));
  // Only timestamps, or nothing: no segment.
  CHECK(split_segments(std::vector<int>{kTs, kTs + 3}, kTs, 30.0).empty());
  CHECK(split_segments(std::vector<int>{}, kTs, 30.0).empty());
}

TEST_CASE("whisper split_segments: without timestamps the text is one window-long segment", "[whisper][segments]") {
  const auto s = split_segments(std::vector<int>{1, 2, 3}, kTs, 7.5);
  REQUIRE(s.size() == 1);
  CHECK(s[0].start == 0.0);
  CHECK(s[0].end == Approx(7.5));
  CHECK(s[0].tokens == std::vector<int>{1, 2, 3});
}

TEST_CASE("whisper split_segments: times are clamped to the window", "[whisper][segments]") {
  // <|0.00|> 1 <|0.22|> in a 0.1 s window.
  const auto s = split_segments(std::vector<int>{kTs, 1, kTs + 11}, kTs, 0.1);
  REQUIRE(s.size() == 1);
  CHECK(s[0].end <= 0.1 + 1e-9);
  CHECK(s[0].start <= s[0].end);
}

// ---------------------------------------------------------------------------------------------
// compression_ratio

TEST_CASE("whisper compression_ratio separates repetition loops from sentences", "[whisper][fallback]") {
  std::string loop;
  for (int i = 0; i < 30; ++i) loop += " I'm going to go to the store.";
  CHECK(compression_ratio(loop) > 2.4);
  CHECK(compression_ratio(" And so my fellow Americans, ask not what your country can do for you, ask what you "
                          "can do for your country.") < 2.4);
  CHECK(compression_ratio(" Go forward ten meters.") < 2.4);
  CHECK(compression_ratio("") == 0.0);
}

// ---------------------------------------------------------------------------------------------
// WhisperSearch

TEST_CASE("whisper search: greedy takes the argmax and stops at eot", "[whisper][search]") {
  const WhisperSpecialTokens s = toy_special();
  const auto oracle = [](const std::vector<int>& seq) {
    std::vector<float> l(kV, 0.0f);
    for (int i = 0; i < kV; ++i) l[static_cast<std::size_t>(i)] = 0.1f * static_cast<float>(i % 7);
    l[0] = 9;  // " ": begin-suppressed at the first step, likely later but never the argmax
    l[12] = 30;  // a special: suppressed
    l[5] = 20;   // suppressed
    if (seq.empty()) {
      l[3] = 4;
      l[kEot] = 8;  // begin-suppressed
    } else if (seq.size() == 1) {
      l[7] = 11;
    } else {
      l[kEot] = 12;
    }
    return l;
  };
  WhisperSearch search(1, 0.0, 50, 1, s, toy_rules(false));
  const auto best = run_search(search, oracle);
  CHECK(best.tokens == std::vector<int>{3, 7});
  CHECK(search.generated() == 3);
  // sum_logprob: each step's log-probability among the tokens the rules leave, eot included.
  const std::set<int> first = without(range(0, kEot), {0, 5});
  const std::set<int> later = without(range(0, kEot + 1), {5});
  const double expected = logprob(oracle({}), first, 3) + logprob(oracle({3}), later, 7) +
                          logprob(oracle({3, 7}), later, kEot);
  CHECK(best.sum_logprob == Approx(expected).epsilon(1e-5));
}

TEST_CASE("whisper search: max_tokens ends an unfinished hypothesis", "[whisper][search]") {
  const WhisperSpecialTokens s = toy_special();
  const auto oracle = [](const std::vector<int>& seq) {
    std::vector<float> l(kV, 0.0f);
    l[static_cast<std::size_t>(1 + seq.size() % 4)] = 5;
    l[kEot] = -100;  // never eot, not even among the beams' candidates
    return l;
  };
  for (int beams : {1, 3}) {
    WhisperSearch search(beams, 0.0, 5, 1, s, toy_rules(false));
    const auto best = run_search(search, oracle);
    INFO("beams " << beams);
    CHECK(search.generated() == 5);
    CHECK(best.tokens == std::vector<int>{1, 2, 3, 4, 1});
    const std::set<int> first = without(range(0, kEot), {0, 5});
    const std::set<int> later = without(range(0, kEot + 1), {5});
    double expected = logprob(oracle({}), first, 1);
    std::vector<int> seq{1};
    for (int t : {2, 3, 4, 1}) {
      expected += logprob(oracle(seq), later, t);
      seq.push_back(t);
    }
    CHECK(best.sum_logprob == Approx(expected).epsilon(1e-5));
  }
}

TEST_CASE("whisper search: beam search finds the better length-normalised hypothesis", "[whisper][search]") {
  const WhisperSpecialTokens s = toy_special();
  // After nothing: 1 (p ~ .5) or 2 (p ~ .4). After 1: a flat row (3 barely ahead); after 2:
  // eot (p ~ .95). Anything longer: eot.
  // Greedy: 1 3 <eot> (log p ~ -0.7 - 2.2 - small, / 2 tokens ~ -1.5).
  // Beam (2): 2 <eot> (log p ~ -0.9 - 0.05, / 1 token ~ -1.0).
  const auto oracle = [](const std::vector<int>& seq) {
    std::vector<float> l(kV, -20.0f);
    if (seq.empty()) {
      l[1] = std::log(0.5f);
      l[2] = std::log(0.4f);
      for (int t : {3, 4, 6}) l[static_cast<std::size_t>(t)] = std::log(0.1f / 3);
    } else if (seq == std::vector<int>{1}) {
      for (int i = 0; i <= kEot; ++i) l[static_cast<std::size_t>(i)] = 0;
      l[3] = 0.2f;
    } else if (seq == std::vector<int>{2}) {
      for (int i = 0; i <= kEot; ++i) l[static_cast<std::size_t>(i)] = 0;
      l[kEot] = 6;
    } else {
      l[kEot] = 5;
    }
    return l;
  };
  WhisperSearch greedy(1, 0.0, 50, 1, s, toy_rules(false));
  const auto g = run_search(greedy, oracle);
  CHECK(g.tokens == std::vector<int>{1, 3});

  WhisperSearch beam(2, 0.0, 50, 1, s, toy_rules(false));
  CHECK(beam.live_rows() == 1);  // the prefix is shared at the first step
  const auto b = run_search(beam, oracle);
  CHECK(b.tokens == std::vector<int>{2});
  const std::set<int> first = without(range(0, kEot), {0, 5});
  const std::set<int> later = without(range(0, kEot + 1), {5});
  const double expected = logprob(oracle({}), first, 2) + logprob(oracle({2}), later, kEot);
  CHECK(b.sum_logprob == Approx(expected).epsilon(1e-5));
  // And it is better by the ranking measure than the greedy answer.
  CHECK(b.sum_logprob / 1.0 > g.sum_logprob / 2.0);
}

TEST_CASE("whisper search: beam search with timestamps obeys the rules on every beam", "[whisper][search]") {
  const WhisperSpecialTokens s = toy_special();
  // Random-ish logits; every hypothesis must be grammatical.
  const auto oracle = [](const std::vector<int>& seq) {
    std::vector<float> l(kV);
    unsigned h = 2166136261u;
    for (int t : seq) h = (h ^ static_cast<unsigned>(t)) * 16777619u;
    for (int i = 0; i < kV; ++i) {
      h = h * 1103515245u + 12345u;
      l[static_cast<std::size_t>(i)] = static_cast<float>((h >> 8) % 1000) / 250.0f;
    }
    if (seq.size() >= 8) l[kEot] = 10;
    return l;
  };
  WhisperSearch search(3, 0.0, 40, 1, s, toy_rules(true));
  const auto best = run_search(search, oracle);
  REQUIRE(!best.tokens.empty());
  CHECK(best.tokens.front() >= kTs);
  CHECK(best.tokens.front() <= kTs + 3);
  int last_ts = -1;
  for (std::size_t i = 0; i < best.tokens.size(); ++i) {
    const int t = best.tokens[i];
    CHECK(t != 5);
    CHECK((t < kEot || t >= kTs));
    if (t >= kTs) {
      CHECK(t >= last_ts);
      last_ts = t;
    }
  }
}

TEST_CASE("whisper search: sampling is reproducible and follows the distribution", "[whisper][search]") {
  const WhisperSpecialTokens s = toy_special();
  // p(1) = .6, p(2) = .3, p(3) = .1, the rest ~0.
  const auto oracle = [](const std::vector<int>& seq) {
    std::vector<float> l(kV, -1e9f);
    if (seq.size() < 6) {
      l[1] = std::log(0.6f);
      l[2] = std::log(0.3f);
      l[3] = std::log(0.1f);
    } else {
      l[kEot] = 0;
    }
    return l;
  };
  SECTION("the same seed gives the same tokens, another seed other tokens") {
    WhisperSearch a(1, 1.0, 50, 42, s, toy_rules(false));
    WhisperSearch b(1, 1.0, 50, 42, s, toy_rules(false));
    const auto ha = run_search(a, oracle);
    const auto hb = run_search(b, oracle);
    CHECK(ha.tokens.size() == 6);
    CHECK(ha.tokens == hb.tokens);
    CHECK(ha.sum_logprob == hb.sum_logprob);
    bool differs = false;
    for (std::uint64_t seed = 43; seed < 53 && !differs; ++seed) {
      WhisperSearch c(1, 1.0, 50, seed, s, toy_rules(false));
      differs = run_search(c, oracle).tokens != ha.tokens;
    }
    CHECK(differs);
    // beams > 1 at a temperature above 0 is one sampled hypothesis.
    CHECK(WhisperSearch(5, 0.5, 50, 1, s, toy_rules(false)).beams() == 1);
  }
  SECTION("frequencies at temperatures 1 and 0.5") {
    for (double temperature : {1.0, 0.5}) {
      std::map<int, int> counts;
      const int n = 3000;
      for (int i = 0; i < n; ++i) {
        WhisperSearch search(1, temperature, 1, 1000 + static_cast<std::uint64_t>(i), s, toy_rules(false));
        const auto h = run_search(search, oracle);
        REQUIRE(h.tokens.size() == 1);
        ++counts[h.tokens[0]];
      }
      // p^(1/T), normalised.
      const double z = std::pow(0.6, 1 / temperature) + std::pow(0.3, 1 / temperature) + std::pow(0.1, 1 / temperature);
      INFO("temperature " << temperature << ": " << counts[1] << " " << counts[2] << " " << counts[3]);
      CHECK(counts[1] + counts[2] + counts[3] == n);
      for (int t : {1, 2, 3}) {
        const double p = std::pow(t == 1 ? 0.6 : t == 2 ? 0.3 : 0.1, 1 / temperature) / z;
        CHECK(std::abs(counts[t] / static_cast<double>(n) - p) < 0.035);
      }
    }
  }
}

TEST_CASE("whisper search: misuse is reported", "[whisper][search]") {
  const WhisperSpecialTokens s = toy_special();
  WhisperSearch search(1, 0.0, 1, 1, s, toy_rules(false));
  std::vector<float> wrong(kV + 1, 0.0f);
  CHECK_THROWS_AS(search.advance(wrong), std::invalid_argument);
  std::vector<float> row(kV, 0.0f);
  search.advance(row);
  REQUIRE(search.done());
  CHECK_THROWS_AS(search.advance(row), std::logic_error);
}

// ---------------------------------------------------------------------------------------------
// dtw_path

namespace {

void check_path_shape(const std::vector<std::pair<int, int>>& path, int rows, int cols) {
  REQUIRE(!path.empty());
  CHECK(path.front() == std::make_pair(0, 0));
  CHECK(path.back() == std::make_pair(rows - 1, cols - 1));
  for (std::size_t i = 1; i < path.size(); ++i) {
    const int di = path[i].first - path[i - 1].first, dj = path[i].second - path[i - 1].second;
    INFO("step " << i);
    CHECK(((di == 1 && dj == 0) || (di == 0 && dj == 1) || (di == 1 && dj == 1)));
  }
}

double path_cost(const std::vector<float>& cost, int cols, const std::vector<std::pair<int, int>>& path) {
  double c = 0;
  for (const auto& [i, j] : path) c += cost[static_cast<std::size_t>(i * cols + j)];
  return c;
}

// The least cost of a monotone path, by the textbook recurrence.
double best_cost(const std::vector<float>& cost, int rows, int cols) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> d(static_cast<std::size_t>(rows * cols), inf);
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; ++j) {
      double prev = (i == 0 && j == 0) ? 0 : inf;
      if (i > 0) prev = std::min(prev, d[static_cast<std::size_t>((i - 1) * cols + j)]);
      if (j > 0) prev = std::min(prev, d[static_cast<std::size_t>(i * cols + j - 1)]);
      if (i > 0 && j > 0) prev = std::min(prev, d[static_cast<std::size_t>((i - 1) * cols + j - 1)]);
      d[static_cast<std::size_t>(i * cols + j)] = prev + cost[static_cast<std::size_t>(i * cols + j)];
    }
  }
  return d.back();
}

}  // namespace

TEST_CASE("whisper dtw_path follows the planted cheapest path", "[whisper][dtw]") {
  // Zero cost on (0,0) (0,1) (1,2) (2,2) (3,3) (3,4) (3,5), 5 elsewhere: the unique free path.
  const int rows = 4, cols = 6;
  std::vector<float> cost(rows * cols, 5.0f);
  const std::vector<std::pair<int, int>> planted{{0, 0}, {0, 1}, {1, 2}, {2, 2}, {3, 3}, {3, 4}, {3, 5}};
  for (const auto& [i, j] : planted) cost[static_cast<std::size_t>(i * cols + j)] = 0;
  const auto path = dtw_path(cost, rows, cols);
  CHECK(path == planted);
}

TEST_CASE("whisper dtw_path is a least-cost monotone path on random matrices", "[whisper][dtw]") {
  unsigned h = 12345;
  for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{1, 1}, {1, 5}, {5, 1}, {3, 7}, {8, 40}, {12, 12}}) {
    std::vector<float> cost(static_cast<std::size_t>(rows * cols));
    for (float& c : cost) {
      h = h * 1103515245u + 12345u;
      c = static_cast<float>((h >> 8) % 1000003) / 100000.0f - 5.0f;  // negative too, as Whisper's -weights
    }
    INFO(rows << " x " << cols);
    const auto path = dtw_path(cost, rows, cols);
    check_path_shape(path, rows, cols);
    CHECK(path_cost(cost, cols, path) == Approx(best_cost(cost, rows, cols)).epsilon(1e-6));
  }
  CHECK_THROWS_AS(dtw_path(std::vector<float>(5), 2, 3), std::invalid_argument);
  CHECK_THROWS_AS(dtw_path(std::vector<float>{}, 0, 0), std::invalid_argument);
}
