#pragma once
// The TTS backend interface, the phoneme timeline every synthesis yields, and the viseme set
// the lip-sync renderer animates (documented in docs/tts.md).
//
// Thread-safety: see each backend's factory. espeak-ng keeps global state: its backend must be
// driven from one thread (the TTS executor gives it exactly one worker). Backends that say
// thread_safe() may be called from several workers at once.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace talkserve::speech {

// A small viseme set (mouth shapes), enough for a 2D renderer. See docs/tts.md.
enum class Viseme : std::uint8_t {
  rest,  // silence / closed, relaxed mouth
  mbp,   // lips pressed: m b p
  fv,    // lower lip to upper teeth: f v
  th,    // tongue between teeth: th (thin, this)
  dd,    // tongue behind teeth, slightly open: t d n l s z
  kk,    // back of tongue, open: k g ng h
  ch,    // lips forward, teeth close: ch j sh zh
  rr,    // rounded, slightly open: r er
  aa,    // wide open: a (father, cat, cut)
  ee,    // spread: e i (see, bed)
  oh,    // rounded open: o (go, law)
  ou,    // rounded small: u w (boot, we)
};
inline constexpr int kVisemeCount = 12;
std::string_view to_string(Viseme v) noexcept;

struct PhonemeEvent {
  std::string phoneme;  // the backend's phoneme symbol (espeak-ng mnemonics, flite phones)
  double start = 0;     // seconds from the start of this synthesis' audio
  double duration = 0;  // seconds
  Viseme viseme = Viseme::rest;
};

struct TtsRequest {
  std::string text;       // one sentence or a short paragraph, UTF-8
  std::string voice;      // a name from voices(); "" = default
  double speed = 1.0;     // 0.25 .. 4.0, 1 = normal rate
  std::optional<int> pitch;  // 0..100 (espeak-ng scale), unset = voice default
};

struct TtsResult {
  std::vector<float> samples;  // mono, [-1, 1]
  int sample_rate = 0;
  std::vector<PhonemeEvent> phonemes;  // ordered by start, covering the audio
  double duration() const noexcept {
    return sample_rate > 0 ? static_cast<double>(samples.size()) / sample_rate : 0.0;
  }
};

struct VoiceInfo {
  std::string name;      // what clients send as `voice`
  std::string language;  // e.g. "en", "en-us", "cmn"
  std::string backend;   // "espeak-ng", "flite"
};

class TtsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TtsBackend {
 public:
  virtual ~TtsBackend() = default;
  virtual std::string name() const = 0;
  virtual std::vector<VoiceInfo> voices() const = 0;
  virtual int sample_rate() const = 0;
  // True if synthesize() may run on several threads at once.
  virtual bool thread_safe() const = 0;
  // Throws TtsError (unknown voice, synthesis failure).
  virtual TtsResult synthesize(const TtsRequest& request) = 0;
};

}  // namespace talkserve::speech
