#include "realtime_backend.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "frame_pipeline.hpp"
#include "talkserve/media/resampler.hpp"
#include "talkserve/speech/sentence_splitter.hpp"
#include "talkserve/speech/vad.hpp"

namespace talkserve::pipeline {
namespace {

namespace asio = boost::asio;
using realtime::EventError;
using realtime::ReplyOutcome;
using Strand = asio::strand<asio::thread_pool::executor_type>;

class SileroDetector final : public realtime::VoiceDetector {
 public:
  SileroDetector(const speech::VadModel& model, speech::VadParams params)
      : stream_(model, params) {}
  std::vector<realtime::VadEvent> push(std::span<const float> samples) override {
    std::vector<realtime::VadEvent> out;
    for (const auto& ev : stream_.push(samples)) {
      out.push_back({ev.kind == speech::VadStream::Event::Kind::speech_start, ev.sample});
    }
    return out;
  }

 private:
  speech::VadStream stream_;
};

class AsrHandle final : public realtime::ReplyHandle {
 public:
  explicit AsrHandle(std::shared_ptr<speech::AsrTicket> t) : ticket_(std::move(t)) {}
  void cancel() override {
    if (ticket_) ticket_->cancel();
  }
  int prompt_tokens() const override { return 0; }

 private:
  std::shared_ptr<speech::AsrTicket> ticket_;
};

// One reply: LLM -> sentences -> TTS -> speech (and the frame pipeline -> video segments).
// Stage callbacks are serialised on `strand_`; `mutex_` guards the state against cancel().
// Nothing reaches the sink once `over_` is set.
class StagesReply final : public realtime::ReplyHandle,
                          public std::enable_shared_from_this<StagesReply> {
 public:
  StagesReply(Stages& s, asio::thread_pool& control, asio::thread_pool& render,
              realtime::ReplyRequest req, realtime::ReplySink sink, int priority)
      : s_(s),
        render_(render),
        strand_(asio::make_strand(control)),
        req_(std::move(req)),
        sink_(std::move(sink)),
        priority_(priority) {}

  // Throws EventError when the LLM refuses the conversation.
  void start() {
    std::vector<llm::ChatMessage> messages;
    const std::string& system =
        req_.instructions.empty() ? s_.cfg.system_prompt : req_.instructions;
    if (!system.empty()) messages.push_back({"system", system});
    for (const auto& turn : req_.conversation) messages.push_back({turn.role, turn.text});
    llm::ChatOptions opts = reply_options(s_, priority_);
    if (req_.max_tokens > 0) opts.max_tokens = req_.max_tokens;
    if (req_.temperature) opts.temperature = static_cast<float>(*req_.temperature);
    opts.seed = opts.temperature == 0.0f ? std::optional<std::uint64_t>(0) : std::nullopt;
    // The oldest turns go while the reply would not fit; the newest message always stays.
    const std::size_t first = system.empty() ? 0 : 1;
    while (messages.size() > first + 1 &&
           s_.chat->count_prompt_tokens(messages) + opts.max_tokens > s_.chat->context_length()) {
      messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first));
    }
    prompt_tokens_ = s_.chat->count_prompt_tokens(messages);
    if (req_.audio && req_.video) {
      FramePipelineOptions fo;
      fo.fps = s_.cfg.fps;
      fo.crf = s_.cfg.video_crf;
      fo.preset = s_.cfg.stream_preset;
      fo.sample_rate = kOutputRate;
      std::weak_ptr<StagesReply> weak = weak_from_this();
      pipeline_ = std::make_shared<FramePipeline>(
          render_, *s_.live_avatar, *s_.renderer, fo,
          [weak](FramePipeline::SegmentKind kind, std::string bytes, bool last) {
            if (auto self = weak.lock())
              self->on_segment(kind == FramePipeline::SegmentKind::init, std::move(bytes), last);
          },
          [weak](const std::string& message) {
            if (auto self = weak.lock()) {
              asio::post(self->strand_, [self, message] {
                std::lock_guard lock(self->mutex_);
                self->fail_locked("render_failed", message);
              });
            }
          });
    }
    std::lock_guard lock(mutex_);
    auto self = shared_from_this();
    try {
      llm_id_ = s_.chat->chat(
          messages, opts,
          [self](std::string delta) {
            asio::post(self->strand_, [self, d = std::move(delta)] { self->on_delta(d); });
          },
          [self](llm::ChatOutcome o) {
            asio::post(self->strand_, [self, o = std::move(o)] { self->on_reply_done(o); });
          });
    } catch (const llm::ChatRefused& e) {
      over_ = true;
      throw EventError(std::string("LLM: ") + e.what(),
                       e.status == 503 ? "queue_full" : "context_length_exceeded", {}, {},
                       e.status == 503 ? "server_error" : "invalid_request_error");
    }
  }

