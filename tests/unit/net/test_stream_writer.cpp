// StreamWriter on its own, with a fake connection write: order, the bound, on_drain at half,
// clean close, abort and write failures.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <catch2/catch.hpp>

#include "talkserve/net/stream_writer.hpp"
#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;

namespace {

// Records what the writer sends; fails the write with `fail_with` once `fail_at` messages went.
struct FakeConnection {
  std::vector<std::string> written;
  std::size_t fail_at = SIZE_MAX;
  boost::system::error_code fail_with = asio::error::broken_pipe;

  StreamWriter::WriteFn write_fn() {
    return [this](std::string& msg) -> asio::awaitable<boost::system::error_code> {
      if (written.size() == fail_at) co_return fail_with;
      written.push_back(msg);
      co_return boost::system::error_code{};
    };
  }
};

struct RunResult {
  bool finished = false;
  boost::system::error_code ec;
};

void spawn_run(asio::io_context& ioc, const std::shared_ptr<StreamWriter>& w, RunResult& out) {
  asio::co_spawn(
      ioc,
      [w, &out]() -> asio::awaitable<void> {
        out.ec = co_await w->run();
        out.finished = true;
      },
      asio::detached);
}

}  // namespace

TEST_CASE("stream writer: messages go out in push order and close ends the run",
          "[net][stream_writer]") {
  asio::io_context ioc;
  FakeConnection conn;
  auto w = std::make_shared<StreamWriter>(ioc.get_executor(), 8, conn.write_fn());
  CHECK(w->push("a") == PushResult::ok);
  CHECK(w->push("b") == PushResult::ok);
  RunResult run;
  spawn_run(ioc, w, run);
  ioc.poll();
  CHECK(conn.written == std::vector<std::string>{"a", "b"});
  CHECK_FALSE(run.finished);  // waiting for more

  CHECK(w->push("c") == PushResult::ok);
  w->close();
  CHECK(w->closed());
  CHECK(w->push("late") == PushResult::closed);
  ioc.poll();
  CHECK(conn.written == std::vector<std::string>{"a", "b", "c"});
  CHECK(run.finished);
  CHECK_FALSE(run.ec);
}

TEST_CASE("stream writer: push refuses at the limit and on_drain fires at half",
          "[net][stream_writer]") {
  asio::io_context ioc;
  FakeConnection conn;
  auto w = std::make_shared<StreamWriter>(ioc.get_executor(), 4, conn.write_fn());
  int drains = 0;
  std::size_t pending_at_drain = 0;
  w->set_on_drain([&] {
    ++drains;
    pending_at_drain = w->pending();
  });
  for (int i = 0; i < 4; ++i) {
    std::string msg = std::to_string(i);
    msg.insert(msg.begin(), 'm');  // not "m" + ...: GCC 12 -Wrestrict false positive at -O3
    CHECK(w->push(std::move(msg)) == PushResult::ok);
  }
  CHECK(w->push("overflow") == PushResult::full);
  CHECK(w->push("overflow") == PushResult::full);
  CHECK(w->pending() == 4);  // never more than the limit

  RunResult run;
  spawn_run(ioc, w, run);
  ioc.poll();
  CHECK(conn.written == std::vector<std::string>{"m0", "m1", "m2", "m3"});
  CHECK(drains == 1);
  CHECK(pending_at_drain <= 2);
  CHECK(w->push("again") == PushResult::ok);
  w->close();
  ioc.poll();
  CHECK(run.finished);
  CHECK(conn.written.back() == "again");
  CHECK(drains == 1);
}

TEST_CASE("stream writer: on_drain does not fire when the queue never filled",
          "[net][stream_writer]") {
  asio::io_context ioc;
  FakeConnection conn;
  auto w = std::make_shared<StreamWriter>(ioc.get_executor(), 4, conn.write_fn());
  int drains = 0;
  w->set_on_drain([&] { ++drains; });
  for (int i = 0; i < 4; ++i) CHECK(w->push("m") == PushResult::ok);
  w->close();
  RunResult run;
  spawn_run(ioc, w, run);
  ioc.poll();
  CHECK(run.finished);
  CHECK(conn.written.size() == 4);
  CHECK(drains == 0);
}

TEST_CASE("stream writer: a failed write ends the run and fires on_disconnect once",
          "[net][stream_writer]") {
  asio::io_context ioc;
  FakeConnection conn;
  conn.fail_at = 1;
  auto w = std::make_shared<StreamWriter>(ioc.get_executor(), 8, conn.write_fn());
  int gone = 0;
  w->set_on_disconnect([&] { ++gone; });
  CHECK(w->push("first") == PushResult::ok);
  CHECK(w->push("second") == PushResult::ok);
  CHECK(w->push("third") == PushResult::ok);
  RunResult run;
  spawn_run(ioc, w, run);
  ioc.poll();
  CHECK(run.finished);
  CHECK(run.ec == asio::error::broken_pipe);
  CHECK(conn.written == std::vector<std::string>{"first"});
  CHECK(gone == 1);
  CHECK(w->closed());
  CHECK(w->pending() == 0);
  CHECK(w->push("after") == PushResult::closed);
  w->abort();  // a later abort does not report the disconnect twice
  ioc.poll();
  CHECK(gone == 1);
}

TEST_CASE("stream writer: abort drops what is queued and reports the disconnect",
          "[net][stream_writer]") {
  asio::io_context ioc;
  FakeConnection conn;
  auto w = std::make_shared<StreamWriter>(ioc.get_executor(), 8, conn.write_fn());
  int gone = 0;
  w->set_on_disconnect([&] { ++gone; });
  RunResult run;
  spawn_run(ioc, w, run);
  ioc.poll();
  CHECK_FALSE(run.finished);
  CHECK(w->push("x") == PushResult::ok);
  w->abort();
  CHECK(w->push("y") == PushResult::closed);
  ioc.poll();
  CHECK(run.finished);
  CHECK(run.ec == asio::error::operation_aborted);
  CHECK(gone == 1);
  CHECK(conn.written.empty());
}

TEST_CASE("stream writer: concurrent producers stay bounded and keep their own order",
          "[net][stream_writer]") {
  asio::io_context ioc;
  FakeConnection conn;
  constexpr std::size_t kLimit = 8;
  constexpr int kProducers = 4;
  constexpr int kEach = 300;
  auto w = std::make_shared<StreamWriter>(ioc.get_executor(), kLimit, conn.write_fn());
  std::atomic<std::size_t> max_pending{0};
  std::atomic<bool> saw_closed{false};
  RunResult run;
  spawn_run(ioc, w, run);
  std::thread io([&] { ioc.run(); });

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kEach;) {
        auto r = w->push(std::to_string(p) + ":" + std::to_string(i));
        if (r == PushResult::closed) {
          saw_closed = true;
          return;
        }
        std::size_t seen = w->pending();
        std::size_t prev = max_pending.load();
        while (seen > prev && !max_pending.compare_exchange_weak(prev, seen)) {
        }
        if (r == PushResult::ok) {
          ++i;
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  w->close();
  io.join();

  CHECK_FALSE(saw_closed.load());
  CHECK(run.finished);
  CHECK_FALSE(run.ec);
  CHECK(max_pending.load() <= kLimit);
  REQUIRE(conn.written.size() == std::size_t(kProducers * kEach));
  std::vector<int> next(kProducers, 0);
  for (const auto& m : conn.written) {
    auto colon = m.find(':');
    int p = std::stoi(m.substr(0, colon));
    int i = std::stoi(m.substr(colon + 1));
    CHECK(i == next[p]);
    next[p] = i + 1;
  }
}
