#include "realtime_session.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <tuple>
#include <variant>

namespace talkserve::pipeline::realtime {

using nlohmann::json;

namespace {

constexpr int kRate16k = 16000;
constexpr double kMinCommitMs = 100;                      // a shorter buffer is an empty commit
constexpr double kAudioDeltaSeconds = 0.5;                // the longest audio in one delta event
constexpr std::size_t kKeepOutsideSpeech = kRate16k * 2;  // what a speech start may reach back to

double ms_of(std::size_t samples16k) {
  return samples16k * 1000.0 / kRate16k;
}

double ms_between(sched::Clock::time_point a, sched::Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

// The response running now: its item, what it has said, and how it is spoken.
struct RealtimeSession::Response {
  std::string id;
  std::string item_id;
  bool audio = true;
  bool video = false;
  bool out_of_band = false;
  bool video_done = false;
  AudioFormat format = AudioFormat::pcm16;
  std::optional<OutputAudioEncoder> encoder;
  std::string voice;
  json metadata;
  std::shared_ptr<ReplyHandle> handle;
  Item item;  // the assistant item (a copy when out of band; else mirrored into items_)
  std::string text;
  int deltas = 0;
  double audio_ms = 0;
  sched::Clock::time_point started{};
  std::optional<sched::Clock::time_point> speech_stopped_at;  // the VAD reported the end
  std::optional<sched::Clock::time_point> end_of_speech_at;   // the end's audio arrived
  json timings = json::object();
  int max_tokens = 0;
};

template <typename... Args>
std::function<void(Args...)> RealtimeSession::bind(
    std::type_identity_t<std::function<void(RealtimeSession&, Args...)>> f) {
  std::weak_ptr<bool> alive = alive_;
  RealtimeSession* self = this;
  Post post = post_;
  return [alive, self, post, f = std::move(f)](Args... args) {
    post([alive, self, f, args = std::make_tuple(std::move(args)...)]() mutable {
      auto a = alive.lock();
      if (!a || !*a) return;
      std::apply([&](auto&&... xs) { f(*self, std::move(xs)...); }, std::move(args));
    });
  };
}

RealtimeSession::RealtimeSession(RealtimeBackend& backend, sched::Clock& clock,
                                 RealtimeSessionOptions options, Post post, Send send)
    : backend_(backend),
      clock_(clock),
      options_(std::move(options)),
      post_(std::move(post)),
      send_(std::move(send)),
      alive_(std::make_shared<bool>(true)),
      dialect_(options_.dialect) {
  std::random_device rd;
  char salt[17];
  std::snprintf(salt, sizeof salt, "%08x%08x", rd(), rd());
  id_salt_ = salt;
  settings_.turn_detection =
      backend_.can_transcribe() ? std::optional<TurnDetection>(TurnDetection{}) : std::nullopt;
  decoder_.emplace(settings_.input_format);
}

RealtimeSession::~RealtimeSession() {
  close();
}

std::string RealtimeSession::new_id(const char* prefix) {
  char n[24];
  std::snprintf(n, sizeof n, "%06llx", static_cast<unsigned long long>(++next_id_));
  return std::string(prefix) + id_salt_ + n;
}

void RealtimeSession::emit(std::string_view beta_type, json fields) {
  if (closed_) return;
  json ev = json::object();
  ev["type"] = event_name(dialect_, beta_type);
  ev["event_id"] = "event_" + id_salt_ + std::to_string(++next_event_);
  for (auto& [k, v] : fields.items()) ev[k] = std::move(v);
  send_(std::move(ev));
}

void RealtimeSession::fail(const EventError& e) {
  if (closed_) return;
  json ev = error_event(e);
  ev["event_id"] = "event_" + id_salt_ + std::to_string(++next_event_);
  send_(std::move(ev));
}

void RealtimeSession::open() {
  reset_detector();
  emit("session.created",
       {{"session", session_json(settings_, dialect_, options_.session_id, options_.model)}});
  if (dialect_ == Dialect::beta) {
    emit("conversation.created",
         {{"conversation", {{"id", "conv_" + id_salt_}, {"object", "realtime.conversation"}}}});
  }
}

void RealtimeSession::close() {
  if (closed_) return;
  closed_ = true;
  *alive_ = false;
  if (response_ && response_->handle) response_->handle->cancel();
  response_.reset();
  for (auto& t : transcriptions_) t->cancel();
  transcriptions_.clear();
}

void RealtimeSession::on_binary() {
  fail(
      EventError("binary frames are not part of the Realtime protocol: send audio as "
                 "input_audio_buffer.append",
                 "invalid_frame"));
}

void RealtimeSession::on_text(std::string_view frame) {
  if (closed_) return;
  std::string eid;
  try {
    ParsedEvent ev = parse_client_event(frame);
    eid = ev.event_id;
    handle(ev);
  } catch (const EventError& e) {
    fail(e);
  } catch (const std::exception& e) {
    fail(EventError(std::string("internal error: ") + e.what(), "internal_error", {}, eid,
                    "server_error"));
  }
}

void RealtimeSession::handle(const ParsedEvent& ev) {
  const std::string& eid = ev.event_id;
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, SessionUpdate>) {
          session_update(eid, e);
        } else if constexpr (std::is_same_v<T, AudioAppend>) {
          append_audio(eid, e.audio);
        } else if constexpr (std::is_same_v<T, AudioCommit>) {
          commit(eid);
        } else if constexpr (std::is_same_v<T, AudioClear>) {
          clear_buffer(eid);
        } else if constexpr (std::is_same_v<T, OutputAudioClear>) {
          throw EventError(
              "output_audio_buffer.clear is for WebRTC connections; over a WebSocket send "
              "response.cancel and conversation.item.truncate",
              "unsupported_event", "type", eid);
        } else if constexpr (std::is_same_v<T, ItemCreate>) {
          create_item(eid, e);
        } else if constexpr (std::is_same_v<T, ItemRetrieve>) {
          Item* item = find_item(e.item_id);
          if (item == nullptr)
            throw EventError("item_id: no item '" + e.item_id + "' in the conversation",
                             "item_not_found", "item_id", eid);
          emit("conversation.item.retrieved", {{"item", item_json(*item, dialect_)}});
        } else if constexpr (std::is_same_v<T, ItemDelete>) {
          delete_item(eid, e.item_id);
        } else if constexpr (std::is_same_v<T, ItemTruncate>) {
          truncate_item(eid, e);
        } else if constexpr (std::is_same_v<T, ResponseCreate>) {
          create_response(eid, e.overrides);
        } else if constexpr (std::is_same_v<T, ResponseCancel>) {
          if (!response_)
            throw EventError("there is no active response to cancel", "response_cancel_not_active",
                             {}, eid);
          if (e.response_id && *e.response_id != response_->id) {
            throw EventError("response_id: '" + *e.response_id + "' is not the active response",
                             "invalid_value", "response_id", eid);
          }
          cancel_response("client_cancelled");
        }
      },
      ev.event);
}

