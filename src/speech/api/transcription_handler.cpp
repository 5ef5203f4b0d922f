#include "transcription_handler.hpp"

#include "talkserve/obs/executor_metrics.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <optional>

#include "media_errors.hpp"
#include "talkserve/media/audio.hpp"
#include "talkserve/net/api_error.hpp"
#include "talkserve/net/async_bridge.hpp"
#include "talkserve/net/multipart.hpp"
#include "talkserve/obs/log.hpp"
#include "transcription_format.hpp"

namespace talkserve::speech::api {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using net::ApiError;

// Model names OpenAI clients send; all of them mean "the configured ASR backend".
constexpr std::size_t kMaxPromptBytes = 4096;  // the decoder keeps its last 223 tokens anyway

bool is_openai_asr_model(std::string_view m) {
  return m == "whisper-1" || m == "gpt-4o-transcribe" || m == "gpt-4o-mini-transcribe";
}

struct TranscriptionRequest {
  std::string_view file;
  std::string filename;
  std::string language;  // ISO 639-1, lower case; "" = backend default
  std::string prompt;    // text the speech follows (Whisper: the decoder's previous-text prompt)
  TranscriptionFormat format = TranscriptionFormat::json;
  bool words = false;
  bool segments = true;
};

TranscriptionRequest parse(const net::Request& req, const AsrBackend& backend) {
  auto form = net::form_data_of(req);
  if (!form) {
    throw ApiError(400, "Content-Type must be multipart/form-data (got '" +
                            std::string(req[http::field::content_type]) + "')");
  }
  const std::vector<net::FormPart>& parts = *form;
  TranscriptionRequest out;
  bool have_file = false;
  std::vector<std::string> granularities;
  std::string model, format = "json";
  for (const net::FormPart& p : parts) {
    if (p.name == "file") {
      if (have_file) throw ApiError(400, "file: only one file per request", "file");
      have_file = true;
      out.file = p.data;
      out.filename = p.filename.value_or("");
    } else if (p.name == "model") {
      model = std::string(p.data);
    } else if (p.name == "language") {
      out.language = std::string(p.data);
    } else if (p.name == "prompt") {
      if (p.data.size() > kMaxPromptBytes) {
        throw ApiError(400, "prompt: longer than " + std::to_string(kMaxPromptBytes) + " bytes", "prompt");
      }
      out.prompt = std::string(p.data);
    } else if (p.name == "response_format") {
      format = std::string(p.data);
    } else if (p.name == "timestamp_granularities[]" || p.name == "timestamp_granularities") {
      granularities.emplace_back(p.data);
    } else if (p.name == "temperature") {
      try {
        std::size_t used = 0;
        const double t = std::stod(std::string(p.data), &used);
        if (used != p.data.size() || t < 0 || t > 1) throw std::invalid_argument("range");
      } catch (const std::exception&) {
        throw ApiError(400, "temperature: must be a number between 0 and 1", "temperature");
      }
    }
    // stream, include[], chunking_strategy: accepted and ignored.
  }
  if (!have_file) throw ApiError(400, "file: a multipart field 'file' is required", "file");
  if (out.file.empty()) throw ApiError(400, "file: the uploaded file is empty", "file");
  if (!model.empty() && model != backend.name() && !is_openai_asr_model(model)) {
    throw ApiError(400, "model: '" + model + "' is not served here (use '" + backend.name() +
                            "' or 'whisper-1')",
                   "model", "model_not_found");
  }
  auto f = parse_transcription_format(format);
  if (!f) {
    throw ApiError(400, "response_format: must be json, text, verbose_json, srt or vtt",
                   "response_format");
  }
  out.format = *f;
  for (const std::string& g : granularities) {
    if (g == "word") {
      out.words = true;
    } else if (g != "segment") {
      throw ApiError(400, "timestamp_granularities: must be word or segment",
                     "timestamp_granularities");
    }
  }
  if (!granularities.empty()) {
    if (out.format != TranscriptionFormat::verbose_json) {
      throw ApiError(400, "timestamp_granularities: needs response_format verbose_json",
                     "timestamp_granularities");
    }
    out.segments = std::find(granularities.begin(), granularities.end(), "segment") !=
                   granularities.end();
  }
  if (!out.language.empty()) {
    std::string code = out.language.substr(0, out.language.find_first_of("-_"));
    std::transform(code.begin(), code.end(), code.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const auto langs = backend.languages();
    if (std::find(langs.begin(), langs.end(), code) == langs.end()) {
      std::string list;
      for (const auto& l : langs) list += (list.empty() ? "" : ", ") + l;
      throw ApiError(400, "language: '" + out.language + "' is not supported by " +
                              backend.name() + " (supported: " + list + ")",
                     "language");
    }
    out.language = code;
  }
  return out;
}

ApiError exec_error(const sched::ExecError& e) {
  switch (e.code) {
    case sched::ExecErrc::queue_full:
      return ApiError(503, "the speech recognition queue is full; retry later", {}, "queue_full");
    case sched::ExecErrc::overloaded:
      return ApiError(503, "speech recognition is overloaded (" + e.message + "); retry later", {},
                      "overloaded");
    case sched::ExecErrc::stopped:
      return ApiError(503, "the server is shutting down", {}, "shutting_down");
    case sched::ExecErrc::cancelled:
      return ApiError(503, "transcription cancelled", {}, "cancelled");
    case sched::ExecErrc::deadline_exceeded:
      return ApiError(504, "transcription deadline exceeded", {}, "deadline_exceeded");
    case sched::ExecErrc::failed:
      break;
  }
  return ApiError(500, "speech recognition failed: " + e.message);
}

struct Prepared {
  std::shared_ptr<const std::vector<float>> audio;
  std::vector<SpeechRegion> segments;
};

}  // namespace

TranscriptionHandler::TranscriptionHandler(AsrStage& stage, asio::thread_pool& media_pool,
                                           TranscriptionLimits limits,
                                           obs::MetricsRegistry* metrics)
    : stage_(stage),
      media_pool_(media_pool),
      limits_(limits),
      media_delay_(
          sched::steady_clock(),
          [&media_pool](std::function<void()> probe) { asio::post(media_pool, std::move(probe)); },
          limits.max_queue_delay),
      media_shed_(metrics ? &obs::queue_rejected_counter(*metrics, "media", "overloaded")
                          : nullptr) {}

asio::awaitable<void> TranscriptionHandler::handle(net::HttpExchange& ex) {
  const unsigned version = ex.request().version();
  std::optional<ApiError> error;
  TranscriptionRequest req;
  Prepared prepared;
  // A client that hangs up stops its work wherever it is: while its upload waits for the media
  // pool (decoding and the VAD are skipped) or while its segments wait for the recogniser.
  struct Watch {
    std::mutex mutex;
    bool gone = false;
    std::shared_ptr<AsrTicket> ticket;
  };
  auto watch = std::make_shared<Watch>();
  auto client_gone = [watch] {
    std::lock_guard lock(watch->mutex);
    return watch->gone;
  };
  try {
    req = parse(ex.request(), stage_.backend());
    // Shed before the costly part: an upload that would queue behind work already waiting too
    // long is refused before it is decoded.
    if (stage_.overloaded(ex.context().priority)) {
      throw exec_error(sched::ExecError{sched::ExecErrc::overloaded,
                                        "queued audio has waited over asr.max_queue_delay_ms"});
    }
    if (media_delay_.overloaded()) {
      if (media_shed_ != nullptr) media_shed_->inc();
      throw exec_error(sched::ExecError{
          sched::ExecErrc::overloaded,
          "uploads queued for decoding have waited over asr.max_queue_delay_ms"});
    }
    ex.watch_disconnect([watch] {
      std::shared_ptr<AsrTicket> ticket;
      {
        std::lock_guard lock(watch->mutex);
        watch->gone = true;
        ticket = watch->ticket;
      }
      if (ticket) ticket->cancel();
    });
    // Decoding and the VAD are compute: on the media pool, never on the I/O thread.
    auto prepare = [this, &req, client_gone]() -> asio::awaitable<Prepared> {
      if (client_gone()) throw ApiError(503, "transcription cancelled", {}, "cancelled");
      media::DecodeOptions opts;
      opts.sample_rate = kAsrSampleRate;
      opts.max_seconds = limits_.max_audio_seconds;
      Prepared p;
      try {
        auto decoded = media::decode_audio(
            {reinterpret_cast<const std::uint8_t*>(req.file.data()), req.file.size()}, opts);
        p.audio = std::make_shared<const std::vector<float>>(std::move(decoded.samples));
      } catch (const media::MediaError& e) {
        throw media_api_error(e, "file");
      }
      p.segments = stage_.segment(*p.audio);
      co_return p;
    };
    prepared = co_await asio::co_spawn(media_pool_.get_executor(), std::move(prepare),
                                       asio::use_awaitable);
  } catch (const ApiError& e) {
    error = e;
  } catch (const std::exception& e) {
    error = ApiError(500, std::string("cannot prepare the audio: ") + e.what());
  }
  if (error) co_return co_await ex.respond(net::error_response(*error, version));

  if (client_gone()) {
    const sched::ExecError cancelled{sched::ExecErrc::cancelled, "cancelled"};
    net::Response res = net::error_response(exec_error(cancelled), version);
    co_return co_await ex.respond(std::move(res));
  }
  // Named, not a temporary inside co_await (GCC 12 destroys such temporaries twice).
  auto start = [this, &prepared, &req, watch, priority = ex.context().priority](auto done) {
    auto t = stage_.transcribe(prepared.audio, std::move(prepared.segments), req.language,
                               priority, done, req.prompt);
    if (!t) return done(sched::Expected<Transcript>(t.error()));
    bool gone = false;
    {
      std::lock_guard lock(watch->mutex);
      watch->ticket = *t;
      gone = watch->gone;
    }
    if (gone) (*t)->cancel();  // the client left while the segments were being queued
  };
  auto result = co_await net::await_callback<sched::Expected<Transcript>>(std::move(start));
  if (!result) co_return co_await ex.respond(net::error_response(exec_error(result.error()), version));

  const std::string language = req.language.empty() ? stage_.backend().languages().front()
                                                    : req.language;
  auto formatted = format_transcript(*result, req.format, language, req.words, req.segments);
  obs::RequestLogger(ex.context().trace_id)
      .debug("asr: {:.2f} s of audio, {} segments, {} characters", result->duration,
             result->segments.size(), result->text.size());
  net::Response res{http::status::ok, version};
  res.set(http::field::content_type, formatted.content_type);
  res.body() = std::move(formatted.body);
  res.prepare_payload();
  co_await ex.respond(std::move(res));
}

}  // namespace talkserve::speech::api
