#pragma once
// The HTTP side of bench_llm_throughput: a minimal blocking client (Boost.Beast, one thread per
// stream) that posts a streamed /v1/completions request and timestamps every SSE event as it
// arrives, and a talkserve child process started for the benchmark.
//
// Latencies are measured at the client, as a user of the API would see them: TTFT from sending
// the request to the first event carrying text, inter-token latency between consecutive
// text-carrying events (an event can carry several tokens when the server coalesced them under
// back-pressure; its count is then smaller than the token count, as in vLLM's
// benchmark_serving).

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace talkserve::bench {

struct HttpTarget {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string api_key;  // sent as "Authorization: Bearer ..." when set
};

// "http://HOST:PORT[/...]" (a trailing path such as /v1 is ignored). Throws on anything else.
HttpTarget parse_http_url(const std::string& url);

struct StreamResult {
  std::string error;        // empty on success
  int status = 0;           // HTTP status
  double ttft_s = 0.0;      // request sent -> first event with text (or audio, for speech)
  std::vector<double> itl_s;  // between consecutive events with text
  double e2e_s = 0.0;       // request sent -> [DONE]
  int events = 0;           // SSE events with text
  int completion_tokens = 0;  // from the final usage chunk
  std::string finish_reason;
};

// POSTs `body` (JSON, with "stream": true) to `path` and reads the SSE stream to [DONE].
// Blocking; thread-safe (each call has its own connection).
StreamResult post_stream(const HttpTarget& target, const std::string& path,
                         const std::string& body,
                         std::chrono::seconds timeout = std::chrono::seconds(600));

// GET `path`; the status, or 0 when the connection failed.
int get_status(const HttpTarget& target, const std::string& path);

// A talkserve child process: started with `args`, stdout read for the "talkserve listening on
// HOST:PORT" line (then drained), stderr to `stderr_path`. SIGTERM (then SIGKILL) on stop().
class ServerProcess {
 public:
  ServerProcess(const std::string& binary, std::vector<std::string> args,
                std::string stderr_path);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Waits for the listening line, then for GET /readyz == 200. Throws with the stderr tail.
  HttpTarget wait_ready(std::chrono::milliseconds timeout);
  // The listening line only (a TLS listener, which the plain readiness probe cannot ask).
  HttpTarget wait_listening(std::chrono::milliseconds timeout);
  void stop();
  std::string stderr_tail() const;

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string stderr_path_;
  std::thread drain_;
  bool stopped_ = false;
  bool clean_exit_ = false;
};

}  // namespace talkserve::bench
