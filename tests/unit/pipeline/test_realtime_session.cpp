// The GET /v1/realtime state machine (pipeline/realtime_session) against a fake backend: a
// deterministic energy VAD, transcriptions and replies the test completes by hand, callbacks
// queued until the test pumps them, and a manual clock for the timings.

#include <catch2/catch.hpp>
#include <cmath>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "pipeline/realtime_session.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::pipeline::realtime {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Speech is any 20 ms chunk louder than 0.1; it starts after 3 such chunks and stops after
// `silence_chunks` quiet ones.
class EnergyVad final : public VoiceDetector {
 public:
  explicit EnergyVad(int silence_chunks) : silence_chunks_(silence_chunks) {}
  std::vector<VadEvent> push(std::span<const float> samples) override {
    std::vector<VadEvent> out;
    pending_.insert(pending_.end(), samples.begin(), samples.end());
    while (pending_.size() >= kChunk) {
      float peak = 0;
      for (std::size_t i = 0; i < kChunk; ++i) peak = std::max(peak, std::abs(pending_[i]));
      pending_.erase(pending_.begin(), pending_.begin() + kChunk);
      const bool loud = peak > 0.1f;
      if (!in_speech_) {
        loud_ = loud ? loud_ + 1 : 0;
        if (loud_ == 3) {
          in_speech_ = true;
          out.push_back({true, pos_ - 2 * kChunk});
        }
      } else {
        quiet_ = loud ? 0 : quiet_ + 1;
        if (quiet_ == silence_chunks_) {  // the end is where the speech stopped
          in_speech_ = false;
          out.push_back({false, pos_ + kChunk - quiet_ * kChunk});
          loud_ = quiet_ = 0;
        }
      }
      pos_ += kChunk;
    }
    return out;
  }

 private:
  static constexpr std::size_t kChunk = 320;
  int silence_chunks_;
  std::vector<float> pending_;
  std::size_t pos_ = 0;
  bool in_speech_ = false;
  int loud_ = 0;
  int quiet_ = 0;
};

struct FakeHandle final : ReplyHandle {
  bool cancelled = false;
  int tokens = 7;
  void cancel() override { cancelled = true; }
  int prompt_tokens() const override { return tokens; }
};

class FakeBackend final : public RealtimeBackend {
 public:
  struct Transcription {
    std::vector<float> audio;
    std::function<void(TranscriptResult)> done;
    std::shared_ptr<FakeHandle> handle;
  };
  struct Reply {
    ReplyRequest request;
    ReplySink sink;
    std::shared_ptr<FakeHandle> handle;
  };

  std::string model_name() const override { return "fake"; }
  bool has_voice(const std::string& v) const override { return v == "alloy"; }
  std::unique_ptr<VoiceDetector> voice_detector(const TurnDetection& td) override {
    last_turn_detection = td;
    return std::make_unique<EnergyVad>(td.silence_duration_ms / 20);
  }
  bool can_transcribe() const override { return true; }
  std::shared_ptr<ReplyHandle> transcribe(std::vector<float> audio,
                                          std::function<void(TranscriptResult)> done) override {
    auto h = std::make_shared<FakeHandle>();
    transcriptions.push_back({std::move(audio), std::move(done), h});
    return h;
  }
  std::shared_ptr<ReplyHandle> reply(ReplyRequest request, ReplySink sink) override {
    if (refuse) throw EventError("LLM: queue full", "queue_full", {}, {}, "server_error");
    auto h = std::make_shared<FakeHandle>();
    replies.push_back({std::move(request), std::move(sink), h});
    return h;
  }

  void transcript(std::size_t i, const std::string& text) {
    transcriptions.at(i).done({true, text, "", ""});
  }

  std::vector<Transcription> transcriptions;
  std::vector<Reply> replies;
  TurnDetection last_turn_detection;
  bool refuse = false;
};

class Harness {
 public:
  Harness() {
    session = std::make_shared<RealtimeSession>(
        backend, clock, RealtimeSessionOptions{"sess_test", "fake"},
        [this](std::function<void()> f) { queue.push_back(std::move(f)); },
        [this](json ev) { events.push_back(std::move(ev)); });
    session->open();
  }

