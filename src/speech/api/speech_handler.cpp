#include "speech_handler.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <nlohmann/json.hpp>

#include <deque>
#include <mutex>
#include <optional>

#include "media_errors.hpp"
#include "talkserve/media/audio.hpp"
#include "talkserve/media/resampler.hpp"
#include "talkserve/net/api_error.hpp"
#include "talkserve/net/stream_writer.hpp"
#include "talkserve/obs/log.hpp"
#include "talkserve/speech/sentence_splitter.hpp"

namespace talkserve::speech::api {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using net::ApiError;
using nlohmann::json;

bool is_openai_tts_model(std::string_view m) {
  return m == "tts-1" || m == "tts-1-hd" || m == "gpt-4o-mini-tts";
}

struct SpeechRequest {
  TtsRequest tts;  // text, voice, speed
  media::AudioFormat format = media::AudioFormat::mp3;
  bool sse = false;
};

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

SpeechRequest parse(const std::string& body_text, const TtsStage& stage,
                    const SpeechLimits& limits) {
  json body;
  try {
    body = json::parse(body_text);
  } catch (const json::exception& e) {
    throw ApiError(400, std::string("request body is not valid JSON: ") + e.what());
  }
  if (!body.is_object()) throw ApiError(400, "request body must be a JSON object");
  auto string_field = [&](const char* key) -> std::optional<std::string> {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) throw ApiError(400, std::string(key) + ": must be a string", key);
    return it->get<std::string>();
  };
  SpeechRequest out;
  if (auto model = string_field("model");
      model && !model->empty() && *model != stage.backend().name() && !is_openai_tts_model(*model)) {
    throw ApiError(400, "model: '" + *model + "' is not served here (use '" +
                            stage.backend().name() + "' or 'tts-1')",
                   "model", "model_not_found");
  }
  auto input = string_field("input");
  if (!input) throw ApiError(400, "input: is required", "input");
  if (input->find_first_not_of(" \t\r\n") == std::string::npos) {
    throw ApiError(400, "input: must not be empty", "input");
  }
  if (utf8_length(*input) > limits.max_input_chars) {
    throw ApiError(400, "input: longer than " + std::to_string(limits.max_input_chars) +
                            " characters",
                   "input", "string_above_max_length");
  }
  out.tts.text = std::move(*input);
  out.tts.voice = string_field("voice").value_or(limits.default_voice);
  if (!stage.has_voice(out.tts.voice)) {
    throw ApiError(400, "voice: '" + out.tts.voice + "' is not a voice of " +
                            stage.backend().name() + " (GET /v1/audio/voices lists them)",
                   "voice", "unknown_voice");
  }
  if (auto f = string_field("response_format")) {
    auto parsed = media::parse_audio_format(*f);
    if (!parsed) {
      throw ApiError(400, "response_format: must be mp3, opus, aac, flac, wav or pcm",
                     "response_format");
    }
    out.format = *parsed;
  }
  if (auto it = body.find("speed"); it != body.end() && !it->is_null()) {
    if (!it->is_number()) throw ApiError(400, "speed: must be a number", "speed");
    out.tts.speed = it->get<double>();
    if (!(out.tts.speed >= 0.25 && out.tts.speed <= 4.0)) {
      throw ApiError(400, "speed: must be between 0.25 and 4.0", "speed");
    }
  }
  if (auto sf = string_field("stream_format")) {
    if (*sf != "audio" && *sf != "sse") {
      throw ApiError(400, "stream_format: must be audio or sse", "stream_format");
    }
    out.sse = *sf == "sse";
  }
  (void)string_field("instructions");  // accepted; the backends take no style prompt
  return out;
}

std::string base64(std::string_view bytes) {
  namespace b64 = boost::beast::detail::base64;
  std::string out(b64::encoded_size(bytes.size()), '\0');
  out.resize(b64::encode(out.data(), bytes.data(), bytes.size()));
  return out;
}

