#pragma once
// One client of GET /v1/stream (docs/protocol.md) for bench_live: a blocking Boost.Beast
// WebSocket on its own io_context, meant to run on its own thread. It opens a session, sends one
// typed turn at a time and timestamps what comes back, as a user of the stream would see it.

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <cstdint>
#include <vector>

namespace talkserve::bench {

struct LiveTarget {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string api_key;  // sent as "Authorization: Bearer ..." on the upgrade when set
};

// "HOST:PORT", "http://HOST:PORT" or "ws://HOST:PORT" (a trailing path is ignored). Throws on
// anything else.
LiveTarget parse_live_target(const std::string& url);

// One turn as seen by the client. Times are milliseconds from sending input.text; a stage that
// never arrived stays negative.
struct TurnResult {
  std::string error;  // empty when response.done arrived
  double first_delta_ms = -1;
  double first_audio_ms = -1;
  double first_video_ms = -1;  // first video media segment (kind 3), not the init segment
  double done_ms = -1;
  double audio_seconds = 0;           // response.done's audio_seconds
  double received_audio_seconds = 0;  // what the audio frames carried
  int audio_frames = 0;
  int video_segments = 0;
  // Seconds of media over the wall time from the first media frame (video segment, or audio
  // frame without video) to response.done: >= 1 means the media arrived at least as fast as it
  // plays.
  double realtime_ratio = 0;
  // How long a player that starts on the first media frame would have waited for later frames
  // in total (frame i is due at first + its media time; 0 when every frame came in time).
  double stall_ms = 0;
  std::vector<std::string> anomalies;  // deviations from docs/protocol.md
  nlohmann::json server_timings;       // response.done's timings
};

// One spoken utterance: times in milliseconds from the end of sending its audio.
struct SpokenResult {
  std::string error;  // empty when transcript.final arrived
  double speech_end_ms = -1;       // vad.speech_end
  double transcript_ms = -1;       // transcript.final
  std::string transcript;
  double end_to_transcript_ms() const { return transcript_ms - speech_end_ms; }
};

class LiveClient {
 public:
  // `timeout` bounds every blocking read.
  LiveClient(LiveTarget target, std::chrono::seconds timeout);
  ~LiveClient();
  LiveClient(const LiveClient&) = delete;
  LiveClient& operator=(const LiveClient&) = delete;

  // Connects, upgrades and sends session.start; returns once session.started arrived. Throws.
  void start(bool video);
  // Sends input.text and reads until response.done, an error or a close. Never throws.
  TurnResult turn(const std::string& text);
  // Sends `pcm` (16 kHz mono PCM16) in 100 ms frames followed by `silence_ms` of silence, as
  // fast as the socket takes them, and reads until transcript.final; then cancels the response
  // it starts (response.cancel) and reads until that response ends, so the session is idle
  // again. Never throws.
  SpokenResult speak(const std::vector<std::int16_t>& pcm, int silence_ms = 1200);
  // Sends a normal close and waits for the server's. Never throws.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace talkserve::bench
