#include "live_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "frame_pipeline.hpp"
#include "live_messages.hpp"
#include "talkserve/media/resampler.hpp"
#include "talkserve/net/api_error.hpp"
#include "talkserve/net/websocket_session.hpp"
#include "talkserve/speech/sentence_splitter.hpp"
#include "talkserve/speech/vad.hpp"

namespace talkserve::pipeline {
namespace {

namespace asio = boost::asio;
using net::ApiError;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using Strand = asio::strand<asio::thread_pool::executor_type>;

// Binary frame kinds and header layout (docs/protocol.md).
enum class FrameKind : std::uint8_t { audio = 1, video_init = 2, video_segment = 3 };
constexpr std::size_t kHeaderBytes = 12;

void put_u32(std::string& out, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::string binary_frame(FrameKind kind, bool last, std::uint32_t response, std::uint32_t seq,
                         std::string_view payload) {
  std::string out(kHeaderBytes, '\0');
  out[0] = static_cast<char>(kind);
  out[1] = static_cast<char>(last ? 1 : 0);
  put_u32(out, 4, response);
  put_u32(out, 8, seq);
  out.append(payload);
  return out;
}

std::string pcm16(std::span<const float> samples) {
  std::string out(samples.size() * 2, '\0');
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const float c = std::clamp(samples[i], -1.0f, 1.0f);
    const auto v = static_cast<std::int16_t>(std::lrint(c * 32767.0f));
    out[2 * i] = static_cast<char>(v & 0xff);
    out[2 * i + 1] = static_cast<char>((v >> 8) & 0xff);
  }
  return out;
}


double ms_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

// Where a response sends what it produces. Both calls are thread-safe and never block.
struct ResponseOutput {
  std::function<void(const json&)> event;
  std::function<void(std::string)> binary;
  std::function<void(std::uint32_t response_id)> finished;  // done, failed or cancelled
};

// One response: LLM -> sentences -> TTS -> audio frames + frame pipeline -> video segments.
// Stage callbacks are serialised on `strand_`; `mutex_` guards the state against cancel(),
// which comes from the session's strand. Nothing is sent once `over_` is set.
class LiveResponse : public std::enable_shared_from_this<LiveResponse> {
 public:
  LiveResponse(Stages& s, asio::thread_pool& control, asio::thread_pool& render, std::uint32_t id,
               Session session, std::string input_kind, std::string text, std::string voice,
               bool video, int priority, ResponseOutput out)
      : s_(s),
        render_(render),
        strand_(asio::make_strand(control)),
        id_(id),
        session_(std::move(session)),
        input_kind_(std::move(input_kind)),
        user_text_(std::move(text)),
        voice_(std::move(voice)),
        video_(video),
        priority_(priority),
        out_(std::move(out)),
        t0_(SteadyClock::now()) {}

  std::uint32_t id() const { return id_; }

  void start() {
    std::lock_guard lock(mutex_);
    out_.event(json{{"type", "response.started"}, {"response_id", id_}, {"input", input_kind_}});
    if (video_) {
      FramePipelineOptions fo;
      fo.fps = s_.cfg.fps;
      fo.crf = s_.cfg.video_crf;
      fo.preset = s_.cfg.stream_preset;
      fo.sample_rate = kOutputRate;
      std::weak_ptr<LiveResponse> weak = weak_from_this();
      pipeline_ = std::make_shared<FramePipeline>(
          render_, *s_.live_avatar, *s_.renderer, fo,
          [weak](FramePipeline::SegmentKind kind, std::string bytes, bool last) {
            if (auto self = weak.lock()) self->on_segment(kind, std::move(bytes), last);
          },
          [weak](const std::string& message) {
            if (auto self = weak.lock()) {
              asio::post(self->strand_, [self, message] { self->fail(ApiError(500, message)); });
            }
          });
    }
    auto self = shared_from_this();
    asio::post(strand_, [self] { self->ask_llm(); });
  }

