#include "support/ws_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <catch2/catch.hpp>

namespace talkserve::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

template <typename Initiate>
beast::error_code WsClient::run_op(std::chrono::milliseconds timeout, Initiate&& initiate) {
  beast::error_code result = asio::error::would_block;
  bool done = false;
  beast::get_lowest_layer(ws_).expires_after(timeout);
  initiate([&](beast::error_code ec, auto&&...) {
    result = ec;
    done = true;
  });
  ioc_->restart();
  while (!done && ioc_->run_one() > 0) {
  }
  return result;
}

WsClient::WsClient(std::uint16_t port, std::string host)
    : ioc_(std::make_unique<asio::io_context>()), ws_(*ioc_), host_(std::move(host)), port_(port) {
  tcp::endpoint ep(asio::ip::make_address(host_), port);
  auto ec = run_op(2s, [&](auto handler) {
    beast::get_lowest_layer(ws_).async_connect(ep, std::move(handler));
  });
  REQUIRE_FALSE(ec);
}

void WsClient::set_header(std::string name, std::string value) {
  ws_.set_option(beast::websocket::stream_base::decorator(
      [name = std::move(name), value = std::move(value)](beast::websocket::request_type& req) {
        req.set(name, value);
      }));
}

beast::error_code WsClient::handshake(std::string target, std::chrono::milliseconds timeout) {
  std::string host = host_ + ":" + std::to_string(port_);
  return run_op(timeout, [&](auto handler) {
    ws_.async_handshake(upgrade_response_, host, target, std::move(handler));
  });
}

beast::error_code WsClient::send_text(std::string_view text, std::chrono::milliseconds timeout) {
  ws_.text(true);
  return run_op(timeout, [&](auto handler) {
    ws_.async_write(asio::buffer(text.data(), text.size()), std::move(handler));
  });
}

beast::error_code WsClient::send_binary(std::string_view data, std::chrono::milliseconds timeout) {
  ws_.binary(true);
  return run_op(timeout, [&](auto handler) {
    ws_.async_write(asio::buffer(data.data(), data.size()), std::move(handler));
  });
}

std::optional<WsClient::Message> WsClient::read(std::chrono::milliseconds timeout,
                                                beast::error_code* ec_out) {
  beast::flat_buffer buffer;
  auto ec = run_op(timeout, [&](auto handler) { ws_.async_read(buffer, std::move(handler)); });
  if (ec_out) *ec_out = ec;
  if (ec) return std::nullopt;
  return Message{beast::buffers_to_string(buffer.data()), ws_.got_binary()};
}

beast::error_code WsClient::close(beast::websocket::close_code code, std::chrono::milliseconds timeout) {
  return run_op(timeout, [&](auto handler) { ws_.async_close(code, std::move(handler)); });
}

}  // namespace talkserve::test
