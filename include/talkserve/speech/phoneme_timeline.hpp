#pragma once
// Builds a PhonemeEvent timeline from what a synthesizer reports: either phoneme onsets
// (espeak-ng: the sample at which each phoneme starts) or phoneme ends (flite: each segment's
// end time). The result is ordered, non-overlapping, gap-free from 0 to the audio end, without
// zero-length events. Pure functions, any thread.

#include <string>
#include <vector>

#include "talkserve/speech/tts.hpp"

namespace talkserve::speech {

struct PhonemeMark {
  std::string phoneme;
  double time = 0;  // seconds: an onset or an end, depending on the builder
  Viseme viseme = Viseme::rest;
};

// Each phoneme lasts from its onset to the next onset; the last one to `audio_end`. Silence
// before the first onset becomes a rest event named "_". Onsets out of order are clamped to
// the previous onset (espeak reports a few at the same sample).
std::vector<PhonemeEvent> timeline_from_onsets(const std::vector<PhonemeMark>& onsets,
                                               double audio_end);

// Each phoneme lasts from the previous end (0 for the first) to its own end. The last event is
// stretched or clipped to `audio_end` so the timeline covers exactly the audio.
std::vector<PhonemeEvent> timeline_from_ends(const std::vector<PhonemeMark>& ends,
                                             double audio_end);

}  // namespace talkserve::speech
