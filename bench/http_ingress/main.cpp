// HTTP ingress throughput and latency: starts the real `talkserve` binary on a loopback port
// with no models, drives GET /healthz with wrk (closed loop: each connection keeps one request
// outstanding), once with keep-alive and once with "Connection: close", and reports wrk's
// numbers plus the server's RSS and CPU time read from /proc.
// Prints one JSON object on stdout, then a human table on stderr.
//
//   bench_http_ingress [--binary PATH] [--duration S] [--connections N] [--threads N]
//                      [--io-threads N] [--path /healthz] [--warmup S] [--close-duration S]
//
// The binary is PATH, else $TALKSERVE_BINARY_DIR/bin/talkserve, else the one in this build
// tree. Exit status: 0 done, 1 a run failed, 2 bad usage or wrk not installed.
//
// wrk and the server share the machine's cores, so on a small box the figures measure the
// pair, not the server alone; the JSON records the core count.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// wrk calls done() once after the run; it prints machine-readable lines that parse_wrk() reads.
// Latency figures are in microseconds.
constexpr const char* kWrkScript = R"lua(
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "TS_SUMMARY requests=%.0f duration_us=%.0f bytes=%.0f connect=%.0f read=%.0f write=%.0f status=%.0f timeout=%.0f\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout))
  io.write(string.format(
    "TS_LATENCY_US min=%.0f mean=%.1f stdev=%.1f max=%.0f p50=%.0f p90=%.0f p99=%.0f p999=%.0f\n",
    latency.min, latency.mean, latency.stdev, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
)lua";

struct Options {
  std::string binary;
  int duration_s = 5;
  int close_duration_s = 5;
  int warmup_s = 1;
  int connections = 64;
  int threads = 2;
  int io_threads = 0;  // the server's default: auto
  std::string path = "/healthz";
};

constexpr const char* kUsage =
    "usage: bench_http_ingress [--binary PATH] [--duration S] [--close-duration S]\n"
    "                          [--warmup S] [--connections N] [--threads N]\n"
    "                          [--io-threads N] [--path /healthz]\n";

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "bench_http_ingress: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  auto int_arg = [&](int& i, const char* flag) {
    if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value");
    char* end = nullptr;
    long v = std::strtol(argv[++i], &end, 10);
    if (*end != '\0' || v < 0 || v > 100000) usage_error(std::string("bad value for ") + flag);
    return static_cast<int>(v);
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--binary" && i + 1 < argc) {
      o.binary = argv[++i];
    } else if (a == "--duration") {
      o.duration_s = int_arg(i, "--duration");
    } else if (a == "--close-duration") {
      o.close_duration_s = int_arg(i, "--close-duration");
    } else if (a == "--warmup") {
      o.warmup_s = int_arg(i, "--warmup");
    } else if (a == "--connections") {
      o.connections = int_arg(i, "--connections");
    } else if (a == "--threads") {
      o.threads = int_arg(i, "--threads");
    } else if (a == "--io-threads") {
      o.io_threads = int_arg(i, "--io-threads");
    } else if (a == "--path" && i + 1 < argc) {
      o.path = argv[++i];
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (!a.starts_with("-") && o.binary.empty()) {
      o.binary = a;  // a bare argument is the binary
    } else {
      usage_error("unknown argument: " + a);
    }
  }
  if (o.duration_s < 1 || o.connections < 1 || o.threads < 1 || o.io_threads < 0) {
    usage_error("--duration, --connections and --threads must be >= 1, --io-threads >= 0 (0 = auto)");
  }
  if (o.connections < o.threads) usage_error("--connections must be >= --threads (wrk needs it)");
  if (!o.path.starts_with("/")) usage_error("--path must start with /");
  if (o.binary.empty()) {
    if (const char* dir = std::getenv("TALKSERVE_BINARY_DIR"); dir && *dir) {
      o.binary = (fs::path(dir) / "bin" / "talkserve").string();
    } else {
      o.binary = TALKSERVE_BENCH_DEFAULT_BINARY;
    }
  }
  return o;
}

std::optional<std::string> find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return std::nullopt;
  std::stringstream ss(path);
  for (std::string dir; std::getline(ss, dir, ':');) {
    if (dir.empty()) dir = ".";
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p)) return p.string();
  }
  return std::nullopt;
}

std::vector<char*> c_argv(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

// The exit code, or 128 + signal number.
int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Runs a program to completion and returns (exit status, stdout + stderr).
std::pair<int, std::string> run_capture(std::vector<std::string> args) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  pid_t pid = -1;
  auto argv = c_argv(args);
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("cannot run " + args[0] + ": " + std::strerror(rc));
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return {decode_status(status), out};
}

