#include "transcription_format.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

namespace talkserve::speech::api {
namespace {

constexpr double kCuePause = 0.6;      // seconds of silence between words that end a cue
constexpr double kCueMaxSeconds = 7.0;
constexpr std::size_t kCueMaxWords = 14;

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

std::string language_name(std::string_view code) {
  static const std::pair<std::string_view, std::string_view> names[] = {
      {"en", "english"}, {"de", "german"}, {"fr", "french"},  {"es", "spanish"},
      {"it", "italian"}, {"zh", "chinese"}, {"ja", "japanese"}, {"ru", "russian"}};
  for (const auto& [c, n] : names) {
    if (c == code) return std::string(n);
  }
  return std::string(code);
}

}  // namespace

std::optional<TranscriptionFormat> parse_transcription_format(std::string_view s) {
  if (s == "json") return TranscriptionFormat::json;
  if (s == "text") return TranscriptionFormat::text;
  if (s == "verbose_json") return TranscriptionFormat::verbose_json;
  if (s == "srt") return TranscriptionFormat::srt;
  if (s == "vtt") return TranscriptionFormat::vtt;
  return std::nullopt;
}

std::vector<Cue> make_cues(const Transcript& t) {
  std::vector<Cue> cues;
  for (const TranscriptSegment& seg : t.segments) {
    if (!seg.result.segments.empty()) {
      for (const AsrSegment& s : seg.result.segments) cues.push_back({s.start, s.end, s.text, &s});
      continue;
    }
    const auto& words = seg.result.words;
    if (words.empty()) {
      cues.push_back({seg.start, seg.end, seg.result.text});
      continue;
    }
    Cue cur;
    std::size_t n = 0;
    for (const AsrWord& w : words) {
      const bool split = n > 0 && (w.start - cur.end > kCuePause || n >= kCueMaxWords ||
                                   w.end - cur.start > kCueMaxSeconds);
      if (split) {
        cues.push_back(std::move(cur));
        cur = Cue{};
        n = 0;
      }
      if (n == 0) cur.start = w.start;
      if (!cur.text.empty()) cur.text += ' ';
      cur.text += w.word;
      cur.end = w.end;
      ++n;
    }
    if (n > 0) cues.push_back(std::move(cur));
  }
  return cues;
}

std::string caption_time(double seconds, char sep) {
  const auto ms = static_cast<long long>(std::llround(std::max(0.0, seconds) * 1000.0));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld%c%03lld", ms / 3'600'000,
                (ms / 60'000) % 60, (ms / 1000) % 60, sep, ms % 1000);
  return buf;
}

FormattedTranscript format_transcript(const Transcript& t, TranscriptionFormat format,
                                      std::string_view language, bool include_words,
                                      bool include_segments) {
  using nlohmann::json;
  switch (format) {
    case TranscriptionFormat::json:
      return {"application/json", json{{"text", t.text}}.dump()};
    case TranscriptionFormat::text:
      return {"text/plain; charset=utf-8", t.text + "\n"};
    case TranscriptionFormat::srt: {
      std::string out;
      int index = 1;
      for (const Cue& c : make_cues(t)) {
        out += std::to_string(index++) + "\n" + caption_time(c.start, ',') + " --> " +
               caption_time(c.end, ',') + "\n" + c.text + "\n\n";
      }
      return {"application/x-subrip; charset=utf-8", out};
    }
    case TranscriptionFormat::vtt: {
      std::string out = "WEBVTT\n\n";
      for (const Cue& c : make_cues(t)) {
        out += caption_time(c.start, '.') + " --> " + caption_time(c.end, '.') + "\n" + c.text +
               "\n\n";
      }
      return {"text/vtt; charset=utf-8", out};
    }
    case TranscriptionFormat::verbose_json: {
      json body{{"task", "transcribe"},
                {"language", language_name(language)},
                {"duration", round3(t.duration)},
                {"text", t.text}};
      if (include_segments) {
        json segs = json::array();
        int id = 0;
        for (const Cue& c : make_cues(t)) {
          const AsrSegment* s = c.source;
          segs.push_back(json{{"id", id++},
                              {"seek", static_cast<long long>(std::llround(c.start * 100))},
                              {"start", round3(c.start)},
                              {"end", round3(c.end)},
                              {"text", " " + c.text},
                              {"tokens", s ? json(s->tokens) : json::array()},
                              {"temperature", s ? s->temperature : 0.0},
                              {"avg_logprob", s ? s->avg_logprob : 0.0},
                              {"compression_ratio", s ? s->compression_ratio : 0.0},
                              {"no_speech_prob", s ? s->no_speech_prob : 0.0}});
        }
        body["segments"] = std::move(segs);
      }
      if (include_words) {
        json words = json::array();
        for (const auto& seg : t.segments) {
          for (const auto& w : seg.result.words) {
            words.push_back(json{{"word", w.word}, {"start", round3(w.start)}, {"end", round3(w.end)}});
          }
        }
        body["words"] = std::move(words);
      }
      return {"application/json", body.dump()};
    }
  }
  return {"application/json", "{}"};
}

}  // namespace talkserve::speech::api
