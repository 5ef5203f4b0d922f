// The cost of the remote LLM backend: the same greedy chat streams read from an upstream
// talkserve (stories260K) directly with a plain SSE client, and through RemoteChatBackend (the
// client the talk pipeline uses with llm.backend = "remote"), alone and N at once, on kept-alive
// connections (the default) and on a new connection per reply (llm.remote.keepalive_ms = 0).
// The difference in time to first text and whole reply is what the remote hop adds, and what
// keep-alive saves of it. --tls serves the upstream over https (a self-signed certificate made
// with the openssl CLI), where a new connection costs a TLS handshake; the plain direct client
// is then left out.
// Prints one JSON object on stdout and a table on stderr.
//
//   bench_remote_llm [--http URL | --binary PATH] [--tls] [--concurrency 16] [--rounds 5]
//                    [--max-tokens 64]

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http_stream_client.hpp"
#include "talkserve/llm/remote_chat_backend.hpp"

using namespace talkserve::bench;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const char* kPrompt = "Tell me a story about a cat.";

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct Row {
  std::vector<double> first, total;
  int errors = 0;
};

// One reply through RemoteChatBackend, timed from chat() to the first text and to on_done.
std::pair<double, double> remote_chat(talkserve::llm::RemoteChatBackend& backend, int max_tokens,
                                      bool& ok) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::optional<Clock::time_point> first;
  talkserve::llm::ChatOutcome outcome;
  talkserve::llm::ChatOptions o;
  o.max_tokens = max_tokens;
  o.seed = 0;
  const auto t0 = Clock::now();
  backend.chat({{"user", kPrompt}}, o,
               [&](std::string) {
                 std::lock_guard l(m);
                 if (!first) first = Clock::now();
               },
               [&](talkserve::llm::ChatOutcome out) {
                 std::lock_guard l(m);
                 outcome = std::move(out);
                 done = true;
                 cv.notify_all();
               });
  std::unique_lock l(m);
  cv.wait(l, [&] { return done; });
  const auto t1 = Clock::now();
  ok = outcome.reason != talkserve::llm::FinishReason::error && first.has_value();
  if (!ok) std::fprintf(stderr, "remote error: %s\n", outcome.message.c_str());
  const double ms_first = first ? std::chrono::duration<double, std::milli>(*first - t0).count() : 0;
  return {ms_first, std::chrono::duration<double, std::milli>(t1 - t0).count()};
}

