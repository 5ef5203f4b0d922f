#include "support/server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace talkserve::itest {

namespace {

using Clock = std::chrono::steady_clock;

std::runtime_error sys_error(const std::string& what, int err) {
  return std::runtime_error(what + ": " + std::strerror(err));
}

int status_from_wait(int ws) {
  if (WIFEXITED(ws)) return WEXITSTATUS(ws);
  if (WIFSIGNALED(ws)) return 128 + WTERMSIG(ws);
  return -1;
}

// A file descriptor that becomes readable when `pid` exits (Linux >= 5.3), or -1.
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

std::string temp_dir() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

}  // namespace

ServerProcess::ServerProcess(std::string binary, std::vector<std::string> args, EnvVars env)
    : binary_(std::move(binary)) {
  // stderr: a temporary file (unbounded, readable after the child is gone).
  std::string tmpl = temp_dir() + "/talkserve-itest-stderr-XXXXXX";
  int err_fd = ::mkstemp(tmpl.data());
  if (err_fd < 0) throw sys_error("mkstemp", errno);
  stderr_path_ = tmpl;

  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(err_fd);
    throw sys_error("pipe2", e);
  }

  // Environment: ours, with `env` added or replaced.
  std::map<std::string, std::string> vars;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (auto& [k, v] : env) vars[k] = v;
  std::vector<std::string> env_strings;
  for (auto& [k, v] : vars) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  std::vector<std::string> argv_strings{binary_};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);

  // The child starts with no blocked signals and default dispositions, whatever the test
  // runner did to its own.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  int rc = ::posix_spawn(&pid_, binary_.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_fd);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::unlink(stderr_path_.c_str());
    pid_ = -1;
    throw sys_error("posix_spawn " + binary_, rc);
  }
  stdout_fd_ = out_pipe[0];
  reader_ = std::thread([this] { read_stdout(); });
}

ServerProcess::~ServerProcess() {
  kill_now();
  if (reader_.joinable()) reader_.join();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (!stderr_path_.empty()) ::unlink(stderr_path_.c_str());
}

void ServerProcess::read_stdout() {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lock(mutex_);
    if (n <= 0) {
      stdout_eof_ = true;
      cv_.notify_all();
      return;
    }
    stdout_.append(buf, static_cast<std::size_t>(n));
    cv_.notify_all();
  }
}

std::uint16_t ServerProcess::wait_listening(std::chrono::milliseconds timeout) {
  static constexpr std::string_view kMarker = "talkserve listening on ";
  std::string line;
  {
    std::unique_lock lock(mutex_);
    bool found = cv_.wait_for(lock, timeout, [&] {
      auto at = stdout_.find(kMarker);
      if (at != std::string::npos) {
        auto nl = stdout_.find('\n', at);
        if (nl != std::string::npos) {
          line = stdout_.substr(at + kMarker.size(), nl - at - kMarker.size());
          return true;
        }
      }
      return stdout_eof_;
    });
    if (!found || line.empty()) {
      lock.unlock();
      std::string why = found ? "talkserve closed stdout (exited?) before printing its "
                                "listening line"
                              : "talkserve did not print its listening line within " +
                                    std::to_string(timeout.count()) + " ms";
      if (exited()) why += " (exit status " + std::to_string(exit_status_.value_or(-1)) + ")";
      throw std::runtime_error(why + "\n" + diagnostics());
    }
  }
  auto colon = line.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("bad listening line: " + line);
  host_ = line.substr(0, colon);
  port_ = static_cast<std::uint16_t>(std::stoul(line.substr(colon + 1)));
  return port_;
}

void ServerProcess::send_signal(int signo) {
  if (pid_ > 0 && !exit_status_) ::kill(pid_, signo);
}

void ServerProcess::reap(int wait_status) {
  exit_status_ = status_from_wait(wait_status);
}

bool ServerProcess::exited() {
  if (exit_status_) return true;
  if (pid_ <= 0) return true;
  int ws = 0;
  pid_t r = ::waitpid(pid_, &ws, WNOHANG);
  if (r == pid_) {
    reap(ws);
    return true;
  }
  return false;
}

std::optional<int> ServerProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (exited()) return exit_status_;
  const auto deadline = Clock::now() + timeout;
  int pidfd = open_pidfd(pid_);
  while (!exited()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      // No pidfd (old kernel): a short poll interval is the best available.
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(5)));
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  if (!exit_status_) return std::nullopt;
  // The child is gone, so its end of the pipe is closed: collect the rest of stdout.
  if (reader_.joinable()) reader_.join();
  return exit_status_;
}

void ServerProcess::kill_now() {
  if (pid_ <= 0 || exited()) return;
  ::kill(pid_, SIGKILL);
  int ws = 0;
  while (::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
  }
  reap(ws);
}

std::string ServerProcess::stdout_text() const {
  std::lock_guard lock(mutex_);
  return stdout_;
}

std::string ServerProcess::stderr_text() const {
  std::ifstream in(stderr_path_, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ServerProcess::diagnostics(std::size_t max_bytes) const {
  std::string err = stderr_text();
  std::string head = "talkserve stderr";
  if (err.size() > max_bytes) {
    err = err.substr(err.size() - max_bytes);
    head += " (last " + std::to_string(max_bytes) + " bytes)";
  }
  return head + ":\n" + err + "\ntalkserve stdout:\n" + stdout_text();
}

RunResult run_to_exit(const std::string& binary, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout, EnvVars env) {
  ServerProcess p(binary, args, std::move(env));
  auto status = p.wait_exit(timeout);
  RunResult r;
  if (!status) {
    p.kill_now();
    p.wait_exit(std::chrono::seconds(5));
    r.exit_status = -1;
  } else {
    r.exit_status = *status;
  }
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;
}

}  // namespace talkserve::itest
