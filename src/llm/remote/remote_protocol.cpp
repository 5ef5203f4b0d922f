#include "talkserve/llm/remote_protocol.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <stdexcept>

namespace talkserve::llm::remote {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

namespace {

// The host as written in a URL: an IPv6 literal in brackets.
std::string url_host(const std::string& host) {
  if (host.find(':') == std::string::npos) return host;
  std::string out;
  out.reserve(host.size() + 2);
  out += '[';
  out += host;
  out += ']';
  return out;
}

}  // namespace

std::string UpstreamUrl::origin() const {
  std::string out = tls ? "https://" : "http://";
  out += url_host(host);
  out += ':';
  out += std::to_string(port);
  return out;
}

std::string UpstreamUrl::host_header() const {
  std::string h = url_host(host);
  if (port != (tls ? 443 : 80)) {
    h += ':';
    h += std::to_string(port);
  }
  return h;
}

std::string UpstreamUrl::target(std::string_view path) const {
  return base_path + std::string(path);
}

UpstreamUrl parse_upstream_url(std::string_view url) {
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument(why + " (got \"" + std::string(url) + "\")");
  };
  UpstreamUrl u;
  const std::string l = lower(url.substr(0, std::min<std::size_t>(url.size(), 8)));
  std::string_view rest;
  if (l.starts_with("https://")) {
    u.tls = true;
    rest = url.substr(8);
  } else if (l.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    bad("must start with http:// or https://");
  }
  if (rest.find_first_of("?#") != std::string_view::npos) bad("must not have a query or fragment");
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) {
    bad("must not carry credentials (use llm.remote.api_key_env)");
  }
  std::string_view port_text;
  if (authority.starts_with("[")) {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) bad("has an unterminated IPv6 address");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad("has junk after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) bad("has an empty port");
    }
  } else {
    const std::size_t colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) bad("has an empty port");
    }
  }
  if (u.host.empty()) bad("has no host");
  u.port = u.tls ? 443 : 80;
  if (!port_text.empty()) {
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || p == 0 || p > 65535) {
      bad("has a bad port (1-65535)");
    }
    u.port = static_cast<std::uint16_t>(p);
  }
  while (path.ends_with('/')) path.remove_suffix(1);
  if (path.ends_with("/v1")) {
    bad("must be the server's base URL without /v1 (talkserve appends /v1/chat/completions)");
  }
  u.base_path = std::string(path);
  return u;
}

std::vector<std::string> SseParser::feed(std::string_view bytes) {
  std::vector<std::string> events;
  for (char c : bytes) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (c == '\n') continue;
    }
    if (c == '\r' || c == '\n') {
      skip_lf_ = c == '\r';
      take_line(line_, events);
      line_.clear();
      continue;
    }
    line_ += c;
    if (line_.size() + data_.size() > max_event_bytes_) {
      throw std::length_error("an event of the upstream's stream exceeds " +
                              std::to_string(max_event_bytes_) + " bytes");
    }
  }
  return events;
}

void SseParser::take_line(std::string_view line, std::vector<std::string>& out) {
  if (line.empty()) {  // the blank line ends an event
    if (has_data_) out.push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;  // comment (keep-alive pings)
  const std::size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
  if (value.starts_with(' ')) value.remove_prefix(1);
  if (field != "data") return;
  if (has_data_) data_ += '\n';
  data_.append(value);
  has_data_ = true;
}

std::chrono::milliseconds backoff_delay(int retry, std::chrono::milliseconds base,
                                        std::chrono::milliseconds cap, double unit) {
  if (retry < 1 || base.count() <= 0) return std::chrono::milliseconds(0);
  double d = static_cast<double>(base.count()) * std::ldexp(1.0, std::min(retry - 1, 30));
  d = std::min(d, static_cast<double>(cap.count()));
  unit = std::clamp(unit, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(d / 2 + unit * d / 2));
}

std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return std::chrono::milliseconds(std::chrono::hours(24 * 365));
    std::int64_t s = 0;
    std::from_chars(value.data(), value.data() + value.size(), s);
    return std::chrono::milliseconds(s * 1000);
  }
  std::tm tm{};
  const std::string text(value);
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (at <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
}

bool retryable_status(int s) { return s == 429 || s == 502 || s == 503 || s == 504; }

int client_status_for(int s) {
  if (s == 400 || s == 413 || s == 422) return s;
  if (s == 429 || s == 503) return 503;
  if (s == 504) return 504;
  return 502;
}

std::string upstream_error_message(std::string_view body) {
  try {
    const auto j = nlohmann::json::parse(body);
    if (j.is_object()) {
      if (auto e = j.find("error"); e != j.end()) {
        if (e->is_string()) return e->get<std::string>();
        if (e->is_object()) {
          if (auto m = e->find("message"); m != e->end() && m->is_string()) return m->get<std::string>();
        }
      }
      if (auto m = j.find("message"); m != j.end() && m->is_string()) return m->get<std::string>();
      if (auto m = j.find("detail"); m != j.end() && m->is_string()) return m->get<std::string>();
    }
  } catch (const nlohmann::json::exception&) {
  }
  std::string t(trim(body));
  if (t.size() > 300) t = t.substr(0, 300) + "...";
  return t;
}

int estimate_prompt_tokens(const std::vector<ChatMessage>& messages) {
  std::size_t bytes = 0;
  for (const auto& m : messages) bytes += m.content.size();
  return static_cast<int>((bytes + 2) / 3 + 4 * messages.size() + 3);
}

}  // namespace talkserve::llm::remote
