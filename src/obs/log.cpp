#include "talkserve/obs/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <ctime>
#include <iterator>
#include <stdexcept>

namespace talkserve::obs {

namespace {

// The trace id of the line being logged on this thread. spdlog's default logger here is
// synchronous, so the formatter runs on the logging thread inside log_with_trace() and can
// read it; this keeps the id out of the message text so JSON gets a proper field.
thread_local std::string_view t_trace_id;

struct TraceIdScope {
  explicit TraceIdScope(std::string_view id) { t_trace_id = id; }
  ~TraceIdScope() { t_trace_id = {}; }
  TraceIdScope(const TraceIdScope&) = delete;
  TraceIdScope& operator=(const TraceIdScope&) = delete;
};

spdlog::level::level_enum to_spdlog(LogLevel l) {
  switch (l) {
    case LogLevel::trace:
      return spdlog::level::trace;
    case LogLevel::debug:
      return spdlog::level::debug;
    case LogLevel::info:
      return spdlog::level::info;
    case LogLevel::warn:
      return spdlog::level::warn;
    case LogLevel::error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::string_view level_name(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

void append_utc_timestamp(spdlog::memory_buf_t& dest, spdlog::log_clock::time_point tp) {
  const auto since_epoch = tp.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - secs).count();
  const std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  fmt::format_to(std::back_inserter(dest), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ms);
}

void append(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.append(s.data(), s.data() + s.size());
}

// "<ts> <level> [trace_id=<id> ]<message>\n"
class TextFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    append_utc_timestamp(dest, msg.time);
    dest.push_back(' ');
    append(dest, level_name(msg.level));
    dest.push_back(' ');
    if (!t_trace_id.empty()) {
      append(dest, "trace_id=");
      append(dest, t_trace_id);
      dest.push_back(' ');
    }
    append(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<TextFormatter>();
  }
};

// {"ts":"...","level":"...","trace_id":"...","msg":"..."}\n  (trace_id only when set)
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line;
    line.reserve(96 + msg.payload.size());
    append(dest, "{\"ts\":\"");
    append_utc_timestamp(dest, msg.time);
    append(dest, "\",\"level\":\"");
    append(dest, level_name(msg.level));
    append(dest, "\",");
    if (!t_trace_id.empty()) {
      line += "\"trace_id\":\"";
      append_json_escaped(line, t_trace_id);
      line += "\",";
    }
    line += "\"msg\":\"";
    append_json_escaped(line, std::string_view(msg.payload.data(), msg.payload.size()));
    line += "\"}\n";
    append(dest, line);
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid (overlong forms,
// surrogates and code points above U+10FFFF are invalid too).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xbf) {
    return k < s.size() && b(k) >= lo && b(k) <= hi;
  };
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c == 0xe0) return cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c == 0xed) return cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
  if (c == 0xf0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c == 0xf4) return cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

}  // namespace

LogLevel parse_log_level(std::string_view s) {
  if (s == "trace") return LogLevel::trace;
  if (s == "debug") return LogLevel::debug;
  if (s == "info") return LogLevel::info;
  if (s == "warn" || s == "warning") return LogLevel::warn;
  if (s == "error") return LogLevel::error;
  throw std::invalid_argument(
      fmt::format("unknown log level '{}' (expected trace|debug|info|warn|error)", s));
}

LogFormat parse_log_format(std::string_view s) {
  if (s == "text") return LogFormat::text;
  if (s == "json") return LogFormat::json;
  throw std::invalid_argument(fmt::format("unknown log format '{}' (expected text|json)", s));
}

void ObsConfig::validate() const {
  try {
    parse_log_level(log_level);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("obs.log_level: ") + e.what());
  }
  try {
    parse_log_format(log_format);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("obs.log_format: ") + e.what());
  }
}

void init_logging(std::string_view level, std::string_view format,
                  std::shared_ptr<spdlog::sinks::sink> sink) {
  const LogLevel lvl = parse_log_level(level);
  const LogFormat fmt_kind = parse_log_format(format);
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("talkserve", std::move(sink));
  if (fmt_kind == LogFormat::json)
    logger->set_formatter(std::make_unique<JsonFormatter>());
  else
    logger->set_formatter(std::make_unique<TextFormatter>());
  logger->set_level(to_spdlog(lvl));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

void init_logging(const ObsConfig& config, std::shared_ptr<spdlog::sinks::sink> sink) {
  config.validate();
  init_logging(config.log_level, config.log_format, std::move(sink));
}

bool should_log(LogLevel level) {
  return spdlog::default_logger_raw()->should_log(to_spdlog(level));
}

void log_with_trace(LogLevel level, std::string_view trace_id, std::string_view message) {
  TraceIdScope scope(trace_id);
  spdlog::default_logger_raw()->log(to_spdlog(level),
                                    spdlog::string_view_t(message.data(), message.size()));
}

void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence_length(s, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
}

}  // namespace talkserve::obs
