// wav2vec2-CTC on tiny random-weight models of both encoder variants: shapes, batch = solo,
// decoding and word times, dtypes and weight-norm names.

#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <thread>

#include "support/temp_dir.hpp"
#include "talkserve/speech/wav2vec2.hpp"
#include "unit/speech/torch/pcm16_wav.hpp"

using namespace talkserve::speech;
using talkserve::test::read_speech_clip;
using talkserve::test::TempDir;

namespace {

std::unique_ptr<Wav2Vec2Asr> write_and_load(const TempDir& tmp, const Wav2Vec2RandomSpec& spec, std::uint64_t seed,
                                            const std::string& sub = "model") {
  const std::string dir = (tmp.path() / sub).string();
  write_random_wav2vec2(dir, spec, seed);
  Wav2Vec2Options opt;
  opt.path = dir;
  opt.threads = 1;
  return Wav2Vec2Asr::load(opt);
}

std::vector<float> slice(const std::vector<float>& audio, double from_s, double seconds) {
  const auto b = static_cast<std::size_t>(from_s * 16000);
  const auto n = std::min(static_cast<std::size_t>(seconds * 16000), audio.size() - b);
  return std::vector<float>(audio.begin() + static_cast<std::ptrdiff_t>(b),
                            audio.begin() + static_cast<std::ptrdiff_t>(b + n));
}

// Eight clips of 0.5 to 4 s from different recordings.
std::vector<std::vector<float>> eight_clips() {
  const auto jfk = read_speech_clip("jfk.wav");
  const auto go = read_speech_clip("pocketsphinx_goforward.wav");
  const auto libri = read_speech_clip("librispeech_1272-141231-0002.wav");
  const auto cards = read_speech_clip("pocketsphinx_cards_001.wav");
  const auto austen = read_speech_clip("librivox_sense_and_sensibility_01_austen_64kb-0880.wav");
  return {slice(jfk, 0.3, 4.0),   slice(go, 0.0, 2.8),   slice(libri, 1.0, 0.5),  slice(cards, 0.0, 1.3),
          slice(austen, 0.2, 3.1), slice(jfk, 6.0, 0.77), slice(libri, 5.0, 3.63), slice(go, 0.4, 1.9)};
}

void check_batch_equals_solo(const Wav2Vec2Asr& asr) {
  const auto clips = eight_clips();
  std::vector<std::span<const float>> spans(clips.begin(), clips.end());
  const auto batched = asr.logits_batch(spans);
  REQUIRE(batched.size() == clips.size());
  std::set<std::string> chars;
  std::size_t words = 0;
  for (std::size_t i = 0; i < clips.size(); ++i) {
    const auto solo = asr.logits_batch({spans[i]});
    REQUIRE(solo.size() == 1);
    REQUIRE(batched[i].frames == asr.frames_for(clips[i].size()));
    REQUIRE(solo[0].frames == batched[i].frames);
    REQUIRE(solo[0].vocab == 32);
    float worst = 0, scale = 0;
    for (std::size_t j = 0; j < solo[0].values.size(); ++j) {
      REQUIRE(std::isfinite(batched[i].values[j]));
      worst = std::max(worst, std::abs(solo[0].values[j] - batched[i].values[j]));
      scale = std::max(scale, std::abs(solo[0].values[j]));
    }
    INFO("clip " << i << " (" << clips[i].size() << " samples): max logit difference " << worst);
    CHECK(worst <= 1e-4f * std::max(1.0f, scale / 10));
    const AsrResult a = asr.decode(solo[0]);
    const AsrResult b = asr.decode(batched[i]);
    INFO("solo text: " << a.text);
    CHECK(a.text == b.text);
    for (char c : a.text) chars.insert(std::string(1, c));
    words += a.words.size();
  }
  // Random weights, but not a constant argmax: the comparison above is of real text.
  CHECK(chars.size() >= 6);
  CHECK(words >= 8);
}

}  // namespace

TEST_CASE("wav2vec2 tiny random model: sizes and shapes", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  auto asr = write_and_load(tmp, Wav2Vec2RandomSpec::tiny_group(), 1);
  CHECK(asr->name() == "wav2vec2");
  CHECK(asr->languages() == std::vector<std::string>{"en"});
  CHECK(asr->vocab_size() == 32);
  CHECK(asr->vocabulary()[4] == "|");
  CHECK(asr->frame_seconds() == Approx(0.02));
  CHECK(asr->frames_for(16000) == 49);
  CHECK(asr->frames_for(400) == 1);
  CHECK(asr->frames_for(399) == 0);
  std::vector<float> one_second(16000);
  for (std::size_t i = 0; i < one_second.size(); ++i) one_second[i] = 0.3f * std::sin(0.05f * static_cast<float>(i));
  const auto logits = asr->logits_batch({one_second});
  REQUIRE(logits.size() == 1);
  CHECK(logits[0].frames == 49);
  CHECK(logits[0].vocab == 32);
  CHECK(logits[0].values.size() == 49 * 32);
}

TEST_CASE("wav2vec2 group-norm model: a padded batch equals each clip alone", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  check_batch_equals_solo(*write_and_load(tmp, Wav2Vec2RandomSpec::tiny_group(), 11));
}

TEST_CASE("wav2vec2 layer-norm stable model: a padded batch equals each clip alone", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  check_batch_equals_solo(*write_and_load(tmp, Wav2Vec2RandomSpec::tiny_layer(), 12));
}

