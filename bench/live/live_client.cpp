#include "live_client.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "fmp4_probe.hpp"

namespace talkserve::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

LiveTarget parse_live_target(const std::string& url) {
  std::string rest = url;
  for (const char* scheme : {"http://", "ws://"}) {
    if (rest.rfind(scheme, 0) == 0) rest.erase(0, std::char_traits<char>::length(scheme));
  }
  if (rest.find("://") != std::string::npos) throw std::invalid_argument("only http:// or ws:// URLs: " + url);
  rest = rest.substr(0, rest.find('/'));
  const auto colon = rest.rfind(':');
  LiveTarget t;
  if (colon == std::string::npos) throw std::invalid_argument("no port in " + url);
  t.host = rest.substr(0, colon);
  t.port = rest.substr(colon + 1);
  if (t.host.empty() || t.port.empty()) throw std::invalid_argument("bad URL: " + url);
  return t;
}

namespace {

constexpr std::size_t kHeaderBytes = 12;
enum : std::uint8_t { kAudio = 1, kVideoInit = 2, kVideoSegment = 3 };

std::uint32_t le32(const std::string& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(b[at + i]);
  return v;
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Per-kind bookkeeping of the binary frames of one response.
struct KindTrack {
  std::uint32_t next_seq = 0;
  bool saw_last = false;
};

}  // namespace

struct LiveClient::Impl {
  LiveTarget target;
  std::chrono::seconds timeout;
  asio::io_context ioc;
  websocket::stream<tcp::socket> ws{ioc};
  beast::flat_buffer buffer;
  int sample_rate = 24000;
  bool video = true;
  bool open = false;