// ---- session.update ----------------------------------------------------------------------------

void RealtimeSession::session_update(const std::string& eid, const SessionUpdate& u) {
  if (u.voice && !u.voice->empty() && !backend_.has_voice(*u.voice)) {
    throw EventError("voice: '" + *u.voice + "' is not a voice of this server", "unknown_voice",
                     "session.voice", eid);
  }
  if (u.turn_detection && *u.turn_detection && !backend_.can_transcribe()) {
    throw EventError("turn_detection: this server has no speech recognition (asr.enabled)",
                     "asr_disabled", "session.turn_detection", eid);
  }
  const SessionSettings before = settings_;
  apply(settings_, u);
  if (u.dialect) dialect_ = *u.dialect;
  if (settings_.input_format != before.input_format) decoder_.emplace(settings_.input_format);
  const bool vad_changed =
      settings_.turn_detection.has_value() != before.turn_detection.has_value() ||
      (settings_.turn_detection && before.turn_detection &&
       (settings_.turn_detection->threshold != before.turn_detection->threshold ||
        settings_.turn_detection->prefix_padding_ms != before.turn_detection->prefix_padding_ms ||
        settings_.turn_detection->silence_duration_ms !=
            before.turn_detection->silence_duration_ms));
  if (vad_changed) reset_detector();
  emit("session.updated",
       {{"session", session_json(settings_, dialect_, options_.session_id, options_.model)}});
}

// ---- input audio -------------------------------------------------------------------------------

std::optional<sched::Clock::time_point> RealtimeSession::arrival_of(std::size_t sample) const {
  for (const auto& [end, at] : arrivals_) {
    if (end >= sample) return at;
  }
  return std::nullopt;
}