  // Stops everything of this response that is queued or running; sends response.cancelled.
  void cancel(const std::string& reason) {
    std::optional<llm::RequestId> llm_id;
    std::vector<sched::RequestId> tts_ids;
    std::shared_ptr<FramePipeline> pipeline;
    {
      std::lock_guard lock(mutex_);
      if (over_) return;
      over_ = true;
      llm_id = llm_id_;
      tts_ids = tts_ids_;
      pipeline = pipeline_;
      s_.sessions->abort_turn(session_.id);
      out_.event(json{{"type", "response.cancelled"}, {"response_id", id_}, {"reason", reason}});
    }
    stop_work(llm_id, tts_ids, pipeline);
    out_.finished(id_);
  }

 private:
  void stop_work(std::optional<llm::RequestId> llm_id, const std::vector<sched::RequestId>& tts_ids,
                 const std::shared_ptr<FramePipeline>& pipeline) {
    if (llm_id) s_.chat->cancel(*llm_id);
    for (auto t : tts_ids) s_.tts->cancel(t);
    if (pipeline) pipeline->cancel();
  }

  void ask_llm() {  // on the strand
    std::lock_guard lock(mutex_);
    if (over_) return;
    llm_t0_ = SteadyClock::now();
    try {
      const auto messages = conversation_for(s_, session_.history, user_text_);
      auto self = shared_from_this();
      llm_id_ = s_.chat->chat(
          messages, reply_options(s_, priority_),
          [self](std::string delta) {
            asio::post(self->strand_, [self, d = std::move(delta)] { self->on_delta(d); });
          },
          [self](llm::ChatOutcome o) {
            asio::post(self->strand_, [self, o = std::move(o)] { self->on_reply_done(o); });
          });
    } catch (const llm::ChatRefused& e) {
      fail_locked(ApiError(e.status, std::string("LLM: ") + e.what(), {}, e.status == 503 ? "queue_full" : ""));
    } catch (const std::exception& e) {
      fail_locked(ApiError(500, std::string("LLM: ") + e.what()));
    }
  }

  void on_delta(const std::string& delta) {
    std::lock_guard lock(mutex_);
    if (over_) return;
    if (reply_.empty()) timings_["llm_first_token_ms"] = ms_since(llm_t0_);
    reply_ += delta;
    out_.event(json{{"type", "reply.delta"}, {"response_id", id_}, {"text", delta}});
    for (auto& sentence : splitter_.push(delta)) synthesise_locked(std::move(sentence));
  }

  void on_reply_done(const llm::ChatOutcome& o) {
    std::lock_guard lock(mutex_);
    if (over_) return;
    if (o.reason == llm::FinishReason::error || o.reason == llm::FinishReason::cancelled) {
      return fail_locked(ApiError(o.reason == llm::FinishReason::error ? (o.status ? o.status : 500) : 503, "LLM: " + o.message));
    }
    for (auto& sentence : splitter_.flush()) synthesise_locked(std::move(sentence));
    llm_done_ = true;
    timings_["llm_ms"] = ms_since(llm_t0_);
    out_.event(json{{"type", "reply.done"},
                    {"response_id", id_},
                    {"text", reply_},
                    {"finish_reason", llm::to_string(o.reason)}});
    if (sentences_ == 0) return fail_locked(ApiError(500, "the reply has nothing to say"));
    advance_locked();
  }

  void synthesise_locked(std::string sentence) {
    const std::size_t index = sentences_++;
    speech_.emplace_back();
    speech::TtsRequest r;
    r.text = std::move(sentence);
    r.voice = voice_;
    auto self = shared_from_this();
    auto id = s_.tts->synthesize(std::move(r), priority_,
                                 [self, index](sched::Expected<speech::TtsResult> res) {
                                   asio::post(self->strand_, [self, index, res = std::move(res)]() mutable {
                                     self->on_speech(index, std::move(res));
                                   });
                                 });
    if (!id) return fail_locked(ApiError(503, "speech synthesis queue: " + id.error().message, {}, "queue_full"));
    tts_ids_.push_back(*id);
  }

