#include "http_stream_client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

extern char** environ;

namespace talkserve::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

HttpTarget parse_http_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) throw std::invalid_argument("only http:// URLs: " + url);
  std::string rest = url.substr(scheme.size());
  rest = rest.substr(0, rest.find('/'));
  HttpTarget t;
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) {
    t.host = rest;
    t.port = "80";
  } else {
    t.host = rest.substr(0, colon);
    t.port = rest.substr(colon + 1);
  }
  if (t.host.empty() || t.port.empty()) throw std::invalid_argument("bad URL: " + url);
  return t;
}

namespace {

tcp::socket connect(asio::io_context& ioc, const HttpTarget& target,
                    std::chrono::seconds timeout) {
  tcp::resolver resolver(ioc);
  tcp::socket sock(ioc);
  asio::connect(sock, resolver.resolve(target.host, target.port));
  sock.set_option(tcp::no_delay(true));
  // Blocking reads give up after `timeout` instead of hanging on a stuck server.
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count());
  ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return sock;
}

// One SSE event ("data: ..." lines); returns true at [DONE].
bool handle_event(const std::string& event, Clock::time_point now, Clock::time_point sent,
                  std::optional<Clock::time_point>& last_text, StreamResult& r) {
  std::string data;
  bool has_data = false;
  std::size_t pos = 0;
  while (pos < event.size()) {
    std::size_t eol = event.find('\n', pos);
    if (eol == std::string::npos) eol = event.size();
    std::string line = event.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("data:", 0) != 0) continue;
    line.erase(0, 5);
    if (!line.empty() && line.front() == ' ') line.erase(0, 1);
    if (has_data) data += '\n';  // SSE: the data lines of one event join with newlines
    data += line;
    has_data = true;
  }
  if (!has_data) return false;
  if (data == "[DONE]") return true;
  const auto j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    r.error = "unparsable SSE data: " + data.substr(0, 200);
    return true;
  }
  if (j.contains("error")) {
    r.error = "stream error: " + j["error"].dump();
    return true;
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object())
    r.completion_tokens = u->value("completion_tokens", 0);
  // /v1/audio/speech with stream_format "sse": each speech.audio.delta carries audio and
  // speech.audio.done ends the stream (there is no [DONE]).
  if (auto t = j.find("type"); t != j.end() && *t == "speech.audio.done") return true;
  if (auto a = j.find("audio"); a != j.end() && a->is_string()) {
    if (!last_text) r.ttft_s = std::chrono::duration<double>(now - sent).count();
    else r.itl_s.push_back(std::chrono::duration<double>(now - *last_text).count());
    last_text = now;
    ++r.events;
  }
  if (auto c = j.find("choices"); c != j.end() && c->is_array() && !c->empty()) {
    const auto& choice = (*c)[0];
    if (auto f = choice.find("finish_reason"); f != choice.end() && f->is_string())
      r.finish_reason = f->get<std::string>();
    auto non_empty = [](const nlohmann::json& o, const char* key) {
      auto t = o.find(key);
      return t != o.end() && t->is_string() && !t->get_ref<const std::string&>().empty();
    };
    // /v1/completions carries "text"; /v1/chat/completions chunks carry "delta": {"content"}.
    const auto delta = choice.find("delta");
    if (non_empty(choice, "text") ||
        (delta != choice.end() && delta->is_object() && non_empty(*delta, "content"))) {
      if (!last_text) r.ttft_s = std::chrono::duration<double>(now - sent).count();
      else r.itl_s.push_back(std::chrono::duration<double>(now - *last_text).count());
      last_text = now;
      ++r.events;
    }
  }
  return false;
}

}  // namespace