void RealtimeSession::reset_detector() {
  vad_.reset();
  speech_begin_.reset();
  vad_origin_ = received_;
  if (settings_.turn_detection) vad_ = backend_.voice_detector(*settings_.turn_detection);
}

void RealtimeSession::append_audio(const std::string& eid, const std::string& bytes) {
  if (!backend_.can_transcribe()) {
    throw EventError("spoken input needs speech recognition (asr.enabled)", "asr_disabled", "audio",
                     eid);
  }
  std::vector<float> samples;
  try {
    samples = decoder_->push(bytes);
  } catch (const std::invalid_argument& e) {
    throw EventError(std::string("audio: ") + e.what(), "invalid_audio", "audio", eid);
  }
  buffer_.insert(buffer_.end(), samples.begin(), samples.end());
  received_ += samples.size();
  arrivals_.emplace_back(received_, clock_.now());
  if (arrivals_.size() > 1024) arrivals_.pop_front();
  if (vad_) {
    for (const auto& ev : vad_->push(samples)) on_vad(ev);
  }
  if (!vad_ && ms_of(received_ - buffer_base_) > options_.max_buffer_seconds * 1000) {
    buffer_.clear();
    buffer_base_ = received_;
    throw EventError("the input audio buffer holds more than " +
                         std::to_string(static_cast<int>(options_.max_buffer_seconds)) +
                         " s without a commit; it was cleared",
                     "input_audio_buffer_too_long", "audio", eid);
  }
  trim_buffer();
}

// Outside speech only what a speech start may reach back to is kept (server VAD); in speech,
// an utterance too long for one turn is committed in pieces.
void RealtimeSession::trim_buffer() {
  if (!vad_) return;
  if (speech_begin_) {
    if (ms_of(received_ - *speech_begin_) > options_.max_buffer_seconds * 1000) {
      commit_range(*speech_begin_, received_, speech_item_id_, false);
      speech_begin_ = received_;
      speech_item_id_ = new_id("item_");
    }
    return;
  }
  if (buffer_.size() > kKeepOutsideSpeech) {
    const std::size_t drop = buffer_.size() - kKeepOutsideSpeech;
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(drop));
    buffer_base_ += drop;
  }
}

void RealtimeSession::on_vad(const VadEvent& ev) {
  const std::size_t at = std::min(vad_origin_ + ev.sample, received_);
  if (ev.start) {
    speech_begin_ = std::max(at, buffer_base_);
    speech_item_id_ = new_id("item_");
    emit("input_audio_buffer.speech_started",
         {{"audio_start_ms", std::lround(ms_of(at))}, {"item_id", speech_item_id_}});
    if (response_ && settings_.turn_detection && settings_.turn_detection->interrupt_response) {
      // The user talks over the reply: barge-in. The start is padded by prefix_padding_ms.
      const auto pad =
          static_cast<std::size_t>(settings_.turn_detection->prefix_padding_ms) * kRate16k / 1000;
      if (auto heard = arrival_of(at + pad))
        response_->timings["barge_in_ms"] = ms_between(*heard, clock_.now());
      cancel_response("turn_detected");
    }
    return;
  }
  if (!speech_begin_) return;
  speech_stopped_at_ = clock_.now();
  // The detector pads the end by prefix_padding_ms too: the speech itself ended before.
  const auto pad = static_cast<std::size_t>(
                       settings_.turn_detection ? settings_.turn_detection->prefix_padding_ms : 0) *
                   kRate16k / 1000;
  end_of_speech_at_ = arrival_of(at > pad ? at - pad : 0);
  emit("input_audio_buffer.speech_stopped",
       {{"audio_end_ms", std::lround(ms_of(at))}, {"item_id", speech_item_id_}});
  const bool auto_response = settings_.turn_detection && settings_.turn_detection->create_response;
  commit_range(*speech_begin_, at, speech_item_id_, auto_response);
  speech_begin_.reset();
}

void RealtimeSession::commit(const std::string& eid) {
  if (!backend_.can_transcribe()) {
    throw EventError("spoken input needs speech recognition (asr.enabled)", "asr_disabled", {},
                     eid);
  }
  const std::size_t begin = speech_begin_ ? *speech_begin_ : buffer_base_;
  if (ms_of(received_ - std::max(begin, buffer_base_)) < kMinCommitMs) {
    throw EventError("the input audio buffer holds less than 100 ms of audio",
                     "input_audio_buffer_commit_empty", {}, eid);
  }
  const std::string item_id = speech_begin_ ? speech_item_id_ : new_id("item_");
  speech_stopped_at_ = clock_.now();
  commit_range(begin, received_, item_id, false);
  reset_detector();
}

