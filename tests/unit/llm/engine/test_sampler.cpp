#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "talkserve/llm/sampler.hpp"

using namespace talkserve::llm;

namespace {
const std::vector<int32_t> kNoPrompt;
}

TEST_CASE("sampler: greedy is argmax with the lowest id on ties", "[llm][sampler]") {
  SamplingParams p;
  p.temperature = 0.0f;
  SamplingState st(1, kNoPrompt);
  std::vector<float> logits{0.1f, 3.0f, -1.0f, 3.0f};
  CHECK(sample_token(logits, p, st).token == 1);
}

TEST_CASE("sampler: temperature sampling follows the softmax", "[llm][sampler]") {
  SamplingParams p;
  p.temperature = 1.0f;
  SamplingState st(42, kNoPrompt);
  std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[sample_token(logits, p, st).token];
  CHECK(counts[0] / double(n) == Approx(0.5).margin(0.02));
  CHECK(counts[1] / double(n) == Approx(0.3).margin(0.02));
  CHECK(counts[2] / double(n) == Approx(0.2).margin(0.02));
}

TEST_CASE("sampler: top-k and top-p restrict the candidates", "[llm][sampler]") {
  std::vector<float> logits{std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  SamplingState st(7, kNoPrompt);
  SamplingParams k2;
  k2.top_k = 2;
  SamplingParams p65;
  p65.top_p = 0.65f;  // 0.4 + 0.3 reaches it: tokens 0 and 1
  SamplingParams k1;
  k1.top_k = 1;
  for (int i = 0; i < 2000; ++i) {
    CHECK(sample_token(logits, k2, st).token <= 1);
    CHECK(sample_token(logits, p65, st).token <= 1);
    CHECK(sample_token(logits, k1, st).token == 0);
  }
}

TEST_CASE("sampler: the same seed gives the same samples", "[llm][sampler]") {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[static_cast<std::size_t>(i)] = std::sin(i * 1.7f);
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  SamplingState a(123, kNoPrompt), b(123, kNoPrompt), c(124, kNoPrompt);
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 64; ++i) {
    sa.push_back(sample_token(logits, p, a).token);
    sb.push_back(sample_token(logits, p, b).token);
    sc.push_back(sample_token(logits, p, c).token);
  }
  CHECK(sa == sb);
  CHECK(sa != sc);
}

TEST_CASE("sampler: presence and frequency penalties (OpenAI) act on generated tokens",
          "[llm][sampler]") {
  const std::vector<int32_t> prompt{0};
  SamplingState st(1, prompt);
  std::vector<float> logits{1.0f, 2.0f, 1.5f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.logprobs = 0;
  CHECK(sample_token(logits, p, st).token == 1);
  st.on_token(1);
  p.presence_penalty = 0.4f;  // 2.0 - 0.4 = 1.6 > 1.5
  CHECK(sample_token(logits, p, st).token == 1);
  p.presence_penalty = 0.6f;  // 1.4 < 1.5
  CHECK(sample_token(logits, p, st).token == 2);
  p.presence_penalty = 0.0f;
  st.on_token(1);
  p.frequency_penalty = 0.3f;  // 2.0 - 2 * 0.3 = 1.4 < 1.5
  CHECK(sample_token(logits, p, st).token == 2);
  // The prompt token 0 is not penalised by presence/frequency.
  std::vector<float> l2{2.0f, 1.9f};
  SamplingState st2(1, prompt);
  p.frequency_penalty = 2.0f;
  CHECK(sample_token(l2, p, st2).token == 0);
}

TEST_CASE("sampler: repetition penalty divides positive and multiplies negative logits",
          "[llm][sampler]") {
  const std::vector<int32_t> prompt{0, 2};
  SamplingState st(1, prompt);
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  // 0: 3.0 -> 1.5 (seen)   1: 2.0 (unseen)   so 1 wins
  CHECK(sample_token(std::vector<float>{3.0f, 2.0f, -1.0f}, p, st).token == 1);
  // 2: -1 -> -2 (seen)     3: -1.5 (unseen)  so 3 wins
  CHECK(sample_token(std::vector<float>{-9.0f, -9.0f, -1.0f, -1.5f}, p, st).token == 3);
  // Generated tokens count too.
  st.on_token(1);
  CHECK(sample_token(std::vector<float>{0.0f, 2.0f, 1.2f, 1.1f}, p, st).token == 3);
}

TEST_CASE("sampler: logprobs are the log-softmax of the raw logits", "[llm][sampler]") {
  std::vector<float> logits{1.0f, 3.0f, 2.0f, 0.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 5.0f;  // does not change the reported logprobs
  p.logprobs = 2;
  const std::vector<int32_t> prompt{1};
  SamplingState st(1, prompt);
  const auto r = sample_token(logits, p, st);
  double z = 0;
  for (float l : logits) z += std::exp(l);
  CHECK(r.token == 2);  // 3.0 / 5 = 0.6 < 2.0
  CHECK(r.logprob == Approx(2.0 - std::log(z)));
  REQUIRE(r.top.size() == 2);
  CHECK(r.top[0].token == 1);
  CHECK(r.top[0].logprob == Approx(3.0 - std::log(z)));
  CHECK(r.top[1].token == 2);
}

TEST_CASE("sampling params: validation names the bad field", "[llm][sampler]") {
  SamplingParams p;
  CHECK(p.validate().empty());
  p.top_p = 0.0f;
  CHECK_THAT(p.validate(), Catch::Contains("top_p"));
  p = {};
  p.max_tokens = 0;
  CHECK_THAT(p.validate(), Catch::Contains("max_tokens"));
  p = {};
  p.temperature = -1.0f;
  CHECK_THAT(p.validate(), Catch::Contains("temperature"));
  p = {};
  p.stop = {""};
  CHECK_THAT(p.validate(), Catch::Contains("stop"));
}