  void send(const json& ev) {
    session->on_text(ev.dump());
    pump();
  }
  void pump() {
    while (!queue.empty()) {
      auto f = std::move(queue.front());
      queue.pop_front();
      f();
    }
  }
  // PCM16 at 24 kHz: a loud tone or silence, appended in 40 ms events.
  void speak(double seconds, bool loud) {
    const int n = static_cast<int>(seconds * 24000);
    std::string bytes;
    for (int i = 0; i < n; ++i) {
      const auto v =
          static_cast<std::int16_t>(loud ? 16000 * std::sin(2 * M_PI * 300 * i / 24000.0) : 0);
      bytes.push_back(static_cast<char>(v & 0xff));
      bytes.push_back(static_cast<char>((v >> 8) & 0xff));
      if (bytes.size() == 1920 || i + 1 == n) {
        send({{"type", "input_audio_buffer.append"}, {"audio", base64_encode(bytes)}});
        bytes.clear();
      }
    }
  }
  // Takes the events so far; their types in order.
  std::vector<std::string> take_types() {
    std::vector<std::string> out;
    for (auto& e : events) out.push_back(e["type"]);
    taken.insert(taken.end(), events.begin(), events.end());
    events.clear();
    return out;
  }
  json last(const std::string& type) const {
    for (auto it = events.rbegin(); it != events.rend(); ++it) {
      if ((*it)["type"] == type) return *it;
    }
    for (auto it = taken.rbegin(); it != taken.rend(); ++it) {
      if ((*it)["type"] == type) return *it;
    }
    FAIL("no " << type);
    return {};
  }

  sched::ManualClock clock;
  FakeBackend backend;
  std::deque<std::function<void()>> queue;
  std::vector<json> events;
  std::vector<json> taken;
  std::shared_ptr<RealtimeSession> session;
};

std::vector<float> speech_pcm(double seconds) {
  return std::vector<float>(static_cast<std::size_t>(seconds * 24000), 0.25f);
}

using Types = std::vector<std::string>;

}  // namespace

TEST_CASE("realtime session: a server-VAD turn in the documented order", "[pipeline][realtime]") {
  Harness h;
  CHECK(h.take_types() == Types{"session.created", "conversation.created"});
  h.send({{"type", "session.update"},
          {"event_id", "u1"},
          {"session", {{"voice", "alloy"}, {"instructions", "Be kind."}}}});
  CHECK(h.take_types() == Types{"session.updated"});

  h.speak(0.3, false);
  h.speak(1.0, true);
  h.speak(0.6, false);
  CHECK(h.take_types() == Types{"input_audio_buffer.speech_started",
                                "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
                                "conversation.item.created"});
  const json started = h.last("input_audio_buffer.speech_started");
  const json stopped = h.last("input_audio_buffer.speech_stopped");
  CHECK(started["audio_start_ms"].get<int>() == Approx(260).margin(60));
  CHECK(stopped["audio_end_ms"].get<int>() == Approx(1300).margin(60));
  CHECK(started["item_id"] == stopped["item_id"]);
  CHECK(h.last("input_audio_buffer.committed")["item_id"] == started["item_id"]);
  REQUIRE(h.backend.transcriptions.size() == 1);
  // The committed audio is the utterance at 16 kHz: from its start to its end.
  CHECK(h.backend.transcriptions[0].audio.size() == Approx(16000 * 1.04).margin(16000 * 0.08));

  h.clock.advance(300ms);  // recognition takes 300 ms
  h.backend.transcript(0, "hello there");
  h.pump();
  CHECK(h.take_types() == Types{"conversation.item.input_audio_transcription.completed",
                                "response.created", "response.output_item.added",
                                "conversation.item.created", "response.content_part.added"});
  CHECK(h.last("conversation.item.input_audio_transcription.completed")["transcript"] ==
        "hello there");
  REQUIRE(h.backend.replies.size() == 1);
  const ReplyRequest& req = h.backend.replies[0].request;
  CHECK(req.instructions == "Be kind.");
  CHECK(req.voice == "alloy");
  REQUIRE(req.conversation.size() == 1);
  CHECK(req.conversation[0].role == "user");
  CHECK(req.conversation[0].text == "hello there");

  auto& sink = h.backend.replies[0].sink;
  h.clock.advance(200ms);
  sink.text("Hi.");
  sink.speech("Hi.", speech_pcm(0.6));
  sink.text(" Bye.");
  sink.speech("Bye.", speech_pcm(0.3));
  ReplyOutcome done;
  done.prompt_tokens = 12;
  done.completion_tokens = 4;
  sink.done(done);
  h.pump();
  CHECK(h.take_types() ==
        Types{"response.audio_transcript.delta", "response.audio.delta", "response.audio.delta",
              "response.audio_transcript.delta", "response.audio.delta", "response.audio.done",
              "response.audio_transcript.done", "response.content_part.done",
              "response.output_item.done", "response.done", "rate_limits.updated"});
  const json response = h.last("response.done")["response"];
  CHECK(response["status"] == "completed");
  CHECK(response["usage"]["input_tokens"] == 12);
  CHECK(response["usage"]["output_tokens"] == 4);
  CHECK(response["usage"]["total_tokens"] == 16);
  CHECK(response["output"][0]["content"][0]["transcript"] == "Hi. Bye.");
  CHECK(response["timings"]["speech_stopped_to_first_audio_ms"].get<double>() == Approx(500));
  CHECK(response["timings"]["voice_to_voice_ms"].get<double>() == Approx(500));
  CHECK(response["timings"]["transcription_ms"].get<double>() == Approx(300));
  CHECK(h.last("response.audio_transcript.done")["transcript"] == "Hi. Bye.");
  // The deltas hold 0.9 s of PCM16 at 24 kHz.
  std::size_t bytes = 0;
  for (const auto& e : h.taken) {
    if (e["type"] == "response.audio.delta")
      bytes += base64_decode(e["delta"].get<std::string>())->size();
  }
  CHECK(bytes == 0.9 * 24000 * 2);
  // Every event has a unique id.
  std::set<std::string> ids;
  for (const auto& e : h.taken) ids.insert(e["event_id"].get<std::string>());
  CHECK(ids.size() == h.taken.size());

  REQUIRE(h.session->items().size() == 2);
  CHECK(h.session->items()[0].content[0].transcript == "hello there");
  CHECK(h.session->items()[1].status == "completed");
  CHECK(h.session->items()[1].content[0].transcript == "Hi. Bye.");
}