  void on_speech(std::size_t index, sched::Expected<speech::TtsResult> res) {
    std::lock_guard lock(mutex_);
    if (over_) return;
    if (!res) return fail_locked(ApiError(500, "speech synthesis: " + res.error().message));
    speech_[index] = std::move(*res);
    advance_locked();
  }

  // Sends the sentences whose speech is ready, in order: an audio frame each, and their audio
  // and phonemes into the frame pipeline. After the last sentence the pipeline is finished.
  void advance_locked() {
    while (next_ < speech_.size() && speech_[next_]) {
      speech::TtsResult& piece = *speech_[next_];
      if (!resampler_) resampler_.emplace(piece.sample_rate, kOutputRate);
      const bool last = llm_done_ && next_ + 1 == sentences_;
      std::vector<float> pcm = resampler_->push(piece.samples);
      if (last) {
        auto tail = resampler_->flush();
        pcm.insert(pcm.end(), tail.begin(), tail.end());
      }
      if (audio_seq_ == 0) timings_["first_audio_ms"] = ms_since(t0_);
      audio_samples_ += pcm.size();
      out_.binary(binary_frame(FrameKind::audio, last, id_, audio_seq_++, pcm16(pcm)));
      if (pipeline_) pipeline_->push_speech(std::move(pcm), std::move(piece.phonemes));
      piece = speech::TtsResult{};  // the audio now lives in the pipeline
      ++next_;
    }
    if (llm_done_ && next_ == sentences_ && !audio_finished_) {
      audio_finished_ = true;
      if (pipeline_) {
        pipeline_->finish();
      } else {
        complete_locked();
      }
    }
  }

  // From the pipeline's encode task (a pool thread), in order.
  void on_segment(FramePipeline::SegmentKind kind, std::string bytes, bool last) {
    std::lock_guard lock(mutex_);
    if (over_) return;
    if (!bytes.empty() || last) {
      const bool init = kind == FramePipeline::SegmentKind::init;
      if (!init && video_seq_ == 0) timings_["first_video_ms"] = ms_since(t0_);
      // The init segment is the only one of its kind: it carries the last flag.
      out_.binary(binary_frame(init ? FrameKind::video_init : FrameKind::video_segment, init || last, id_,
                               init ? 0 : video_seq_++, bytes));
    }
    if (last) complete_locked();
  }

  void complete_locked() {
    over_ = true;
    timings_["total_ms"] = ms_since(t0_);
    s_.sessions->end_turn(session_.id, TurnRecord{user_text_, reply_, voice_, s_.live_avatar->id});
    out_.event(json{{"type", "response.done"},
                    {"response_id", id_},
                    {"audio_seconds", static_cast<double>(audio_samples_) / kOutputRate},
                    {"timings", timings_}});
    auto self = shared_from_this();
    asio::post(strand_, [self] { self->out_.finished(self->id_); });
  }

  void fail(const ApiError& e) {
    std::lock_guard lock(mutex_);
    fail_locked(e);
  }

  // The response ends with an error event; the session goes on. Stage work is stopped from
  // the strand after the lock is released (their cancel callbacks take it).
  void fail_locked(const ApiError& e) {
    if (over_) return;
    over_ = true;
    s_.sessions->abort_turn(session_.id);
    out_.event(error_event(e, id_));
    auto self = shared_from_this();
    asio::post(strand_, [self, llm_id = llm_id_, tts_ids = tts_ids_, pipeline = pipeline_] {
      self->stop_work(llm_id, tts_ids, pipeline);
      self->out_.finished(self->id_);
    });
  }

  Stages& s_;
  asio::thread_pool& render_;
  Strand strand_;
  const std::uint32_t id_;
  Session session_;
  const std::string input_kind_;
  const std::string user_text_;
  const std::string voice_;
  const bool video_;
  const int priority_;
  ResponseOutput out_;
  const SteadyClock::time_point t0_;

