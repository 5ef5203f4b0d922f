#include "talkserve/speech/phoneme_timeline.hpp"

#include <algorithm>

namespace talkserve::speech {

std::vector<PhonemeEvent> timeline_from_onsets(const std::vector<PhonemeMark>& onsets,
                                               double audio_end) {
  std::vector<PhonemeEvent> out;
  if (audio_end <= 0) return out;
  out.reserve(onsets.size() + 1);
  double previous = 0;
  if (!onsets.empty() && onsets.front().time > 0) {
    const double first = std::min(onsets.front().time, audio_end);
    out.push_back({"_", 0.0, first, Viseme::rest});
    previous = first;
  }
  for (std::size_t i = 0; i < onsets.size(); ++i) {
    const double start = std::clamp(onsets[i].time, previous, audio_end);
    const double next = i + 1 < onsets.size() ? onsets[i + 1].time : audio_end;
    const double end = std::clamp(next, start, audio_end);
    previous = start;
    if (end <= start) continue;  // espeak reports several phonemes at one sample
    out.push_back({onsets[i].phoneme, start, end - start, onsets[i].viseme});
  }
  if (out.empty()) out.push_back({"_", 0.0, audio_end, Viseme::rest});
  return out;
}

std::vector<PhonemeEvent> timeline_from_ends(const std::vector<PhonemeMark>& ends,
                                             double audio_end) {
  std::vector<PhonemeEvent> out;
  if (audio_end <= 0) return out;
  out.reserve(ends.size() + 1);
  double previous = 0;
  for (const auto& mark : ends) {
    const double end = std::clamp(mark.time, previous, audio_end);
    if (end <= previous) continue;
    out.push_back({mark.phoneme, previous, end - previous, mark.viseme});
    previous = end;
  }
  if (previous < audio_end) {
    if (out.empty()) {
      out.push_back({"pau", 0.0, audio_end, Viseme::rest});
    } else {
      out.back().duration = audio_end - out.back().start;
    }
  }
  return out;
}

}  // namespace talkserve::speech
