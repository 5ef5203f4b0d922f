#pragma once
// The OpenAI Realtime event protocol of GET /v1/realtime (docs/realtime.md) as pure
// functions: client events parsed and validated into typed events (the beta and the GA shapes
// of each), and the JSON of the session, items and responses the server events carry, in the
// session's dialect. Nothing here touches a session, a stage or a socket.
//
// Thread-safety: pure functions and plain value types.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "realtime_audio.hpp"

namespace talkserve::pipeline::realtime {

// The beta protocol (OpenAI-Beta: realtime=v1) or the GA one; they differ in the session
// object, the content part types and some server event names.
enum class Dialect { beta, ga };

// An error event's fields. `event_id` is the client event that failed ("" when it had none or
// could not be read).
struct EventError : std::runtime_error {
  EventError(std::string message, std::string code, std::string param = {},
             std::string event_id = {}, std::string type = "invalid_request_error")
      : std::runtime_error(std::move(message)),
        code(std::move(code)),
        param(std::move(param)),
        event_id(std::move(event_id)),
        type(std::move(type)) {}
  std::string code;
  std::string param;
  std::string event_id;
  std::string type;
};

struct TurnDetection {
  double threshold = 0.5;       // speech probability, 0..1
  int prefix_padding_ms = 300;  // audio kept before the detected start
  int silence_duration_ms = 500;
  bool create_response = true;
  bool interrupt_response = true;
};

// The session's settings; session.update changes the fields it names.
struct SessionSettings {
  std::string instructions;  // "" = the server's system prompt
  std::string voice;         // "" = the server's voice
  AudioFormat input_format = AudioFormat::pcm16;
  AudioFormat output_format = AudioFormat::pcm16;
  std::optional<TurnDetection> turn_detection = TurnDetection{};  // nullopt: manual turns
  bool transcription = true;  // input_audio_transcription events (set / null)
  std::string transcription_model = "whisper-1";
  bool audio_out = true;                 // modalities ["text","audio"] (or ["audio"]) vs ["text"]
  std::optional<int> max_output_tokens;  // nullopt = "inf" (the server's talk.max_tokens)
  std::optional<double> temperature;     // nullopt = the server's talk.temperature
  bool video = false;                    // talkserve extension: response.output_video.*
};

// A session.update: the fields present, applied in order over the current settings.
struct SessionUpdate {
  std::optional<Dialect> dialect;  // GA when the session carries `type` or `audio`
  std::optional<std::string> instructions;
  std::optional<std::string> voice;
  std::optional<AudioFormat> input_format;
  std::optional<AudioFormat> output_format;
  std::optional<std::optional<TurnDetection>> turn_detection;
  std::optional<bool> transcription;
  std::optional<bool> audio_out;
  std::optional<std::optional<int>> max_output_tokens;
  std::optional<double> temperature;
  std::optional<bool> video;
};
void apply(SessionSettings& s, const SessionUpdate& u);

enum class ContentType { input_text, input_audio, text, audio };
struct ContentPart {
  ContentType type = ContentType::input_text;
  std::string text;             // input_text / text
  std::string transcript;       // input_audio / audio (what was said)
  std::string audio;            // input_audio: the decoded bytes, in the session's input format
  bool has_transcript = false;  // input_audio: transcription has finished
};

struct Item {
  std::string id;
  std::string role;                  // user, assistant, system
  std::string status = "completed";  // completed, incomplete, in_progress
  std::vector<ContentPart> content;
  // An assistant reply's speech, for truncate: each sentence and where its audio ends.
  double audio_ms = 0;
  std::vector<std::string> spoken;
  std::vector<double> spoken_end_ms;
};

struct ResponseOverrides {
  std::optional<std::string> instructions;
  std::optional<std::string> voice;
  std::optional<AudioFormat> output_format;
  std::optional<bool> audio_out;
  std::optional<std::optional<int>> max_output_tokens;
  std::optional<double> temperature;
  bool out_of_band = false;  // conversation: "none" (the reply is not added to the conversation)
  std::optional<std::vector<Item>> input;  // replaces the conversation as the context
  nlohmann::json metadata;                 // echoed back
};

struct AudioAppend {
  std::string audio;  // decoded bytes
};
struct AudioCommit {};
struct AudioClear {};
struct OutputAudioClear {};
struct ItemCreate {
  std::optional<std::string> previous_item_id;
  Item item;  // id may be empty: the server names it
};
struct ItemRetrieve {
  std::string item_id;
};
struct ItemDelete {
  std::string item_id;
};
struct ItemTruncate {
  std::string item_id;
  int content_index = 0;
  int audio_end_ms = 0;
};
struct ResponseCreate {
  ResponseOverrides overrides;
};
struct ResponseCancel {
  std::optional<std::string> response_id;
};
using ClientEvent =
    std::variant<SessionUpdate, AudioAppend, AudioCommit, AudioClear, OutputAudioClear, ItemCreate,
                 ItemRetrieve, ItemDelete, ItemTruncate, ResponseCreate, ResponseCancel>;

struct ParsedEvent {
  std::string event_id;  // the client's, "" when absent
  ClientEvent event;
};

// Limits on what a client event may carry.
inline constexpr std::size_t kMaxInstructionsBytes = 32768;
inline constexpr std::size_t kMaxItemTextBytes = 32768;
inline constexpr int kMaxOutputTokens = 4096;

// Parses one text frame. Throws EventError (with the frame's event_id when it could be read)
// for a frame that is not a JSON object, an unknown type or a missing or invalid field.
ParsedEvent parse_client_event(std::string_view frame);

// ---- server side ----------------------------------------------------------------------------

// The name a server event has in `d` (beta names are the reference: "response.audio.delta"
// becomes "response.output_audio.delta" in GA, "response.text.delta" "response.output_text.delta").
std::string event_name(Dialect d, std::string_view beta_name);

// {"type":"error","event_id":…,"error":{"type","code","message","param","event_id"}}
nlohmann::json error_event(const EventError& e);

// The session object of session.created / session.updated.
nlohmann::json session_json(const SessionSettings& s, Dialect d, const std::string& id,
                            const std::string& model);

// An item as conversation.item.* and response.output_item.* carry it (input audio bytes are
// not echoed back).
nlohmann::json item_json(const Item& item, Dialect d);
nlohmann::json content_json(const ContentPart& part, Dialect d);

// The text of an item for the LLM: the text or transcript of its parts, joined by spaces.
std::string item_text(const Item& item);

// What the listener heard of a spoken reply played up to `audio_end_ms`: the sentences whose
// audio ended by then, and of the sentence being played the share of its words that its
// elapsed share of time covers. `sentence_end_ms[i]` is where sentence i's audio ends.
std::string heard_text(const std::vector<std::string>& sentences,
                       const std::vector<double>& sentence_end_ms, double audio_end_ms);

}  // namespace talkserve::pipeline::realtime
