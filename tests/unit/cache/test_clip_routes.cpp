// GET/HEAD /v1/clips/{id}.mp4 over a real loopback server: full body and headers, HEAD, 304,
// byte ranges, 416, 404s, and malformed names refused before the store is asked.

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"
#include "talkserve/cache/clip_cache.hpp"
#include "talkserve/cache/clip_key.hpp"
#include "talkserve/cache/clip_routes.hpp"
#include "test_support.hpp"

using namespace talkserve::cache;
using boost::beast::http::field;
using boost::beast::http::status;
using boost::beast::http::verb;
using talkserve::net::Router;
using talkserve::net::test::error_type_and_code;
using talkserve::net::test::HttpTestClient;
using talkserve::net::test::TestServer;

namespace {

// Counts every call into the store, so a test can show a request never reached it.
class CountingStore final : public ClipStore {
 public:
  explicit CountingStore(ClipStore& inner) : inner_(inner) {}
  PutStatus put(std::string_view id, std::string_view bytes) override {
    ++calls;
    return inner_.put(id, bytes);
  }
  std::optional<ClipInfo> get(std::string_view id) override {
    ++calls;
    return inner_.get(id);
  }
  std::optional<std::string> read(const ClipInfo& clip, std::uint64_t offset,
                                  std::uint64_t length) override {
    ++calls;
    return inner_.read(clip, offset, length);
  }
  bool erase(std::string_view id) override {
    ++calls;
    return inner_.erase(id);
  }
  std::atomic<int> calls{0};

 private:
  ClipStore& inner_;
};

std::string clip_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + 7) & 0xff);
  return s;
}

struct Fixture {
  talkserve::test::TempDir dir;
  ClipCache cache{[this] {
    ClipCacheConfig c;
    c.dir = dir.path() / "clips";
    c.max_bytes = 1 << 20;
    return c;
  }()};
  CountingStore store{cache};
  std::string id = ClipKeyBuilder().field("clip", "one").finish();
  std::string bytes = clip_bytes(1000);
  std::string url = "/v1/clips/" + id + ".mp4";
  std::unique_ptr<TestServer> server;

  Fixture() {
    REQUIRE(cache.put(id, bytes) == PutStatus::stored);
    Router router;
    register_clip_routes(router, store);
    server = std::make_unique<TestServer>(std::move(router));
  }
};

void check_not_found(const talkserve::net::test::StringResponse& res) {
  CHECK(res.result() == status::not_found);
  CHECK(res[field::content_type] == "application/json");
  auto [type, code] = error_type_and_code(res.body());
  CHECK(type == "invalid_request_error");
  CHECK(code == "not_found");
}

}  // namespace

TEST_CASE("clip route: 200 with the whole clip and caching headers", "[cache][route]") {
  Fixture f;
  HttpTestClient c(f.server->port());
  auto res = c.roundtrip(verb::get, f.url);
  CHECK(res.result() == status::ok);
  CHECK(res.body() == f.bytes);
  CHECK(res[field::content_type] == "video/mp4");
  CHECK(res[field::content_length] == "1000");
  CHECK(res[field::etag] == "\"" + f.id + "\"");
  CHECK(res[field::cache_control] == "public, max-age=31536000, immutable");
  CHECK(res[field::accept_ranges] == "bytes");
  CHECK(res.find(field::content_range) == res.end());
}

TEST_CASE("clip route: HEAD has the headers and length, no body", "[cache][route]") {
  Fixture f;
  HttpTestClient c(f.server->port());
  auto res = c.roundtrip(verb::head, f.url);
  CHECK(res.result() == status::ok);
  CHECK(res[field::content_length] == "1000");
  CHECK(res[field::content_type] == "video/mp4");
  CHECK(res[field::etag] == "\"" + f.id + "\"");
  CHECK(res.body().empty());
  // The connection is still usable: no stray body bytes were sent.
  CHECK(c.roundtrip(verb::get, f.url).body() == f.bytes);

  auto ranged = c.roundtrip(verb::head, f.url, {}, {{"Range", "bytes=10-19"}});
  CHECK(ranged.result() == status::partial_content);
  CHECK(ranged[field::content_length] == "10");
  CHECK(ranged[field::content_range] == "bytes 10-19/1000");
}

