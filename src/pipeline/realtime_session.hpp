#pragma once
// One GET /v1/realtime conversation as a state machine (docs/realtime.md): client events in,
// server events out. It owns the input audio buffer (server VAD turns or manual commits), the
// conversation items, and at most one response at a time; barge-in cancels the running
// response, and truncate cuts an assistant item to the speech the client played.
//
// The models stay behind RealtimeBackend, so the machine runs the same against the server's
// stages (realtime_backend.cpp) and against a fake in the unit tests.
//
// Thread-safety: a RealtimeSession is not thread-safe; every public method runs on one
// executor (the handler's strand). Backend callbacks may come from any thread: the session
// hands the backend callbacks that `post` back onto that executor.

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "realtime_audio.hpp"
#include "realtime_events.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::pipeline::realtime {

// ---- what the session needs from the models ------------------------------------------------

struct VadEvent {
  bool start = true;       // speech started (else stopped)
  std::size_t sample = 0;  // 16 kHz position since the detector began (padding included)
};

class VoiceDetector {
 public:
  virtual ~VoiceDetector() = default;
  virtual std::vector<VadEvent> push(std::span<const float> samples16k) = 0;
};

struct ChatTurn {
  std::string role;  // system, user, assistant
  std::string text;
};

struct ReplyRequest {
  std::string instructions;  // "" = the server's system prompt
  std::vector<ChatTurn> conversation;
  int max_tokens = 0;                 // 0 = the server's default
  std::optional<double> temperature;  // nullopt = the server's default
  std::string voice;                  // "" = the server's default
  bool audio = true;                  // speak the reply (else text only)
  bool video = false;                 // and render it
};

struct ReplyOutcome {
  enum class Status { completed, incomplete, failed } status = Status::completed;
  std::string error_code;  // failed: why
  std::string error_message;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
};

// What a running reply produces. Called from any thread, in order; `done` last, exactly once,
// after every sentence and video segment (never after cancel()).
struct ReplySink {
  std::function<void(std::string delta)> text;
  std::function<void(std::string sentence, std::vector<float> pcm24k)> speech;
  std::function<void(bool init, std::string bytes, bool last)> video;
  std::function<void(ReplyOutcome)> done;
};

class ReplyHandle {
 public:
  virtual ~ReplyHandle() = default;
  virtual void cancel() = 0;  // stops queued and running work; no sink call follows
  virtual int prompt_tokens() const = 0;
};

struct TranscriptResult {
  bool ok = false;
  std::string text;
  std::string error_code;
  std::string error_message;
};

class RealtimeBackend {
 public:
  virtual ~RealtimeBackend() = default;
  virtual std::string model_name() const = 0;
  virtual bool has_voice(const std::string& voice) const = 0;
  // A detector with the turn detection's settings; null when the server has no VAD (or ASR).
  virtual std::unique_ptr<VoiceDetector> voice_detector(const TurnDetection& td) = 0;
  virtual bool can_transcribe() const = 0;
  // Recognises 16 kHz audio; `done` is called exactly once (maybe before this returns) unless
  // the returned handle is cancelled.
  virtual std::shared_ptr<ReplyHandle> transcribe(std::vector<float> audio16k,
                                                  std::function<void(TranscriptResult)> done) = 0;
  // Starts a reply. Throws EventError when it is refused (queue full, too long).
  virtual std::shared_ptr<ReplyHandle> reply(ReplyRequest request, ReplySink sink) = 0;
};

// ---- the session ---------------------------------------------------------------------------

struct RealtimeSessionOptions {
  std::string session_id;           // "sess_…"
  std::string model;                // echoed in the session object
  Dialect dialect = Dialect::beta;  // until a session.update shows the other shape
  double max_buffer_seconds = 120;  // input audio held without a commit
  std::size_t max_items = 512;      // conversation items kept (the oldest go first)
  std::function<void()> on_idle;    // after each response, when no other is waiting
};

class RealtimeSession : public std::enable_shared_from_this<RealtimeSession> {
 public:
  using Post = std::function<void(std::function<void()>)>;
  using Send = std::function<void(nlohmann::json event)>;