  void cancel() override {
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
    }
    stop_work(llm_id, tts_ids, pipeline);
  }

  int prompt_tokens() const override { return prompt_tokens_; }

 private:
  void stop_work(std::optional<llm::RequestId> llm_id, const std::vector<sched::RequestId>& tts_ids,
                 const std::shared_ptr<FramePipeline>& pipeline) {
    if (llm_id) s_.chat->cancel(*llm_id);
    for (auto t : tts_ids) s_.tts->cancel(t);
    if (pipeline) pipeline->cancel();
  }

  void on_delta(const std::string& delta) {
    std::lock_guard lock(mutex_);
    if (over_) return;
    sink_.text(delta);
    if (!req_.audio) return;
    for (auto& sentence : splitter_.push(delta)) synthesise_locked(std::move(sentence));
  }

  void on_reply_done(const llm::ChatOutcome& o) {
    std::lock_guard lock(mutex_);
    if (over_) return;
    if (o.reason == llm::FinishReason::error || o.reason == llm::FinishReason::cancelled) {
      return fail_locked(o.reason == llm::FinishReason::error ? "llm_error" : "llm_cancelled",
                         "LLM: " + o.message);
    }
    outcome_.status = o.reason == llm::FinishReason::length ? ReplyOutcome::Status::incomplete
                                                            : ReplyOutcome::Status::completed;
    outcome_.prompt_tokens = o.usage.prompt_tokens;
    outcome_.completion_tokens = o.usage.completion_tokens;
    outcome_.cached_tokens = o.usage.cached_prompt_tokens;
    llm_done_ = true;
    if (req_.audio) {
      for (auto& sentence : splitter_.flush()) synthesise_locked(std::move(sentence));
    }
    advance_locked();
  }

  void synthesise_locked(std::string sentence) {
    const std::size_t index = sentences_.size();
    sentences_.push_back(sentence);
    speech_.emplace_back();
    speech::TtsRequest r;
    r.text = std::move(sentence);
    r.voice = req_.voice.empty() ? s_.cfg.voice : req_.voice;
    auto self = shared_from_this();
    auto id = s_.tts->synthesize(
        std::move(r), priority_, [self, index](sched::Expected<speech::TtsResult> res) {
          asio::post(self->strand_, [self, index, res = std::move(res)]() mutable {
            self->on_speech(index, std::move(res));
          });
        });
    if (!id) return fail_locked("queue_full", "speech synthesis queue: " + id.error().message);
    tts_ids_.push_back(*id);
  }

  void on_speech(std::size_t index, sched::Expected<speech::TtsResult> res) {
    std::lock_guard lock(mutex_);
    if (over_) return;
    if (!res) return fail_locked("tts_failed", "speech synthesis: " + res.error().message);
    speech_[index] = std::move(*res);
    advance_locked();
  }

  // Speaks the sentences whose audio is ready, in order; after the last one the reply is done
  // (with video: once the frame pipeline has delivered its last segment).
  void advance_locked() {
    while (next_ < speech_.size() && speech_[next_]) {
      speech::TtsResult& piece = *speech_[next_];
      if (!resampler_) resampler_.emplace(piece.sample_rate, kOutputRate);
      const bool last = llm_done_ && next_ + 1 == sentences_.size();
      std::vector<float> pcm = resampler_->push(piece.samples);
      if (last) {
        auto tail = resampler_->flush();
        pcm.insert(pcm.end(), tail.begin(), tail.end());
      }
      sink_.speech(sentences_[next_], pcm);
      if (pipeline_) pipeline_->push_speech(std::move(pcm), std::move(piece.phonemes));
      piece = speech::TtsResult{};
      ++next_;
    }
    if (!llm_done_ || next_ != sentences_.size() || finishing_) return;
    finishing_ = true;
    if (pipeline_ && next_ > 0) {
      pipeline_->finish();
    } else {
      if (pipeline_) pipeline_->cancel();  // nothing was spoken: no video either
      over_ = true;
      sink_.done(outcome_);
    }
  }

  // From the pipeline's encode task (a pool thread), in order.
  void on_segment(bool init, std::string bytes, bool last) {
    std::lock_guard lock(mutex_);
    if (over_) return;
    sink_.video(init, std::move(bytes), last && !init);
    if (last && !init) {
      over_ = true;
      sink_.done(outcome_);
    }
  }

  void fail_locked(const std::string& code, const std::string& message) {
    if (over_) return;
    over_ = true;
    ReplyOutcome o;
    o.status = ReplyOutcome::Status::failed;
    o.error_code = code;
    o.error_message = message;
    o.prompt_tokens = prompt_tokens_;
    sink_.done(o);
    auto self = shared_from_this();
    asio::post(strand_, [self, llm_id = llm_id_, tts_ids = tts_ids_, pipeline = pipeline_] {
      self->stop_work(llm_id, tts_ids, pipeline);
    });
  }

  Stages& s_;
  asio::thread_pool& render_;
  Strand strand_;
  const realtime::ReplyRequest req_;
  realtime::ReplySink sink_;
  const int priority_;
  int prompt_tokens_ = 0;

  std::mutex mutex_;
  bool over_ = false;
  bool llm_done_ = false;
  bool finishing_ = false;
  ReplyOutcome outcome_;
  std::optional<llm::RequestId> llm_id_;
  std::vector<sched::RequestId> tts_ids_;
  std::shared_ptr<FramePipeline> pipeline_;
  speech::SentenceStream splitter_;
  std::vector<std::string> sentences_;
  std::vector<std::optional<speech::TtsResult>> speech_;
  std::size_t next_ = 0;
  std::optional<media::AudioResampler> resampler_;
};