TEST_CASE("realtime session: barge-in cancels the reply and truncate keeps what was heard",
          "[pipeline][realtime]") {
  Harness h;
  h.send({{"type", "conversation.item.create"},
          {"item",
           {{"type", "message"},
            {"role", "user"},
            {"content", {{{"type", "input_text"}, {"text", "Tell me."}}}}}}});
  h.send({{"type", "response.create"}});
  REQUIRE(h.backend.replies.size() == 1);
  auto& first = h.backend.replies[0];
  first.sink.text("One two three four.");
  first.sink.speech("One two three four.", speech_pcm(1.0));
  first.sink.text(" Five six.");
  h.pump();
  const std::string item_id = h.last("response.output_item.added")["item"]["id"];
  h.take_types();

  // The user talks over the reply: the VAD's start cancels it.
  h.speak(0.2, true);
  CHECK(h.take_types() == Types{"input_audio_buffer.speech_started", "response.audio.done",
                                "response.audio_transcript.done", "response.content_part.done",
                                "response.output_item.done", "response.done",
                                "rate_limits.updated"});
  CHECK(first.handle->cancelled);
  const json done = h.last("response.done")["response"];
  CHECK(done["status"] == "cancelled");
  CHECK(done["status_details"]["reason"] == "turn_detected");
  CHECK(done["usage"]["input_tokens"] == 7);
  CHECK(h.last("response.output_item.done")["item"]["status"] == "incomplete");
  // Late output of the cancelled reply is dropped.
  first.sink.speech("Five six.", speech_pcm(0.5));
  h.pump();
  CHECK(h.take_types().empty());

  // The client played 0.5 s of it.
  h.send({{"type", "conversation.item.truncate"},
          {"event_id", "t1"},
          {"item_id", item_id},
          {"content_index", 0},
          {"audio_end_ms", 500}});
  CHECK(h.take_types() == Types{"conversation.item.truncated"});
  CHECK(h.last("conversation.item.truncated")["audio_end_ms"] == 500);
  h.send({{"type", "conversation.item.truncate"},
          {"event_id", "t2"},
          {"item_id", item_id},
          {"content_index", 0},
          {"audio_end_ms", 900}});
  CHECK(h.take_types() == Types{"error"});
  CHECK(h.last("error")["error"]["event_id"] == "t2");

  h.speak(0.8, true);
  h.speak(0.6, false);
  h.backend.transcript(0, "stop please");
  h.pump();
  REQUIRE(h.backend.replies.size() == 2);
  const auto& conv = h.backend.replies[1].request.conversation;
  REQUIRE(conv.size() == 3);
  CHECK(conv[1].role == "assistant");
  CHECK(conv[1].text == "One two");
  CHECK(conv[2].text == "stop please");
}