// One reply being synthesised sentence by sentence. Sentence i+1 is queued when sentence i
// comes back (so concurrent replies interleave), and only while the client keeps up: when the
// writer is full, the next sentence waits for its on_drain. Resampling and encoding run on a
// strand of the media pool, in sentence order.
class SpeechStream : public std::enable_shared_from_this<SpeechStream> {
 public:
  SpeechStream(TtsStage& stage, asio::thread_pool& pool, SpeechRequest req,
               std::vector<std::string> sentences, int out_rate, int priority,
               std::string trace_id)
      : stage_(stage),
        strand_(asio::make_strand(pool)),
        req_(std::move(req)),
        sentences_(std::move(sentences)),
        out_rate_(out_rate),
        priority_(priority),
        log_(std::move(trace_id)) {}

  // Queues the first sentence; on refusal nothing was sent yet and the caller answers 503.
  sched::Expected<sched::RequestId> start() { return submit(0); }

  // Attaches the response stream (after start() succeeded).
  void attach(std::shared_ptr<net::StreamWriter> writer) {
    std::weak_ptr<SpeechStream> weak = weak_from_this();
    writer->set_on_drain([weak] {
      if (auto self = weak.lock()) asio::post(self->strand_, [self] { self->flush(); });
    });
    writer->set_on_disconnect([weak] {
      if (auto self = weak.lock()) self->cancel();
    });
    asio::post(strand_, [self = shared_from_this(), writer = std::move(writer)]() mutable {
      self->writer_ = std::move(writer);
      if (self->pending_abort_) return self->writer_->abort();
      self->flush();
    });
  }

  void cancel() {
    std::optional<sched::RequestId> id;
    {
      std::lock_guard lock(mutex_);
      cancelled_ = true;
      id = running_;
    }
    if (id) stage_.cancel(*id);
  }

 private:
  sched::Expected<sched::RequestId> submit(std::size_t index) {
    TtsRequest r = req_.tts;
    r.text = sentences_[index];
    std::lock_guard lock(mutex_);
    if (cancelled_) return sched::ExecError{sched::ExecErrc::cancelled, "cancelled"};
    auto id = stage_.synthesize(std::move(r), priority_,
                                [self = shared_from_this(), index](sched::Expected<TtsResult> res) {
                                  asio::post(self->strand_, [self, index, res = std::move(res)]() mutable {
                                    self->on_sentence(index, std::move(res));
                                  });
                                });
    if (id) running_ = *id;
    return id;
  }

  // On the strand.
  void on_sentence(std::size_t index, sched::Expected<TtsResult> res) {
    {
      std::lock_guard lock(mutex_);
      running_.reset();
      if (cancelled_) return;
    }
    if (!res) return fail("speech synthesis failed: " + res.error().message);
    try {
      TtsResult& r = *res;
      if (!resampler_) {
        resampler_.emplace(r.sample_rate, out_rate_);
        encoder_.emplace(req_.format, out_rate_);
      }
      audio_seconds_ += r.samples.size() / static_cast<double>(r.sample_rate);
      std::vector<float> pcm = resampler_->push(r.samples);
      const bool last = index + 1 == sentences_.size();
      if (last) {
        auto tail = resampler_->flush();
        pcm.insert(pcm.end(), tail.begin(), tail.end());
      }
      std::string bytes = encoder_->push(pcm);
      if (last) bytes += encoder_->finish();
      enqueue_output(std::move(bytes));
      if (last) {
        done_ = true;
        if (req_.sse) {
          json usage{{"input_tokens", utf8_length(req_.tts.text)},
                     {"output_tokens", static_cast<long long>(audio_seconds_ * 1000)}};
          usage["total_tokens"] = usage["input_tokens"].get<long long>() +
                                  usage["output_tokens"].get<long long>();
          outbox_.push_back(net::sse_event(json{{"type", "speech.audio.done"}, {"usage", usage}}.dump()));
        }
        log_.debug("tts: {} sentences, {:.2f} s of audio", sentences_.size(), audio_seconds_);
      }
    } catch (const std::exception& e) {
      return fail(std::string("audio encoding failed: ") + e.what());
    }
    next_ = index + 1;
    flush();
  }