class StagesBackend final : public realtime::RealtimeBackend {
 public:
  StagesBackend(Stages& s, asio::thread_pool& control, asio::thread_pool& render, int priority)
      : s_(s), control_(control), render_(render), priority_(priority) {}

  std::string model_name() const override { return s_.chat->model_name(); }
  bool has_voice(const std::string& voice) const override { return s_.tts->has_voice(voice); }
  bool can_transcribe() const override { return s_.asr != nullptr; }

  std::unique_ptr<realtime::VoiceDetector> voice_detector(
      const realtime::TurnDetection& td) override {
    if (s_.asr == nullptr || s_.asr->vad_model() == nullptr) return nullptr;
    speech::VadParams p = s_.asr->vad_params();
    p.threshold = static_cast<float>(std::clamp(td.threshold, 0.05, 0.99));
    p.neg_threshold = std::max(0.01f, p.threshold - 0.15f);
    p.min_silence_ms = std::max(td.silence_duration_ms, 50);
    p.speech_pad_ms = td.prefix_padding_ms;
    try {
      p.validate();
    } catch (const std::invalid_argument&) {
      p = s_.asr->vad_params();
    }
    return std::make_unique<SileroDetector>(*s_.asr->vad_model(), p);
  }

  std::shared_ptr<realtime::ReplyHandle> transcribe(
      std::vector<float> audio, std::function<void(realtime::TranscriptResult)> done) override {
    auto clip = std::make_shared<const std::vector<float>>(std::move(audio));
    std::vector<speech::SpeechRegion> whole{{0, clip->size()}};
    auto ticket = s_.asr->transcribe(
        clip, std::move(whole), "", priority_, [done](sched::Expected<speech::Transcript> r) {
          if (!r) {
            const net::ApiError e = asr_stage_error(r.error());
            done({false, {}, e.code.empty() ? "asr_failed" : e.code, e.what()});
            return;
          }
          done({true, r->text, {}, {}});
        });
    if (!ticket) {
      const net::ApiError e = asr_stage_error(ticket.error());
      done({false, {}, e.code.empty() ? "asr_failed" : e.code, e.what()});
      return std::make_shared<AsrHandle>(nullptr);
    }
    return std::make_shared<AsrHandle>(*ticket);
  }

  std::shared_ptr<realtime::ReplyHandle> reply(realtime::ReplyRequest request,
                                               realtime::ReplySink sink) override {
    auto r = std::make_shared<StagesReply>(s_, control_, render_, std::move(request),
                                           std::move(sink), priority_);
    r->start();
    return r;
  }

 private:
  Stages& s_;
  asio::thread_pool& control_;
  asio::thread_pool& render_;
  const int priority_;
};

}  // namespace

std::unique_ptr<realtime::RealtimeBackend> make_stages_realtime_backend(Stages& stages,
                                                                        asio::thread_pool& control,
                                                                        asio::thread_pool& render,
                                                                        int priority) {
  return std::make_unique<StagesBackend>(stages, control, render, priority);
}

}  // namespace talkserve::pipeline
