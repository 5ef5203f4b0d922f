// The demo page's static files: content types, index.html, HEAD, ETag revalidation, and no way
// out of the root.

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;

namespace {

// <tmp>/web is the root; <tmp>/secret.txt sits next to it and must stay unreachable.
struct WebRoot {
  TempDir dir;
  WebRoot() {
    dir.write("web/index.html", "<!doctype html><title>talkserve</title>");
    dir.write("web/app.js", "console.log('hi');");
    dir.write("web/style.css", "body{margin:0}");
    dir.write("web/data.json", R"({"a":1})");
    dir.write("web/lipsync.wasm", std::string("\0asm\1\0\0\0", 8));
    dir.write("web/face.png", std::string("\x89PNG\r\n\x1a\n", 8));
    dir.write("web/docs/index.html", "docs");
    dir.write("web/noext", "raw");
    dir.write("secret.txt", "top secret");
  }
  std::string root() const { return (dir.path() / "web").string(); }
};

Router static_router(const WebRoot& web) {
  Router r;
  r.add(verb::get, "/healthz", [](HttpExchange& ex) -> asio::awaitable<void> {
    co_await ex.respond(make_json(http::status::ok, R"({"status":"ok"})"));
  });
  r.set_static_root(web.root());
  return r;
}

}  // namespace

TEST_CASE("static files: content type by extension", "[net][static]") {
  WebRoot web;
  TestServer ts(static_router(web));
  HttpTestClient c(ts.port());
  struct Case {
    const char* path;
    const char* type;
  };
  for (auto [path, type] :
       {Case{"/index.html", "text/html; charset=utf-8"},
        Case{"/app.js", "text/javascript; charset=utf-8"},
        Case{"/style.css", "text/css; charset=utf-8"}, Case{"/data.json", "application/json"},
        Case{"/lipsync.wasm", "application/wasm"}, Case{"/face.png", "image/png"},
        Case{"/noext", "application/octet-stream"}}) {
    INFO(path);
    auto res = c.roundtrip(verb::get, path);
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type] == type);
  }
  CHECK(c.roundtrip(verb::get, "/face.png").body() == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(c.roundtrip(verb::get, "/lipsync.wasm").body().size() == 8);
}

TEST_CASE("static files: \"/\" and folders serve index.html", "[net][static]") {
  WebRoot web;
  TestServer ts(static_router(web));
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, "/");
  CHECK(res.result() == http::status::ok);
  CHECK(res.body() == "<!doctype html><title>talkserve</title>");
  CHECK(res[http::field::content_type] == "text/html; charset=utf-8");
  CHECK(c.roundtrip(verb::get, "/docs/").body() == "docs");
  CHECK(c.roundtrip(verb::get, "/?lang=en").body().starts_with("<!doctype"));
  // Routes still win over files.
  CHECK(c.roundtrip(verb::get, "/healthz").body() == R"({"status":"ok"})");
}

TEST_CASE("static files: a missing file is 404 in the error shape", "[net][static]") {
  WebRoot web;
  TestServer ts(static_router(web));
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, "/nope.js");
  CHECK(res.result() == http::status::not_found);
  CHECK(error_type_and_code(res.body()).second == "not_found");
  // A folder without index.html is not a file either.
  web.dir.write("web/empty/.keep", "");
  CHECK(c.roundtrip(verb::get, "/empty").result() == http::status::not_found);
  // Only GET and HEAD read files.
  CHECK(c.roundtrip(verb::post, "/index.html", "x").result() == http::status::not_found);
}

TEST_CASE("static files: paths that leave the root are refused", "[net][static]") {
  WebRoot web;
  TestServer ts(static_router(web));
  auto target =
      GENERATE(as<std::string>{}, "/../secret.txt", "/docs/../../secret.txt", "/%2e%2e/secret.txt",
               "/%2E%2E/secret.txt", "/..%2fsecret.txt", "/docs/%2e%2e/%2e%2e/secret.txt",
               "//secret.txt", "/./index.html", "/..\\secret.txt", "/%00index.html", "/%zz", "/%2");
  INFO(target);
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, target);
  CHECK(res.result() == http::status::not_found);
  CHECK(res.body().find("top secret") == std::string::npos);
}

TEST_CASE("static files: a symlink out of the root is refused", "[net][static]") {
  WebRoot web;
  std::error_code ec;
  std::filesystem::create_symlink(web.dir.path() / "secret.txt",
                                  web.dir.path() / "web" / "link.txt", ec);
  REQUIRE_FALSE(ec);
  TestServer ts(static_router(web));
  HttpTestClient c(ts.port());
  CHECK(c.roundtrip(verb::get, "/link.txt").result() == http::status::not_found);
}

TEST_CASE("static files: HEAD sends the head with the file's length", "[net][static]") {
  WebRoot web;
  TestServer ts(static_router(web));
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::head, "/app.js");
  CHECK(res.result() == http::status::ok);
  CHECK(res[http::field::content_length] == "18");
  CHECK(res[http::field::content_type] == "text/javascript; charset=utf-8");
  CHECK_FALSE(res[http::field::etag].empty());
  CHECK(res.body().empty());
  // Still in step with the connection.
  CHECK(c.roundtrip(verb::get, "/app.js").body() == "console.log('hi');");
}

TEST_CASE("static files: ETag and If-None-Match give 304", "[net][static]") {
  WebRoot web;
  TestServer ts(static_router(web));
  HttpTestClient c(ts.port());
  auto first = c.roundtrip(verb::get, "/style.css");
  REQUIRE(first.result() == http::status::ok);
  std::string etag(first[http::field::etag]);
  REQUIRE(etag.size() > 2);
  CHECK(etag.front() == '"');
  CHECK(etag.back() == '"');

  auto again = c.roundtrip(verb::get, "/style.css", {}, {{"If-None-Match", etag}});
  CHECK(again.result() == http::status::not_modified);
  CHECK(again.body().empty());
  CHECK(again[http::field::etag] == etag);

  auto stale = c.roundtrip(verb::get, "/style.css", {}, {{"If-None-Match", "\"other\""}});
  CHECK(stale.result() == http::status::ok);
  CHECK(stale.body() == "body{margin:0}");

  // A changed file gets a new ETag.
  web.dir.write("web/style.css", "body{margin:1px}");
  auto changed = c.roundtrip(verb::get, "/style.css", {}, {{"If-None-Match", etag}});
  CHECK(changed.result() == http::status::ok);
  CHECK(changed.body() == "body{margin:1px}");
  CHECK(changed[http::field::etag] != etag);
}

TEST_CASE("static files: counted under the route \"static\"", "[net][static][metrics]") {
  WebRoot web;
  TestServer ts(static_router(web));
  {
    HttpTestClient c(ts.port());
    c.roundtrip(verb::get, "/");
    c.close();
  }
  REQUIRE(ts.server().wait_closed(2s));
  CHECK(ts.metrics().render_prometheus().find(
            R"(talkserve_http_requests_total{code="200",route="static"} 1)") != std::string::npos);
}