void RealtimeSession::clear_buffer(const std::string& eid) {
  (void)eid;
  buffer_.clear();
  buffer_base_ = received_;
  reset_detector();
  emit("input_audio_buffer.cleared", json::object());
}

void RealtimeSession::commit_range(std::size_t begin, std::size_t end, std::string item_id,
                                   bool auto_response) {
  begin = std::max(begin, buffer_base_);
  end = std::min(end, received_);
  std::vector<float> clip;
  if (end > begin) {
    clip.assign(buffer_.begin() + static_cast<std::ptrdiff_t>(begin - buffer_base_),
                buffer_.begin() + static_cast<std::ptrdiff_t>(end - buffer_base_));
  }
  const std::size_t drop = std::max(end, buffer_base_) - buffer_base_;
  buffer_.erase(buffer_.begin(),
                buffer_.begin() + static_cast<std::ptrdiff_t>(std::min(drop, buffer_.size())));
  buffer_base_ = std::max(end, buffer_base_);

  const auto previous = last_item_id();
  emit("input_audio_buffer.committed",
       {{"previous_item_id", previous ? json(*previous) : json(nullptr)}, {"item_id", item_id}});
  Item item;
  item.id = item_id;
  item.role = "user";
  ContentPart part;
  part.type = ContentType::input_audio;
  item.content.push_back(part);
  insert_item(std::move(item), std::nullopt);
  transcribe_item(item_id, std::move(clip), auto_response);
}

void RealtimeSession::transcribe_item(const std::string& item_id, std::vector<float> audio16k,
                                      bool auto_response) {
  ++transcribing_;
  auto done =
      bind<TranscriptResult>([item_id, auto_response](RealtimeSession& s, TranscriptResult r) {
        s.on_transcript(item_id, auto_response, std::move(r));
      });
  transcriptions_.push_back(backend_.transcribe(std::move(audio16k), std::move(done)));
}

void RealtimeSession::on_transcript(const std::string& item_id, bool auto_response,
                                    TranscriptResult r) {
  --transcribing_;
  if (transcribing_ == 0) transcriptions_.clear();
  Item* item = find_item(item_id);
  std::size_t index = 0;
  if (item != nullptr) {
    for (; index < item->content.size(); ++index) {
      if (item->content[index].type == ContentType::input_audio &&
          !item->content[index].has_transcript)
        break;
    }
  }
  const bool ok = r.ok && !r.text.empty();
  if (item != nullptr && index < item->content.size()) {
    ContentPart& part = item->content[index];
    part.has_transcript = true;
    part.transcript = ok ? r.text : "";
    if (settings_.transcription) {
      if (ok) {
        emit("conversation.item.input_audio_transcription.completed",
             {{"item_id", item_id}, {"content_index", index}, {"transcript", r.text}});
      } else {
        emit("conversation.item.input_audio_transcription.failed",
             {{"item_id", item_id},
              {"content_index", index},
              {"error",
               {{"type", "transcription_error"},
                {"code", r.ok ? "no_speech" : r.error_code},
                {"message", r.ok ? "no speech was recognised in the audio" : r.error_message},
                {"param", nullptr}}}});
      }
    }
    if (dialect_ == Dialect::ga)
      emit("conversation.item.done", {{"item", item_json(*item, dialect_)}});
  }
  if (deferred_response_ && transcribing_ == 0) {
    auto [eid, overrides] = std::move(*deferred_response_);
    deferred_response_.reset();
    start_response(eid, std::move(overrides));
    return;
  }
  if (auto_response && ok && item != nullptr && !response_) start_response({}, ResponseOverrides{});
}

// ---- conversation items ------------------------------------------------------------------------

Item* RealtimeSession::find_item(const std::string& id) {
  for (auto& item : items_) {
    if (item.id == id) return &item;
  }
  return nullptr;
}

std::optional<std::string> RealtimeSession::last_item_id() const {
  if (items_.empty()) return std::nullopt;
  return items_.back().id;
}

