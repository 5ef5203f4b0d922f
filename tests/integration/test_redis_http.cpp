// Two talkserve replicas (each with its own clip cache directory) sharing one redis-server
// through [redis]: a turn rendered on A is a cached turn on B, B serves the same bytes (with
// Range, from its own disk copy), and a replica whose Redis goes away keeps answering.

#include <catch2/catch.hpp>

#include <chrono>

#include "support/redis_server.hpp"
#include "support/talkserve.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;
using talkserve::test::RedisServer;

namespace {

Talkserve::Options replica(const RedisServer& redis) {
  Talkserve::Options o;
  o.startup_timeout = 60s;
  o.args = {"--set", "redis.url=\"" + redis.url() + "\"", "--set", "redis.timeout_ms=200"};
  return o;
}

json talk_ok(const HttpClient& client, const json& body) {
  auto res = client.post_json("/v1/talk", body);
  INFO(res.status << " " << res.body);
  REQUIRE(res.status == 200);
  return res.json();
}

}  // namespace

TEST_CASE("redis: a clip rendered by one replica is served cached by the other",
          "[talk][redis]") {
  RedisServer redis;
  Talkserve a(replica(redis));
  Talkserve b(replica(redis));
  auto ca = a.client(120s), cb = b.client(120s);
  const json turn{{"text", "Tell me a story about a dog."}};

  auto ja = talk_ok(ca, turn);
  CHECK(ja["cached"] == false);
  const std::string url = ja["video_url"];
  auto clip_a = ca.get(url);
  REQUIRE(clip_a.status == 200);
  REQUIRE(clip_a.body.size() > 1000);
  CHECK(redis.command("DBSIZE") == ":1");

  auto jb = talk_ok(cb, turn);
  INFO(b.diagnostics());
  CHECK(jb["cached"] == true);
  CHECK(jb["video_url"] == url);
  auto clip_b = cb.get(url);
  REQUIRE(clip_b.status == 200);
  CHECK(clip_b.body == clip_a.body);
  CHECK(clip_b.header("ETag") == clip_a.header("ETag"));
  auto range = cb.get(url, {{"Range", "bytes=100-199"}});
  CHECK(range.status == 206);
  CHECK(range.body == clip_a.body.substr(100, 100));

  auto mb = b.metrics();
  CHECK(mb.value("talkserve_redis_clip_hits_total") == 1);
  CHECK(mb.sum("talkserve_redis_errors_total") == 0);
  CHECK(a.metrics().value("talkserve_redis_clip_stores_total") == 1);
  WARN("render on A " << ja["timings"]["total_ms"] << " ms (render " << ja["timings"]["render_ms"]
                      << ", encode " << ja["timings"]["encode_ms"] << "), Redis hit on B "
                      << jb["timings"]["total_ms"] << " ms");

  // Redis gone: B still renders and serves a new turn on its own, and says why in /metrics.
  redis.kill();
  auto jb2 = talk_ok(cb, json{{"text", "Tell me a story about a frog."}});
  CHECK(jb2["cached"] == false);
  CHECK(cb.get(jb2["video_url"].get<std::string>()).status == 200);
  CHECK(b.metrics().sum("talkserve_redis_errors_total") >= 1);
  CHECK(cb.get("/readyz").status == 200);
}
