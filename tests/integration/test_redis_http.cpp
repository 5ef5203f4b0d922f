// Two talkserve replicas (each with its own clip cache directory) sharing one redis-server
// through [redis]: a turn rendered on A is a cached turn on B, B serves the same bytes (with
// Range, from its own disk copy), and a replica whose Redis goes away keeps answering.

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

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
  const std::string clip_id = url.substr(url.rfind('/') + 1, 64);
  CHECK(redis.command("EXISTS talkserve:clip:" + clip_id) == ":1");

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

TEST_CASE("redis: a conversation started on one replica continues on the other",
          "[talk][redis]") {
  RedisServer redis;
  Talkserve a(replica(redis));
  Talkserve b(replica(redis));
  auto ca = a.client(120s), cb = b.client(120s);
  const json first{{"text", "Once upon a time there was a cat."}};
  const std::string second_text = "What did the cat do next?";

  // Turn 1 on A, turn 2 of the same session on B.
  auto t1 = talk_ok(ca, first);
  const std::string session = t1["session_id"];
  auto t2 = talk_ok(cb, json{{"text", second_text}, {"session_id", session}});
  CHECK(t2["session_id"] == session);
  CHECK(b.metrics().value("talkserve_redis_session_loads_total", {{"result", "found"}}) == 1);

  // B answered with A's history: the same two turns on A alone give the same reply (greedy).
  auto s1 = talk_ok(ca, first);
  CHECK(s1["reply"] == t1["reply"]);
  auto s2 = talk_ok(ca, json{{"text", second_text}, {"session_id", s1["session_id"]}});
  CHECK(s2["reply"] == t2["reply"]);

  // A unknown session is still a 404 on both.
  CHECK(cb.post_json("/v1/talk", json{{"text", "hi"}, {"session_id", "sess_nope"}}).status == 404);

  // One turn at a time across replicas: while A streams a turn of the session, B refuses one.
  SseStream running(ca, "/v1/talk", json{{"text", "Tell me more."}, {"session_id", session}, {"stream", true}});
  REQUIRE(running.status() == 200);
  REQUIRE(running.next_data());  // the session event: the turn holds the session
  auto busy = cb.post_json("/v1/talk", json{{"text", "hello"}, {"session_id", session}});
  INFO(busy.body);
  CHECK(busy.status == 409);
  running.read_all();
  auto t4 = talk_ok(cb, json{{"text", "The end."}, {"session_id", session}});
  CHECK(t4["session_id"] == session);

  // Redis gone: A carries on with its own copy of the session (and new ones); nothing fails.
  redis.kill();
  auto t5 = talk_ok(ca, json{{"text", "Again?"}, {"session_id", session}});
  CHECK(t5["session_id"] == session);
  CHECK(talk_ok(ca, json{{"text", "A new story."}})["session_id"] != session);
  CHECK(a.metrics().sum("talkserve_redis_session_skipped_total") >= 1);
}

TEST_CASE("redis: an API key's daily quota is one quota across replicas", "[gateway][quota][redis]") {
  RedisServer redis;
  auto quota_replica = [&redis] {
    Talkserve::Options o = replica(redis);
    for (const char* s : {"talk.enabled=false", "asr.enabled=false", "tts.enabled=false",
                          "redis.quota_sync_ms=50",
                          "gateway.keys=[{name=\"alice\", key=\"sk-quota-alice\", "
                          "requests_per_day=3}, {name=\"bob\", key=\"sk-quota-bob\"}]"}) {
      o.args.push_back("--set");
      o.args.push_back(s);
    }
    return o;
  };
  Talkserve a(quota_replica());
  Talkserve b(quota_replica());
  auto ca = a.client(), cb = b.client();
  const Headers alice{{"Authorization", "Bearer sk-quota-alice"}};
  const Headers bob{{"Authorization", "Bearer sk-quota-bob"}};
  // Two exchanges after `since` on a replica: the latest counts have gone both ways.
  auto synced = [](Talkserve& t, double since) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (t.metrics().value("talkserve_quota_syncs_total").value_or(0) < since + 2) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  };

  CHECK(ca.get("/v1/models", alice).status == 200);
  CHECK(ca.get("/v1/models", alice).status == 200);
  REQUIRE(synced(a, a.metrics().value("talkserve_quota_syncs_total").value_or(0)));
  REQUIRE(synced(b, b.metrics().value("talkserve_quota_syncs_total").value_or(0)));

  CHECK(cb.get("/v1/models", alice).status == 200);  // the third of the day
  auto over = cb.get("/v1/models", alice);
  INFO(over.body);
  CHECK(over.status == 429);
  CHECK(json::parse(over.body)["error"]["code"] == "quota_exceeded");
  REQUIRE(synced(a, a.metrics().value("talkserve_quota_syncs_total").value_or(0)));
  CHECK(ca.get("/v1/models", alice).status == 429);
  CHECK(ca.get("/v1/models", bob).status == 200);  // another key is not affected
  CHECK(a.metrics().value("talkserve_quota_sync_failures_total") == 0);

  // Redis gone: both carry on with what they know; no request fails for it.
  redis.kill();
  CHECK(cb.get("/v1/models", bob).status == 200);
  CHECK(cb.get("/v1/models", alice).status == 429);
  CHECK(cb.get("/readyz").status == 200);
}