void RealtimeSession::insert_item(Item item, const std::optional<std::string>& previous_id) {
  auto at = items_.end();
  std::optional<std::string> previous = last_item_id();
  if (previous_id) {
    if (*previous_id == "root") {
      at = items_.begin();
      previous.reset();
    } else {
      at = std::find_if(items_.begin(), items_.end(),
                        [&](const Item& i) { return i.id == *previous_id; });
      previous = *previous_id;
      ++at;
    }
  }
  const json created = item_json(item, dialect_);
  items_.insert(at, std::move(item));
  while (items_.size() > options_.max_items) items_.erase(items_.begin());
  emit("conversation.item.created",
       {{"previous_item_id", previous ? json(*previous) : json(nullptr)}, {"item", created}});
}

void RealtimeSession::create_item(const std::string& eid, ItemCreate c) {
  Item& item = c.item;
  if (item.id.empty()) {
    item.id = new_id("item_");
  } else if (find_item(item.id) != nullptr) {
    throw EventError("item.id: '" + item.id + "' is already in the conversation",
                     "duplicate_item_id", "item.id", eid);
  }
  if (c.previous_item_id && *c.previous_item_id != "root" &&
      find_item(*c.previous_item_id) == nullptr) {
    throw EventError("previous_item_id: no item '" + *c.previous_item_id + "' in the conversation",
                     "item_not_found", "previous_item_id", eid);
  }
  // Spoken content without a transcript is recognised; the transcript follows as an event.
  std::vector<std::vector<float>> to_transcribe;
  for (auto& part : item.content) {
    if (part.type != ContentType::input_audio || part.has_transcript) continue;
    if (!backend_.can_transcribe()) {
      throw EventError("spoken input needs speech recognition (asr.enabled)", "asr_disabled",
                       "item.content", eid);
    }
    InputAudioDecoder decoder(settings_.input_format);
    try {
      to_transcribe.push_back(decoder.push(part.audio));
    } catch (const std::invalid_argument& e) {
      throw EventError(std::string("item.content: ") + e.what(), "invalid_audio", "item.content",
                       eid);
    }
    part.audio.clear();
  }
  const std::string id = item.id;
  const bool done_now = to_transcribe.empty();
  insert_item(std::move(item), c.previous_item_id);
  if (dialect_ == Dialect::ga && done_now)
    emit("conversation.item.done", {{"item", item_json(*find_item(id), dialect_)}});
  for (auto& clip : to_transcribe) transcribe_item(id, std::move(clip), false);
}

void RealtimeSession::delete_item(const std::string& eid, const std::string& id) {
  if (response_ && response_->item_id == id) {
    throw EventError("item_id: '" + id + "' belongs to the response in progress (cancel it first)",
                     "item_in_progress", "item_id", eid);
  }
  auto it = std::find_if(items_.begin(), items_.end(), [&](const Item& i) { return i.id == id; });
  if (it == items_.end())
    throw EventError("item_id: no item '" + id + "' in the conversation", "item_not_found",
                     "item_id", eid);
  items_.erase(it);
  emit("conversation.item.deleted", {{"item_id", id}});
}

void RealtimeSession::truncate_item(const std::string& eid, const ItemTruncate& t) {
  Item* item = find_item(t.item_id);
  if (item == nullptr) {
    throw EventError("item_id: no item '" + t.item_id + "' in the conversation", "item_not_found",
                     "item_id", eid);
  }
  if (item->role != "assistant") {
    throw EventError("item_id: only assistant messages can be truncated", "invalid_value",
                     "item_id", eid);
  }
  if (t.content_index < 0 || static_cast<std::size_t>(t.content_index) >= item->content.size() ||
      item->content[t.content_index].type != ContentType::audio) {
    throw EventError("content_index: the item has no audio part at this index", "invalid_value",
                     "content_index", eid);
  }
  if (response_ && response_->item_id == t.item_id) {
    cancel_response("client_cancelled");
    item = find_item(t.item_id);
    if (item == nullptr) return;
  }
  if (t.audio_end_ms > item->audio_ms + 1.0) {
    throw EventError("audio_end_ms: " + std::to_string(t.audio_end_ms) +
                         " ms is beyond the item's " +
                         std::to_string(static_cast<long long>(item->audio_ms)) + " ms of audio",
                     "invalid_value", "audio_end_ms", eid);
  }
  item->content[t.content_index].transcript =
      heard_text(item->spoken, item->spoken_end_ms, t.audio_end_ms);
  item->audio_ms = t.audio_end_ms;
  emit("conversation.item.truncated", {{"item_id", t.item_id},
                                       {"content_index", t.content_index},
                                       {"audio_end_ms", t.audio_end_ms}});
}

