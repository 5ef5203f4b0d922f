#pragma once
// Logging on spdlog, as text for humans or one JSON object per line for log shippers.
//
//   init_logging(ObsConfig{.log_level = "info", .log_format = "json"});
//   RequestLogger log{trace_id};
//   log.info("admitted key={} tier={}", key_name, "vip");
//
// Text:  2024-05-01T12:00:00.123Z info trace_id=4bf92f35... admitted key=alice tier=vip
// JSON:  {"ts":"2024-05-01T12:00:00.123Z","level":"info","trace_id":"4bf92f35...",
//         "msg":"admitted key=alice tier=vip"}
//
// Lines from code that is not about one request (spdlog::info(...) directly) carry no trace id.
// Messages are escaped in JSON mode (quotes, control characters, invalid UTF-8 -> U+FFFD) so
// every line parses whatever a client sent.

#include <fmt/format.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace spdlog::sinks {
class sink;
}

namespace talkserve::obs {

enum class LogLevel { trace, debug, info, warn, error };
enum class LogFormat { text, json };

// "trace" | "debug" | "info" | "warn" | "error" (also "warning"); otherwise
// std::invalid_argument naming the bad value.
LogLevel parse_log_level(std::string_view s);
// "text" | "json"; otherwise std::invalid_argument.
LogFormat parse_log_format(std::string_view s);

struct ObsConfig {
  std::string log_level = "info";
  std::string log_format = "text";
  // Throws std::invalid_argument naming the key, e.g. "obs.log_level: unknown level 'loud'
  // (expected trace|debug|info|warn|error)".
  void validate() const;
};

// Replaces spdlog's default logger with one writing to `sink` (stderr when null) at the given
// level and format. Call once at start-up, before other threads log (spdlog's default-logger
// swap is thread-safe, but lines logged during the swap may use the old format).
// Throws std::invalid_argument for a bad level or format.
void init_logging(std::string_view level, std::string_view format,
                  std::shared_ptr<spdlog::sinks::sink> sink = nullptr);
void init_logging(const ObsConfig& config, std::shared_ptr<spdlog::sinks::sink> sink = nullptr);

// True if a message at `level` would be written (cheap; use to skip costly formatting).
bool should_log(LogLevel level);

// Writes one line with the trace id attached (as `trace_id=` in text, a field in JSON).
// An empty trace id writes a plain line. Thread-safe.
void log_with_trace(LogLevel level, std::string_view trace_id, std::string_view message);

// Logs about one request. Cheap to construct and copy; methods are thread-safe (spdlog's
// default logger is synchronous and mutex-protected), and formatting is skipped below the
// configured level.
class RequestLogger {
 public:
  explicit RequestLogger(std::string trace_id) : trace_id_(std::move(trace_id)) {}
  const std::string& trace_id() const { return trace_id_; }

  template <typename... Args>
  void trace(fmt::format_string<Args...> f, Args&&... args) const {
    write(LogLevel::trace, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void debug(fmt::format_string<Args...> f, Args&&... args) const {
    write(LogLevel::debug, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(fmt::format_string<Args...> f, Args&&... args) const {
    write(LogLevel::info, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn(fmt::format_string<Args...> f, Args&&... args) const {
    write(LogLevel::warn, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(fmt::format_string<Args...> f, Args&&... args) const {
    write(LogLevel::error, f, std::forward<Args>(args)...);
  }

 private:
  template <typename... Args>
  void write(LogLevel level, fmt::format_string<Args...> f, Args&&... args) const {
    if (!should_log(level)) return;
    log_with_trace(level, trace_id_, fmt::format(f, std::forward<Args>(args)...));
  }
  std::string trace_id_;
};

// JSON string-body escaping used by the JSON formatter (exposed for tests): quotes, backslash,
// control characters, and invalid UTF-8 sequences replaced by U+FFFD.
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace talkserve::obs
