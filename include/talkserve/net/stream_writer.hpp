#pragma once
// A bounded queue of outgoing messages between producers on any thread (an LLM engine, a TTS
// executor) and one connection's writer on the I/O strand. It never grows without bound:
// push() refuses when `limit` messages wait, and the producer is told (on_drain) when it may
// go on. This is the back-pressure for token, audio and frame streams.
//
// Thread-safety: push(), close(), closed(), pending() and the setters are safe from any
// thread; run() is used by the connection coroutine only.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace talkserve::net {

enum class PushResult { ok, full, closed };

class StreamWriter : public std::enable_shared_from_this<StreamWriter> {
 public:
  // `write` sends one message on the connection; it is invoked from run() only.
  using WriteFn = std::function<boost::asio::awaitable<boost::system::error_code>(std::string&)>;

  // Always owned by a shared_ptr. `ex` must be the connection's strand.
  StreamWriter(boost::asio::any_io_executor ex, std::size_t limit, WriteFn write);

  PushResult push(std::string message);
  // Ends the stream once everything queued has been written.
  void close();
  bool closed() const;
  std::size_t pending() const;
  // Called (from the I/O strand) when a full queue has drained to half.
  void set_on_drain(std::function<void()> fn);
  // Called once when the peer goes away or a write fails before close().
  void set_on_disconnect(std::function<void()> fn);

  // Drains the queue until close() or a write error. Returns the error (empty on clean close).
  // The callbacks are released when it returns, so they may own the producer.
  boost::asio::awaitable<boost::system::error_code> run();
  // Aborts the stream from the I/O side (server shutdown): pending messages are dropped.
  void abort();

 private:
  boost::asio::awaitable<boost::system::error_code> run_loop();
  void wake();
  boost::asio::any_io_executor ex_;
  std::size_t limit_;
  WriteFn write_;
  mutable std::mutex mutex_;
  std::deque<std::string> queue_;
  bool closed_ = false;
  bool aborted_ = false;
  bool was_full_ = false;
  bool disconnected_ = false;
  std::function<void()> on_drain_;
  std::function<void()> on_disconnect_;
  boost::asio::steady_timer signal_;
};

}  // namespace talkserve::net