// ---- responses ---------------------------------------------------------------------------------

void RealtimeSession::create_response(const std::string& eid, ResponseOverrides o) {
  if (response_ || deferred_response_) {
    throw EventError("the conversation already has an active response",
                     "conversation_already_has_active_response", {}, eid);
  }
  if (o.voice && !o.voice->empty() && !backend_.has_voice(*o.voice)) {
    throw EventError("voice: '" + *o.voice + "' is not a voice of this server", "unknown_voice",
                     "response.voice", eid);
  }
  if (transcribing_ > 0 && !o.input) {
    deferred_response_.emplace(eid, std::move(o));  // the conversation is not complete yet
    return;
  }
  start_response(eid, std::move(o));
}

void RealtimeSession::start_response(const std::string& eid, ResponseOverrides o) {
  (void)eid;
  auto r = std::make_unique<Response>();
  r->id = new_id("resp_");
  r->item_id = new_id("item_");
  r->audio = o.audio_out.value_or(settings_.audio_out);
  r->video = r->audio && settings_.video;
  r->out_of_band = o.out_of_band;
  r->format = o.output_format.value_or(settings_.output_format);
  if (r->audio) r->encoder.emplace(r->format);
  r->voice = o.voice.value_or(settings_.voice);
  r->metadata = o.metadata;
  r->started = clock_.now();
  r->speech_stopped_at = speech_stopped_at_;
  r->end_of_speech_at = end_of_speech_at_;
  speech_stopped_at_.reset();
  end_of_speech_at_.reset();
  r->item.id = r->item_id;
  r->item.role = "assistant";
  r->item.status = "in_progress";
  ContentPart part;
  part.type = r->audio ? ContentType::audio : ContentType::text;
  part.has_transcript = true;
  r->item.content.push_back(part);

  ReplyRequest req;
  req.instructions = o.instructions.value_or(settings_.instructions);
  for (const Item& item : o.input ? *o.input : items_) {
    std::string text = item_text(item);
    if (!text.empty()) req.conversation.push_back({item.role, std::move(text)});
  }
  const auto max_tokens = o.max_output_tokens ? *o.max_output_tokens : settings_.max_output_tokens;
  req.max_tokens = max_tokens.value_or(0);
  req.temperature = o.temperature ? o.temperature : settings_.temperature;
  req.voice = r->voice;
  req.audio = r->audio;
  req.video = r->video;
  r->max_tokens = req.max_tokens;

  response_ = std::move(r);
  Response& resp = *response_;
  json modalities = resp.audio ? (dialect_ == Dialect::ga ? json::array({"audio"})
                                                          : json::array({"text", "audio"}))
                               : json::array({"text"});
  json response{{"id", resp.id},
                {"object", "realtime.response"},
                {"status", "in_progress"},
                {"status_details", nullptr},
                {"output", json::array()},
                {"usage", nullptr},
                {"conversation_id", resp.out_of_band ? json(nullptr) : json("conv_" + id_salt_)},
                {"metadata", resp.metadata.is_null() ? json(nullptr) : resp.metadata}};
  if (dialect_ == Dialect::ga) {
    response["output_modalities"] = modalities;
    response["audio"] = {
        {"output", {{"format", {{"type", ga_format_name(resp.format)}}}, {"voice", resp.voice}}}};
  } else {
    response["modalities"] = modalities;
    response["voice"] = resp.voice;
    response["output_audio_format"] = beta_format_name(resp.format);
  }
  emit("response.created", {{"response", response}});
  emit("response.output_item.added",
       {{"response_id", resp.id}, {"output_index", 0}, {"item", item_json(resp.item, dialect_)}});
  if (!resp.out_of_band) insert_item(resp.item, std::nullopt);
  emit("response.content_part.added", {{"response_id", resp.id},
                                       {"item_id", resp.item_id},
                                       {"output_index", 0},
                                       {"content_index", 0},
                                       {"part", content_json(resp.item.content[0], dialect_)}});
  // What a reply reports after it was cancelled (already posted) is dropped by its id.
  const std::string id = resp.id;
  auto current = [id](const RealtimeSession& s) { return s.response_ && s.response_->id == id; };
  ReplySink sink;
  sink.text = bind<std::string>([current](RealtimeSession& s, std::string d) {
    if (current(s)) s.on_reply_text(std::move(d));
  });
  sink.speech = bind<std::string, std::vector<float>>(
      [current](RealtimeSession& s, std::string sentence, std::vector<float> pcm) {
        if (current(s)) s.on_reply_speech(std::move(sentence), std::move(pcm));
      });
  sink.video = bind<bool, std::string, bool>(
      [current](RealtimeSession& s, bool init, std::string bytes, bool last) {
        if (current(s)) s.on_reply_video(init, std::move(bytes), last);
      });
  sink.done = bind<ReplyOutcome>([current](RealtimeSession& s, ReplyOutcome o) {
    if (!current(s)) return;
    if (o.status == ReplyOutcome::Status::failed) {
      s.finish_response(
          "failed",
          {{"type", "failed"},
           {"error",
            {{"type", "server_error"}, {"code", o.error_code}, {"message", o.error_message}}}},
          &o);
    } else if (o.status == ReplyOutcome::Status::incomplete) {
      s.finish_response("incomplete", {{"type", "incomplete"}, {"reason", "max_output_tokens"}},
                        &o);
    } else {
      s.finish_response("completed", nullptr, &o);
    }
  });
  try {
    resp.handle = backend_.reply(std::move(req), std::move(sink));
  } catch (const EventError& e) {
    ReplyOutcome o;
    o.status = ReplyOutcome::Status::failed;
    finish_response("failed",
                    {{"type", "failed"},
                     {"error", {{"type", e.type}, {"code", e.code}, {"message", e.what()}}}},
                    &o);
  }
}