  // Reads one message; true when it was binary.
  bool read(std::string& out) {
    buffer.clear();
    ws.read(buffer);
    out = beast::buffers_to_string(buffer.data());
    return ws.got_binary();
  }
};

LiveClient::LiveClient(LiveTarget target, std::chrono::seconds timeout) : impl_(std::make_unique<Impl>()) {
  impl_->target = std::move(target);
  impl_->timeout = timeout;
}

LiveClient::~LiveClient() = default;

void LiveClient::start(bool video) {
  Impl& m = *impl_;
  m.video = video;
  tcp::resolver resolver(m.ioc);
  auto& sock = m.ws.next_layer();
  asio::connect(sock, resolver.resolve(m.target.host, m.target.port));
  sock.set_option(tcp::no_delay(true));
  // Blocking reads give up after `timeout` instead of hanging on a stuck server.
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(m.timeout.count());
  ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (!m.target.api_key.empty()) {
    m.ws.set_option(websocket::stream_base::decorator([key = m.target.api_key](websocket::request_type& req) {
      req.set(beast::http::field::authorization, "Bearer " + key);
    }));
  }
  m.ws.read_message_max(64u << 20);
  m.ws.handshake(m.target.host + ":" + m.target.port, "/v1/stream");
  m.open = true;
  m.ws.text(true);
  m.ws.write(asio::buffer(json{{"type", "session.start"}, {"video", video}}.dump()));
  std::string msg;
  for (;;) {
    if (m.read(msg)) throw std::runtime_error("binary frame before session.started");
    const json j = json::parse(msg);
    const std::string type = j.value("type", "");
    if (type == "session.started") {
      if (auto a = j.find("audio"); a != j.end() && a->is_object()) m.sample_rate = a->value("sample_rate", 24000);
      if (video && j.value("video", json()).is_null()) throw std::runtime_error("session.started without video");
      return;
    }
    if (type == "error") throw std::runtime_error("session.start refused: " + j.dump());
  }
}

SpokenResult LiveClient::speak(const std::vector<std::int16_t>& pcm, int silence_ms) {
  Impl& m = *impl_;
  SpokenResult r;
  try {
    std::vector<std::int16_t> all(pcm);
    all.resize(all.size() + static_cast<std::size_t>(silence_ms) * 16, 0);
    m.ws.binary(true);
    constexpr std::size_t kFrame = 1600;  // 100 ms at 16 kHz
    for (std::size_t i = 0; i < all.size(); i += kFrame) {
      const std::size_t n = std::min(kFrame, all.size() - i);
      m.ws.write(asio::buffer(all.data() + i, n * sizeof(std::int16_t)));
    }
    const Clock::time_point sent = Clock::now();
    std::string msg;
    std::optional<std::int64_t> response_id;
    bool ended = false;
    while (!ended) {
      if (m.read(msg)) continue;  // media of the response being cancelled
      const double at_ms = ms_between(sent, Clock::now());
      const json j = json::parse(msg);
      const std::string type = j.value("type", "");
      if (type == "vad.speech_end" && r.speech_end_ms < 0) {
        r.speech_end_ms = at_ms;
      } else if (type == "transcript.final" && r.transcript_ms < 0) {
        r.transcript_ms = at_ms;
        r.transcript = j.value("text", "");
        response_id = j.value("response_id", std::int64_t{-1});
        m.ws.text(true);
        m.ws.write(asio::buffer(json{{"type", "response.cancel"}}.dump()));
      } else if ((type == "response.cancelled" || type == "response.done") && response_id &&
                 j.value("response_id", std::int64_t{-2}) == *response_id) {
        ended = true;
      } else if (type == "error") {
        if (r.transcript_ms < 0) {
          r.error = j.dump();
          return r;
        }
        ended = true;
      }
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  if (r.error.empty() && r.transcript_ms < 0) r.error = "no transcript.final";
  return r;
}

TurnResult LiveClient::turn(const std::string& text) {
  Impl& m = *impl_;
  TurnResult r;
  std::optional<std::uint32_t> response_id;
  KindTrack kinds[4];
  std::optional<VideoTrackInfo> track;
  std::optional<std::uint64_t> first_pts;
  std::optional<Clock::time_point> first_media;
  std::size_t audio_samples = 0;
  double lateness_ms = 0;  // the largest delay of a frame past its playback time
  bool reply_done = false;
  auto anomaly = [&r](std::string what) {
    if (r.anomalies.size() < 20) r.anomalies.push_back(std::move(what));
  };

  const Clock::time_point sent = Clock::now();
  try {
    m.ws.text(true);
    m.ws.write(asio::buffer(json{{"type", "input.text"}, {"text", text}}.dump()));
    std::string msg;
    for (;;) {
      const bool binary = m.read(msg);
      const Clock::time_point now = Clock::now();
      const double at_ms = ms_between(sent, now);
      if (binary) {
        if (msg.size() < kHeaderBytes) {
          anomaly("binary frame shorter than its header");
          continue;
        }
        const auto kind = static_cast<std::uint8_t>(msg[0]);
        const bool last = (static_cast<std::uint8_t>(msg[1]) & 1) != 0;
        const std::uint32_t rid = le32(msg, 4);
        const std::uint32_t seq = le32(msg, 8);
        if (kind < kAudio || kind > kVideoSegment) {
          anomaly("binary frame of unknown kind " + std::to_string(kind));
          continue;
        }
        if (!response_id || rid != *response_id) anomaly("binary frame of response " + std::to_string(rid));
        KindTrack& k = kinds[kind];
        if (k.saw_last) anomaly("kind " + std::to_string(kind) + " frame after the one flagged last");
        if (seq != k.next_seq) {
          anomaly("kind " + std::to_string(kind) + " seq " + std::to_string(seq) + ", expected " +
                  std::to_string(k.next_seq));
        }
        k.next_seq = seq + 1;
        k.saw_last = k.saw_last || last;
        const std::string_view payload = std::string_view(msg).substr(kHeaderBytes);
        if (kind == kAudio) {
          if (payload.size() % 2 != 0) anomaly("audio frame of odd length");
          if (r.audio_frames++ == 0) r.first_audio_ms = at_ms;
          if (!m.video) {
            if (!first_media) first_media = now;
            const double due_ms = audio_samples * 1000.0 / m.sample_rate;
            lateness_ms = std::max(lateness_ms, ms_between(*first_media, now) - due_ms);
          }
          audio_samples += payload.size() / 2;
        } else if (kind == kVideoInit) {
          if (!m.video) anomaly("video init segment in an audio-only session");
          track = probe_init_segment(payload);
          if (!track) anomaly("init segment without a readable video track");
        } else if (!payload.empty()) {  // a last segment may be empty: only the flag
          if (!m.video) anomaly("video segment in an audio-only session");
          if (r.video_segments++ == 0) r.first_video_ms = at_ms;
          if (!track) {
            anomaly("video segment before the init segment");
            continue;
          }
          const auto pts = probe_media_segment(payload, track->track_id);
          if (!pts) {
            // Legal in fMP4 (an audio-only fragment) but worth knowing: the video ends early.
            anomaly(std::string("media segment without a video track fragment") + (last ? " (the last one)" : " (not the last)"));
            continue;
          }
          if (!first_pts) {
            first_pts = pts;
            first_media = now;
          }
          const double due_ms = static_cast<double>(*pts - *first_pts) * 1000.0 / track->timescale;
          lateness_ms = std::max(lateness_ms, ms_between(*first_media, now) - due_ms);
        }
        continue;
      }

      const json j = json::parse(msg, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) {
        anomaly("text frame that is not a JSON object");
        continue;
      }
      const std::string type = j.value("type", "");
      const auto rid = j.contains("response_id") && j["response_id"].is_number_unsigned()
                           ? std::optional<std::uint32_t>(j["response_id"].get<std::uint32_t>())
                           : std::nullopt;
      if (type == "response.started") {
        if (response_id) anomaly("second response.started");
        response_id = rid;
      } else if (type == "reply.delta") {
        if (!response_id) anomaly("reply.delta before response.started");
        if (reply_done) anomaly("reply.delta after reply.done");
        if (r.first_delta_ms < 0) r.first_delta_ms = at_ms;
      } else if (type == "reply.done") {
        reply_done = true;
      } else if (type == "response.done") {
        r.done_ms = at_ms;
        if (rid != response_id) anomaly("response.done of another response");
        if (!reply_done) anomaly("response.done before reply.done");
        r.audio_seconds = j.value("audio_seconds", 0.0);
        r.server_timings = j.value("timings", json::object());
        break;
      } else if (type == "error" || type == "response.cancelled") {
        r.error = type + ": " + j.dump().substr(0, 300);
        break;
      }
    }
  } catch (const beast::system_error& e) {
    r.error = e.code() == websocket::error::closed
                  ? "closed by the server: " + std::to_string(m.ws.reason().code) + " " + std::string(m.ws.reason().reason.data(), m.ws.reason().reason.size())
                  : std::string(e.what());
    m.open = false;
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  if (!r.error.empty()) return r;

  r.received_audio_seconds = static_cast<double>(audio_samples) / m.sample_rate;
  if (std::abs(r.received_audio_seconds - r.audio_seconds) > 0.002) {
    anomaly("audio_seconds " + std::to_string(r.audio_seconds) + " but the frames carried " +
            std::to_string(r.received_audio_seconds));
  }
  if (r.audio_frames > 0 && !kinds[kAudio].saw_last) anomaly("no audio frame flagged last");
  if (m.video) {
    if (kinds[kVideoInit].next_seq != 1) anomaly(std::to_string(kinds[kVideoInit].next_seq) + " init segments");
    if (kinds[kVideoInit].next_seq > 0 && !kinds[kVideoInit].saw_last) anomaly("init segment not flagged last");
    if (!kinds[kVideoSegment].saw_last) anomaly("no video segment flagged last");
    if (r.video_segments == 0) r.error = "response.done without a video segment";
  }
  if (r.audio_frames == 0) r.error = "response.done without audio";
  if (first_media && r.error.empty()) {
    const double media_start_ms = m.video ? r.first_video_ms : r.first_audio_ms;
    const double span_s = (r.done_ms - media_start_ms) / 1e3;
    r.realtime_ratio = span_s > 0 ? r.audio_seconds / span_s : 1e9;  // all media in one read
    r.stall_ms = std::max(0.0, lateness_ms);
  }
  return r;
}

void LiveClient::close() {
  Impl& m = *impl_;
  if (!m.open) return;
  m.open = false;
  beast::error_code ec;
  m.ws.close(websocket::close_code::normal, ec);
}

}  // namespace talkserve::bench
