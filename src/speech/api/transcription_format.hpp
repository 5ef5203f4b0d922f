#pragma once
// OpenAI's transcription response formats: json, text, verbose_json (segments and, on
// request, words with timestamps), srt and vtt. Pure functions of a Transcript.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/speech/asr_stage.hpp"

namespace talkserve::speech::api {

enum class TranscriptionFormat { json, text, verbose_json, srt, vtt };
std::optional<TranscriptionFormat> parse_transcription_format(std::string_view s);

// A caption-sized piece of the transcript. With word times, speech segments are cut again at
// pauses and at a maximum length, so subtitles stay readable; without, a cue is a segment.
// A caption cue / verbose_json segment: the recogniser's own segments where it makes them
// (Whisper's timestamp pairs, with its measures in `source`), else words grouped at pauses.
struct Cue {
  double start = 0;
  double end = 0;
  std::string text;
  const AsrSegment* source = nullptr;  // points into the Transcript
};
std::vector<Cue> make_cues(const Transcript& t);

struct FormattedTranscript {
  std::string content_type;
  std::string body;
};

// `language` is the ISO code used ("en"); verbose_json names it in full as OpenAI does.
FormattedTranscript format_transcript(const Transcript& t, TranscriptionFormat format,
                                      std::string_view language, bool include_words,
                                      bool include_segments);

// "00:01:02,345" (srt) / "00:01:02.345" (vtt).
std::string caption_time(double seconds, char decimal_separator);

}  // namespace talkserve::speech::api