  void enqueue_output(std::string bytes) {
    if (bytes.empty()) return;
    if (req_.sse) {
      outbox_.push_back(net::sse_event(
          json{{"type", "speech.audio.delta"}, {"audio", base64(bytes)}}.dump()));
    } else {
      outbox_.push_back(std::move(bytes));
    }
  }

  // On the strand: hands queued output to the writer, then queues the next sentence if the
  // client is keeping up.
  void flush() {
    if (!writer_) return;
    while (!outbox_.empty()) {
      const auto r = writer_->push(outbox_.front());
      if (r == net::PushResult::full) return;  // on_drain calls flush() again
      if (r == net::PushResult::closed) return cancel();
      outbox_.pop_front();
    }
    if (done_ || failed_) {
      if (!closed_) {
        closed_ = true;
        writer_->close();
      }
      return;
    }
    if (next_ > submitted_) {
      submitted_ = next_;
      if (auto id = submit(next_); !id && id.error().code != sched::ExecErrc::cancelled) {
        fail("speech synthesis could not continue: " + id.error().message);
      }
    }
  }

  void fail(const std::string& why) {
    log_.warn("tts: {}", why);
    failed_ = true;
    if (req_.sse) {
      outbox_.push_back(net::sse_event(net::error_json(ApiError(500, why))));
      flush();
    } else if (writer_) {
      // Audio bytes cannot carry an error: end the response without its last chunk, so the
      // client sees a truncated transfer rather than a short but valid file.
      writer_->abort();
    } else {
      pending_abort_ = true;
    }
  }

  TtsStage& stage_;
  asio::strand<asio::thread_pool::executor_type> strand_;
  SpeechRequest req_;
  std::vector<std::string> sentences_;
  int out_rate_;
  int priority_;
  obs::RequestLogger log_;

  std::mutex mutex_;  // cancelled_ and running_ (touched from the I/O and TTS threads)
  bool cancelled_ = false;
  std::optional<sched::RequestId> running_;

  // Strand-only state.
  std::shared_ptr<net::StreamWriter> writer_;
  std::optional<media::AudioResampler> resampler_;
  std::optional<media::AudioEncoder> encoder_;
  std::deque<std::string> outbox_;
  std::size_t next_ = 0;       // the sentence to queue next once output has drained
  std::size_t submitted_ = 0;  // the last sentence queued
  double audio_seconds_ = 0;
  bool done_ = false;
  bool failed_ = false;
  bool closed_ = false;
  bool pending_abort_ = false;
};

}  // namespace

asio::awaitable<void> SpeechHandler::handle(net::HttpExchange& ex) {
  const unsigned version = ex.request().version();
  SpeechRequest req;
  std::vector<std::string> sentences;
  std::optional<ApiError> error;
  try {
    req = parse(ex.request().body(), stage_, limits_);
    sentences = split_sentences(req.tts.text);
    if (sentences.empty()) throw ApiError(400, "input: has nothing to say", "input");
  } catch (const ApiError& e) {
    error = e;
  }
  if (error) co_return co_await ex.respond(net::error_response(*error, version));
  const auto format = req.format;
  const bool sse = req.sse;
  auto stream = std::make_shared<SpeechStream>(stage_, media_pool_, std::move(req),
                                               std::move(sentences), limits_.output_sample_rate,
                                               ex.context().priority, ex.context().trace_id);
  if (auto first = stream->start(); !first) {
    const sched::ExecErrc code = first.error().code;
    ApiError e = code == sched::ExecErrc::queue_full
                     ? ApiError(503, "the speech synthesis queue is full; retry later", {},
                                "queue_full")
                 : code == sched::ExecErrc::overloaded
                     ? ApiError(503,
                                "speech synthesis is overloaded (" + first.error().message +
                                    "); retry later",
                                {}, "overloaded")
                     : ApiError(503, "the server is shutting down", {}, "shutting_down");
    co_return co_await ex.respond(net::error_response(e, version));
  }
  // Named, not a temporary inside co_await (GCC 12 destroys such temporaries twice).
  std::string content_type = sse ? "text/event-stream" : std::string(media::content_type(format));
  auto writer = co_await ex.start_stream(std::move(content_type));
  stream->attach(std::move(writer));
}

}  // namespace talkserve::speech::api
