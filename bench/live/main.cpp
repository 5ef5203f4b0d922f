// GET /v1/stream under load: N concurrent live sessions each send one typed turn at the same
// moment; the client times the first reply.delta, the first audio frame, the first video media
// segment and response.done (p50, p95 per level), and whether each session's media arrived at
// least as fast as it plays (real time: audio_seconds / (response.done - first video segment)
// >= 1). --find-max climbs 2,4,6,...,16 sessions and reports the largest level at which every
// session kept real time. Prints a table on stderr and one JSON object on stdout.
// --spoken instead has each session speak one recording of ../shared/testdata/speech (the
// 16 kHz ones, sent as PCM16 with 1.2 s of trailing silence) and times, per level, the
// recogniser's latency as a user feels it: from vad.speech_end to transcript.final.
//
//   bench_live [--url HOST:PORT | --binary PATH] [--sessions 1,8,16] [--rounds 3] [--find-max]
//              [--video true|false] [--api-key KEY] [--timeout 300]
//              [--spoken [--speech-dir DIR]]
//
// Without --url it starts the talkserve binary of this build on a free loopback port with the
// models of this checkout (models fetched by
// `TALKSERVE_MODEL_MIRROR=/work/shared/models scripts/fetch-models.sh`). Against a server of
// your own:
//   build/bin/talkserve --set server.models_dir=<models> --set http.port=8080
//   bench_live --url 127.0.0.1:8080

#include <algorithm>
#include <iterator>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_stream_client.hpp"
#include "live_client.hpp"

using namespace talkserve::bench;
using nlohmann::json;

namespace {

// Every session of a run asks about a different animal, so replies differ and no cache of any
// stage can answer one session from another's work.
const char* const kAdjectives[] = {"little", "brave", "sleepy", "curious", "happy", "tiny", "old", "clever",
                                   "shy", "funny", "kind", "lazy", "proud", "quiet", "silly", "gentle"};
const char* const kAnimals[] = {"cat", "dog", "bird", "fish", "frog", "bear", "rabbit", "mouse",
                                "duck", "horse", "lion", "fox", "owl", "pig", "cow", "sheep",
                                "tiger", "monkey", "turtle", "goat", "deer", "wolf", "snake", "bee"};

std::string question(std::size_t k) {
  constexpr std::size_t animals = std::size(kAnimals);
  const char* adjective = kAdjectives[(k / animals) % std::size(kAdjectives)];
  return std::string("Tell me a story about a ") + adjective + " " + kAnimals[k % animals] + ".";
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// PCM16 samples of a 16 kHz mono PCM16 WAV; empty for any other format.
std::vector<std::int16_t> read_wav_16k(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto u32 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(data[at])) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(data[at + 1])) << 8 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(data[at + 2])) << 16 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(data[at + 3])) << 24;
  };
  if (data.size() < 12 || data.compare(0, 4, "RIFF") != 0 || data.compare(8, 4, "WAVE") != 0) return {};
  bool ok = false;
  for (std::size_t at = 12; at + 8 <= data.size();) {
    const std::string id = data.substr(at, 4);
    const std::uint32_t len = u32(at + 4);
    const std::size_t body = at + 8;
    if (body + len > data.size()) break;
    if (id == "fmt " && len >= 16) {
      const auto format = static_cast<unsigned char>(data[body]) | static_cast<unsigned char>(data[body + 1]) << 8;
      const auto channels = static_cast<unsigned char>(data[body + 2]);
      const auto bits = static_cast<unsigned char>(data[body + 14]);
      ok = format == 1 && channels == 1 && u32(body + 4) == 16000 && bits == 16;
    } else if (id == "data" && ok) {
      std::vector<std::int16_t> out(len / 2);
      std::memcpy(out.data(), data.data() + body, out.size() * 2);
      return out;
    }
    at = body + len + (len & 1);
  }
  return {};
}

struct Level {
  int sessions = 0;
  std::vector<TurnResult> turns;  // every session of every round, failed ones included
};

