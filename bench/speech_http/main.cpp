// POST /v1/audio/speech through the talkserve binary: time to the first audio chunk and to the
// end of a three-sentence paragraph, for one request alone and for N at once (p50, p95).
// The requests use stream_format "sse", so the client sees each audio chunk as an event.
// Prints one JSON object on stdout and a table on stderr.
//
//   bench_speech_http [--http URL | --binary PATH] [--concurrency 16] [--rounds 5]
//                     [--backend espeak-ng|flite] [--format mp3]

#include <algorithm>
#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http_stream_client.hpp"

using namespace talkserve::bench;
using nlohmann::json;

namespace {

const char* kParagraph =
    "The morning was bright and cool, and the market was already busy. "
    "Mrs. Green bought three apples, a loaf of bread and a small jar of honey. "
    "On the way home she stopped to talk with an old friend about the weather.";

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct Row {
  int concurrency = 0;
  std::vector<double> first, total;
  int errors = 0;
};

Row run(const HttpTarget& target, int concurrency, int rounds, const std::string& voice,
        const std::string& format) {
  Row row;
  row.concurrency = concurrency;
  const std::string body = json{{"input", kParagraph},
                                {"voice", voice},
                                {"response_format", format},
                                {"stream_format", "sse"}}
                               .dump();
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::future<StreamResult>> fs;
    for (int i = 0; i < concurrency; ++i) {
      fs.push_back(std::async(std::launch::async,
                              [&] { return post_stream(target, "/v1/audio/speech", body); }));
    }
    for (auto& f : fs) {
      auto res = f.get();
      if (!res.error.empty() || res.status != 200 || res.events == 0) {
        ++row.errors;
        if (row.errors == 1) std::fprintf(stderr, "error: %d %s\n", res.status, res.error.c_str());
        continue;
      }
      row.first.push_back(res.ttft_s * 1e3);
      row.total.push_back(res.e2e_s * 1e3);
    }
  }
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, binary = TALKSERVE_BENCH_BINARY, backend = "espeak-ng", format = "mp3";
  int concurrency = 16, rounds = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--http") url = next();
    else if (a == "--binary") binary = next();
    else if (a == "--concurrency") concurrency = std::stoi(next());
    else if (a == "--rounds") rounds = std::stoi(next());
    else if (a == "--backend") backend = next();
    else if (a == "--format") format = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  try {
    std::unique_ptr<ServerProcess> server;
    HttpTarget target;
    if (!url.empty()) {
      target = parse_http_url(url);
    } else {
      server = std::make_unique<ServerProcess>(
          binary,
          std::vector<std::string>{"--config", std::string(TALKSERVE_BENCH_SOURCE_DIR) + "/config/talkserve.toml",
                                   "--set", "http.host=127.0.0.1", "--set", "http.port=0",
                                   "--set", std::string("server.models_dir=\"") + TALKSERVE_BENCH_MODELS_DIR + "\"",
                                   "--set", "tts.backend=" + backend, "--set", "tts.max_queue=4096",
                                   "--set", "llm.enabled=false", "--set", "asr.enabled=false",
                                   "--set", "talk.enabled=false"},
          "/tmp/bench_speech_http.stderr");
      target = server->wait_ready(std::chrono::seconds(60));
    }
    const std::string voice = backend == "flite" ? "cmu_us_slt" : "alloy";
    run(target, 1, 1, voice, format);  // warm-up
    json results = json::array();
    std::fprintf(stderr, "%-12s %5s | %-28s | %-28s | errors\n", "backend", "conc",
                 "first audio p50 / p95 (ms)", "whole reply p50 / p95 (ms)");
    for (int c : {1, concurrency}) {
      Row row = run(target, c, c == 1 ? rounds * 4 : rounds, voice, format);
      results.push_back(json{{"concurrency", c},
                             {"requests", row.first.size()},
                             {"errors", row.errors},
                             {"first_audio_ms_p50", percentile(row.first, 0.5)},
                             {"first_audio_ms_p95", percentile(row.first, 0.95)},
                             {"total_ms_p50", percentile(row.total, 0.5)},
                             {"total_ms_p95", percentile(row.total, 0.95)}});
      std::fprintf(stderr, "%-12s %5d | %12.1f / %-13.1f | %12.1f / %-13.1f | %d\n",
                   backend.c_str(), c, percentile(row.first, 0.5), percentile(row.first, 0.95),
                   percentile(row.total, 0.5), percentile(row.total, 0.95), row.errors);
    }
    std::printf("%s\n", json{{"bench", "speech_http"},
                             {"backend", backend},
                             {"format", format},
                             {"results", results}}
                            .dump()
                            .c_str());
    if (server) server->stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_speech_http: %s\n", e.what());
    return 1;
  }
  return 0;
}
