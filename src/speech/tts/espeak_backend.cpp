#include "talkserve/speech/espeak_backend.hpp"

#include <espeak-ng/speak_lib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "talkserve/speech/phoneme_timeline.hpp"
#include "talkserve/speech/visemes.hpp"

namespace talkserve::speech {
namespace {

// OpenAI voice names -> (espeak language, espeak variant). espeak has no neural voices; these
// only give each name a distinct, stable English timbre. Documented in docs/tts.md.
struct OpenAiVoice {
  const char* name;
  const char* language;
  const char* variant;
};
constexpr OpenAiVoice kOpenAiVoices[] = {
    {"alloy", "en-us", "f2"},      {"echo", "en-us", "m3"},   {"fable", "en-gb-x-rp", "m2"},
    {"onyx", "en-us", "m4"},       {"nova", "en-us", "f3"},   {"shimmer", "en-us", "f4"},
    {"ash", "en-us", "m6"},        {"ballad", "en-gb", "m7"}, {"coral", "en-us", "f5"},
    {"sage", "en-gb", "f1"},       {"verse", "en-us", "m2"},
};

// espeak-ng 1.51's "cmn" voice reads Chinese characters as pinyin spelled in English ("ni
// three hao three"); "cmn-latn-pinyin" pronounces them as Mandarin, so the Mandarin names
// resolve to it.
constexpr const char* kMandarinAliases[] = {"cmn", "zh", "zh-cmn"};
constexpr const char* kMandarinVoiceId = "sit/cmn-Latn-pinyin";

std::atomic<bool> g_created{false};

// What the synth callback appends to; set for the duration of one espeak_Synth call (under
// the backend's mutex, and there is only one backend).
struct SynthCollector {
  std::vector<float> samples;
  std::vector<PhonemeMark> onsets;
};
SynthCollector* g_collector = nullptr;

int synth_callback(short* wav, int count, espeak_EVENT* events) {
  SynthCollector* out = g_collector;
  if (out == nullptr) return 1;  // abort: nobody is listening
  if (wav != nullptr && count > 0) {
    out->samples.reserve(out->samples.size() + static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) out->samples.push_back(static_cast<float>(wav[i]) / 32768.0f);
  }
  for (espeak_EVENT* e = events; e != nullptr && e->type != espeakEVENT_LIST_TERMINATED; ++e) {
    if (e->type != espeakEVENT_PHONEME) continue;
    // id.string is not NUL-terminated when the name fills all 8 bytes.
    const std::string name(e->id.string, strnlen(e->id.string, sizeof(e->id.string)));
    const auto viseme = espeak_phoneme_viseme(name);
    if (!viseme) continue;  // "(en)"-style language switch markers
    out->onsets.push_back(
        {name, static_cast<double>(e->sample) / EspeakBackend::kSampleRate, *viseme});
  }
  return 0;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// language (lower case) -> identifier of the voice espeak prefers for it.
std::map<std::string, std::string> preferred_voice_by_language() {
  struct Best {
    int priority;
    std::string identifier;
  };
  std::map<std::string, Best> best;
  const espeak_VOICE** list = espeak_ListVoices(nullptr);
  for (; list != nullptr && *list != nullptr; ++list) {
    const espeak_VOICE* voice = *list;
    if (voice->identifier == nullptr || voice->languages == nullptr) continue;
    const std::string identifier = voice->identifier;
    if (identifier.rfind("mb/", 0) == 0) continue;  // mbrola voices need external databases
    // languages: repeated (priority byte, NUL-terminated name), ended by an empty name.
    for (const char* p = voice->languages; *p != 0;) {
      const int priority = static_cast<unsigned char>(*p);
      const std::string language = lower(p + 1);
      p += 1 + std::strlen(p + 1) + 1;
      if (language.empty()) break;
      auto it = best.find(language);
      if (it == best.end() || priority < it->second.priority) {
        best[language] = {priority, identifier};
      }
    }
  }
  std::map<std::string, std::string> out;
  for (auto& [language, entry] : best) out.emplace(language, std::move(entry.identifier));
  return out;
}

}  // namespace

void EspeakConfig::validate() const {
  if (!data_path.empty() && !std::filesystem::is_directory(data_path)) {
    throw TtsError("tts.espeak.data_path: not a directory: " + data_path);
  }
  if (default_voice.empty()) throw TtsError("tts.espeak.default_voice: must not be empty");
}

std::unique_ptr<EspeakBackend> EspeakBackend::create(const EspeakConfig& config) {
  config.validate();
  if (g_created.exchange(true)) {
    throw TtsError("espeak-ng backend already created: espeak-ng allows one per process");
  }
  const int rate = espeak_Initialize(
      AUDIO_OUTPUT_SYNCHRONOUS, 0, config.data_path.empty() ? nullptr : config.data_path.c_str(),
      espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_DONT_EXIT);
  if (rate != kSampleRate) {
    // Leave g_created set: a half-initialised espeak must not be initialised again.
    throw TtsError("espeak-ng initialisation failed (espeak_Initialize returned " +
                   std::to_string(rate) + ")");
  }
  espeak_SetSynthCallback(synth_callback);

  std::map<std::string, VoiceEntry> voices;
  const auto by_language = preferred_voice_by_language();
  for (const auto& [language, identifier] : by_language) {
    voices[language] = {identifier, language};
  }
  if (std::any_of(by_language.begin(), by_language.end(),
                  [](const auto& kv) { return kv.second == kMandarinVoiceId; })) {
    for (const char* alias : kMandarinAliases) voices[alias] = {kMandarinVoiceId, "cmn"};
  }
  for (const auto& openai : kOpenAiVoices) {
    auto it = by_language.find(openai.language);
    if (it == by_language.end()) continue;
    voices[openai.name] = {it->second + "+" + openai.variant, openai.language};
  }

  const std::string default_voice = lower(config.default_voice);
  if (voices.find(default_voice) == voices.end()) {
    throw TtsError("tts.espeak.default_voice: unknown voice '" + config.default_voice + "'");
  }
  spdlog::info("espeak-ng: {} voices, default '{}'", voices.size(), default_voice);
  return std::unique_ptr<EspeakBackend>(new EspeakBackend(std::move(voices), default_voice));
}

EspeakBackend::EspeakBackend(std::map<std::string, VoiceEntry> voices, std::string default_voice)
    : voices_(std::move(voices)), default_voice_(std::move(default_voice)) {}

EspeakBackend::~EspeakBackend() {
  std::lock_guard lock(synth_mutex_);
  espeak_Terminate();
}

std::vector<VoiceInfo> EspeakBackend::voices() const {
  std::vector<VoiceInfo> out;
  out.reserve(voices_.size());
  for (const auto& [name, entry] : voices_) out.push_back({name, entry.language, "espeak-ng"});
  return out;
}

std::optional<std::string> EspeakBackend::espeak_voice_for(std::string_view client_name) const {
  auto it = voices_.find(lower(client_name));
  if (it == voices_.end()) return std::nullopt;
  return it->second.espeak_name;
}

TtsResult EspeakBackend::synthesize(const TtsRequest& request) {
  const std::string client_voice = request.voice.empty() ? default_voice_ : request.voice;
  auto voice = espeak_voice_for(client_voice);
  if (!voice) throw TtsError("espeak-ng: unknown voice '" + client_voice + "'");
  if (!std::isfinite(request.speed) || request.speed <= 0) {
    throw TtsError("espeak-ng: speed must be a positive number");
  }
  const int rate = std::clamp(
      static_cast<int>(std::lround(kNormalWordsPerMinute * request.speed)), espeakRATE_MINIMUM,
      espeakRATE_MAXIMUM);
  const int pitch = std::clamp(request.pitch.value_or(50), 0, 100);

  TtsResult result;
  result.sample_rate = kSampleRate;
  if (request.text.empty()) return result;

  SynthCollector collector;
  std::lock_guard lock(synth_mutex_);
  if (*voice != loaded_voice_) {
    if (espeak_SetVoiceByName(voice->c_str()) != EE_OK) {
      loaded_voice_.clear();
      throw TtsError("espeak-ng: cannot load voice '" + client_voice + "' (" + *voice + ")");
    }
    loaded_voice_ = *voice;
  }
  espeak_SetParameter(espeakRATE, rate, 0);
  espeak_SetParameter(espeakPITCH, pitch, 0);

  g_collector = &collector;
  const espeak_ERROR status =
      espeak_Synth(request.text.c_str(), request.text.size() + 1, 0, POS_CHARACTER, 0,
                   espeakCHARS_UTF8, nullptr, nullptr);
  g_collector = nullptr;
  if (status != EE_OK) {
    throw TtsError("espeak-ng: synthesis failed (error " + std::to_string(status) + ")");
  }

  result.samples = std::move(collector.samples);
  result.phonemes = timeline_from_onsets(collector.onsets, result.duration());
  return result;
}

}  // namespace talkserve::speech
