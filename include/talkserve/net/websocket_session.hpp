#pragma once
// One WebSocket connection. Outgoing messages go through a bounded queue; while it is full
// the session stops reading from the client (back-pressure), and producers see
// PushResult::full. Beast's keep-alive pings detect dead peers.
//
// Thread-safety: send_text/send_binary/close/pending are safe from any thread. Handler
// callbacks run on the session's strand.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "talkserve/net/exchange.hpp"
#include "talkserve/net/stream_writer.hpp"

namespace talkserve::net {

class WebSocketSession {
 public:
  virtual ~WebSocketSession() = default;
  virtual PushResult send_text(std::string message) = 0;
  virtual PushResult send_binary(std::string message) = 0;
  // Sends a close frame with `code` (e.g. 1000 normal, 1001 going away, 1007 bad data,
  // 1008 policy) after the queued messages, then ends the session.
  virtual void close(uint16_t code, std::string reason) = 0;
  virtual std::size_t pending() const = 0;
  virtual const RequestContext& context() const = 0;
  virtual boost::asio::any_io_executor executor() = 0;
};

}  // namespace talkserve::net