TEST_CASE("wav2vec2 transcribe_batch: words, times, short and empty clips", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  auto asr = write_and_load(tmp, Wav2Vec2RandomSpec::tiny_group(), 11);
  const auto clips = eight_clips();
  std::vector<AsrInput> batch;
  for (const auto& c : clips) batch.push_back({c, "en"});
  batch.push_back({std::vector<float>(100, 0.1f), ""});  // shorter than one frame
  batch.push_back({{}, ""});                              // empty
  const auto results = asr->transcribe_batch(batch);
  REQUIRE(results.size() == clips.size() + 2);
  for (std::size_t i = 0; i < clips.size(); ++i) {
    const auto& r = results[i];
    const double duration = static_cast<double>(clips[i].size()) / 16000;
    std::string joined;
    double previous_end = 0;
    for (const auto& w : r.words) {
      CHECK_FALSE(w.word.empty());
      CHECK(w.start >= previous_end - 1e-9);
      CHECK(w.end > w.start);
      CHECK(w.end <= duration + 0.02);
      previous_end = w.end;
      joined += (joined.empty() ? "" : " ") + w.word;
    }
    CHECK(r.text == joined);
  }
  CHECK(results[clips.size()].text.empty());
  CHECK(results[clips.size() + 1].text.empty());
}

TEST_CASE("wav2vec2 greedy CTC decoding and word times", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  auto asr = write_and_load(tmp, Wav2Vec2RandomSpec::tiny_group(), 3);
  const auto& vocab = asr->vocabulary();
  auto id = [&](const std::string& t) { return static_cast<std::size_t>(std::find(vocab.begin(), vocab.end(), t) - vocab.begin()); };
  // Frames: <pad> H H E <pad> L <pad> L O O | | <s> W E <unk> <pad> <pad> | .
  const std::vector<std::string> frames = {"<pad>", "H", "H", "E", "<pad>", "L", "<pad>", "L", "O", "O", "|",
                                           "|", "<s>", "W", "E", "<unk>", "<pad>", "<pad>", "|"};
  CtcLogits logits;
  logits.frames = frames.size();
  logits.vocab = vocab.size();
  logits.values.assign(logits.frames * logits.vocab, 0.0f);
  for (std::size_t f = 0; f < frames.size(); ++f) logits.values[f * logits.vocab + id(frames[f])] = 5.0f;
  const AsrResult r = asr->decode(logits);
  CHECK(r.text == "HELLO WE");
  REQUIRE(r.words.size() == 2);
  CHECK(r.words[0].word == "HELLO");
  CHECK(r.words[0].start == Approx(0.02));
  CHECK(r.words[0].end == Approx(0.20));  // last O is frame 9
  CHECK(r.words[1].word == "WE");
  CHECK(r.words[1].start == Approx(0.26));
  CHECK(r.words[1].end == Approx(0.30));
}

TEST_CASE("wav2vec2 loads F16 and BF16 weights and both weight-norm namings", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  const auto clips = eight_clips();
  const std::vector<std::span<const float>> two = {clips[0], clips[3]};
  auto spec = Wav2Vec2RandomSpec::tiny_layer();
  auto reference = write_and_load(tmp, spec, 5, "f32")->logits_batch(two);

  spec.parametrized_weight_norm = !spec.parametrized_weight_norm;
  auto renamed = write_and_load(tmp, spec, 5, "renamed")->logits_batch(two);
  for (std::size_t i = 0; i < two.size(); ++i) CHECK(renamed[i].values == reference[i].values);

  for (const char* dtype : {"F16", "BF16"}) {
    spec.dtype = dtype;
    auto half = write_and_load(tmp, spec, 5, dtype)->logits_batch(two);
    for (std::size_t i = 0; i < two.size(); ++i) {
      REQUIRE(half[i].frames == reference[i].frames);
      double diff = 0, norm = 0;
      for (std::size_t j = 0; j < half[i].values.size(); ++j) {
        diff += std::pow(half[i].values[j] - reference[i].values[j], 2);
        norm += std::pow(reference[i].values[j], 2);
      }
      INFO(dtype << " relative logit error " << std::sqrt(diff / norm));
      CHECK(std::sqrt(diff / norm) < (std::string(dtype) == "F16" ? 0.01 : 0.05));
    }
  }
}

// asr.workers > 1 runs batches of one loaded model on several threads at once.
TEST_CASE("wav2vec2: batches on two threads at once give the texts of one at a time", "[speech][wav2vec2][torch]") {
  TempDir tmp;
  auto asr = write_and_load(tmp, Wav2Vec2RandomSpec::tiny_group(), 11);
  const auto clips = eight_clips();
  std::vector<AsrInput> first, second;
  for (std::size_t i = 0; i < clips.size(); ++i) (i % 2 == 0 ? first : second).push_back({clips[i], "en"});
  const auto alone_first = asr->transcribe_batch(first);
  const auto alone_second = asr->transcribe_batch(second);
  for (int round = 0; round < 3; ++round) {
    std::vector<AsrResult> a, b;
    std::thread other([&] { b = asr->transcribe_batch(second); });
    a = asr->transcribe_batch(first);
    other.join();
    INFO("round " << round);
    REQUIRE(a.size() == alone_first.size());
    REQUIRE(b.size() == alone_second.size());
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].text == alone_first[i].text);
    for (std::size_t i = 0; i < b.size(); ++i) CHECK(b[i].text == alone_second[i].text);
  }
}