// One round: `n` sessions connect and start, then all send their turn at once.
std::vector<TurnResult> run_round(const LiveTarget& target, int n, bool video, std::chrono::seconds timeout,
                                  std::size_t& question_counter) {
  std::vector<TurnResult> results(static_cast<std::size_t>(n));
  std::barrier sync(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i, text = question(question_counter++)] {
      TurnResult& r = results[static_cast<std::size_t>(i)];
      LiveClient client(target, timeout);
      try {
        client.start(video);
      } catch (const std::exception& e) {
        r.error = std::string("session.start: ") + e.what();
        sync.arrive_and_drop();
        return;
      }
      sync.arrive_and_wait();
      r = client.turn(text);
      client.close();
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

// Spoken rounds: every session speaks one clip at the same moment.
struct SpokenLevel {
  int sessions = 0;
  std::vector<SpokenResult> turns;
};

SpokenLevel run_spoken_level(const LiveTarget& target, int sessions, int rounds, std::chrono::seconds timeout,
                             const std::vector<std::vector<std::int16_t>>& clips, std::size_t& clip_counter) {
  SpokenLevel level;
  level.sessions = sessions;
  for (int round = 0; round < rounds; ++round) {
    std::vector<SpokenResult> results(static_cast<std::size_t>(sessions));
    std::barrier sync(sessions);
    std::vector<std::thread> threads;
    for (int i = 0; i < sessions; ++i) {
      threads.emplace_back([&, i, clip = clip_counter++ % clips.size()] {
        SpokenResult& r = results[static_cast<std::size_t>(i)];
        LiveClient client(target, timeout);
        try {
          client.start(false);
        } catch (const std::exception& e) {
          r.error = std::string("session.start: ") + e.what();
          sync.arrive_and_drop();
          return;
        }
        sync.arrive_and_wait();
        r = client.speak(clips[clip]);
        client.close();
      });
    }
    for (auto& t : threads) t.join();
    for (auto& r : results) level.turns.push_back(std::move(r));
  }
  return level;
}

Level run_level(const LiveTarget& target, int sessions, int rounds, bool video, std::chrono::seconds timeout,
                std::size_t& question_counter) {
  Level level;
  level.sessions = sessions;
  for (int r = 0; r < rounds; ++r) {
    for (auto& t : run_round(target, sessions, video, timeout, question_counter)) level.turns.push_back(std::move(t));
  }
  return level;
}

struct Summary {
  int ok = 0, errors = 0, realtime = 0, anomalies = 0;
  std::vector<double> delta, audio, video, done, ratio, stall, media;
  std::string first_error;
  std::map<std::string, int> anomaly_kinds;  // message with its numbers as N -> count
  bool all_realtime() const { return errors == 0 && realtime == ok && ok > 0; }
};

Summary summarise(const Level& level) {
  Summary s;
  for (const auto& t : level.turns) {
    for (const auto& a : t.anomalies) {
      ++s.anomalies;
      ++s.anomaly_kinds[std::regex_replace(a, std::regex("[0-9.]+"), "N")];
    }
    if (!t.error.empty()) {
      ++s.errors;
      if (s.first_error.empty()) s.first_error = t.error;
      continue;
    }
    ++s.ok;
    s.delta.push_back(t.first_delta_ms);
    s.audio.push_back(t.first_audio_ms);
    if (t.first_video_ms >= 0) s.video.push_back(t.first_video_ms);
    s.done.push_back(t.done_ms);
    s.ratio.push_back(t.realtime_ratio);
    s.stall.push_back(t.stall_ms);
    s.media.push_back(t.audio_seconds);
    if (t.realtime_ratio >= 1.0) ++s.realtime;
  }
  return s;
}

json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json level_json(const Level& level, const Summary& s) {
  json j{{"sessions", level.sessions},
         {"turns", level.turns.size()},
         {"errors", s.errors},
         {"protocol_anomalies", s.anomalies},
         {"realtime_sessions", s.realtime},
         {"all_realtime", s.all_realtime()}};
  auto put = [&j](const char* name, const std::vector<double>& v) {
    j[std::string(name) + "_p50"] = number(percentile(v, 0.5));
    j[std::string(name) + "_p95"] = number(percentile(v, 0.95));
  };
  put("first_delta_ms", s.delta);
  put("first_audio_ms", s.audio);
  put("first_video_ms", s.video);
  put("done_ms", s.done);
  put("audio_seconds", s.media);
  put("stall_ms", s.stall);
  j["realtime_ratio_min"] = number(s.ratio.empty() ? std::nan("") : *std::min_element(s.ratio.begin(), s.ratio.end()));
  j["realtime_ratio_p50"] = number(percentile(s.ratio, 0.5));
  if (!s.first_error.empty()) j["first_error"] = s.first_error;
  if (!s.anomaly_kinds.empty()) j["anomaly_kinds"] = s.anomaly_kinds;
  return j;
}

void print_header() {
  const char* format = "%5s %5s %4s | %-13s | %-13s | %-13s | %-13s | %7s | %-7s | %-12s | %8s\n";
  std::fprintf(stderr, format, "sess", "turns", "err", "first delta", "first audio", "first video", "done", "media",
               "rt ok", "ratio", "stall");
  std::fprintf(stderr, format, "", "", "", "p50/p95 ms", "p50/p95 ms", "p50/p95 ms", "p50/p95 ms", "s p50", "",
               "min/p50", "p95 ms");
}

void print_row(const Level& level, const Summary& s) {
  auto pair = [](const std::vector<double>& v) {
    char buf[64];
    if (v.empty()) return std::string("-");
    std::snprintf(buf, sizeof buf, "%.0f/%.0f", percentile(v, 0.5), percentile(v, 0.95));
    return std::string(buf);
  };
  char rt[32], ratio[32];
  std::snprintf(rt, sizeof rt, "%d/%d", s.realtime, static_cast<int>(level.turns.size()));
  if (s.ratio.empty()) {
    std::snprintf(ratio, sizeof ratio, "-");
  } else {
    std::snprintf(ratio, sizeof ratio, "%.2f/%.2f", *std::min_element(s.ratio.begin(), s.ratio.end()),
                  percentile(s.ratio, 0.5));
  }
  std::fprintf(stderr, "%5d %5zu %4d | %-13s | %-13s | %-13s | %-13s | %7.1f | %-7s | %-12s | %8.0f\n",
               level.sessions, level.turns.size(), s.errors, pair(s.delta).c_str(), pair(s.audio).c_str(),
               pair(s.video).c_str(), pair(s.done).c_str(), s.media.empty() ? 0.0 : percentile(s.media, 0.5), rt,
               ratio, s.stall.empty() ? 0.0 : percentile(s.stall, 0.95));
  if (!s.first_error.empty()) std::fprintf(stderr, "      error: %s\n", s.first_error.c_str());
  for (const auto& [what, count] : s.anomaly_kinds) std::fprintf(stderr, "      %dx protocol: %s\n", count, what.c_str());
}

std::vector<int> parse_levels(const std::string& list) {
  std::vector<int> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    const int n = std::stoi(item);
    if (n < 1) throw std::invalid_argument("session counts must be >= 1: " + list);
    out.push_back(n);
  }
  if (out.empty()) throw std::invalid_argument("no session counts in '" + list + "'");
  return out;
}

bool parse_bool(const std::string& v) {
  if (v == "true" || v == "1" || v == "on") return true;
  if (v == "false" || v == "0" || v == "off") return false;
  throw std::invalid_argument("expected true or false, got '" + v + "'");
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, binary = TALKSERVE_BENCH_BINARY, api_key, levels_arg = "1,8,16", ladder_arg = "2,4,6,8,10,12,16";
  int rounds = 3, timeout_s = 300;
  bool video = true, find_max = false, spoken = false;
  std::string speech_dir = std::string(TALKSERVE_BENCH_SOURCE_DIR) + "/../shared/testdata/speech";
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&] {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return std::string(argv[++i]);
      };
      if (a == "--url") url = next();
      else if (a == "--binary") binary = next();
      else if (a == "--sessions") levels_arg = next();
      else if (a == "--rounds") rounds = std::stoi(next());
      else if (a == "--find-max") find_max = true;
      else if (a == "--max-levels") ladder_arg = next();
      else if (a == "--video") video = parse_bool(next());
      else if (a == "--api-key") api_key = next();
      else if (a == "--timeout") timeout_s = std::stoi(next());
      else if (a == "--spoken") spoken = true;
      else if (a == "--speech-dir") speech_dir = next();
      else throw std::invalid_argument("unknown argument " + a);
    }
    if (rounds < 1) throw std::invalid_argument("--rounds must be >= 1");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_live: %s\n", e.what());
    return 2;
  }

  try {
    const std::vector<int> levels = parse_levels(find_max ? ladder_arg : levels_arg);
    std::unique_ptr<ServerProcess> server;
    LiveTarget target;
    if (!url.empty()) {
      target = parse_live_target(url);
    } else {
      server = std::make_unique<ServerProcess>(
          binary,
          std::vector<std::string>{
              "--config", std::string(TALKSERVE_BENCH_SOURCE_DIR) + "/config/talkserve.toml",
              "--set", "http.host=127.0.0.1", "--set", "http.port=0",
              "--set", std::string("server.models_dir=\"") + TALKSERVE_BENCH_MODELS_DIR + "\"",
              // Typed turns need no speech recognition (spoken ones do). Rendered clips
              // (POST /v1/talk) go to a scratch folder, not the working directory.
              "--set", spoken ? "asr.enabled=true" : "asr.enabled=false",
              "--set", "talk.cache_dir=\"/tmp/bench_live_clips\""},
          "/tmp/bench_live.stderr");
      const HttpTarget http = server->wait_ready(std::chrono::seconds(120));
      target.host = http.host;
      target.port = http.port;
    }
    target.api_key = api_key;
    const auto timeout = std::chrono::seconds(timeout_s);

    if (spoken) {
      std::vector<std::vector<std::int16_t>> clips;
      for (const auto& e : std::filesystem::directory_iterator(speech_dir)) {
        if (e.path().extension() != ".wav") continue;
        auto pcm = read_wav_16k(e.path().string());
        if (!pcm.empty()) clips.push_back(std::move(pcm));
      }
      if (clips.empty()) throw std::runtime_error("no 16 kHz PCM16 WAV in " + speech_dir);
      std::size_t clip_counter = 0;
      run_spoken_level(target, 1, 1, timeout, clips, clip_counter);  // warm-up
      std::fprintf(stderr, "GET /v1/stream, spoken turns (%zu recordings), %d round(s) per level\n", clips.size(), rounds);
      std::fprintf(stderr, "%8s %6s %6s | %s\n", "sessions", "turns", "errors", "vad.speech_end -> transcript.final ms p50 / p95 / max");
      json results = json::array();
      for (int n : levels) {
        const SpokenLevel level = run_spoken_level(target, n, rounds, timeout, clips, clip_counter);
        std::vector<double> lat;
        int errors = 0;
        std::string first_error;
        for (const auto& t : level.turns) {
          if (!t.error.empty() || t.speech_end_ms < 0) {
            ++errors;
            if (first_error.empty()) first_error = t.error.empty() ? "no vad.speech_end" : t.error;
            continue;
          }
          lat.push_back(t.end_to_transcript_ms());
        }
        const double mx = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
        std::fprintf(stderr, "%8d %6zu %6d | %.0f / %.0f / %.0f\n", n, level.turns.size(), errors, percentile(lat, 0.5),
                     percentile(lat, 0.95), mx);
        if (!first_error.empty()) std::fprintf(stderr, "      error: %s\n", first_error.c_str());
        results.push_back(json{{"sessions", n},
                               {"turns", level.turns.size()},
                               {"errors", errors},
                               {"speech_end_to_transcript_ms", {{"p50", percentile(lat, 0.5)}, {"p95", percentile(lat, 0.95)}, {"max", mx}}}});
      }
      std::printf("%s\n", json{{"bench", "live_spoken"}, {"rounds", rounds}, {"results", results}}.dump().c_str());
      if (server) server->stop();
      return 0;
    }

    std::size_t question_counter = 0;
    {  // warm-up: the first turn pays for lazy initialisation
      const Level warm = run_level(target, 1, 1, video, timeout, question_counter);
      if (!warm.turns.front().error.empty()) {
        throw std::runtime_error("warm-up turn failed: " + warm.turns.front().error +
                                 (server ? server->stderr_tail() : std::string()));
      }
    }

    std::fprintf(stderr, "GET /v1/stream, %s, %d round(s) per level, one typed turn per session\n",
                 video ? "audio + video" : "audio only", rounds);
    print_header();
    json results = json::array();
    int max_realtime = 0;
    for (int n : levels) {
      const Level level = run_level(target, n, rounds, video, timeout, question_counter);
      const Summary s = summarise(level);
      print_row(level, s);
      results.push_back(level_json(level, s));
      if (s.all_realtime()) {
        max_realtime = std::max(max_realtime, n);
      } else if (find_max) {
        break;  // the next levels only add load
      }
    }
    json out{{"bench", "live"},
             {"video", video},
             {"rounds", rounds},
             {"target", target.host + ":" + target.port},
             {"results", results}};
    if (find_max) {
      out["max_realtime_sessions"] = max_realtime;
      std::fprintf(stderr, "largest concurrency with every session in real time: %d\n", max_realtime);
    }
    std::printf("%s\n", out.dump().c_str());
    if (server) server->stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_live: %s\n", e.what());
    return 1;
  }
  return 0;
}