StreamResult post_stream(const HttpTarget& target, const std::string& path,
                         const std::string& body, std::chrono::seconds timeout) {
  StreamResult r;
  try {
    asio::io_context ioc;
    tcp::socket sock = connect(ioc, target, timeout);
    http::request<http::string_body> req{http::verb::post, path, 11};
    req.set(http::field::host, target.host + ":" + target.port);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    if (!target.api_key.empty()) req.set(http::field::authorization, "Bearer " + target.api_key);
    req.body() = body;
    req.prepare_payload();

    const Clock::time_point sent = Clock::now();
    http::write(sock, req);
    beast::flat_buffer buf;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(sock, buf, parser);
    r.status = static_cast<int>(parser.get().result_int());

    char chunk[16384];
    std::string pending;  // received bytes not yet split into events
    std::optional<Clock::time_point> last_text;
    bool done = false;
    while (!done && !parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      beast::error_code ec;
      http::read_some(sock, buf, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) throw beast::system_error(ec);
      const auto now = Clock::now();
      pending.append(chunk, sizeof chunk - parser.get().body().size);
      if (r.status != 200) continue;  // collect the error body
      for (std::size_t end; !done && (end = pending.find("\n\n")) != std::string::npos;) {
        const std::string event = pending.substr(0, end);
        pending.erase(0, end + 2);
        done = handle_event(event, now, sent, last_text, r);
      }
    }
    r.e2e_s = std::chrono::duration<double>(Clock::now() - sent).count();
    if (r.status != 200) r.error = "HTTP " + std::to_string(r.status) + ": " + pending.substr(0, 300);
    else if (!done && r.error.empty()) r.error = "stream ended without [DONE]";
    beast::error_code ignored;
    sock.shutdown(tcp::socket::shutdown_both, ignored);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  return r;
}

int get_status(const HttpTarget& target, const std::string& path) {
  try {
    asio::io_context ioc;
    tcp::socket sock = connect(ioc, target, std::chrono::seconds(10));
    http::request<http::empty_body> req{http::verb::get, path, 11};
    req.set(http::field::host, target.host + ":" + target.port);
    req.set(http::field::connection, "close");
    if (!target.api_key.empty()) req.set(http::field::authorization, "Bearer " + target.api_key);
    http::write(sock, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(sock, buf, res);
    return static_cast<int>(res.result_int());
  } catch (const std::exception&) {
    return 0;
  }
}

ServerProcess::ServerProcess(const std::string& binary, std::vector<std::string> args,
                             std::string stderr_path)
    : stderr_path_(std::move(stderr_path)) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawn(&pid_, binary.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("cannot start " + binary + ": " + std::strerror(rc));
  }
  stdout_fd_ = fds[0];
}

ServerProcess::~ServerProcess() {
  stop();
  if (drain_.joinable()) drain_.join();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (clean_exit_) ::unlink(stderr_path_.c_str());  // kept only when something went wrong
}

std::string ServerProcess::stderr_tail() const {
  std::ifstream in(stderr_path_);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > 3000) text = text.substr(text.size() - 3000);
  return text.empty() ? std::string() : "\ntalkserve stderr:\n" + text;
}

HttpTarget ServerProcess::wait_ready(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  HttpTarget t = wait_listening(timeout);
  // The model loads after the socket is bound: poll readiness (a child process has no
  // notification to wait on).
  while (get_status(t, "/readyz") != 200) {
    if (Clock::now() > deadline) throw std::runtime_error("/readyz not 200 in time" + stderr_tail());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return t;
}

HttpTarget ServerProcess::wait_listening(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string marker = "talkserve listening on ";
  std::string out;
  std::string hostport;
  while (hostport.empty()) {
    if (auto at = out.find(marker); at != std::string::npos) {
      if (auto eol = out.find('\n', at); eol != std::string::npos) {
        hostport = out.substr(at + marker.size(), eol - at - marker.size());
        break;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) throw std::runtime_error("no listening line in time" + stderr_tail());
    pollfd p{stdout_fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[1024];
    const ssize_t r = ::read(stdout_fd_, buf, sizeof buf);
    if (r == 0) throw std::runtime_error("talkserve exited before listening" + stderr_tail());
    if (r > 0) out.append(buf, static_cast<std::size_t>(r));
  }
  // Keep the pipe drained so a chatty server never blocks on a full pipe.
  drain_ = std::thread([fd = stdout_fd_] {
    char buf[1024];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
  });
  HttpTarget t;
  const auto colon = hostport.rfind(':');
  t.host = hostport.substr(0, colon);
  t.port = hostport.substr(colon + 1);
  return t;
}

void ServerProcess::stop() {
  if (stopped_ || pid_ <= 0) return;
  stopped_ = true;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(15);
  int status = 0;
  for (;;) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) break;
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  clean_exit_ = WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace talkserve::bench
