#pragma once
// A blocking WebSocket client for tests: every operation is bounded by a timeout, so a server
// bug fails the test instead of hanging it. Internally each step is an async Beast operation
// run on a private io_context (Beast's timeouts only apply to async calls).
//
// Thread-safety: none per object; use one object per thread.

#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace talkserve::test {

class WsClient {
 public:
  struct Message {
    std::string data;
    bool binary = false;
  };

  // Connects to host:port (REQUIREs success).
  explicit WsClient(std::uint16_t port, std::string host = "127.0.0.1");
  // Adds a header to the upgrade request (call before handshake()).
  void set_header(std::string name, std::string value);
  // Performs the upgrade to `target`; the 101 (or refusal) is in upgrade_response().
  boost::beast::error_code handshake(std::string target,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(2));
  const boost::beast::websocket::response_type& upgrade_response() const { return upgrade_response_; }

  boost::beast::error_code send_text(std::string_view text,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(2));
  boost::beast::error_code send_binary(std::string_view data,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(2));
  // The next message; nullopt when the session ended or the timeout passed (`ec` says which;
  // websocket::error::closed means a close frame arrived, see close_reason()).
  std::optional<Message> read(std::chrono::milliseconds timeout = std::chrono::seconds(2),
                              boost::beast::error_code* ec = nullptr);
  boost::beast::error_code close(boost::beast::websocket::close_code code,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(2));
  boost::beast::websocket::close_reason close_reason() const { return ws_.reason(); }

 private:
  template <typename Initiate>
  boost::beast::error_code run_op(std::chrono::milliseconds timeout, Initiate&& initiate);

  std::unique_ptr<boost::asio::io_context> ioc_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  std::string host_;
  std::uint16_t port_;
  boost::beast::websocket::response_type upgrade_response_;
};

}  // namespace talkserve::test
