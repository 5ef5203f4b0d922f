#pragma once
// The client side of bench_load: one request of each traffic class against a running talkserve,
// as C++20 coroutines on one Boost.Asio io_context (so thousands of open-loop arrivals cost
// coroutine frames, not threads), each bounded by a timeout, each returning what a user saw:
// the status, the time to the first byte of the body and the time to the end.
//
// Classes (docs/llm-api.md, docs/speech.md, docs/protocol.md):
//   chat           POST /v1/chat/completions, stream: true (SSE to [DONE])
//   transcription  POST /v1/audio/transcriptions, multipart with a WAV file
//   talk           POST /v1/talk, JSON (reply text, TTS, lip-sync render, MP4 clip)
//   live           GET /v1/stream WebSocket: session.start, input.text, wait for response.done
//
// Thread-safety: everything here runs on the io_context it is spawned on; run that io_context
// on one thread (the storm's drop of every socket at once relies on it).

// clang-format off
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace talkserve::load {

struct Target {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string api_key;  // "Authorization: Bearer ..." when set
};

// "HOST:PORT", "http://HOST:PORT" or "ws://HOST:PORT" (a trailing path is ignored). Throws
// std::invalid_argument on anything else.
Target parse_target(const std::string& url);

enum class RequestClass { chat, transcription, talk, live };
inline constexpr RequestClass kAllClasses[] = {RequestClass::chat, RequestClass::transcription,
                                               RequestClass::talk, RequestClass::live};
std::string_view to_string(RequestClass c);
// Throws std::invalid_argument naming the unknown class.
RequestClass class_from_string(std::string_view name);

// How one request ended, as the status mix of the report counts it.
enum class Status {
  ok,            // 200 and a complete response ([DONE], response.done, a JSON body)
  rate_limited,  // 429
  overloaded,    // 503 (admission, a full queue, draining), or a live error event "queue_full"
  client_error,  // other 4xx
  server_error,  // other 5xx, an error event inside a 200 stream, a live close 1011
  connection,    // refused, reset, or closed before the response was complete
  timeout,       // no complete response within the timeout
};
inline constexpr int kStatusCount = 7;
std::string_view to_string(Status s);

struct Outcome {
  RequestClass cls = RequestClass::chat;
  Status status = Status::connection;
  int http_status = 0;  // 0 when no response head arrived
  double ttfb_ms = -1;  // first body byte (HTTP) or first reply event after input.text (live)
  double latency_ms = 0;
  std::string error;  // empty when status == ok
};

struct TrafficOptions {
  std::string model = "stories260K";
  int chat_max_tokens = 64;
  std::string wav_bytes;  // the transcription upload (read from a file by the caller)
  std::string wav_name = "speech.wav";
  bool live_video = false;  // session.start "video"
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
};

// A different question for each k, so no cache of any stage answers one request from another's
// work.
std::string question(std::uint64_t k);

// One request of class `cls`. Never throws (failures are in the Outcome).
boost::asio::awaitable<Outcome> run_request(const Target& target, const TrafficOptions& options,
                                            RequestClass cls, std::uint64_t k);

// A plain GET (for /metrics, /healthz): the status (0 on a connection failure) and the body.
struct GetResult {
  int status = 0;
  std::string body;
  std::string error;
};
boost::asio::awaitable<GetResult> http_get(const Target& target, const std::string& path,
                                           std::chrono::milliseconds timeout);

}  // namespace talkserve::load
