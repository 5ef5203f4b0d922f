#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>

#include "talkserve/sched/batching_config.hpp"
#include "talkserve/sched/expected.hpp"

using namespace std::chrono_literals;
using talkserve::sched::BatchingConfig;
using talkserve::sched::ExecErrc;
using talkserve::sched::ExecError;
using talkserve::sched::Expected;

namespace {
std::string validation_error(const BatchingConfig& c) {
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("BatchingConfig defaults are valid", "[sched][config]") {
  BatchingConfig c;
  CHECK_NOTHROW(c.validate());
  CHECK(c.num_workers == 1);
  CHECK(c.max_batch >= 1);
  CHECK(c.max_wait >= c.min_wait);
}

TEST_CASE("BatchingConfig::validate names the bad key", "[sched][config]") {
  BatchingConfig base;
  base.name = "asr";
  auto with = [&](auto mutate) {
    BatchingConfig c = base;
    mutate(c);
    return validation_error(c);
  };
  CHECK_THAT(with([](auto& c) { c.max_batch = 0; }), Catch::Contains("max_batch"));
  CHECK_THAT(with([](auto& c) { c.max_queue = 0; }), Catch::Contains("max_queue"));
  CHECK_THAT(with([](auto& c) { c.min_wait = -1ms; }), Catch::Contains("min_wait"));
  CHECK_THAT(with([](auto& c) {
               c.max_wait = 1ms;
               c.min_wait = 2ms;
             }),
             Catch::Contains("max_wait"));
  CHECK_THAT(with([](auto& c) { c.ewma_alpha = 0.0; }), Catch::Contains("ewma_alpha"));
  CHECK_THAT(with([](auto& c) { c.ewma_alpha = 1.5; }), Catch::Contains("ewma_alpha"));
  CHECK_THAT(with([](auto& c) { c.ewma_alpha = std::nan(""); }), Catch::Contains("ewma_alpha"));
  CHECK_THAT(with([](auto& c) { c.num_workers = 0; }), Catch::Contains("num_workers"));
  CHECK_THAT(with([](auto& c) { c.max_queue_delay = -1ms; }), Catch::Contains("max_queue_delay"));
  CHECK_THAT(with([](auto& c) {
               c.max_wait = 20ms;
               c.max_queue_delay = 20ms;
             }),
             Catch::Contains("longer than max_wait"));
  CHECK(with([](auto& c) {
          c.max_wait = 20ms;
          c.max_queue_delay = 21ms;
        }).empty());
  CHECK_THAT(with([](auto& c) { c.name.clear(); }), Catch::Contains("name"));
  CHECK_THAT(with([](auto& c) { c.max_batch = 0; }), Catch::Contains("'asr'"));
  CHECK(with([](auto& c) { c.ewma_alpha = 1.0; }).empty());
}

TEST_CASE("Expected holds a value or a typed error", "[sched][expected]") {
  Expected<std::string> ok(std::string("hi"));
  REQUIRE(ok.has_value());
  CHECK(*ok == "hi");
  CHECK(ok->size() == 2);
  CHECK_THROWS_AS(ok.error(), talkserve::sched::BadExpectedAccess);

  Expected<std::string> err(ExecError{ExecErrc::failed, "boom"});
  REQUIRE_FALSE(err);
  CHECK(err.error().code == ExecErrc::failed);
  CHECK(err.error().message == "boom");
  CHECK_THROWS_AS(err.value(), talkserve::sched::BadExpectedAccess);
  CHECK(to_string(ExecErrc::deadline_exceeded) == "deadline_exceeded");
  CHECK(to_string(ExecErrc::queue_full) == "queue_full");
}
