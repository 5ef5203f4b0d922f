#pragma once
// Awaiting work that completes on another thread (an executor's callback) from a coroutine on
// an I/O strand. The callback may be invoked from any thread; the coroutine resumes on its own
// executor. Exactly one invocation of the callback is expected; later ones are ignored.

#include <atomic>
#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <memory>
#include <utility>

namespace talkserve::net {

// start(callback) must arrange for callback(T) to be called once, from any thread.
template <typename T, typename Start>
boost::asio::awaitable<T> await_callback(Start start) {
  auto initiate = [start = std::move(start)](auto handler) mutable {
    using Handler = decltype(handler);
    struct State {
      explicit State(Handler h) : handler(std::move(h)) {}
      Handler handler;
      std::atomic<bool> done{false};
    };
    auto state = std::make_shared<State>(std::move(handler));
    start([state](T value) {
      if (state->done.exchange(true)) return;
      auto ex = boost::asio::get_associated_executor(state->handler);
      boost::asio::post(ex, [state, value = std::move(value)]() mutable {
        std::move(state->handler)(std::move(value));
      });
    });
  };
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(T)>(
      std::move(initiate), boost::asio::use_awaitable);
}

}  // namespace talkserve::net
