#pragma once
// The real talkserve executable as a child process, for integration tests.
//
// stdout is read by a background thread (so the child never blocks on a full pipe) and
// searched for the machine-readable line "talkserve listening on HOST:PORT"; stderr goes to a
// temporary file whose tail is attached to failure messages. The destructor kills the child
// (SIGKILL) if it is still running and removes the temporary file.
//
// Thread-safety: one test thread drives a ServerProcess; stdout_text() and exited() may be
// called from any thread.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace talkserve::itest {

using EnvVars = std::vector<std::pair<std::string, std::string>>;

// Everything a finished process left behind (for --version, --check-config, bad configs).
struct RunResult {
  int exit_status = -1;  // exit code, or 128 + signal number
  std::string out;
  std::string err;
};

class ServerProcess {
 public:
  // Spawns `binary` with `args` (not including argv[0]); `env` adds to or replaces variables
  // of this process's environment. Throws std::runtime_error if the spawn itself fails.
  ServerProcess(std::string binary, std::vector<std::string> args, EnvVars env = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Waits for the "talkserve listening on HOST:PORT" line and returns the port. Throws
  // std::runtime_error (with the stderr tail) if the process exits or `timeout` passes first.
  std::uint16_t wait_listening(std::chrono::milliseconds timeout);

  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  void send_signal(int signo);
  // Waits for the child to exit; its exit code (or 128 + signal), nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // True once the child has exited (reaps it without blocking).
  bool exited();
  // SIGKILL and reap, if still running.
  void kill_now();

  std::string stdout_text() const;
  std::string stderr_text() const;
  // "talkserve stderr (last N bytes):\n..." for failure messages.
  std::string diagnostics(std::size_t max_bytes = 6000) const;

 private:
  void read_stdout();
  void reap(int wait_status);

  std::string binary_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string stderr_path_;
  std::optional<int> exit_status_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string stdout_;
  bool stdout_eof_ = false;
  std::thread reader_;

  std::string host_;
  std::uint16_t port_ = 0;
};

// Runs `binary args...` to completion (killing it after `timeout`) and returns what it printed.
RunResult run_to_exit(const std::string& binary, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20),
                      EnvVars env = {});

}  // namespace talkserve::itest
