#include "talkserve/net/stream_writer.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace talkserve::net {

namespace asio = boost::asio;

StreamWriter::StreamWriter(asio::any_io_executor ex, std::size_t limit, WriteFn write)
    : ex_(ex), limit_(limit), write_(std::move(write)), signal_(ex) {}

void StreamWriter::wake() {
  // The timer belongs to the I/O strand; cancel it there.
  asio::post(ex_, [self = shared_from_this()]() { self->signal_.cancel(); });
}

PushResult StreamWriter::push(std::string message) {
  {
    std::lock_guard lock(mutex_);
    if (closed_ || aborted_ || disconnected_) return PushResult::closed;
    if (queue_.size() >= limit_) {
      was_full_ = true;
      return PushResult::full;
    }
    queue_.push_back(std::move(message));
  }
  wake();
  return PushResult::ok;
}

void StreamWriter::close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
  }
  wake();
}

void StreamWriter::abort() {
  {
    std::lock_guard lock(mutex_);
    aborted_ = true;
    queue_.clear();
  }
  wake();
}

bool StreamWriter::closed() const {
  std::lock_guard lock(mutex_);
  return closed_ || aborted_ || disconnected_;
}

std::size_t StreamWriter::pending() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void StreamWriter::set_on_drain(std::function<void()> fn) {
  std::lock_guard lock(mutex_);
  on_drain_ = std::move(fn);
}

void StreamWriter::set_on_disconnect(std::function<void()> fn) {
  std::lock_guard lock(mutex_);
  on_disconnect_ = std::move(fn);
}

asio::awaitable<boost::system::error_code> StreamWriter::run() {
  auto ec = co_await run_loop();
  // The stream is over: drop the callbacks, which often own the producer that owns this
  // writer (the cycle that keeps a producer alive until its last message is written).
  std::function<void()> drain, gone;
  {
    std::lock_guard lock(mutex_);
    drain = std::move(on_drain_);
    gone = std::move(on_disconnect_);
    on_drain_ = nullptr;
    on_disconnect_ = nullptr;
  }
  co_return ec;
}

asio::awaitable<boost::system::error_code> StreamWriter::run_loop() {
  for (;;) {
    std::string message;
    bool have = false;
    bool finished = false;
    bool aborted = false;
    std::function<void()> drained;
    {
      std::lock_guard lock(mutex_);
      if (aborted_) {
        aborted = true;
      } else if (!queue_.empty()) {
        message = std::move(queue_.front());
        queue_.pop_front();
        have = true;
        if (was_full_ && queue_.size() <= limit_ / 2) {
          was_full_ = false;
          drained = on_drain_;
        }
      } else if (closed_) {
        finished = true;
      }
    }
    if (aborted) {
      std::function<void()> gone;
      {
        std::lock_guard lock(mutex_);
        if (!disconnected_) {
          disconnected_ = true;
          gone = std::move(on_disconnect_);
        }
      }
      if (gone) gone();
      co_return asio::error::operation_aborted;
    }
    if (drained) drained();
    if (finished) co_return boost::system::error_code{};
    if (!have) {
      signal_.expires_at(asio::steady_timer::time_point::max());
      boost::system::error_code ec;
      co_await signal_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    auto ec = co_await write_(message);
    if (ec) {
      std::function<void()> gone;
      {
        std::lock_guard lock(mutex_);
        disconnected_ = true;
        queue_.clear();
        gone = std::move(on_disconnect_);
      }
      if (gone) gone();
      co_return ec;
    }
  }
}

}  // namespace talkserve::net
