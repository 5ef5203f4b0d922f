// bench_tts [--runs N]
// For each backend (espeak-ng en-us, flite slt and kal16): the real-time factor (synthesis
// time / audio duration) over a fixed English paragraph, and the time to synthesise the first
// of its three sentences vs the whole paragraph: what streaming sentence by sentence saves
// before the first audio. Prints a table, then one JSON line.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "talkserve/speech/espeak_backend.hpp"
#include "talkserve/speech/flite_backend.hpp"
#include "talkserve/speech/sentence_splitter.hpp"

using namespace talkserve::speech;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kParagraph =
    "The old lighthouse keeper climbed the spiral stairs every evening, carrying a lantern "
    "and a thermos of strong black tea. From the top he could see the fishing boats returning "
    "across the bay, their lights flickering like fireflies over the dark water. He wrote "
    "each arrival in a worn leather notebook, as his father had done before him.";

int arg_int(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

struct Timed {
  double seconds;  // wall time of synthesize()
  double audio;    // seconds of audio produced
};

Timed timed_synthesis(TtsBackend& backend, const std::string& voice, const std::string& text) {
  TtsRequest request;
  request.text = text;
  request.voice = voice;
  const auto start = Clock::now();
  const TtsResult result = backend.synthesize(request);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return {seconds, result.duration()};
}

// Median of `runs` timings (first run discarded as warm-up: voice and dictionary loading).
Timed median(TtsBackend& backend, const std::string& voice, const std::string& text, int runs) {
  (void)timed_synthesis(backend, voice, text);
  std::vector<Timed> timings;
  for (int i = 0; i < runs; ++i) timings.push_back(timed_synthesis(backend, voice, text));
  std::sort(timings.begin(), timings.end(),
            [](const Timed& a, const Timed& b) { return a.seconds < b.seconds; });
  return timings[timings.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = std::max(1, arg_int(argc, argv, "--runs", 5));
  const std::vector<std::string> sentences = split_sentences(kParagraph);
  if (sentences.size() != 3) {
    std::fprintf(stderr, "expected 3 sentences, the splitter gave %zu\n", sentences.size());
    return 1;
  }

  struct Subject {
    TtsBackend* backend;
    std::string voice;
  };
  std::unique_ptr<EspeakBackend> espeak = EspeakBackend::create();
  std::unique_ptr<FliteBackend> flite = FliteBackend::create();
  const std::vector<Subject> subjects = {
      {espeak.get(), "en-us"}, {flite.get(), "cmu_us_slt"}, {flite.get(), "cmu_us_kal16"}};

  nlohmann::json out;
  out["bench"] = "tts";
  out["runs"] = runs;
  out["paragraph_chars"] = std::strlen(kParagraph);
  out["backends"] = nlohmann::json::array();
  std::printf("%-10s %-13s %8s %8s %10s %14s %12s\n", "backend", "voice", "audio_s", "rtf",
              "whole_ms", "first_sent_ms", "first_audio_s");
  for (const auto& subject : subjects) {
    const Timed whole = median(*subject.backend, subject.voice, kParagraph, runs);
    const Timed first = median(*subject.backend, subject.voice, sentences.front(), runs);
    const double rtf = whole.seconds / whole.audio;
    std::printf("%-10s %-13s %8.2f %8.4f %10.1f %14.1f %12.2f\n", subject.backend->name().c_str(),
                subject.voice.c_str(), whole.audio, rtf, whole.seconds * 1e3, first.seconds * 1e3,
                first.audio);
    out["backends"].push_back({{"backend", subject.backend->name()},
                               {"voice", subject.voice},
                               {"sample_rate", subject.backend->sample_rate()},
                               {"paragraph_audio_s", whole.audio},
                               {"rtf", rtf},
                               {"whole_paragraph_ms", whole.seconds * 1e3},
                               {"first_sentence_ms", first.seconds * 1e3},
                               {"first_sentence_audio_s", first.audio}});
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