Row run(const HttpTarget& target, talkserve::llm::RemoteChatBackend& backend, bool via_backend,
        int concurrency, int rounds, int max_tokens) {
  Row row;
  const std::string body =
      json{{"model", "stories260K"},
           {"messages", json::array({json{{"role", "user"}, {"content", kPrompt}}})},
           {"max_tokens", max_tokens},
           {"temperature", 0},
           {"seed", 0},
           {"stream", true}}
          .dump();
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::future<std::pair<double, double>>> fs;
    std::vector<char> oks(static_cast<std::size_t>(concurrency), 0);
    for (int i = 0; i < concurrency; ++i) {
      fs.push_back(std::async(std::launch::async, [&, i]() -> std::pair<double, double> {
        if (via_backend) {
          bool ok = false;
          auto t = remote_chat(backend, max_tokens, ok);
          oks[static_cast<std::size_t>(i)] = ok;
          return t;
        }
        auto res = post_stream(target, "/v1/chat/completions", body);
        oks[static_cast<std::size_t>(i)] = res.error.empty() && res.status == 200 && res.events > 0;
        if (!oks[static_cast<std::size_t>(i)]) std::fprintf(stderr, "direct error: %d %s\n", res.status, res.error.c_str());
        return {res.ttft_s * 1e3, res.e2e_s * 1e3};
      }));
    }
    for (int i = 0; i < concurrency; ++i) {
      auto t = fs[static_cast<std::size_t>(i)].get();
      if (!oks[static_cast<std::size_t>(i)]) {
        ++row.errors;
        continue;
      }
      row.first.push_back(t.first);
      row.total.push_back(t.second);
    }
  }
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, binary = TALKSERVE_BENCH_BINARY;
  int concurrency = 16, rounds = 5, max_tokens = 64;
  bool tls = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--http") url = next();
    else if (a == "--binary") binary = next();
    else if (a == "--tls") tls = true;
    else if (a == "--concurrency") concurrency = std::stoi(next());
    else if (a == "--rounds") rounds = std::stoi(next());
    else if (a == "--max-tokens") max_tokens = std::stoi(next());
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  try {
    std::unique_ptr<ServerProcess> server;
    HttpTarget target;
    std::string cert_dir;
    if (!url.empty()) {
      if (tls) throw std::runtime_error("--tls starts its own upstream: leave out --http");
      target = parse_http_url(url);
    } else {
      std::vector<std::string> args{
          "--config", std::string(TALKSERVE_BENCH_SOURCE_DIR) + "/config/talkserve.toml",
          "--set", "http.host=127.0.0.1", "--set", "http.port=0",
          "--set", std::string("server.models_dir=\"") + TALKSERVE_BENCH_MODELS_DIR + "\"",
          "--set", "asr.enabled=false", "--set", "tts.enabled=false",
          "--set", "talk.enabled=false", "--set", "gateway.max_in_flight=4096"};
      if (tls) {
        char dir_template[] = "/tmp/bench_remote_llm.XXXXXX";
        if (!::mkdtemp(dir_template)) throw std::runtime_error("mkdtemp failed");
        cert_dir = dir_template;
        const std::string cmd =
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
            "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " + cert_dir +
            "/key.pem -out " + cert_dir + "/cert.pem 2>/dev/null";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("openssl req failed: " + cmd);
        args.insert(args.end(), {"--set", "http.tls_cert=\"" + cert_dir + "/cert.pem\"",
                                 "--set", "http.tls_key=\"" + cert_dir + "/key.pem\""});
      }
      server = std::make_unique<ServerProcess>(binary, args, "/tmp/bench_remote_llm.stderr");
      target = tls ? server->wait_listening(std::chrono::seconds(60))
                   : server->wait_ready(std::chrono::seconds(60));
    }
    talkserve::llm::RemoteChatConfig cfg;
    cfg.url = std::string(tls ? "https://" : "http://") + target.host + ":" + target.port;
    cfg.api_key = target.api_key;
    cfg.model = "stories260K";
    cfg.max_retries = 0;
    if (tls) cfg.ca_file = cert_dir + "/cert.pem";
    talkserve::llm::RemoteChatBackend backend(cfg, nullptr);
    auto fresh_cfg = cfg;
    fresh_cfg.keepalive = std::chrono::milliseconds(0);
    talkserve::llm::RemoteChatBackend fresh(fresh_cfg, nullptr);
    if (tls) {
      // The plain readiness probe cannot ask a TLS listener: wait for a first reply instead.
      const auto deadline = Clock::now() + std::chrono::seconds(60);
      for (bool ok = false; !ok;) {
        if (Clock::now() > deadline) throw std::runtime_error("no reply over TLS in time");
        remote_chat(fresh, 4, ok);
        if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    // Warm-up.
    if (!tls) run(target, backend, false, 1, 2, max_tokens);
    run(target, backend, true, 1, 2, max_tokens);
    run(target, fresh, true, 1, 2, max_tokens);
    json results = json::array();
    std::fprintf(stderr, "%-10s %5s | %-26s | %-26s | errors\n", "path", "conc",
                 "first text p50 / p95 (ms)", "whole reply p50 / p95 (ms)");
    struct Path {
      const char* name;
      talkserve::llm::RemoteChatBackend* backend;  // null: the direct SSE client
    };
    std::vector<Path> paths;
    if (!tls) paths.push_back({"direct", nullptr});
    paths.push_back({"remote", &backend});
    paths.push_back({"remote-new", &fresh});
    for (int c : {1, concurrency}) {
      for (const Path& p : paths) {
        const bool via = p.backend != nullptr;
        Row row = run(target, via ? *p.backend : backend, via, c, c == 1 ? rounds * 4 : rounds,
                      max_tokens);
        const char* path = p.name;
        results.push_back(json{{"path", path},
                               {"concurrency", c},
                               {"requests", row.first.size()},
                               {"errors", row.errors},
                               {"first_text_ms_p50", percentile(row.first, 0.5)},
                               {"first_text_ms_p95", percentile(row.first, 0.95)},
                               {"total_ms_p50", percentile(row.total, 0.5)},
                               {"total_ms_p95", percentile(row.total, 0.95)}});
        std::fprintf(stderr, "%-10s %5d | %11.1f / %-12.1f | %11.1f / %-12.1f | %d\n", path, c,
                     percentile(row.first, 0.5), percentile(row.first, 0.95),
                     percentile(row.total, 0.5), percentile(row.total, 0.95), row.errors);
      }
    }
    std::printf("%s\n", json{{"bench", "remote_llm"},
                             {"tls", tls},
                             {"max_tokens", max_tokens},
                             {"results", results}}
                            .dump()
                            .c_str());
    backend.stop();
    fresh.stop();
    if (server) server->stop();
    if (!cert_dir.empty()) std::filesystem::remove_all(cert_dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_remote_llm: %s\n", e.what());
    return 1;
  }
  return 0;
}