TEST_CASE("realtime session: manual turns in a GA text-only session", "[pipeline][realtime]") {
  Harness h;
  h.take_types();
  h.send({{"type", "session.update"},
          {"session",
           {{"type", "realtime"},
            {"output_modalities", {"text"}},
            {"audio", {{"input", {{"turn_detection", nullptr}}}}}}}});
  CHECK(h.take_types() == Types{"session.updated"});
  CHECK(h.last("session.updated")["session"]["audio"]["input"]["turn_detection"].is_null());

  h.send({{"type", "input_audio_buffer.commit"}, {"event_id", "c0"}});
  CHECK(h.take_types() == Types{"error"});
  CHECK(h.last("error")["error"]["code"] == "input_audio_buffer_commit_empty");
  CHECK(h.last("error")["error"]["event_id"] == "c0");

  h.speak(1.0, true);  // no VAD: nothing happens until the commit
  CHECK(h.take_types().empty());
  h.send({{"type", "input_audio_buffer.commit"}});
  h.send({{"type", "response.create"}});  // waits for the transcript
  CHECK(h.take_types() == Types{"input_audio_buffer.committed", "conversation.item.added"});
  CHECK(h.backend.replies.empty());
  h.backend.transcript(0, "what time is it");
  h.pump();
  CHECK(h.take_types() == Types{"conversation.item.input_audio_transcription.completed",
                                "conversation.item.done", "response.created",
                                "response.output_item.added", "conversation.item.added",
                                "response.content_part.added"});
  REQUIRE(h.backend.replies.size() == 1);
  CHECK_FALSE(h.backend.replies[0].request.audio);
  CHECK(h.last("response.created")["response"]["output_modalities"] == json({"text"}));
  h.backend.replies[0].sink.text("Noon.");
  ReplyOutcome o;
  o.status = ReplyOutcome::Status::incomplete;
  h.backend.replies[0].sink.done(o);
  h.pump();
  CHECK(h.take_types() == Types{"response.output_text.delta", "response.output_text.done",
                                "response.content_part.done", "response.output_item.done",
                                "conversation.item.done", "response.done", "rate_limits.updated"});
  CHECK(h.last("response.done")["response"]["status"] == "incomplete");
  CHECK(h.last("response.output_text.done")["text"] == "Noon.");
  CHECK(h.last("response.content_part.done")["part"] ==
        json({{"type", "output_text"}, {"text", "Noon."}}));
}

