#include "talkserve/cache/clip_routes.hpp"

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "talkserve/cache/clip_key.hpp"
#include "talkserve/net/exchange.hpp"

namespace talkserve::cache {

namespace http = boost::beast::http;

namespace {

constexpr std::string_view kMp4Suffix = ".mp4";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Decimal digits, saturating at the maximum (a huge first-pos is still unsatisfiable, a huge
// last-pos still means "to the end"). nullopt if empty or not all digits.
std::optional<std::uint64_t> parse_digits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    auto d = static_cast<std::uint64_t>(c - '0');
    v = v > (kMax - d) / 10 ? kMax : v * 10 + d;
  }
  return v;
}

// The clip id in "<id>.mp4", or empty if the name is anything else.
std::string_view clip_id_from_file(std::string_view file) {
  if (!file.ends_with(kMp4Suffix)) return {};
  auto id = file.substr(0, file.size() - kMp4Suffix.size());
  return is_clip_id(id) ? id : std::string_view{};
}

net::Response not_found(std::string_view what, unsigned version) {
  return net::make_error(http::status::not_found, what, "invalid_request_error", "not_found",
                         version);
}

boost::asio::awaitable<void> serve_clip(ClipStore& store, net::HttpExchange& ex) {
  const auto& req = ex.request();
  const unsigned version = req.version();
  const std::string_view id = clip_id_from_file(ex.param("file"));
  if (id.empty()) {
    // Refused before the store is asked: nothing here reaches the filesystem.
    co_await ex.respond(not_found("no such clip; clip URLs are /v1/clips/<64 hex>.mp4", version));
    co_return;
  }
  auto clip = store.get(id);
  if (!clip) {
    co_await ex.respond(not_found("no such clip: " + std::string(id), version));
    co_return;
  }

  auto base_headers = [&](net::Response& res) {
    res.set(http::field::etag, clip->etag);
    res.set(http::field::cache_control, "public, max-age=31536000, immutable");
    res.set(http::field::accept_ranges, "bytes");
  };

  if (auto inm = req.find(http::field::if_none_match); inm != req.end()) {
    if (if_none_match_matches(inm->value(), clip->etag)) {
      net::Response res{http::status::not_modified, version};
      base_headers(res);
      co_await ex.respond(std::move(res));
      co_return;
    }
  }

  ByteRangeRequest range;
  if (auto r = req.find(http::field::range); r != req.end()) {
    // If-Range with anything but our ETag (another tag, or a date: there is no Last-Modified)
    // means the client's partial copy is stale: send the whole clip.
    auto if_range = req.find(http::field::if_range);
    if (if_range == req.end() || trim(if_range->value()) == clip->etag) {
      range = parse_byte_range(r->value(), clip->size);
    }
  }

  if (range.kind == ByteRangeRequest::Kind::unsatisfiable) {
    auto res = net::make_error(
        http::status::range_not_satisfiable,
        "range not satisfiable for a clip of " + std::to_string(clip->size) + " bytes",
        "invalid_request_error", "range_not_satisfiable", version);
    base_headers(res);
    res.set(http::field::content_range, "bytes */" + std::to_string(clip->size));
    co_await ex.respond(std::move(res));
    co_return;
  }

  std::uint64_t first = 0;
  std::uint64_t length = clip->size;
  net::Response res{http::status::ok, version};
  if (range.kind == ByteRangeRequest::Kind::single) {
    first = range.first;
    length = range.last - range.first + 1;
    res.result(http::status::partial_content);
    res.set(http::field::content_range, "bytes " + std::to_string(range.first) + "-" +
                                            std::to_string(range.last) + "/" +
                                            std::to_string(clip->size));
  }
  base_headers(res);
  res.set(http::field::content_type, "video/mp4");

  if (req.method() == http::verb::head) {
    res.content_length(length);
    co_await ex.respond(std::move(res));
    co_return;
  }
  auto body = store.read(*clip, first, length);
  if (!body || body->size() != length) {
    // Evicted or erased between get() and read().
    co_await ex.respond(not_found("no such clip: " + std::string(id), version));
    co_return;
  }
  res.body() = std::move(*body);
  res.prepare_payload();
  co_await ex.respond(std::move(res));
}

}  // namespace

ByteRangeRequest parse_byte_range(std::string_view header, std::uint64_t size) {
  using Kind = ByteRangeRequest::Kind;
  header = trim(header);
  auto eq = header.find('=');
  if (eq == std::string_view::npos || !iequals_ascii(trim(header.substr(0, eq)), "bytes")) {
    return {};
  }
  std::string_view set = header.substr(eq + 1);
  if (set.find(',') != std::string_view::npos) {
    // Several ranges (or empty list elements): the whole clip is a valid answer, and simpler
    // for players than multipart/byteranges.
    return {};
  }
  std::string_view spec = trim(set);
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  auto first_s = trim(spec.substr(0, dash));
  auto last_s = trim(spec.substr(dash + 1));
  if (first_s.empty()) {
    // Suffix: the last n bytes.
    auto n = parse_digits(last_s);
    if (!n) return {};
    if (*n == 0 || size == 0) return {Kind::unsatisfiable, 0, 0};
    std::uint64_t take = std::min(*n, size);
    return {Kind::single, size - take, size - 1};
  }
  auto first = parse_digits(first_s);
  if (!first) return {};
  std::uint64_t last = size == 0 ? 0 : size - 1;
  if (!last_s.empty()) {
    auto l = parse_digits(last_s);
    if (!l || *l < *first) return {};  // invalid: ignore the header
    last = std::min(*l, last);
  }
  if (*first >= size) return {Kind::unsatisfiable, 0, 0};
  return {Kind::single, *first, last};
}

bool if_none_match_matches(std::string_view header, std::string_view etag) {
  auto opaque = [](std::string_view tag) {
    tag = trim(tag);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    return tag;
  };
  std::string_view want = opaque(etag);
  while (true) {
    auto comma = header.find(',');
    auto item = trim(header.substr(0, comma));
    if (item == "*") return true;
    if (!item.empty() && opaque(item) == want) return true;
    if (comma == std::string_view::npos) return false;
    header.remove_prefix(comma + 1);
  }
}

void register_clip_routes(net::Router& router, ClipStore& store) {
  net::RouteOptions options;
  options.name = std::string(kClipRouteName);
  options.requires_auth = true;
  router.add(
      http::verb::get, std::string(kClipRoutePattern),
      [&store](net::HttpExchange& ex) -> boost::asio::awaitable<void> {
        co_await serve_clip(store, ex);
      },
      std::move(options));
}

}  // namespace talkserve::cache
