// The session store alone (a manual clock drives the idle TTL): ids, one turn at a time, the
// bounded history, expiry and eviction; and the shared form every replica reads.

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "talkserve/pipeline/session_store.hpp"
#include "talkserve/sched/clock.hpp"

using namespace std::chrono_literals;
using talkserve::pipeline::parse_session;
using talkserve::pipeline::serialize_session;
using talkserve::pipeline::Session;
using talkserve::pipeline::SessionConfig;
using talkserve::pipeline::SessionStore;
using talkserve::pipeline::TurnRecord;
using talkserve::sched::ManualClock;
using Refusal = SessionStore::Refusal;

namespace {

// A finished turn that keeps the session's voice and avatar.
TurnRecord turn(std::string user, std::string assistant) { return TurnRecord{std::move(user), std::move(assistant), "", ""}; }
}  // namespace

TEST_CASE("sessions: a new session, its turns, one turn at a time", "[pipeline][sessions]") {
  ManualClock clock;
  SessionStore store(SessionConfig{}, clock);
  std::string why;
  auto s = store.begin_turn("", &why);
  REQUIRE(s);
  CHECK(s->id.starts_with("sess_"));
  CHECK(s->id.size() == 5 + 32);
  CHECK(s->history.empty());

  Refusal refusal{};
  CHECK_FALSE(store.begin_turn(s->id, &why, &refusal));
  CHECK(refusal == Refusal::busy);
  CHECK(why.find("in progress") != std::string::npos);

  store.end_turn(s->id, TurnRecord{"hello", "hi there", "en-us", "nasa"});
  auto next = store.begin_turn(s->id, &why, &refusal);
  REQUIRE(next);
  CHECK(refusal == Refusal::none);
  REQUIRE(next->history.size() == 2);
  CHECK(next->history[0].role == "user");
  CHECK(next->history[0].content == "hello");
  CHECK(next->history[1].role == "assistant");
  CHECK(next->history[1].content == "hi there");
  CHECK(next->voice == "en-us");
  CHECK(next->avatar == "nasa");
  CHECK(next->version == 1);
  store.abort_turn(next->id);  // a failed turn keeps the history as it was
  auto again = store.begin_turn(s->id, &why);
  REQUIRE(again);
  CHECK(again->history.size() == 2);
  CHECK(again->version == 1);
  CHECK(store.begin_turn("sess_0123456789abcdef0123456789abcdef", &why, &refusal) == std::nullopt);
  CHECK(refusal == Refusal::not_found);
  CHECK(why.find("does not exist") != std::string::npos);
  // Malformed ids are refused without a lookup, and not echoed back.
  for (const std::string& bad : std::vector<std::string>{"sess_unknown", std::string(100000, 'a'), "sess_0123456789ABCDEF0123456789abcdef",
                                "../sess_0123456789abcdef0123456789abcd"}) {
    CHECK(store.begin_turn(bad, &why, &refusal) == std::nullopt);
    CHECK(refusal == Refusal::not_found);
    CHECK(why.size() < 100);
  }
  CHECK(talkserve::pipeline::is_session_id(s->id));
}

TEST_CASE("sessions: the history keeps the last max_turns turns", "[pipeline][sessions]") {
  ManualClock clock;
  SessionConfig c;
  c.max_turns = 2;
  SessionStore store(c, clock);
  std::string why;
  const auto id = store.begin_turn("", &why)->id;
  store.end_turn(id, turn("u1", "a1"));
  for (const char* n : {"2", "3", "4"}) {
    REQUIRE(store.begin_turn(id, &why));
    store.end_turn(id, turn(std::string("u").append(n), std::string("a").append(n)));
  }
  auto s = store.begin_turn(id, &why);
  REQUIRE(s);
  REQUIRE(s->history.size() == 4);
  CHECK(s->history[0].content == "u3");
  CHECK(s->history[3].content == "a4");
  CHECK(s->version == 4);
}

TEST_CASE("sessions: idle sessions expire, running ones do not, a full store evicts the oldest idle",
          "[pipeline][sessions]") {
  ManualClock clock;
  SessionConfig c;
  c.idle_ttl = 60s;
  c.max_sessions = 2;
  SessionStore store(c, clock);
  std::string why;
  Refusal refusal{};
  const auto a = store.begin_turn("", &why)->id;
  store.end_turn(a, turn("u", "a"));
  clock.advance(10s);
  const auto b = store.begin_turn("", &why)->id;  // stays in its turn
  clock.advance(10s);
  // Full: the new session evicts `a` (idle, least recently used), never the running `b`.
  const auto c3 = store.begin_turn("", &why)->id;
  CHECK(store.begin_turn(a, &why, &refusal) == std::nullopt);
  CHECK(refusal == Refusal::not_found);
  // Both running: no room.
  CHECK(store.begin_turn("", &why, &refusal) == std::nullopt);
  CHECK(refusal == Refusal::full);
  store.end_turn(c3, turn("u", "a"));
  clock.advance(61s);
  // c3 expired; b is still in its turn 81 s later and survives.
  CHECK(store.begin_turn(c3, &why, &refusal) == std::nullopt);
  CHECK(refusal == Refusal::not_found);
  CHECK(store.size() == 1);
  store.end_turn(b, turn("u", "a"));
  CHECK(store.begin_turn(b, &why));
}

TEST_CASE("sessions: the shared record round-trips, and a foreign record is refused",
          "[pipeline][sessions]") {
  Session s;
  s.id = "sess_x";
  s.voice = "en-us";
  s.avatar = "nasa";
  s.version = 7;
  s.history = {{"user", "caf\xc3\xa9 \"quoted\"\n"}, {"assistant", "bad \xff byte"}};
  const std::string record = serialize_session(s);
  auto back = parse_session("sess_x", record);
  REQUIRE(back);
  CHECK(back->id == "sess_x");
  CHECK(back->voice == "en-us");
  CHECK(back->avatar == "nasa");
  CHECK(back->version == 7);
  REQUIRE(back->history.size() == 2);
  CHECK(back->history[0].content == "caf\xc3\xa9 \"quoted\"\n");
  CHECK(back->history[1].content == "bad \xef\xbf\xbd byte");  // invalid UTF-8 replaced, not lost
  CHECK_FALSE(parse_session("x", "not json"));
  CHECK_FALSE(parse_session("x", R"({"format":2,"version":1,"voice":"","avatar":"","history":[]})"));
  CHECK_FALSE(parse_session("x", R"({"format":1,"version":"1","voice":"","avatar":"","history":[]})"));
  CHECK_FALSE(parse_session("x", R"({"format":1,"version":1,"voice":"","avatar":"","history":[{"role":1}]})"));
}