// Figures of one process from /proc.
struct ProcSample {
  long rss_kb = -1;
  long hwm_kb = -1;  // peak RSS
  long threads = -1;
  double cpu_s = -1;  // user + system time
};

ProcSample sample_process(pid_t pid) {
  ProcSample s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    auto field = [&](const char* name, long& out) {
      if (line.starts_with(name)) out = std::strtol(line.c_str() + std::strlen(name), nullptr, 10);
    };
    field("VmRSS:", s.rss_kb);
    field("VmHWM:", s.hwm_kb);
    field("Threads:", s.threads);
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  if (auto close = text.rfind(')'); close != std::string::npos) {
    std::istringstream rest(text.substr(close + 2));
    std::vector<std::string> f;
    for (std::string w; rest >> w;) f.push_back(w);
    if (f.size() > 12) {
      const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
      s.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / ticks;
    }
  }
  return s;
}

json to_json(const ProcSample& s) {
  return json{
      {"rss_kb", s.rss_kb}, {"peak_rss_kb", s.hwm_kb}, {"threads", s.threads}, {"cpu_s", s.cpu_s}};
}

// The talkserve child: stdout is a pipe read for the "listening" line, stderr goes to a file.
class Server {
 public:
  Server(const std::string& binary, std::vector<std::string> args, const fs::path& stderr_path)
      : stderr_path_(stderr_path) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    args.insert(args.begin(), binary);
    auto argv = c_argv(args);
    int rc = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::runtime_error("cannot start " + binary + ": " + std::strerror(rc));
    }
    stdout_fd_ = fds[0];
  }

  ~Server() {
    if (pid_ > 0 && !exit_status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (drain_.joinable()) drain_.join();
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  pid_t pid() const { return pid_; }

  // Waits for "talkserve listening on HOST:PORT"; returns "HOST:PORT".
  std::string wait_listening(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string out;
    const std::string marker = "talkserve listening on ";
    for (;;) {
      if (auto at = out.find(marker); at != std::string::npos) {
        auto eol = out.find('\n', at);
        if (eol != std::string::npos) {
          // Keep the pipe drained so a chatty server never blocks on a full pipe.
          drain_ = std::thread([fd = stdout_fd_] {
            char buf[1024];
            while (::read(fd, buf, sizeof buf) > 0) {
            }
          });
          return out.substr(at + marker.size(), eol - at - marker.size());
        }
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) throw std::runtime_error("no 'listening' line within the timeout" + tail());
      pollfd p{stdout_fd_, POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) continue;
      char buf[1024];
      ssize_t r = ::read(stdout_fd_, buf, sizeof buf);
      if (r == 0) throw std::runtime_error("talkserve exited before listening" + tail());
      if (r > 0) out.append(buf, static_cast<std::size_t>(r));
    }
  }

  // SIGTERM, then waits up to `timeout` (SIGKILL after). Returns the exit status.
  int stop(std::chrono::milliseconds timeout) {
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(20ms);  // a child exit has no fd to wait on without pidfd
    }
    exit_status_ = decode_status(status);
    return *exit_status_;
  }

  // The last lines of the server's stderr, for error messages.
  std::string tail() const {
    std::ifstream in(stderr_path_);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.size() > 3000) text = text.substr(text.size() - 3000);
    return text.empty() ? std::string() : "\ntalkserve stderr:\n" + text;
  }

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  fs::path stderr_path_;
  std::thread drain_;
  std::optional<int> exit_status_;
};

