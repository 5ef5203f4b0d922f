#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "audio_checks.hpp"
#include "talkserve/speech/espeak_backend.hpp"

using namespace talkserve::speech;
using namespace talkserve::speech::test;

namespace {

// espeak-ng allows one backend per process: every test case shares this one.
EspeakBackend& espeak() {
  static const std::unique_ptr<EspeakBackend> backend = EspeakBackend::create();
  return *backend;
}

TtsResult say(const std::string& text, const std::string& voice = "en-us", double speed = 1.0,
              std::optional<int> pitch = std::nullopt) {
  TtsRequest request;
  request.text = text;
  request.voice = voice;
  request.speed = speed;
  request.pitch = pitch;
  return espeak().synthesize(request);
}

bool has_voice(const std::vector<VoiceInfo>& voices, const std::string& name) {
  return std::any_of(voices.begin(), voices.end(),
                     [&](const VoiceInfo& v) { return v.name == name; });
}

}  // namespace

TEST_CASE("espeak: English sentence gives audio and a valid phoneme timeline",
          "[tts][espeak]") {
  CHECK(espeak().sample_rate() == 22050);
  CHECK_FALSE(espeak().thread_safe());
  const auto result = say("Hello mama, the thin fox jumped over the lazy dog.");
  CHECK(result.sample_rate == 22050);
  CHECK(result.duration() > 1.5);
  CHECK(result.duration() < 6.0);
  CHECK(rms(result.samples) > 0.02);
  check_timeline(result);
  const auto visemes = visemes_of(result);
  for (Viseme v : {Viseme::rest, Viseme::mbp, Viseme::aa, Viseme::th, Viseme::dd, Viseme::kk,
                   Viseme::fv, Viseme::ch, Viseme::oh}) {
    INFO(to_string(v));
    CHECK(visemes.count(v) == 1);
  }
}

TEST_CASE("espeak: 'mama' opens and closes the lips", "[tts][espeak]") {
  const auto result = say("mama");
  check_timeline(result);
  std::vector<Viseme> sequence;
  for (const auto& e : result.phonemes) {
    if (e.viseme != Viseme::rest) sequence.push_back(e.viseme);
  }
  REQUIRE(sequence.size() == 4);
  CHECK(sequence == std::vector<Viseme>{Viseme::mbp, Viseme::aa, Viseme::mbp, Viseme::aa});
}

TEST_CASE("espeak: speed 2.0 is clearly shorter than 1.0", "[tts][espeak]") {
  const std::string text = "The quick brown fox jumps over the lazy dog near the river bank.";
  const auto normal = say(text, "en-us", 1.0);
  const auto fast = say(text, "en-us", 2.0);
  CHECK(fast.duration() < 0.7 * normal.duration());
  check_timeline(fast);
}

TEST_CASE("espeak: pitch changes the audio", "[tts][espeak]") {
  const std::string text = "A long vowel sound, aaah, to measure the pitch.";
  const auto low = say(text, "en-us", 1.0, 10);
  const auto high = say(text, "en-us", 1.0, 90);
  CHECK_FALSE(low.samples == high.samples);
  const double f0_low = median_f0(low.samples, low.sample_rate);
  const double f0_high = median_f0(high.samples, high.sample_rate);
  INFO("f0 low " << f0_low << " high " << f0_high);
  CHECK(f0_high > 1.2 * f0_low);
}

TEST_CASE("espeak: Mandarin text synthesises as Mandarin", "[tts][espeak]") {
  const auto voices = espeak().voices();
  CHECK(has_voice(voices, "cmn"));
  CHECK(espeak().espeak_voice_for("cmn") == std::optional<std::string>("sit/cmn-Latn-pinyin"));
  const auto result = say("你好，世界。今天天气很好！", "cmn");
  CHECK(result.duration() > 1.0);
  CHECK(rms(result.samples) > 0.02);
  check_timeline(result);
  std::size_t spoken = 0;
  for (const auto& e : result.phonemes) {
    spoken += e.viseme != Viseme::rest ? 1 : 0;
    // The plain "cmn" voice of espeak-ng 1.51 reads the characters' pinyin as English
    // ("ni three hao three"); Mandarin has no dental fricative.
    CHECK(e.phoneme != "T");
  }
  CHECK(spoken >= 15);
}

TEST_CASE("espeak: other languages give audio and valid timelines", "[tts][espeak]") {
  const std::pair<const char*, const char*> samples[] = {
      {"de", "Zwölf Boxkämpfer jagen Viktor quer über den großen Deich."},
      {"fr", "Portez ce vieux whisky au juge blond qui fume."},
      {"es", "El veloz murciélago hindú comía feliz cardillo y kiwi."},
      {"ja", "こんにちは世界"},
      {"ru", "Съешь же ещё этих мягких французских булок."},
  };
  for (const auto& [voice, text] : samples) {
    INFO(voice);
    const auto result = say(text, voice);
    CHECK(rms(result.samples) > 0.02);
    check_timeline(result);
    CHECK(visemes_of(result).size() >= 5);
  }
}

TEST_CASE("espeak: voices cover languages and the OpenAI names", "[tts][espeak]") {
  const auto voices = espeak().voices();
  for (const char* name : {"en", "en-us", "en-gb", "cmn", "zh", "de", "fr", "es", "it", "ja",
                           "alloy", "echo", "fable", "onyx", "nova", "shimmer"}) {
    INFO(name);
    CHECK(has_voice(voices, name));
  }
  for (const auto& v : voices) CHECK(v.backend == "espeak-ng");
  // Each OpenAI name is a distinct English voice that speaks.
  std::vector<std::vector<float>> renders;
  for (const char* name : {"alloy", "echo", "fable", "onyx", "nova", "shimmer"}) {
    INFO(name);
    const auto result = say("Hello there.", name);
    CHECK(rms(result.samples) > 0.02);
    renders.push_back(result.samples);
  }
  for (std::size_t i = 0; i < renders.size(); ++i) {
    for (std::size_t j = i + 1; j < renders.size(); ++j) CHECK_FALSE(renders[i] == renders[j]);
  }
  CHECK(rms(say("Hello.", "").samples) > 0.02);  // default voice
  CHECK(rms(say("Hello.", "EN-US").samples) > 0.02);  // names are case-insensitive
}

TEST_CASE("espeak: unknown voice is a TtsError naming it", "[tts][espeak]") {
  CHECK_THROWS_MATCHES(say("Hello.", "klingon-xx"), TtsError,
                       Catch::Matchers::Message("espeak-ng: unknown voice 'klingon-xx'"));
  CHECK_THROWS_AS(say("Hello.", "en-us", 0.0), TtsError);
  // The backend still works afterwards.
  CHECK(rms(say("Hello.").samples) > 0.02);
}

TEST_CASE("espeak: empty text gives empty audio", "[tts][espeak]") {
  const auto result = say("");
  CHECK(result.samples.empty());
  CHECK(result.phonemes.empty());
  CHECK(result.sample_rate == 22050);
}

TEST_CASE("espeak: a second backend in the process is refused", "[tts][espeak]") {
  (void)espeak();
  CHECK_THROWS_AS(EspeakBackend::create(), TtsError);
}