  std::mutex mutex_;
  bool over_ = false;
  SteadyClock::time_point llm_t0_;
  std::optional<llm::RequestId> llm_id_;
  std::vector<sched::RequestId> tts_ids_;
  std::shared_ptr<FramePipeline> pipeline_;
  std::string reply_;
  speech::SentenceStream splitter_;
  std::size_t sentences_ = 0;
  std::vector<std::optional<speech::TtsResult>> speech_;
  std::size_t next_ = 0;  // the next sentence to send
  bool llm_done_ = false;
  bool audio_finished_ = false;
  std::optional<media::AudioResampler> resampler_;
  std::uint32_t audio_seq_ = 0;
  std::uint32_t video_seq_ = 0;
  std::size_t audio_samples_ = 0;
  json timings_ = json::object();
};

class LiveSession final : public net::WebSocketHandler,
                          public std::enable_shared_from_this<LiveSession> {
 public:
  LiveSession(Stages& s, asio::thread_pool& control, asio::thread_pool& render,
              const net::RequestContext& ctx)
      : s_(s),
        control_(control),
        render_(render),
        strand_(asio::make_strand(control)),
        priority_(ctx.priority),
        trace_id_(ctx.trace_id) {}

  void on_open(const std::shared_ptr<net::WebSocketSession>& ws) override {
    asio::post(strand_, [self = shared_from_this(), ws] { self->ws_ = ws; });
  }

  void on_message(const std::shared_ptr<net::WebSocketSession>& ws, std::string data,
                  bool binary) override {
    asio::post(strand_, [self = shared_from_this(), ws, data = std::move(data), binary]() mutable {
      if (!self->ws_) self->ws_ = ws;
      if (self->closing_) return;
      try {
        if (binary) {
          self->on_audio(data);
        } else {
          self->on_control(data);
        }
      } catch (const ProtocolError& e) {
        self->close_with(e.code, e.error);
      } catch (const std::exception& e) {
        spdlog::error("[{}] live session: {}", self->trace_id_, e.what());
        self->close_with(1011, ApiError(500, std::string("internal error: ") + e.what()));
      }
    });
  }

  void on_drain(const std::shared_ptr<net::WebSocketSession>&) override {
    asio::post(strand_, [self = shared_from_this()] {
      self->draining_ = true;
      if (!self->response_) self->close_quietly(kCloseGoingAway, "server shutting down");
    });
  }

  void on_close(const std::shared_ptr<net::WebSocketSession>&) override {
    asio::post(strand_, [self = shared_from_this()] {
      self->closing_ = true;
      if (self->response_) self->response_->cancel("client");
      self->response_.reset();
      for (auto& t : self->asr_tickets_) t->cancel();
      self->asr_tickets_.clear();
      self->ws_.reset();
    });
  }

 private:
  // ---- sending -------------------------------------------------------------------------
  void send_event(const json& event) { send(event_text(event), false); }
  void send(std::string bytes, bool binary) {
    auto ws = ws_;
    if (!ws) return;
    const auto r = binary ? ws->send_binary(std::move(bytes)) : ws->send_text(std::move(bytes));
    if (r == net::PushResult::full) {
      // A live stream cannot wait for a client that does not read.
      asio::post(strand_, [self = shared_from_this()] {
        self->close_quietly(kClosePolicy, "client too slow");
      });
    }
  }
  void close_with(std::uint16_t code, const ApiError& e) {
    send_event(error_event(e));
    close_quietly(code, e.what());
  }
  void close_quietly(std::uint16_t code, const std::string& reason) {
    if (closing_) return;
    closing_ = true;
    if (response_) response_->cancel("client");
    response_.reset();
    // A close reason is at most 123 bytes.
    if (ws_) ws_->close(code, reason.substr(0, 120));
  }

  // The response's output: thread-safe, sends through the WebSocket as long as it is open.
  ResponseOutput output_for() {
    std::weak_ptr<LiveSession> weak = weak_from_this();
    std::weak_ptr<net::WebSocketSession> ws = ws_;
    ResponseOutput out;
    out.event = [ws, weak](const json& e) {
      if (auto w = ws.lock()) {
        if (w->send_text(event_text(e)) == net::PushResult::full) slow_client(weak);
      }
    };
    out.binary = [ws, weak](std::string bytes) {
      if (auto w = ws.lock()) {
        if (w->send_binary(std::move(bytes)) == net::PushResult::full) slow_client(weak);
      }
    };
    out.finished = [weak](std::uint32_t id) {
      if (auto self = weak.lock()) {
        asio::post(self->strand_, [self, id] { self->on_response_finished(id); });
      }
    };
    return out;
  }
  static void slow_client(const std::weak_ptr<LiveSession>& weak) {
    if (auto self = weak.lock()) {
      asio::post(self->strand_, [self] { self->close_quietly(kClosePolicy, "client too slow"); });
    }
  }

  // ---- control frames ----------------------------------------------------------------------
  static ProtocolError policy(std::string message, std::string param = {}, std::string code = "protocol_error") {
    return ProtocolError{kClosePolicy, ApiError(400, std::move(message), std::move(param), std::move(code))};
  }

  void on_control(const std::string& data) {
    const ClientMessage msg = parse_client_message(data, started_);
    if (const auto* start = std::get_if<SessionStart>(&msg)) return start_session(*start);
    if (const auto* input = std::get_if<InputText>(&msg)) return start_response("text", input->text);
    if (std::holds_alternative<AudioCommit>(msg)) return commit_audio();
    if (response_) response_->cancel("client");  // response.cancel
  }

  void start_session(const SessionStart& start) {
    const std::string& session_id = start.session_id;
    voice_ = s_.cfg.voice;
    if (start.voice) {
      voice_ = *start.voice;
      if (!s_.tts->has_voice(voice_)) {
        throw policy("voice: '" + voice_ + "' is not a voice of " + s_.tts->backend().name(), "voice",
                     "unknown_voice");
      }
    }
    if (start.video) video_ = *start.video;
    // Creates the session (or checks the given one exists) without holding it: each response
    // takes it for its turn.
    std::string why;
    SessionStore::Refusal refusal{};
    auto session = s_.sessions->begin_turn(session_id, &why, &refusal);
    if (!session) {
      if (refusal == SessionStore::Refusal::busy) {
        throw ProtocolError{kClosePolicy, ApiError(409, why, "session_id", "session_busy")};
      }
      throw ProtocolError{kClosePolicy, ApiError(session_id.empty() ? 503 : 404, why, "session_id",
                                                 session_id.empty() ? "too_many_sessions" : "session_not_found")};
    }
    s_.sessions->abort_turn(session->id);
    // A session continued here (maybe started on another replica) keeps its voice.
    if (!start.voice && !session->voice.empty() && s_.tts->has_voice(session->voice)) voice_ = session->voice;
    session_id_ = session->id;
    started_ = true;
    const auto* vad = s_.asr ? s_.asr->vad_model() : nullptr;
    if (vad) vad_.emplace(*vad, s_.asr->vad_params());
    json video = nullptr;
    if (video_) {
      // The MIME type of the stream this avatar and encoder produce (no frames are encoded).
      media::VideoParams vp;
      vp.width = s_.live_avatar->portrait.width;
      vp.height = s_.live_avatar->portrait.height;
      vp.fps = s_.cfg.fps;
      vp.audio_sample_rate = kOutputRate;
      video = json{{"mime", media::FragmentedMp4Writer(vp).mime_type()}};
    }
    send_event(json{{"type", "session.started"},
                    {"session_id", session_id_},
                    {"voice", voice_.empty() ? json(nullptr) : json(voice_)},
                    {"trace_id", trace_id_},
                    {"avatar",
                     {{"id", s_.live_avatar->id},
                      {"width", s_.live_avatar->portrait.width},
                      {"height", s_.live_avatar->portrait.height},
                      {"fps", s_.cfg.fps}}},
                    {"audio", {{"format", "pcm16"}, {"sample_rate", kOutputRate}}},
                    {"video", video},
                    {"vad", s_.asr != nullptr}});
  }

  // ---- audio in ------------------------------------------------------------------------------
  void on_audio(const std::string& data) {
    if (!started_) throw policy("audio before session.start");
    const std::vector<float> samples = decode_pcm16_frame(data);  // 1007 for an odd length
    if (s_.asr == nullptr) throw policy("spoken input needs speech recognition (asr.enabled)", {}, "asr_disabled");
    const std::size_t n = samples.size();
    audio_.insert(audio_.end(), samples.begin(), samples.end());
    received_ += n;
    if (vad_) {
      for (const auto& ev : vad_->push(samples)) on_vad_event(ev);
    }
    const auto max_samples = static_cast<std::size_t>(s_.cfg.max_audio_seconds * speech::kAsrSampleRate);
    if (utterance_begin_) {
      // Speech that goes on too long is recognised in pieces.
      if (received_ - *utterance_begin_ >= max_samples) {
        recognise(*utterance_begin_, received_);
        utterance_begin_ = received_;
      }
    } else if (vad_) {
      // Outside speech keep only what a speech start may reach back to.
      const std::size_t keep = speech::kAsrSampleRate * 2;
      if (audio_.size() > keep) {
        const std::size_t drop = audio_.size() - keep;
        audio_.erase(audio_.begin(), audio_.begin() + static_cast<std::ptrdiff_t>(drop));
        audio_base_ += drop;
      }
    } else if (audio_.size() > max_samples) {
      audio_.clear();
      audio_base_ = received_;
      send_event(error_event(ApiError(413, "spoken input longer than talk.max_audio_seconds without input.audio.commit",
                                      {}, "audio_too_long")));
    }
  }

  void on_vad_event(const speech::VadStream::Event& ev) {
    const std::size_t at = vad_origin_ + ev.sample;
    const double audio_ms = at * 1000.0 / speech::kAsrSampleRate;
    if (ev.kind == speech::VadStream::Event::Kind::speech_start) {
      send_event(json{{"type", "vad.speech_start"}, {"audio_ms", audio_ms}});
      utterance_begin_ = std::max(at, audio_base_);
      if (response_) response_->cancel("barge_in");  // the user talks over the avatar
    } else {
      send_event(json{{"type", "vad.speech_end"}, {"audio_ms", audio_ms}});
      if (utterance_begin_) recognise(*utterance_begin_, std::min(at, received_));
      utterance_begin_.reset();
    }
  }

  void commit_audio() {
    if (s_.asr == nullptr) throw policy("spoken input needs speech recognition (asr.enabled)", {}, "asr_disabled");
    if (vad_) {
      for (const auto& ev : vad_->flush()) on_vad_event(ev);
      const bool had_speech = utterance_begin_.has_value();
      if (had_speech) recognise(*utterance_begin_, received_);
      utterance_begin_.reset();
      // The flushed detector has moved past the padded tail: start a fresh one here.
      vad_.emplace(*s_.asr->vad_model(), s_.asr->vad_params());
      vad_origin_ = received_;
      if (!had_speech && !recognised_since_commit_) {
        send_event(error_event(ApiError(400, "no speech was detected in the audio", {}, "no_speech")));
      }
    } else if (received_ > audio_base_) {
      recognise(audio_base_, received_);
    } else {
      send_event(error_event(ApiError(400, "no audio was received before input.audio.commit", {}, "no_speech")));
    }
    recognised_since_commit_ = false;
  }

  // Sends samples [begin, end) of the stream to the ASR stage; the transcript starts a response.
  void recognise(std::size_t begin, std::size_t end) {
    begin = std::max(begin, audio_base_);
    end = std::min(end, received_);
    recognised_since_commit_ = true;
    if (end <= begin) return;
    auto clip = std::make_shared<const std::vector<float>>(
        audio_.begin() + static_cast<std::ptrdiff_t>(begin - audio_base_),
        audio_.begin() + static_cast<std::ptrdiff_t>(end - audio_base_));
    // Everything before `end` is done with.
    const std::size_t drop = end - audio_base_;
    audio_.erase(audio_.begin(), audio_.begin() + static_cast<std::ptrdiff_t>(drop));
    audio_base_ = end;
    std::vector<speech::SpeechRegion> whole{{0, clip->size()}};
    std::weak_ptr<LiveSession> weak = weak_from_this();
    auto ticket = s_.asr->transcribe(clip, std::move(whole), "", priority_,
                                     [weak](sched::Expected<speech::Transcript> r) {
                                       if (auto self = weak.lock()) {
                                         asio::post(self->strand_, [self, r = std::move(r)]() mutable {
                                           self->on_transcript(std::move(r));
                                         });
                                       }
                                     });
    if (!ticket) {
      send_event(error_event(asr_stage_error(ticket.error())));
      return;
    }
    asr_tickets_.push_back(*ticket);
  }

  void on_transcript(sched::Expected<speech::Transcript> r) {
    if (closing_) return;
    if (!asr_tickets_.empty()) asr_tickets_.erase(asr_tickets_.begin());
    if (!r) {
      send_event(error_event(asr_stage_error(r.error())));
      return;
    }
    if (r->text.empty()) {
      send_event(error_event(ApiError(400, "no speech was recognised in the utterance", {}, "no_speech")));
      return;
    }
    start_response("audio", r->text);
  }

  // ---- responses ---------------------------------------------------------------------------
  void start_response(const std::string& input_kind, std::string text) {
    if (draining_) {
      send_event(error_event(ApiError(503, "the server is shutting down", {}, "draining")));
      return;
    }
    if (response_) response_->cancel("new_input");
    response_.reset();
    const std::uint32_t id = ++responses_;
    if (input_kind == "audio") send_event(json{{"type", "transcript.final"}, {"response_id", id}, {"text", text}});
    std::string why;
    auto session = s_.sessions->begin_turn(session_id_, &why);
    if (!session) {
      // Expired, evicted, or in a turn of POST /v1/talk.
      send_event(error_event(ApiError(409, why, "session_id", "session_busy"), id));
      return;
    }
    response_ = std::make_shared<LiveResponse>(s_, control_, render_, id, std::move(*session), input_kind,
                                               std::move(text), voice_, video_, priority_, output_for());
    response_->start();
  }

  void on_response_finished(std::uint32_t id) {
    if (response_ && response_->id() == id) response_.reset();
    if (draining_ && !response_) close_quietly(kCloseGoingAway, "server shutting down");
  }

  Stages& s_;
  asio::thread_pool& control_;
  asio::thread_pool& render_;
  Strand strand_;
  const int priority_;
  const std::string trace_id_;

  // Strand state.
  std::shared_ptr<net::WebSocketSession> ws_;
  bool started_ = false;
  bool closing_ = false;
  bool draining_ = false;
  std::string session_id_;
  std::string voice_;
  bool video_ = true;
  std::optional<speech::VadStream> vad_;
  std::size_t vad_origin_ = 0;  // stream position where the current VadStream began
  std::vector<float> audio_;    // received audio from stream position audio_base_
  std::size_t audio_base_ = 0;
  std::size_t received_ = 0;    // samples received so far
  std::optional<std::size_t> utterance_begin_;
  bool recognised_since_commit_ = false;
  std::vector<std::shared_ptr<speech::AsrTicket>> asr_tickets_;
  std::shared_ptr<LiveResponse> response_;
  std::uint32_t responses_ = 0;
};

}  // namespace

std::shared_ptr<net::WebSocketHandler> make_live_session(Stages& stages, asio::thread_pool& control,
                                                         asio::thread_pool& render,
                                                         const net::RequestContext& context) {
  return std::make_shared<LiveSession>(stages, control, render, context);
}

}  // namespace talkserve::pipeline
