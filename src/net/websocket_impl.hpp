#pragma once
// Internal: takes over an upgraded connection and runs its WebSocket session.

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <memory>

#include "server_state.hpp"
#include "talkserve/net/exchange.hpp"

namespace talkserve::net {

// A connection on a TLS listener ([http] tls_cert / tls_key).
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

void run_websocket(std::shared_ptr<ServerState> state, boost::beast::tcp_stream stream,
                   Request upgrade, RequestContext ctx, std::shared_ptr<WebSocketHandler> handler,
                   boost::beast::flat_buffer buffer);
// wss://: the same session over TLS.
void run_websocket(std::shared_ptr<ServerState> state, TlsStream stream, Request upgrade,
                   RequestContext ctx, std::shared_ptr<WebSocketHandler> handler,
                   boost::beast::flat_buffer buffer);

}  // namespace talkserve::net
