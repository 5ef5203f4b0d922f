#include <catch2/catch.hpp>

#include <thread>

#include "support/data_paths.hpp"
#include "support/wav_file.hpp"
#include "talkserve/speech/pocketsphinx_backend.hpp"

using namespace talkserve::speech;
using talkserve::test::read_wav_pcm16;
using talkserve::test::speech_data_dir;

namespace {

std::vector<float> clip(const std::string& name) {
  auto wav = read_wav_pcm16(speech_data_dir() + "/" + name);
  REQUIRE(wav.sample_rate == kAsrSampleRate);
  return wav.samples;
}

AsrBackend& shared_backend() {
  static auto backend = [] {
    PocketsphinxConfig cfg;
    cfg.decoders = 2;
    return make_pocketsphinx_backend(cfg);
  }();
  return *backend;
}

}  // namespace

TEST_CASE("pocketsphinx recognises a real recording with word times") {
  std::vector<AsrInput> batch{{clip("pocketsphinx_goforward.wav"), "en"}};
  auto results = shared_backend().transcribe_batch(batch);
  REQUIRE(results.size() == 1);
  CHECK(results[0].text == "go forward ten meters");
  REQUIRE(results[0].words.size() == 4);
  double prev_end = 0;
  for (const auto& w : results[0].words) {
    CHECK(w.start >= prev_end - 1e-9);
    CHECK(w.end > w.start);
    prev_end = w.end;
  }
  CHECK(prev_end <= 2.9);
}

TEST_CASE("a clip whose request was cancelled before a decoder took it is skipped") {
  const auto goforward = clip("pocketsphinx_goforward.wav");
  auto cancelled = std::make_shared<std::atomic<bool>>(true);
  std::vector<AsrInput> batch{{goforward, "en", cancelled}, {goforward, "en"}, {goforward, "en", cancelled}};
  auto results = shared_backend().transcribe_batch(batch);
  REQUIRE(results.size() == 3);
  CHECK(results[0].text.empty());
  CHECK(results[0].words.empty());
  CHECK(results[1].text == "go forward ten meters");
  CHECK(results[2].text.empty());
}

TEST_CASE("a batch spread over several decoders gives each clip's solo result, in order") {
  const std::vector<std::string> names{
      "pocketsphinx_goforward.wav", "pocketsphinx_cards_001.wav", "pocketsphinx_cards_002.wav",
      "librivox_sense_and_sensibility_01_austen_64kb-0880.wav", "pocketsphinx_cards_003.wav"};
  std::vector<std::string> solo;
  for (const auto& n : names) {
    std::vector<AsrInput> one{{clip(n), "en"}};
    solo.push_back(shared_backend().transcribe_batch(one).at(0).text);
  }
  std::vector<AsrInput> batch;
  for (const auto& n : names) batch.push_back({clip(n), "en"});
  auto results = shared_backend().transcribe_batch(batch);
  REQUIRE(results.size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    INFO(names[i]);
    CHECK(results[i].text == solo[i]);
  }
}

TEST_CASE("concurrent batches from several threads all complete correctly") {
  const auto goforward = clip("pocketsphinx_goforward.wav");
  std::vector<std::string> texts(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<AsrInput> b{{goforward, ""}, {goforward, ""}};
      auto r = shared_backend().transcribe_batch(b);
      texts[t] = r.at(0).text + "|" + r.at(1).text;
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& t : texts) CHECK(t == "go forward ten meters|go forward ten meters");
}

TEST_CASE("empty and silent input give an empty transcript") {
  std::vector<AsrInput> batch{{{}, ""}, {std::vector<float>(16000, 0.0f), ""}};
  auto results = shared_backend().transcribe_batch(batch);
  REQUIRE(results.size() == 2);
  CHECK(results[0].text.empty());
  CHECK(results[1].words.size() <= 1);
}

TEST_CASE("a missing model file is a clear error naming it") {
  PocketsphinxConfig cfg;
  cfg.decoders = 1;
  cfg.lm = "/nonexistent/en-us.lm.bin";
  CHECK_THROWS_WITH(make_pocketsphinx_backend(cfg), Catch::Contains("/nonexistent/en-us.lm.bin"));
  cfg = PocketsphinxConfig{};
  cfg.decoders = 0;
  CHECK_THROWS_AS(make_pocketsphinx_backend(cfg), std::invalid_argument);
}