// One GET over a fresh connection; the status code, or -1 if the exchange failed.
int probe_status(const std::string& hostport, const std::string& path) {
  auto colon = hostport.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(hostport.substr(colon + 1))));
  if (::inet_pton(AF_INET, hostport.substr(0, colon).c_str(), &addr.sin_addr) != 1) return -1;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req =
        "GET " + path + " HTTP/1.1\r\nHost: " + hostport + "\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[512];
      for (ssize_t n;
           reply.find("\r\n") == std::string::npos && (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
        reply.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  // "HTTP/1.1 200 OK"
  if (!reply.starts_with("HTTP/1.") || reply.size() < 12) return -1;
  return std::atoi(reply.c_str() + 9);
}

// The 1-minute load average: other work on the box skews every figure here.
double load_average() {
  std::ifstream in("/proc/loadavg");
  double v = -1;
  in >> v;
  return v;
}

struct WrkRun {
  std::string name;
  bool keep_alive = true;
  double seconds = 0;
  double requests = 0;
  double requests_per_s = 0;
  double bytes = 0;
  std::map<std::string, double> errors;  // connect, read, write, status, timeout
  std::map<std::string, double> latency_us;
  ProcSample server_after;
  double server_cpu_s = 0;  // server CPU time spent during this run
  std::string command;
};

std::map<std::string, double> parse_fields(const std::string& output, const std::string& tag) {
  std::map<std::string, double> out;
  auto at = output.find(tag + " ");
  if (at == std::string::npos) return out;
  auto eol = output.find('\n', at);
  std::istringstream line(output.substr(at + tag.size() + 1, eol - at - tag.size() - 1));
  for (std::string kv; line >> kv;) {
    auto eq = kv.find('=');
    if (eq != std::string::npos) out[kv.substr(0, eq)] = std::strtod(kv.c_str() + eq + 1, nullptr);
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  if (s.find_first_of(" \"'$\\") == std::string::npos) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

WrkRun run_wrk(const std::string& wrk, const std::string& script, const std::string& url,
               const Options& o, int duration_s, bool keep_alive, const std::string& name) {
  std::vector<std::string> args{wrk,
                                "-t" + std::to_string(o.threads),
                                "-c" + std::to_string(o.connections),
                                "-d" + std::to_string(duration_s) + "s",
                                "--timeout",
                                "5s",
                                "-s",
                                script};
  if (!keep_alive) args.insert(args.end(), {"-H", "Connection: close"});
  args.push_back(url);
  WrkRun r;
  r.name = name;
  r.keep_alive = keep_alive;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i) r.command += ' ';
    r.command += shell_quote(args[i]);
  }
  auto [status, output] = run_capture(args);
  auto summary = parse_fields(output, "TS_SUMMARY");
  r.latency_us = parse_fields(output, "TS_LATENCY_US");
  if (status != 0 || summary.empty() || r.latency_us.empty()) {
    throw std::runtime_error("wrk failed (exit " + std::to_string(status) + "): " + r.command +
                             "\n" + output);
  }
  r.seconds = summary["duration_us"] / 1e6;
  r.requests = summary["requests"];
  r.bytes = summary["bytes"];
  r.requests_per_s = r.seconds > 0 ? r.requests / r.seconds : 0;
  for (const char* k : {"connect", "read", "write", "status", "timeout"}) r.errors[k] = summary[k];
  return r;
}

json to_json(const WrkRun& r) {
  auto ms = [&](const char* k) { return r.latency_us.at(k) / 1000.0; };
  const double socket_errors =
      r.errors.at("connect") + r.errors.at("read") + r.errors.at("write") + r.errors.at("timeout");
  return json{{"name", r.name},
              {"keep_alive", r.keep_alive},
              {"seconds", r.seconds},
              {"requests", r.requests},
              {"requests_per_s", r.requests_per_s},
              {"transfer_mb_per_s", r.seconds > 0 ? r.bytes / r.seconds / 1e6 : 0},
              {"latency_ms",
               {{"p50", ms("p50")},
                {"p90", ms("p90")},
                {"p99", ms("p99")},
                {"p999", ms("p999")},
                {"mean", ms("mean")},
                {"max", ms("max")}}},
              {"errors", socket_errors},
              {"errors_by_kind",
               {{"connect", r.errors.at("connect")},
                {"read", r.errors.at("read")},
                {"write", r.errors.at("write")},
                {"timeout", r.errors.at("timeout")}}},
              // wrk counts responses with status > 399 here ("Non-2xx or 3xx responses").
              {"non_2xx", r.errors.at("status")},
              {"server_cpu_s", r.server_cpu_s},
              // Server CPU per request: the figure that does not depend on sharing cores with wrk.
              {"server_cpu_us_per_request", r.requests > 0 ? r.server_cpu_s * 1e6 / r.requests : 0},
              {"server_after", to_json(r.server_after)},
              {"command", r.command}};
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  const auto wrk = find_on_path("wrk");
  if (!wrk) {
    std::fprintf(stderr,
                 "bench_http_ingress: wrk is not installed (not found on PATH); install it "
                 "(Debian/Ubuntu: apt-get install wrk) and run again\n");
    return 2;
  }
  if (::access(o.binary.c_str(), X_OK) != 0) {
    std::fprintf(stderr,
                 "bench_http_ingress: talkserve binary '%s' is missing or not executable; build "
                 "the 'talkserve' target or pass --binary PATH\n",
                 o.binary.c_str());
    return 2;
  }

  // A private directory for the wrk script and the server's stderr.
  std::string tmpl = (fs::temp_directory_path() / "talkserve-bench-http-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path dir = tmpl;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  const std::string script = (dir / "report.lua").string();
  std::ofstream(script) << kWrkScript;

  const std::vector<std::string> server_args{
      "--set", "http.host=127.0.0.1",
      "--set", "http.port=0",
      "--set", "http.io_threads=" + std::to_string(o.io_threads),
      "--set", "http.static_dir=\"\"",
      "--set", "llm.enabled=false",
      "--set", "talk.enabled=false"};

  json out;
  std::vector<WrkRun> runs;
  ProcSample before, after;
  int server_exit = -1;
  try {
    Server server(o.binary, server_args, dir / "talkserve.stderr");
    const std::string hostport = server.wait_listening(20s);
    const std::string url = "http://" + hostport + o.path;
    std::fprintf(stderr, "bench_http_ingress: talkserve pid %d on %s\n",
                 static_cast<int>(server.pid()), url.c_str());
    // The line is printed before the I/O threads run; wait for a real answer.
    int status = -1;
    for (auto until = std::chrono::steady_clock::now() + 10s;
         (status = probe_status(hostport, o.path)) < 0 &&
         std::chrono::steady_clock::now() < until;) {
      std::this_thread::sleep_for(50ms);
    }
    if (status != 200) {
      throw std::runtime_error("GET " + o.path + " answered " + std::to_string(status) +
                               ", not 200" + server.tail());
    }
    before = sample_process(server.pid());
    out["load_average_1m_at_start"] = load_average();

    if (o.warmup_s > 0) run_wrk(*wrk, script, url, o, o.warmup_s, true, "warmup");
    ProcSample prev = sample_process(server.pid());
    auto measure = [&](int seconds, bool keep_alive, const char* name) {
      runs.push_back(run_wrk(*wrk, script, url, o, seconds, keep_alive, name));
      runs.back().server_after = sample_process(server.pid());
      runs.back().server_cpu_s = runs.back().server_after.cpu_s - prev.cpu_s;
      prev = runs.back().server_after;
    };
    measure(o.duration_s, true, "keep-alive");
    if (o.close_duration_s > 0) measure(o.close_duration_s, false, "connection-close");
    after = sample_process(server.pid());
    // VmHWM is updated lazily by the kernel; the largest RSS seen is a better peak.
    for (const auto& r : runs)
      after.hwm_kb = std::max({after.hwm_kb, r.server_after.rss_kb, r.server_after.hwm_kb});
    server_exit = server.stop(15s);
    if (server_exit != 0) {
      std::fprintf(stderr, "bench_http_ingress: talkserve exited with %d after SIGTERM%s\n",
                   server_exit, server.tail().c_str());
    }
    out["url"] = url;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_http_ingress: %s\n", e.what());
    return 1;
  }

  out["bench"] = "http_ingress";
  out["binary"] = o.binary;
  out["cores"] = std::thread::hardware_concurrency();
  out["wrk"] = {{"threads", o.threads}, {"connections", o.connections}};
  out["server"] = {{"io_threads", o.io_threads},  // 0 = the server's automatic count
                   {"before", to_json(before)},
                   {"after", to_json(after)},
                   {"rss_growth_kb", after.rss_kb - before.rss_kb},
                   {"exit_status_after_sigterm", server_exit}};
  out["targets"] = {{"requests_per_s", 50000}, {"p99_ms", 5.0}};
  out["runs"] = json::array();
  for (const auto& r : runs) {
    json j = to_json(r);
    if (r.keep_alive) {
      j["meets_targets"] = r.requests_per_s >= 50000 && j["latency_ms"]["p99"] < 5.0;
    }
    out["runs"].push_back(std::move(j));
  }

  std::fprintf(stderr, "\n%-17s %10s %9s %9s %9s %9s %8s %8s %12s\n", "run", "req/s", "p50 ms",
               "p90 ms", "p99 ms", "max ms", "errors", "non-2xx", "srv cpu/req");
  for (const auto& r : runs) {
    const auto& l = r.latency_us;
    double errs = r.errors.at("connect") + r.errors.at("read") + r.errors.at("write") +
                  r.errors.at("timeout");
    std::fprintf(stderr, "%-17s %10.0f %9.3f %9.3f %9.3f %9.2f %8.0f %8.0f %9.1f us\n",
                 r.name.c_str(), r.requests_per_s, l.at("p50") / 1e3, l.at("p90") / 1e3,
                 l.at("p99") / 1e3, l.at("max") / 1e3, errs, r.errors.at("status"),
                 r.requests > 0 ? r.server_cpu_s * 1e6 / r.requests : 0.0);
  }
  std::fprintf(stderr,
               "server RSS %ld kB before, %ld kB after (peak %ld kB), %ld threads; %u cores "
               "shared with wrk (-t%d -c%d), load average %.2f at start; targets: 50000 req/s, "
               "p99 < 5 ms (keep-alive)\n",
               before.rss_kb, after.rss_kb, after.hwm_kb, after.threads,
               std::thread::hardware_concurrency(), o.threads, o.connections,
               out.value("load_average_1m_at_start", -1.0));
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