  // `backend` and `clock` outlive the session. `send` gets each server event (event_id set).
  RealtimeSession(RealtimeBackend& backend, sched::Clock& clock, RealtimeSessionOptions options,
                  Post post, Send send);
  ~RealtimeSession();

  void open();  // session.created (and conversation.created)
  void on_text(std::string_view frame);
  void on_binary();
  // Cancels running work; no event is sent afterwards.
  void close();

  // Inspection, for tests.
  const std::vector<Item>& items() const { return items_; }
  const SessionSettings& settings() const { return settings_; }
  bool responding() const { return response_ != nullptr; }

 private:
  struct Response;

  void handle(const ParsedEvent& ev);
  void session_update(const std::string& eid, const SessionUpdate& u);
  void append_audio(const std::string& eid, const std::string& bytes);
  void on_vad(const VadEvent& ev);
  void commit(const std::string& eid);
  void clear_buffer(const std::string& eid);
  void create_item(const std::string& eid, ItemCreate c);
  void truncate_item(const std::string& eid, const ItemTruncate& t);
  void delete_item(const std::string& eid, const std::string& id);
  void create_response(const std::string& eid, ResponseOverrides o);
  void cancel_response(const std::string& reason);

  // Commits buffered audio [begin, end) as a user item and transcribes it.
  void commit_range(std::size_t begin, std::size_t end, std::string item_id, bool auto_response);
  void transcribe_item(const std::string& item_id, std::vector<float> audio16k, bool auto_response);
  void on_transcript(const std::string& item_id, bool auto_response, TranscriptResult r);
  void start_response(const std::string& eid, ResponseOverrides o);
  void on_reply_text(std::string delta);
  void on_reply_speech(std::string sentence, std::vector<float> pcm24k);
  void on_reply_video(bool init, std::string bytes, bool last);
  void finish_response(const std::string& status, nlohmann::json details,
                       const ReplyOutcome* outcome);

  void reset_detector();
  void trim_buffer();
  void insert_item(Item item, const std::optional<std::string>& previous_id);
  Item* find_item(const std::string& id);
  std::optional<std::string> last_item_id() const;
  std::string new_id(const char* prefix);
  void emit(std::string_view beta_type, nlohmann::json fields);
  void fail(const EventError& e);
  // Wraps a backend callback: it runs on the session's executor, never after close().
  template <typename... Args>
  std::function<void(Args...)> bind(
      std::type_identity_t<std::function<void(RealtimeSession&, Args...)>> f);

  RealtimeBackend& backend_;
  sched::Clock& clock_;
  RealtimeSessionOptions options_;
  Post post_;
  Send send_;
  std::shared_ptr<bool> alive_;
  std::string id_salt_;
  std::uint64_t next_id_ = 0;
  std::uint64_t next_event_ = 0;
  bool closed_ = false;

  Dialect dialect_;
  SessionSettings settings_;
  std::vector<Item> items_;

  // Input audio (16 kHz): samples [buffer_base_, received_) are held in buffer_.
  std::optional<InputAudioDecoder> decoder_;
  std::unique_ptr<VoiceDetector> vad_;
  std::size_t vad_origin_ = 0;
  std::vector<float> buffer_;
  std::size_t buffer_base_ = 0;
  std::size_t received_ = 0;
  std::optional<std::size_t> speech_begin_;
  std::string speech_item_id_;
  std::optional<sched::Clock::time_point> speech_stopped_at_;
  // When the audio up to each stream position arrived (recent appends), for the latencies
  // measured from the speech itself: end of speech to first reply audio, barge-in.
  std::deque<std::pair<std::size_t, sched::Clock::time_point>> arrivals_;
  std::optional<sched::Clock::time_point> end_of_speech_at_;
  std::optional<sched::Clock::time_point> arrival_of(std::size_t sample) const;

  int transcribing_ = 0;
  std::vector<std::shared_ptr<ReplyHandle>> transcriptions_;
  std::optional<std::pair<std::string, ResponseOverrides>> deferred_response_;
  std::unique_ptr<Response> response_;
};

}  // namespace talkserve::pipeline::realtime
