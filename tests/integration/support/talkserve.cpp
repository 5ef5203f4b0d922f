#include "support/talkserve.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace talkserve::itest {

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : std::string();
}

std::string source_dir() {
  auto s = env_or_empty("TALKSERVE_SOURCE_DIR");
  return s.empty() ? std::string(TALKSERVE_ITEST_SOURCE_DIR) : s;
}

}  // namespace

std::string talkserve_binary() {
  auto b = env_or_empty("TALKSERVE_BINARY_DIR");
  if (b.empty()) b = TALKSERVE_ITEST_BINARY_DIR;
  return b + "/bin/talkserve";
}

std::string models_dir() {
  auto m = env_or_empty("TALKSERVE_MODELS_DIR");
  return m.empty() ? source_dir() + "/models" : m;
}

std::string shared_dir() {
  auto s = env_or_empty("TALKSERVE_SHARED_DIR");
  return s.empty() ? source_dir() + "/../shared" : s;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> base_args() {
  std::vector<std::string> args{
      "--set", "http.host=127.0.0.1", "--set", "http.port=0",
      "--set", "server.models_dir=\"" + models_dir() + "\"",
      "--set", "http.static_dir=\"\"",
      // One intra-op thread: the 260K model gains nothing from more, and on a loaded
      // 2-core CI machine libtorch's spinning worker threads make each token ~15x slower.
      "--set", "llm.threads=1",
      // One resident pocketsphinx decoder loads in half the time; speech tests ask for 2.
      "--set", "asr.decoders=1"};
#if !TALKSERVE_ITEST_MODELS
  // This tree's talkserve has no speech or talk service, and maybe no LLM (see CMakeLists.txt).
  args.insert(args.end(), {"--set", "asr.enabled=false", "--set", "tts.enabled=false", "--set",
                           "talk.enabled=false"});
#if !TALKSERVE_ITEST_LLM
  args.insert(args.end(), {"--set", "llm.enabled=false"});
#endif
#endif
  return args;
}

bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

void wait_ready(ServerProcess& server, std::chrono::milliseconds timeout) {
  HttpClient client(server.host(), server.port(), std::chrono::seconds(5));
  unsigned last = 0;
  bool ok = poll_until(
      [&] {
        if (server.exited()) return true;
        last = client.get("/readyz").status;
        return last == 200;
      },
      timeout, std::chrono::milliseconds(20));
  if (server.exited()) {
    throw std::runtime_error("talkserve exited (status " +
                             std::to_string(server.wait_exit(std::chrono::milliseconds(0)).value_or(-1)) +
                             ") before it was ready\n" + server.diagnostics());
  }
  if (!ok) {
    throw std::runtime_error("talkserve /readyz still " + std::to_string(last) + " after " +
                             std::to_string(timeout.count()) + " ms\n" + server.diagnostics());
  }
}

Talkserve::Talkserve() : Talkserve(Options{}) {}

Talkserve::Talkserve(std::vector<std::string> args) : Talkserve([&] {
  Options o;
  o.args = std::move(args);
  return o;
}()) {}

Talkserve::Talkserve(Options options) {
  auto args = base_args();
  args.insert(args.end(), {"--set", "talk.cache_dir=\"" + cache_dir_.path().string() + "\""});
  args.insert(args.end(), options.args.begin(), options.args.end());
  process_ = std::make_unique<ServerProcess>(talkserve_binary(), args, options.env);
  process_->wait_listening(options.startup_timeout);
  if (options.wait_ready) wait_ready(*process_, options.startup_timeout);
}

HttpClient Talkserve::client(std::chrono::milliseconds timeout) const {
  return HttpClient(host(), port(), timeout);
}

MetricsText Talkserve::metrics() const {
  auto res = client().get("/metrics");
  if (res.status != 200) {
    throw std::runtime_error("GET /metrics answered " + std::to_string(res.status) + ": " +
                             res.body);
  }
  return parse_prometheus(res.body);
}

void abandon_requests(const Talkserve& server, const std::string& raw_request, int clients) {
  namespace asio = boost::asio;
  asio::io_context ioc;
  std::vector<asio::ip::tcp::socket> sockets;
  const asio::ip::tcp::endpoint at(asio::ip::make_address(server.host()), server.port());
  for (int i = 0; i < clients; ++i) {
    auto& s = sockets.emplace_back(ioc);
    s.connect(at);
    asio::write(s, asio::buffer(raw_request));
  }
  const bool all_in = poll_until(
      [&] { return server.metrics().value("talkserve_in_flight_requests") == clients; },
      std::chrono::seconds(60));
  for (auto& s : sockets) s.close();
  if (!all_in) throw std::runtime_error("the abandoned requests never were all in flight");
}

}  // namespace talkserve::itest
