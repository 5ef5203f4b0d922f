// The admission hook (the gateway's verdict): refusals become the right status with the JSON
// error body and Retry-After, and the handler never runs; admitted requests carry the
// principal, priority and permit into the handler.

#include <atomic>
#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;

namespace {

// Decides by the X-Verdict header: "401", "429", "503", otherwise admits as "alice" (vip).
AdmissionDecision verdict_from_header(const Request& req, const Route&) {
  AdmissionDecision d;
  auto v = std::string(req["X-Verdict"]);
  if (v == "401") {
    d.status = 401;
    d.message = "missing or unknown API key";
    d.code = "invalid_api_key";
  } else if (v == "429") {
    d.status = 429;
    d.message = "rate limit reached";
    d.code = "rate_limit_exceeded";
    d.retry_after_s = 7;
  } else if (v == "503") {
    d.status = 503;
    d.message = "queue full";
    d.code = "queue_full";
    d.retry_after_s = 2;
  } else {
    d.priority = 0;
    d.principal = "alice";
  }
  return d;
}

struct Counting {
  std::atomic<int> handler_runs{0};
  std::atomic<int> hook_runs{0};
};

Router admission_router(Counting& count) {
  Router r;
  r.add(verb::post, "/v1/chat/completions", [&count](HttpExchange& ex) -> asio::awaitable<void> {
    ++count.handler_runs;
    const auto& ctx = ex.context();
    co_await ex.respond(
        make_json(http::status::ok, ctx.principal + "/" + std::to_string(ctx.priority)));
  });
  r.add(
      verb::get, "/healthz",
      [&count](HttpExchange& ex) -> asio::awaitable<void> {
        ++count.handler_runs;
        co_await ex.respond(make_json(http::status::ok, "{}"));
      },
      route_options("/healthz", {}, false));
  return r;
}

AdmissionHook counting_hook(Counting& count) {
  return [&count](const Request& req, const Route& route) {
    ++count.hook_runs;
    if (!route.options.requires_auth) return AdmissionDecision{};
    return verdict_from_header(req, route);
  };
}

}  // namespace

TEST_CASE("admission: refusals get their status, error body and Retry-After", "[net][admission]") {
  Counting count;
  TestServer ts(admission_router(count), fast_config(), counting_hook(count));
  HttpTestClient c(ts.port());

  auto res = c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"X-Verdict", "401"}});
  CHECK(res.result() == http::status::unauthorized);
  CHECK(res[http::field::www_authenticate] == "Bearer");
  CHECK(res[http::field::retry_after].empty());
  auto [type401, code401] = error_type_and_code(res.body());
  CHECK(type401 == "authentication_error");
  CHECK(code401 == "invalid_api_key");

  res = c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"X-Verdict", "429"}});
  CHECK(res.result() == http::status::too_many_requests);
  CHECK(res[http::field::retry_after] == "7");
  auto [type429, code429] = error_type_and_code(res.body());
  CHECK(type429 == "rate_limit_error");
  CHECK(code429 == "rate_limit_exceeded");

  res = c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"X-Verdict", "503"}});
  CHECK(res.result() == http::status::service_unavailable);
  CHECK(res[http::field::retry_after] == "2");
  CHECK(error_type_and_code(res.body()).second == "queue_full");

  CHECK(count.handler_runs == 0);
  CHECK(count.hook_runs == 3);
  CHECK(res.keep_alive());  // a refusal does not cost the connection
}

TEST_CASE("admission: admitted requests carry principal and priority", "[net][admission]") {
  Counting count;
  TestServer ts(admission_router(count), fast_config(), counting_hook(count));
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::post, "/v1/chat/completions", "{}");
  CHECK(res.result() == http::status::ok);
  CHECK(res.body() == "alice/0");
  CHECK(count.handler_runs == 1);

  // Routes that take no auth still pass through the hook, which admits them.
  res = c.roundtrip(verb::get, "/healthz", {}, {{"X-Verdict", "401"}});
  CHECK(res.result() == http::status::ok);
}

TEST_CASE("admission: not consulted for 404, 405 or static files", "[net][admission]") {
  Counting count;
  TestServer ts(admission_router(count), fast_config(), counting_hook(count));
  HttpTestClient c(ts.port());
  CHECK(c.roundtrip(verb::get, "/nowhere", {}, {{"X-Verdict", "401"}}).result() ==
        http::status::not_found);
  CHECK(c.roundtrip(verb::get, "/v1/chat/completions", {}, {{"X-Verdict", "401"}}).result() ==
        http::status::method_not_allowed);
  CHECK(count.hook_runs == 0);
}

TEST_CASE("admission: the permit is held until the request ends", "[net][admission]") {
  std::weak_ptr<void> permit_seen;
  std::atomic<bool> held_in_handler{false};
  std::mutex m;
  Router r;
  r.add(verb::post, "/work", [&](HttpExchange& ex) -> asio::awaitable<void> {
    {
      std::lock_guard lock(m);
      held_in_handler = !permit_seen.expired() && ex.context().admission != nullptr;
    }
    co_await ex.respond(make_json(http::status::ok, "{}"));
  });
  AdmissionHook hook = [&](const Request&, const Route&) {
    AdmissionDecision d;
    auto permit = std::make_shared<int>(1);
    {
      std::lock_guard lock(m);
      permit_seen = permit;
    }
    d.permit = permit;
    return d;
  };
  TestServer ts(std::move(r), fast_config(), hook);
  {
    HttpTestClient c(ts.port());
    CHECK(c.roundtrip(verb::post, "/work", "{}").result() == http::status::ok);
    c.close();
  }
  REQUIRE(ts.server().wait_closed(2s));
  CHECK(held_in_handler);
  std::lock_guard lock(m);
  CHECK(permit_seen.expired());
}

TEST_CASE("admission: refusals are counted in the request metrics", "[net][admission][metrics]") {
  Counting count;
  TestServer ts(admission_router(count), fast_config(), counting_hook(count));
  {
    HttpTestClient c(ts.port());
    c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"X-Verdict", "429"}});
    c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"X-Verdict", "429"}});
    c.close();
  }
  REQUIRE(ts.server().wait_closed(2s));
  CHECK(ts.metrics().render_prometheus().find(
            R"(talkserve_http_requests_total{code="429",route="/v1/chat/completions"} 2)") !=
        std::string::npos);
}