void RealtimeSession::on_reply_text(std::string delta) {
  if (!response_ || delta.empty()) return;
  Response& r = *response_;
  if (r.deltas++ == 0) r.timings["first_text_ms"] = ms_between(r.started, clock_.now());
  r.text += delta;
  emit(r.audio ? "response.audio_transcript.delta" : "response.text.delta", {{"response_id", r.id},
                                                                             {"item_id", r.item_id},
                                                                             {"output_index", 0},
                                                                             {"content_index", 0},
                                                                             {"delta", delta}});
}

void RealtimeSession::on_reply_speech(std::string sentence, std::vector<float> pcm24k) {
  if (!response_ || !response_->audio) return;
  Response& r = *response_;
  if (r.item.spoken.empty()) {
    const auto now = clock_.now();
    r.timings["first_audio_ms"] = ms_between(r.started, now);
    if (r.speech_stopped_at) {
      r.timings["speech_stopped_to_first_audio_ms"] = ms_between(*r.speech_stopped_at, now);
      r.timings["transcription_ms"] = ms_between(*r.speech_stopped_at, r.started);
    }
    if (r.end_of_speech_at) {
      r.timings["voice_to_voice_ms"] = ms_between(*r.end_of_speech_at, now);
      if (r.speech_stopped_at) {
        r.timings["end_of_speech_detection_ms"] =
            ms_between(*r.end_of_speech_at, *r.speech_stopped_at);
      }
    }
  }
  const std::size_t step = static_cast<std::size_t>(kAudioDeltaSeconds * 24000);
  for (std::size_t at = 0; at < pcm24k.size(); at += step) {
    const std::size_t n = std::min(step, pcm24k.size() - at);
    const std::string bytes = r.encoder->push(std::span<const float>(pcm24k.data() + at, n));
    if (bytes.empty()) continue;
    emit("response.audio.delta", {{"response_id", r.id},
                                  {"item_id", r.item_id},
                                  {"output_index", 0},
                                  {"content_index", 0},
                                  {"delta", base64_encode(bytes)}});
  }
  r.audio_ms += pcm24k.size() * 1000.0 / 24000;
  r.item.spoken.push_back(std::move(sentence));
  r.item.spoken_end_ms.push_back(r.audio_ms);
  r.item.audio_ms = r.audio_ms;
  if (Item* item = find_item(r.item_id)) {
    item->spoken = r.item.spoken;
    item->spoken_end_ms = r.item.spoken_end_ms;
    item->audio_ms = r.audio_ms;
  }
}

