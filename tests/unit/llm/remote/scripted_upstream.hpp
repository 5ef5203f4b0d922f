#pragma once
// A tiny HTTP/1.1 server on 127.0.0.1 (plain or TLS) whose answers a test writes byte by
// byte: each connection runs on its own thread, reads one request and hands it to the test's
// handler with a `write` that returns false once the client has gone away. With keep_alive()
// a connection serves requests until the client closes it, `max_requests` have been served
// on it, or the handler writes nothing (the server then closes it without an answer, as a
// server that timed the idle connection out just as the request came). This lets the
// remote backend's tests script what real LLM servers do (429 + Retry-After, a stream that
// stops half-way, a client that cancels) without timing games.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace talkserve::test {

class ScriptedUpstream {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using Write = std::function<bool(std::string_view)>;
  // `index` counts requests from 0.
  using Handler = std::function<void(const Request& req, int index, const Write& write)>;

  // tls: serve TLS with this PEM certificate and key.
  struct Tls {
    std::string cert_file;
    std::string key_file;
  };

  explicit ScriptedUpstream(Handler handler, std::optional<Tls> tls = std::nullopt)
      : handler_(std::move(handler)),
        acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    if (tls) {
      ctx_.emplace(boost::asio::ssl::context::tls_server);
      ctx_->use_certificate_chain_file(tls->cert_file);
      ctx_->use_private_key_file(tls->key_file, boost::asio::ssl::context::pem);
    }
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~ScriptedUpstream() {
    stopping_ = true;
    boost::system::error_code ec;
    // Wake accept() with a connection of our own.
    boost::asio::ip::tcp::socket s(ioc_);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    accept_thread_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

  std::uint16_t port() const { return port_; }
  std::string url() const {
    return std::string(ctx_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }
  // Serve several requests per connection (answers must then be length-delimited or chunked).
  // Call before the first connection.
  void keep_alive(int max_requests = 1'000'000) { max_requests_.store(max_requests); }

  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }
  std::vector<Request> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }
  // TLS handshakes the client broke off (e.g. it did not trust our certificate).
  int failed_handshakes() const { return failed_handshakes_.load(); }

  // The usual head of a streamed reply (close-delimited body).
  static std::string sse_head() {
    return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
  }
  // One chat.completion.chunk event carrying `text`.
  static std::string delta(std::string_view text) {
    return "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":"
           "{\"content\":\"" + std::string(text) + "\"},\"finish_reason\":null}]}\n\n";
  }
  static std::string finish(std::string_view reason) {
    return "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"" +
           std::string(reason) + "\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":"
           "11,\"completion_tokens\":3,\"total_tokens\":14}}\n\ndata: [DONE]\n\n";
  }
  // The head of a streamed reply on a kept-alive connection, and its chunks.
  static std::string sse_chunked_head() {
    return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  }
  static std::string chunk(std::string_view data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + std::string(data) + "\r\n";
  }
  static std::string last_chunk() { return "0\r\n\r\n"; }

  static std::string response(int status, std::string_view body, std::string_view extra = {}) {
    return "HTTP/1.1 " + std::to_string(status) + " Status\r\nContent-Type: application/json\r\n" +
           std::string(extra) + "Content-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n\r\n" + std::string(body);
  }

 private:
  void accept_loop() {
    for (;;) {
      boost::asio::ip::tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (stopping_) return;
      if (ec) continue;
      connections_.fetch_add(1);
      std::lock_guard lock(mutex_);
      threads_.emplace_back([this, s = std::move(socket)]() mutable { serve(std::move(s)); });
    }
  }

  template <typename Stream>
  void serve_on(Stream& stream) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buffer;
    const int max_requests = max_requests_.load();
    for (int served = 0; served < max_requests; ++served) {
      Request req;
      boost::system::error_code ec;
      http::read(stream, buffer, req, ec);
      if (ec || stopping_) return;
      int index = 0;
      {
        std::lock_guard lock(mutex_);
        received_.push_back(req);
        index = requests_.fetch_add(1);
      }
      bool wrote = false;
      Write write = [&stream, &wrote](std::string_view bytes) {
        wrote = true;
        boost::system::error_code wec;
        boost::asio::write(stream, boost::asio::buffer(bytes.data(), bytes.size()), wec);
        return !wec;
      };
      handler_(req, index, write);
      if (!wrote) return;
    }
  }

  void serve(boost::asio::ip::tcp::socket socket) {
    if (!ctx_) {
      serve_on(socket);
      boost::system::error_code ec;
      socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
      return;
    }
    boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream(std::move(socket), *ctx_);
    boost::system::error_code ec;
    stream.handshake(boost::asio::ssl::stream_base::server, ec);
    if (ec) {
      failed_handshakes_.fetch_add(1);
      return;
    }
    serve_on(stream);
    stream.shutdown(ec);
  }

  Handler handler_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::optional<boost::asio::ssl::context> ctx_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  mutable std::mutex mutex_;
  std::vector<std::thread> threads_;
  std::vector<Request> received_;
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> failed_handshakes_{0};
  std::atomic<int> max_requests_{1};
};

}  // namespace talkserve::test