TEST_CASE("clip route: If-None-Match gives 304", "[cache][route]") {
  Fixture f;
  HttpTestClient c(f.server->port());
  std::string etag = "\"" + f.id + "\"";
  for (std::string inm : {etag, "W/" + etag, "\"other\", " + etag, std::string("*")}) {
    INFO(inm);
    auto res = c.roundtrip(verb::get, f.url, {}, {{"If-None-Match", inm}});
    CHECK(res.result() == status::not_modified);
    CHECK(res.body().empty());
    CHECK(res[field::etag] == etag);
    CHECK(res[field::cache_control] == "public, max-age=31536000, immutable");
  }
  auto res = c.roundtrip(verb::get, f.url, {}, {{"If-None-Match", "\"other\""}});
  CHECK(res.result() == status::ok);
  CHECK(res.body() == f.bytes);
}

TEST_CASE("clip route: byte ranges give 206 with the exact bytes", "[cache][route]") {
  Fixture f;
  HttpTestClient c(f.server->port());
  struct Case {
    std::string range;
    std::size_t first, last;
  };
  for (auto [range, first, last] :
       {Case{"bytes=0-99", 0, 99}, Case{"bytes=100-199", 100, 199}, Case{"bytes=900-", 900, 999},
        Case{"bytes=-10", 990, 999}, Case{"bytes=990-5000", 990, 999},  // clamped to the end
        Case{"bytes=-5000", 0, 999},                                    // suffix longer than clip
        Case{"bytes=999-999", 999, 999}}) {
    INFO(range);
    auto res = c.roundtrip(verb::get, f.url, {}, {{"Range", range}});
    CHECK(res.result() == status::partial_content);
    CHECK(res.body() == f.bytes.substr(first, last - first + 1));
    CHECK(res[field::content_range] ==
          "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/1000");
    CHECK(res[field::content_length] == std::to_string(last - first + 1));
    CHECK(res[field::content_type] == "video/mp4");
    CHECK(res[field::etag] == "\"" + f.id + "\"");
  }
}

TEST_CASE("clip route: unsatisfiable range gives 416", "[cache][route]") {
  Fixture f;
  HttpTestClient c(f.server->port());
  for (std::string range : {"bytes=1000-", "bytes=5000-6000", "bytes=-0"}) {
    INFO(range);
    auto res = c.roundtrip(verb::get, f.url, {}, {{"Range", range}});
    CHECK(res.result() == status::range_not_satisfiable);
    CHECK(res[field::content_range] == "bytes */1000");
    auto [type, code] = error_type_and_code(res.body());
    CHECK(code == "range_not_satisfiable");
  }
}

TEST_CASE("clip route: ranges answered with the whole clip", "[cache][route]") {
  Fixture f;
  HttpTestClient c(f.server->port());
  std::string etag = "\"" + f.id + "\"";
  std::vector<std::vector<std::pair<std::string, std::string>>> cases = {
      {{"Range", "bytes=0-9,20-29"}},                       // several ranges
      {{"Range", "bytes=20-10"}},                           // last < first: invalid, ignored
      {{"Range", "items=0-9"}},                             // unknown unit
      {{"Range", "bytes=abc"}},                             // malformed
      {{"Range", "bytes=0-9"}, {"If-Range", "\"stale\""}},  // client's copy is stale
  };
  for (auto& headers : cases) {
    INFO(headers.front().second);
    auto res = c.roundtrip(verb::get, f.url, {}, headers);
    CHECK(res.result() == status::ok);
    CHECK(res.body() == f.bytes);
  }
  auto res = c.roundtrip(verb::get, f.url, {}, {{"Range", "bytes=0-9"}, {"If-Range", etag}});
  CHECK(res.result() == status::partial_content);
  CHECK(res.body() == f.bytes.substr(0, 10));
}

TEST_CASE("clip route: unknown clip is 404", "[cache][route]") {
  Fixture f;
  HttpTestClient c(f.server->port());
  auto other = ClipKeyBuilder().field("clip", "two").finish();
  check_not_found(c.roundtrip(verb::get, "/v1/clips/" + other + ".mp4"));
  auto head = c.roundtrip(verb::head, "/v1/clips/" + other + ".mp4");
  CHECK(head.result() == status::not_found);
  CHECK(head.body().empty());
  CHECK(f.store.calls == 2);
  // Evicted behind the server's back.
  f.cache.erase(f.id);
  check_not_found(c.roundtrip(verb::get, f.url));
}