TEST_CASE("realtime session: items, cancellation and errors that leave the session going",
          "[pipeline][realtime]") {
  Harness h;
  h.take_types();
  auto user = [](const char* id, const char* text) {
    return json{{"type", "conversation.item.create"},
                {"item",
                 {{"id", id},
                  {"type", "message"},
                  {"role", "user"},
                  {"content", {{{"type", "input_text"}, {"text", text}}}}}}};
  };
  h.send(user("a", "first"));
  h.send(user("b", "second"));
  json before = user("c", "zeroth");
  before["previous_item_id"] = "root";
  h.send(before);
  CHECK(h.take_types() == Types{"conversation.item.created", "conversation.item.created",
                                "conversation.item.created"});
  CHECK(h.last("conversation.item.created")["previous_item_id"].is_null());
  REQUIRE(h.session->items().size() == 3);
  CHECK(h.session->items()[0].id == "c");

  h.send({{"type", "conversation.item.retrieve"}, {"item_id", "b"}});
  CHECK(h.last("conversation.item.retrieved")["item"]["content"][0]["text"] == "second");
  h.send({{"type", "conversation.item.delete"}, {"item_id", "c"}});
  CHECK(h.last("conversation.item.deleted")["item_id"] == "c");
  h.take_types();

  // Out-of-order and unknown references: each an error with its event_id; nothing else changes.
  const std::vector<std::pair<json, std::string>> bad = {
      {{{"type", "conversation.item.delete"}, {"event_id", "x1"}, {"item_id", "c"}},
       "item_not_found"},
      {{{"type", "conversation.item.retrieve"}, {"event_id", "x2"}, {"item_id", "nope"}},
       "item_not_found"},
      {{{"type", "conversation.item.truncate"},
        {"event_id", "x3"},
        {"item_id", "a"},
        {"content_index", 0},
        {"audio_end_ms", 0}},
       "invalid_value"},
      {{{"type", "response.cancel"}, {"event_id", "x4"}}, "response_cancel_not_active"},
      {[&] {
         json j = user("a", "again");
         j["event_id"] = "x5";
         return j;
       }(),
       "duplicate_item_id"},
      {{{"type", "session.update"}, {"event_id", "x6"}, {"session", {{"voice", "nobody"}}}},
       "unknown_voice"},
      {{{"type", "output_audio_buffer.clear"}, {"event_id", "x7"}}, "unsupported_event"},
      {{{"type", "input_audio_buffer.append"}, {"event_id", "x8"}, {"audio", "AAAA"}},
       "invalid_audio"},  // odd PCM16
  };
  for (const auto& [ev, code] : bad) {
    INFO(ev.dump());
    h.send(ev);
    CHECK(h.take_types() == Types{"error"});
    CHECK(h.last("error")["error"]["code"] == code);
    CHECK(h.last("error")["error"]["event_id"] == ev["event_id"]);
  }
  h.session->on_binary();
  CHECK(h.take_types() == Types{"error"});
  CHECK(h.session->items().size() == 2);

  h.send({{"type", "response.create"}, {"response", {{"metadata", {{"turn", "1"}}}}}});
  h.send({{"type", "response.create"}, {"event_id", "dup"}});
  CHECK(h.last("error")["error"]["code"] == "conversation_already_has_active_response");
  h.send({{"type", "response.cancel"}, {"event_id", "wrong"}, {"response_id", "resp_other"}});
  CHECK(h.last("error")["error"]["event_id"] == "wrong");
  // The assistant item of a running response cannot be deleted.
  const std::string running_item = h.last("response.output_item.added")["item"]["id"];
  h.send({{"type", "conversation.item.delete"}, {"item_id", running_item}});
  CHECK(h.last("error")["error"]["code"] == "item_in_progress");
  const std::string id = h.last("response.created")["response"]["id"];
  h.send({{"type", "response.cancel"}, {"response_id", id}});
  CHECK(h.backend.replies[0].handle->cancelled);
  const json done = h.last("response.done")["response"];
  CHECK(done["status"] == "cancelled");
  CHECK(done["status_details"]["reason"] == "client_cancelled");
  CHECK(done["metadata"]["turn"] == "1");

  // A refused reply is a failed response; the session goes on.
  h.backend.refuse = true;
  h.send({{"type", "response.create"}});
  CHECK(h.last("response.done")["response"]["status"] == "failed");
  CHECK(h.last("response.done")["response"]["status_details"]["error"]["code"] == "queue_full");
  h.backend.refuse = false;
  h.take_types();
  // Out of band: not added to the conversation.
  const std::size_t items = h.session->items().size();
  h.send({{"type", "response.create"},
          {"response", {{"conversation", "none"}, {"modalities", {"text"}}}}});
  h.backend.replies.back().sink.text("aside");
  h.backend.replies.back().sink.done({});
  h.pump();
  CHECK(h.last("response.done")["response"]["status"] == "completed");
  CHECK(h.session->items().size() == items);
  for (const auto& t : h.take_types()) CHECK(t != "conversation.item.created");

  // Nothing is sent after close, even if work finishes.
  h.send({{"type", "response.create"}});
  h.session->close();
  h.backend.replies.back().sink.text("late");
  h.pump();
  h.take_types();
  CHECK(h.backend.replies.back().handle->cancelled);
}

TEST_CASE("realtime session: G.711 in and out", "[pipeline][realtime]") {
  Harness h;
  h.send({{"type", "session.update"},
          {"session",
           {{"input_audio_format", "g711_ulaw"},
            {"output_audio_format", "g711_alaw"},
            {"turn_detection", nullptr}}}});
  std::string second;
  for (int i = 0; i < 8000; ++i)
    second.push_back(
        static_cast<char>(ulaw_encode(static_cast<std::int16_t>(8000 * std::sin(i * 0.3)))));
  for (std::size_t at = 0; at < second.size(); at += 320) {  // 40 ms at 8 kHz
    h.send(
        {{"type", "input_audio_buffer.append"}, {"audio", base64_encode(second.substr(at, 320))}});
  }
  h.send({{"type", "input_audio_buffer.commit"}});
  REQUIRE(h.backend.transcriptions.size() == 1);
  CHECK(h.backend.transcriptions[0].audio.size() == Approx(16000).margin(64));
  h.backend.transcript(0, "hi");
  h.send({{"type", "response.create"}});
  REQUIRE(h.backend.replies.size() == 1);
  h.backend.replies[0].sink.speech("Hello.", speech_pcm(1.0));
  h.backend.replies[0].sink.done({});
  h.pump();
  std::size_t bytes = 0;
  for (const auto& e : h.events) {
    if (e["type"] == "response.audio.delta")
      bytes += base64_decode(e["delta"].get<std::string>())->size();
  }
  CHECK(bytes == Approx(8000).margin(8));
  CHECK(h.last("response.created")["response"]["output_audio_format"] == "g711_alaw");
}

}  // namespace talkserve::pipeline::realtime
