#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "speech/api/transcription_format.hpp"

using namespace talkserve::speech;
using namespace talkserve::speech::api;
using nlohmann::json;

namespace {

Transcript sample() {
  Transcript t;
  t.duration = 9.5;
  TranscriptSegment a;
  a.start = 0.3;
  a.end = 4.0;
  a.result.text = "go forward ten meters then stop";
  a.result.words = {{"go", 0.5, 0.7},     {"forward", 0.7, 1.2}, {"ten", 1.3, 1.5},
                    {"meters", 1.5, 2.0}, {"then", 3.0, 3.2},    {"stop", 3.2, 3.6}};
  TranscriptSegment b;
  b.start = 6.0;
  b.end = 9.0;
  b.result.text = "hello";  // no word times
  t.segments = {a, b};
  t.text = "go forward ten meters then stop hello";
  return t;
}

}  // namespace

TEST_CASE("caption times are formatted for srt and vtt") {
  CHECK(caption_time(0, ',') == "00:00:00,000");
  CHECK(caption_time(3723.4567, ',') == "01:02:03,457");
  CHECK(caption_time(61.5, '.') == "00:01:01.500");
}

TEST_CASE("cues split segments at pauses between words") {
  auto cues = make_cues(sample());
  REQUIRE(cues.size() == 3);
  CHECK(cues[0].text == "go forward ten meters");
  CHECK(cues[0].start == Approx(0.5));
  CHECK(cues[0].end == Approx(2.0));
  CHECK(cues[1].text == "then stop");
  CHECK(cues[2].text == "hello");
  CHECK(cues[2].start == Approx(6.0));
}

TEST_CASE("every response format has OpenAI's shape") {
  const Transcript t = sample();
  auto j = format_transcript(t, TranscriptionFormat::json, "en", false, true);
  CHECK(j.content_type == "application/json");
  CHECK(json::parse(j.body) == json{{"text", t.text}});

  auto text = format_transcript(t, TranscriptionFormat::text, "en", false, true);
  CHECK(text.body == t.text + "\n");

  auto srt = format_transcript(t, TranscriptionFormat::srt, "en", false, true);
  CHECK(srt.body.rfind("1\n00:00:00,500 --> 00:00:02,000\ngo forward ten meters\n\n2\n", 0) == 0);
  CHECK(srt.body.find("3\n00:00:06,000 --> 00:00:09,000\nhello\n\n") != std::string::npos);

  auto vtt = format_transcript(t, TranscriptionFormat::vtt, "en", false, true);
  CHECK(vtt.content_type.rfind("text/vtt", 0) == 0);
  CHECK(vtt.body.rfind("WEBVTT\n\n00:00:00.500 --> 00:00:02.000\ngo forward ten meters\n", 0) == 0);

  auto verbose = json::parse(
      format_transcript(t, TranscriptionFormat::verbose_json, "en", true, true).body);
  CHECK(verbose["task"] == "transcribe");
  CHECK(verbose["language"] == "english");
  CHECK(verbose["duration"] == Approx(9.5));
  REQUIRE(verbose["segments"].size() == 3);
  CHECK(verbose["segments"][1]["id"] == 1);
  CHECK(verbose["segments"][1]["text"] == " then stop");
  CHECK(verbose["segments"][1]["start"] == Approx(3.0));
  REQUIRE(verbose["words"].size() == 6);
  CHECK(verbose["words"][5] == json{{"word", "stop"}, {"start", 3.2}, {"end", 3.6}});

  auto words_only = json::parse(
      format_transcript(t, TranscriptionFormat::verbose_json, "en", true, false).body);
  CHECK_FALSE(words_only.contains("segments"));
  CHECK(words_only.contains("words"));
}

TEST_CASE("format names parse") {
  CHECK(parse_transcription_format("verbose_json") == TranscriptionFormat::verbose_json);
  CHECK_FALSE(parse_transcription_format("xml").has_value());
}