TEST_CASE("clip route: malformed names are 404 without asking the store", "[cache][route]") {
  Fixture f;
  HttpTestClient c(f.server->port());
  std::string upper = f.id;
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  std::vector<std::string> targets = {
      "/v1/clips/..%2F..%2Fetc%2Fpasswd",
      "/v1/clips/..%2Fetc%2Fpasswd.mp4",
      "/v1/clips/" + upper + ".mp4",
      "/v1/clips/" + f.id.substr(0, 63) + ".mp4",
      "/v1/clips/" + f.id + "0.mp4",
      "/v1/clips/x.mp4",
      "/v1/clips/" + f.id,
      "/v1/clips/" + f.id + ".MP4",
      "/v1/clips/" + f.id + ".mp4.mp4",
      "/v1/clips/" + f.id + "%2Emp4",
      "/v1/clips/.mp4",
  };
  for (const auto& t : targets) {
    INFO(t);
    check_not_found(c.roundtrip(verb::get, t));
  }
  // Not even a route match (the router splits on '/'); still a 404 in the same shape.
  check_not_found(c.roundtrip(verb::get, "/v1/clips/../etc/passwd"));
  check_not_found(c.roundtrip(verb::get, "/v1/clips/../../" + f.id + ".mp4"));
  CHECK(f.store.calls == 0);
  CHECK(f.cache.stats().misses == 0);
}

TEST_CASE("clip route: registered as an authenticated /v1 route", "[cache][route]") {
  talkserve::test::TempDir dir;
  ClipCacheConfig cfg;
  cfg.dir = dir.path() / "clips";
  ClipCache cache(cfg);
  Router router;
  register_clip_routes(router, cache);
  auto m = router.match(verb::get, "/v1/clips/abc.mp4");
  REQUIRE(m.kind == talkserve::net::RouteMatch::Kind::found);
  CHECK(m.route->options.name == "/v1/clips/{id}");
  CHECK(m.route->options.requires_auth);
  CHECK(router.match(verb::head, "/v1/clips/abc.mp4").kind ==
        talkserve::net::RouteMatch::Kind::found);
  CHECK(router.match(verb::post, "/v1/clips/abc.mp4").kind ==
        talkserve::net::RouteMatch::Kind::method_not_allowed);
}

TEST_CASE("parse_byte_range", "[cache][route]") {
  using K = ByteRangeRequest::Kind;
  auto r = parse_byte_range("bytes=0-0", 10);
  CHECK((r.kind == K::single && r.first == 0 && r.last == 0));
  r = parse_byte_range(" bytes = 2 - 4 ", 10);
  CHECK((r.kind == K::single && r.first == 2 && r.last == 4));
  r = parse_byte_range("BYTES=5-", 10);
  CHECK((r.kind == K::single && r.first == 5 && r.last == 9));
  r = parse_byte_range("bytes=-3", 10);
  CHECK((r.kind == K::single && r.first == 7 && r.last == 9));
  r = parse_byte_range("bytes=0-99999999999999999999999", 10);  // saturates, clamps
  CHECK((r.kind == K::single && r.first == 0 && r.last == 9));
  CHECK(parse_byte_range("bytes=99999999999999999999999-", 10).kind == K::unsatisfiable);
  CHECK(parse_byte_range("bytes=10-", 10).kind == K::unsatisfiable);
  CHECK(parse_byte_range("bytes=-0", 10).kind == K::unsatisfiable);
  CHECK(parse_byte_range("bytes=0-", 0).kind == K::unsatisfiable);
  CHECK(parse_byte_range("bytes=-5", 0).kind == K::unsatisfiable);
  CHECK(parse_byte_range("", 10).kind == K::whole);
  CHECK(parse_byte_range("bytes=", 10).kind == K::whole);
  CHECK(parse_byte_range("bytes=-", 10).kind == K::whole);
  CHECK(parse_byte_range("bytes=1-2,3-4", 10).kind == K::whole);
  CHECK(parse_byte_range("bytes=+1-2", 10).kind == K::whole);
  CHECK(parse_byte_range("bytes=4-2", 10).kind == K::whole);
}

TEST_CASE("if_none_match_matches", "[cache][route]") {
  CHECK(if_none_match_matches("\"a\"", "\"a\""));
  CHECK(if_none_match_matches("W/\"a\"", "\"a\""));
  CHECK(if_none_match_matches("\"b\" , \"a\"", "\"a\""));
  CHECK(if_none_match_matches("*", "\"a\""));
  CHECK_FALSE(if_none_match_matches("\"b\"", "\"a\""));
  CHECK_FALSE(if_none_match_matches("a", "\"a\""));
  CHECK_FALSE(if_none_match_matches("", "\"a\""));
}