void RealtimeSession::on_reply_video(bool init, std::string bytes, bool last) {
  if (!response_ || !response_->video) return;
  Response& r = *response_;
  if (!bytes.empty()) {
    if (!init && !r.timings.contains("first_video_ms"))
      r.timings["first_video_ms"] = ms_between(r.started, clock_.now());
    emit("response.output_video.delta", {{"response_id", r.id},
                                         {"item_id", r.item_id},
                                         {"output_index", 0},
                                         {"content_index", 0},
                                         {"segment", init ? "init" : "media"},
                                         {"delta", base64_encode(bytes)}});
  }
  if (last && !init && !r.video_done) {
    r.video_done = true;
    emit(
        "response.output_video.done",
        {{"response_id", r.id}, {"item_id", r.item_id}, {"output_index", 0}, {"content_index", 0}});
  }
}

void RealtimeSession::cancel_response(const std::string& reason) {
  if (!response_) return;
  if (response_->handle) response_->handle->cancel();
  ReplyOutcome o;
  o.prompt_tokens = response_->handle ? response_->handle->prompt_tokens() : 0;
  o.completion_tokens = response_->deltas;
  finish_response("cancelled", {{"type", "cancelled"}, {"reason", reason}}, &o);
}

void RealtimeSession::finish_response(const std::string& status, json details,
                                      const ReplyOutcome* outcome) {
  std::unique_ptr<Response> owned = std::move(response_);
  Response& r = *owned;
  if (r.audio && r.encoder) {
    const std::string tail = r.encoder->flush();
    if (!tail.empty() && status != "cancelled") {
      emit("response.audio.delta", {{"response_id", r.id},
                                    {"item_id", r.item_id},
                                    {"output_index", 0},
                                    {"content_index", 0},
                                    {"delta", base64_encode(tail)}});
    }
  }
  ContentPart& part = r.item.content[0];
  const json where{
      {"response_id", r.id}, {"item_id", r.item_id}, {"output_index", 0}, {"content_index", 0}};
  if (r.audio) {
    part.transcript = r.text;
    json ev = where;
    emit("response.audio.done", ev);
    ev["transcript"] = r.text;
    emit("response.audio_transcript.done", ev);
  } else {
    part.text = r.text;
    json ev = where;
    ev["text"] = r.text;
    emit("response.text.done", ev);
  }
  if (r.video && !r.video_done) emit("response.output_video.done", where);
  json part_done = where;
  part_done["part"] = content_json(part, dialect_);
  emit("response.content_part.done", part_done);
  r.item.status = status == "completed" ? "completed" : "incomplete";
  if (!r.out_of_band) {
    if (Item* item = find_item(r.item_id)) {
      item->status = r.item.status;
      item->content[0] = part;
    }
  }
  const json item = item_json(r.item, dialect_);
  emit("response.output_item.done", {{"response_id", r.id}, {"output_index", 0}, {"item", item}});
  if (dialect_ == Dialect::ga && !r.out_of_band) emit("conversation.item.done", {{"item", item}});

  const int in = outcome ? outcome->prompt_tokens : 0;
  const int out = outcome ? outcome->completion_tokens : 0;
  const int cached = outcome ? outcome->cached_tokens : 0;
  r.timings["total_ms"] = ms_between(r.started, clock_.now());
  json response{{"id", r.id},
                {"object", "realtime.response"},
                {"status", status},
                {"status_details", std::move(details)},
                {"output", json::array({item})},
                {"conversation_id", r.out_of_band ? json(nullptr) : json("conv_" + id_salt_)},
                {"metadata", r.metadata.is_null() ? json(nullptr) : r.metadata},
                {"usage",
                 {{"total_tokens", in + out},
                  {"input_tokens", in},
                  {"output_tokens", out},
                  {"input_token_details",
                   {{"text_tokens", in}, {"audio_tokens", 0}, {"cached_tokens", cached}}},
                  {"output_token_details", {{"text_tokens", out}, {"audio_tokens", 0}}}}},
                {"timings", r.timings}};
  if (r.audio) response["audio_seconds"] = r.audio_ms / 1000.0;
  emit("response.done", {{"response", std::move(response)}});
  emit("rate_limits.updated", {{"rate_limits", json::array()}});
  if (deferred_response_ && transcribing_ == 0) {
    auto [eid, overrides] = std::move(*deferred_response_);
    deferred_response_.reset();
    start_response(eid, std::move(overrides));
  } else if (options_.on_idle) {
    options_.on_idle();
  }
}

}  // namespace talkserve::pipeline::realtime
