#include "talkserve/speech/flite_backend.hpp"

#include <flite/flite.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <mutex>
#include <optional>

#include "speech/tts/flite_rand.hpp"
#include "talkserve/speech/phoneme_timeline.hpp"
#include "talkserve/speech/visemes.hpp"

// The voice libraries ship no headers. Each register_* returns (and caches in the global
// below) one process-wide voice; resetting the cache around the call yields a private copy.
extern "C" {
cst_voice* register_cmu_us_kal16(const char* voxdir);
cst_voice* register_cmu_us_slt(const char* voxdir);
cst_voice* register_cmu_us_rms(const char* voxdir);
cst_voice* register_cmu_us_awb(const char* voxdir);
extern cst_voice* cmu_us_kal16_diphone;
extern cst_voice* cmu_us_slt_cg;
extern cst_voice* cmu_us_rms_cg;
extern cst_voice* cmu_us_awb_cg;
}

namespace talkserve::speech {
namespace {

struct FliteVoice {
  const char* name;
  cst_voice* (*register_voice)(const char*);
  cst_voice** cache;
};

const std::array<FliteVoice, 4> kVoices = {{
    {"cmu_us_kal16", register_cmu_us_kal16, &cmu_us_kal16_diphone},
    {"cmu_us_slt", register_cmu_us_slt, &cmu_us_slt_cg},
    {"cmu_us_rms", register_cmu_us_rms, &cmu_us_rms_cg},
    {"cmu_us_awb", register_cmu_us_awb, &cmu_us_awb_cg},
}};

std::once_flag g_flite_init;
// Serialises voice registration: register_* and cmu_lex_init() test-and-set globals.
std::mutex g_register_mutex;

// This thread's private voices, registered on first use.
class ThreadVoices {
 public:
  ThreadVoices() = default;
  ThreadVoices(const ThreadVoices&) = delete;
  ThreadVoices& operator=(const ThreadVoices&) = delete;
  ~ThreadVoices() {
    for (cst_voice* voice : voices_) {
      if (voice != nullptr) delete_voice(voice);
    }
  }

  cst_voice* get(std::size_t index) {
    cst_voice*& slot = voices_[index];
    if (slot == nullptr) {
      std::lock_guard lock(g_register_mutex);
      const FliteVoice& voice = kVoices[index];
      *voice.cache = nullptr;
      slot = voice.register_voice(nullptr);
      *voice.cache = nullptr;  // keep it private to this thread
      if (slot == nullptr) throw TtsError(std::string("flite: cannot register ") + voice.name);
    }
    return slot;
  }

 private:
  std::array<cst_voice*, kVoices.size()> voices_{};
};

thread_local ThreadVoices t_voices;

std::optional<std::size_t> voice_index(std::string_view name) {
  std::string key(name);
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::size_t i = 0; i < kVoices.size(); ++i) {
    if (key == kVoices[i].name) return i;
  }
  return std::nullopt;
}

struct UtteranceDeleter {
  void operator()(cst_utterance* u) const { delete_utterance(u); }
};

}  // namespace

void FliteConfig::validate() const {
  if (!voice_index(default_voice)) {
    throw TtsError("tts.flite.default_voice: unknown voice '" + default_voice + "'");
  }
}

std::unique_ptr<FliteBackend> FliteBackend::create(const FliteConfig& config) {
  config.validate();
  std::call_once(g_flite_init, [] { flite_init(); });
  spdlog::info("flite: {} voices, default '{}'", kVoices.size(), config.default_voice);
  return std::unique_ptr<FliteBackend>(new FliteBackend(config.default_voice));
}

FliteBackend::FliteBackend(std::string default_voice) : default_voice_(std::move(default_voice)) {}

std::vector<VoiceInfo> FliteBackend::voices() const {
  std::vector<VoiceInfo> out;
  for (const auto& voice : kVoices) out.push_back({voice.name, "en-us", "flite"});
  return out;
}

TtsResult FliteBackend::synthesize(const TtsRequest& request) {
  const std::string& client_voice = request.voice.empty() ? default_voice_ : request.voice;
  const auto index = voice_index(client_voice);
  if (!index) throw TtsError("flite: unknown voice '" + client_voice + "'");
  if (!std::isfinite(request.speed) || request.speed <= 0) {
    throw TtsError("flite: speed must be a positive number");
  }
  const double speed = std::clamp(request.speed, 0.25, 4.0);

  TtsResult result;
  result.sample_rate = kSampleRate;
  if (request.text.empty()) return result;

  cst_voice* voice = t_voices.get(*index);
  std::unique_ptr<cst_utterance, UtteranceDeleter> utt(new_utterance());
  utt_set_input_text(utt.get(), request.text.c_str());
  utt_init(utt.get(), voice);
  // On the utterance, which shadows the voice's features: the voice stays untouched.
  const float base_stretch = get_param_float(voice->features, "duration_stretch", 1.0f);
  feat_set_float(utt->features, "duration_stretch", static_cast<float>(base_stretch / speed));
  if (request.pitch) {
    const double pitch = std::clamp(*request.pitch, 0, 100);
    feat_set_float(utt->features, "f0_shift",
                   static_cast<float>(std::exp2((pitch - 50.0) / 100.0)));
  }
  {
    const detail::FliteRandScope reproducible_noise;
    if (utt_synth(utt.get()) == nullptr) throw TtsError("flite: synthesis failed");
  }

  const cst_wave* wave = utt_wave(utt.get());
  if (wave != nullptr && wave->num_samples > 0) {
    result.sample_rate = wave->sample_rate;
    const int channels = std::max(1, wave->num_channels);
    result.samples.reserve(static_cast<std::size_t>(wave->num_samples));
    for (int i = 0; i < wave->num_samples; ++i) {
      result.samples.push_back(static_cast<float>(wave->samples[i * channels]) / 32768.0f);
    }
  }

  std::vector<PhonemeMark> ends;
  for (const cst_item* s = relation_head(utt_relation(utt.get(), "Segment")); s != nullptr;
       s = item_next(s)) {
    std::string phone = item_feat_string(s, "name");
    const Viseme viseme = flite_phone_viseme(phone);
    ends.push_back({std::move(phone), item_feat_float(s, "end"), viseme});
  }
  result.phonemes = timeline_from_ends(ends, result.duration());
  return result;
}

}  // namespace talkserve::speech
