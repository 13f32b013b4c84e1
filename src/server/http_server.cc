#include "server/http_server.h"

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include "agent/open_files.h"

namespace allot {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using ErrorCode = beast::error_code;

bool SameText(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; in a query, '+' is a space too.
std::string Decode(std::string_view text, bool query) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int high = HexValue(text[i + 1]);
      int low = HexValue(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out += static_cast<char>(high * 16 + low);
        i += 2;
        continue;
      }
    }
    out += query && text[i] == '+' ? ' ' : text[i];
  }
  return out;
}

std::chrono::steady_clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

std::string HttpRequest::get_header_value(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (SameText(key, name)) return value;
  }
  return {};
}

bool HttpRequest::has_param(std::string_view name) const { return params.find(name) != params.end(); }

std::string HttpRequest::get_param_value(std::string_view name) const {
  auto found = params.find(name);
  return found == params.end() ? std::string() : found->second;
}

void HttpResponse::set_content(std::string content, std::string_view content_type) {
  body = std::move(content);
  set_header("Content-Type", std::string(content_type));
}

void HttpResponse::set_header(std::string name, std::string value) {
  for (auto& [key, existing] : headers) {
    if (SameText(key, name)) {
      existing = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

class HttpServer::Impl {
 public:
  explicit Impl(HttpServerOptions options)
      : options_(std::move(options)),
        io_(std::max(1, options_.network_threads)),
        acceptor_(net::make_strand(io_)),
        api_lane_(options_.worker_threads),
        agent_lane_(options_.agent_path_prefix.empty() ? 1 : options_.agent_worker_threads) {}

  struct RouteEntry {
    std::string method;
    std::regex pattern;
    HttpHandler handler;
    AsyncHttpHandler async_handler;  // set instead of handler for routes that answer later
  };

  // Runs on a worker thread: the route's handler, or an error; `respond` is called once, now or
  // (for an async route) later.
  void Handle(HttpRequest& request, const HttpResponder& respond) {
    HttpResponse response;
    bool path_known = false;
    for (const RouteEntry& route : routes_) {
      if (!std::regex_match(request.path, request.matches, route.pattern)) continue;
      path_known = true;
      if (route.method != request.method) continue;
      try {
        if (route.async_handler) return route.async_handler(request, respond);
        route.handler(request, response);
      } catch (const std::exception& error) {
        spdlog::error("{} {}: {}", request.method, request.path, error.what());
        response = {};
        Error(request, response, 500, fmt::format("internal error: {}", error.what()));
      }
      return respond(std::move(response));
    }
    request.matches = {};
    Error(request, response, path_known ? 405 : 404,
          fmt::format("no route {} {}; see /openapi.json", request.method, request.path));
    respond(std::move(response));
  }

  void Error(const HttpRequest& request, HttpResponse& response, int status, const std::string& message) {
    response.status = status;
    if (error_writer_) {
      error_writer_(request, response, message);
    } else {
      response.set_content(message, "text/plain");
    }
    if (status == 503 || status == 429) response.set_header("Retry-After", "1");
  }

  template <class Stream>
  class Session;
  class Detector;

  void Accept();
  void OnAccept(ErrorCode error, tcp::socket socket);

  HttpServerOptions options_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  // Workers that run handlers, and how many requests wait for one (shed past the limit).
  struct Lane {
    explicit Lane(int threads)
        : workers(static_cast<size_t>(std::max(1, threads))), renders(net::make_strand(workers.get_executor())) {}
    net::thread_pool workers;
    // Replies with a `render` are made here, one at a time: thousands answered at once (a pass
    // waking its nodes) then take one worker's share of the CPU, not every worker's, and the
    // requests of the other lane are not starved of it.
    net::strand<net::thread_pool::executor_type> renders;
    std::atomic<size_t> queued{0};
    // Answered, and not yet handed to the connection's network thread to be written.
    std::atomic<size_t> answering{0};
  };
  Lane& LaneFor(const HttpRequest& request) {
    const std::string& prefix = options_.agent_path_prefix;
    return !prefix.empty() && request.path.starts_with(prefix) ? agent_lane_ : api_lane_;
  }
  std::optional<ssl::context> tls_;
  std::vector<RouteEntry> routes_;
  ErrorWriter error_writer_;
  std::atomic<size_t> connections_{0};
  Lane api_lane_;
  Lane agent_lane_;
  std::atomic<uint64_t> shed_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<bool> stopping_{false};
};

// One connection: reads requests one at a time, hands each to a worker, writes the reply, and
// reads the next while the client keeps the connection alive. Held by shared_ptr because Asio's
// completion handlers keep it alive between operations (the Asio idiom; nothing else owns it).
template <class Stream>
class HttpServer::Impl::Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Impl& server, Stream stream, beast::flat_buffer buffer, std::string remote_addr, int remote_port)
      : server_(server), stream_(std::move(stream)), buffer_(std::move(buffer)),
        remote_addr_(std::move(remote_addr)), remote_port_(remote_port) {
    ++server_.connections_;
  }
  ~Session() { --server_.connections_; }

  void Start() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      Lowest().expires_after(Seconds(server_.options_.header_timeout_seconds));
      // `used` defaults so the handler also meets the concept Boost 1.81 checks it against by
      // mistake (void(error_code) instead of void(error_code, size_t)).
      stream_.async_handshake(ssl::stream_base::server, buffer_.data(),
                              [self = this->shared_from_this()](ErrorCode error, size_t used = 0) {
                                if (error) return;  // not TLS after all, or it gave up: nothing to answer
                                self->buffer_.consume(used);
                                self->ReadHeader();
                              });
    } else {
      ReadHeader();
    }
  }

 private:
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.options_.max_header_bytes));
    parser_->body_limit(server_.options_.max_body_bytes);
    // The whole header within the deadline: a client sending a byte now and then holds nothing
    // for long. A kept-alive connection waits for its next request as long as the idle limit.
    Lowest().expires_after(Seconds(first_ ? server_.options_.header_timeout_seconds
                                          : server_.options_.idle_timeout_seconds));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](ErrorCode error, size_t) { self->OnHeader(error); });
  }

  void OnHeader(ErrorCode error) {
    if (error == http::error::end_of_stream || error == beast::error::timeout || error == net::error::eof ||
        error == net::error::connection_reset || error == net::error::operation_aborted) {
      if (error == beast::error::timeout) ++server_.refused_;
      return Close();
    }
    if (error == http::error::header_limit) {
      return Refuse(431, fmt::format("the request's headers are over {} KiB", server_.options_.max_header_bytes >> 10));
    }
    if (error == http::error::body_limit) {  // a Content-Length over the limit, seen with the header
      return Refuse(413, fmt::format("the request body is over {} MiB", server_.options_.max_body_bytes >> 20));
    }
    if (error) return Refuse(400, fmt::format("malformed request: {}", error.message()));
    const auto& header = parser_->get();
    size_t fields = static_cast<size_t>(std::distance(header.begin(), header.end()));
    if (fields > server_.options_.max_header_fields) {
      return Refuse(431, fmt::format("the request has {} header fields; at most {} are taken", fields,
                                     server_.options_.max_header_fields));
    }
    if (header.has_content_length() && *parser_->content_length() > server_.options_.max_body_bytes) {
      return Refuse(413, fmt::format("the request body is over {} MiB", server_.options_.max_body_bytes >> 20));
    }
    Lowest().expires_after(Seconds(server_.options_.body_timeout_seconds));
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](ErrorCode error, size_t) { self->OnBody(error); });
  }

  void OnBody(ErrorCode error) {
    if (error == http::error::body_limit) {
      return Refuse(413, fmt::format("the request body is over {} MiB", server_.options_.max_body_bytes >> 20));
    }
    if (error == beast::error::timeout) ++server_.refused_;
    if (error) return Close();
    Dispatch();
  }

  void Dispatch() {
    http::request<http::string_body> message = parser_->release();
    parser_.reset();
    // A handler may wait (a long poll); the connection has no deadline meanwhile.
    Lowest().expires_never();
    auto request = std::make_shared<HttpRequest>();
    request->method = std::string(message.method_string());
    request->target = std::string(message.target());
    std::string_view target = request->target;
    size_t question = target.find('?');
    request->path = Decode(target.substr(0, question), /*query=*/false);
    if (question != std::string_view::npos) {
      std::string_view query = target.substr(question + 1);
      while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        size_t equals = pair.find('=');
        if (!pair.empty()) {
          request->params.emplace(Decode(pair.substr(0, equals), true),
                                  equals == std::string_view::npos ? "" : Decode(pair.substr(equals + 1), true));
        }
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      }
    }
    for (const auto& field : message) request->headers.emplace_back(field.name_string(), field.value());
    request->body = std::move(message.body());
    request->remote_addr = remote_addr_;
    request->remote_port = remote_port_;
    const bool keep_alive = message.keep_alive();
    const unsigned version = message.version();
    Lane& lane = server_.LaneFor(*request);
    if (lane.queued.load() >= server_.options_.max_queued_requests || server_.stopping_) {
      ++server_.shed_;
      HttpResponse response;
      server_.Error(*request, response, 503, "the server is overloaded; retry in a second");
      return Write(std::move(response), false, version);
    }
    ++lane.queued;
    net::post(lane.workers, [self = this->shared_from_this(), &lane, request, keep_alive, version]() mutable {
      --lane.queued;
      // The reply is written on the connection's own strand, never from the thread that answers.
      auto answered = std::make_shared<std::atomic<bool>>(false);
      HttpResponder respond = [self, &lane, keep_alive, version, answered](HttpResponse response) {
        if (answered->exchange(true)) return;
        ++lane.answering;
        auto write = [self, &lane, keep_alive, version](HttpResponse response) {
          net::post(self->stream_.get_executor(), [self, &lane, response = std::move(response), keep_alive, version]() mutable {
            // (A write usually goes out at once: Asio tries the socket before it waits on it.)
            self->Write(std::move(response), keep_alive, version);
            --lane.answering;
          });
        };
        auto render = [self](HttpResponse& response) {
          auto fill = std::move(response.render);
          response.render = nullptr;
          try {
            fill(response);
          } catch (const std::exception& error) {
            // (Not the request, which a waiting sync does not keep: the message says enough.)
            response = HttpResponse();
            self->server_.Error(HttpRequest(), response, 500, fmt::format("internal error: {}", error.what()));
          }
        };
        if (!response.render) return write(std::move(response));
        // Stopping: the workers may be gone, and nothing waits on a lock any more.
        if (self->server_.stopping_) {
          render(response);
          return write(std::move(response));
        }
        // Made on the lane's render strand: the network thread only moves bytes, and the
        // responder may have been called under a lock.
        net::post(lane.renders, [response = std::move(response), write, render]() mutable {
          render(response);
          write(std::move(response));
        });
      };
      self->server_.Handle(*request, respond);
    });
  }

  void Refuse(int status, const std::string& message) {
    ++server_.refused_;
    HttpRequest request;
    request.remote_addr = remote_addr_;
    HttpResponse response;
    server_.Error(request, response, status, message);
    lingering_ = true;
    Write(std::move(response), /*keep_alive=*/false, 11);
  }

  // After refusing a request whose body is still coming, read and drop what the client sends
  // for a moment before closing (a "lingering close", as nginx does): closing at once would
  // reset the connection under a client that is still writing, and it would never read the
  // answer. Bounded in time and bytes, so it holds nothing for long.
  void Linger() {
    ErrorCode ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().expires_after(std::chrono::seconds(2));
    drain_.resize(64 << 10);
    DrainSome();
  }
  void DrainSome() {
    Lowest().async_read_some(net::buffer(drain_), [self = this->shared_from_this()](ErrorCode error, size_t read) {
      self->drained_ += read;
      if (error || self->drained_ > 2 * self->server_.options_.max_body_bytes) return;  // the session ends: closed
      self->DrainSome();
    });
  }

  void Write(HttpResponse response, bool keep_alive, unsigned version) {
    auto message = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(response.status), version);
    for (auto& [name, value] : response.headers) message->set(name, value);
    message->body() = std::move(response.body);
    message->keep_alive(keep_alive && !server_.stopping_);
    message->prepare_payload();
    Lowest().expires_after(Seconds(server_.options_.write_timeout_seconds));
    http::async_write(stream_, *message, [self = this->shared_from_this(), message](ErrorCode error, size_t) {
      if (!error && self->lingering_) {
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>) return self->Linger();
      }
      if (error || !message->keep_alive()) return self->Close();
      self->first_ = false;
      self->ReadHeader();
    });
  }

  void Close() {
    ErrorCode ignored;
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      Lowest().expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = this->shared_from_this()](ErrorCode) {
        ErrorCode ignored_too;
        self->Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored_too);
      });
    } else {
      Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  Impl& server_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string remote_addr_;
  int remote_port_ = 0;
  bool first_ = true;
  bool lingering_ = false;
  std::vector<char> drain_;
  size_t drained_ = 0;
};

// Looks at a new connection's first bytes: a TLS handshake is served over TLS, anything else as
// plain HTTP.
class HttpServer::Impl::Detector : public std::enable_shared_from_this<Detector> {
 public:
  // Counted as a connection from the start: one that never sends a byte still holds a socket.
  Detector(Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) { ++server_.connections_; }
  ~Detector() { --server_.connections_; }

  void Run() {
    ErrorCode error;
    tcp::endpoint remote = stream_.socket().remote_endpoint(error);
    if (!error) {
      remote_addr_ = remote.address().to_string();
      remote_port_ = remote.port();
    }
    stream_.expires_after(Seconds(server_.options_.header_timeout_seconds));
    beast::async_detect_ssl(stream_, buffer_, [self = shared_from_this()](ErrorCode error, bool tls) {
      if (error) return;
      Impl& server = self->server_;
      if (tls) {
        if (!server.tls_) return;  // TLS asked of a plain-only server: nothing sensible to answer
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            server, beast::ssl_stream<beast::tcp_stream>(std::move(self->stream_), *server.tls_),
            std::move(self->buffer_), self->remote_addr_, self->remote_port_)->Start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(server, std::move(self->stream_), std::move(self->buffer_),
                                                     self->remote_addr_, self->remote_port_)->Start();
      }
    });
  }

 private:
  Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::string remote_addr_;
  int remote_port_ = 0;
};

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(io_), [this](ErrorCode error, tcp::socket socket) {
    OnAccept(error, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(ErrorCode error, tcp::socket socket) {
  if (error == net::error::operation_aborted || !acceptor_.is_open()) return;
  if (!error) {
    if (connections_.load() >= options_.max_connections) {
      // Over the cap: a short answer written at once (the socket's buffer is empty, so it does
      // not block), then closed; the client retries after a second instead of hanging.
      ++shed_;
      static constexpr std::string_view kBusy =
          "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
          "Content-Length: 76\r\nConnection: close\r\n\r\n"
          "{\"code\":\"unavailable\",\"message\":\"too many connections; retry in a second\"}";
      ErrorCode ignored;
      socket.non_blocking(true, ignored);
      socket.write_some(net::buffer(kBusy), ignored);
      socket.shutdown(tcp::socket::shutdown_both, ignored);
    } else {
      tcp::no_delay no_delay(true);
      socket.set_option(no_delay, error);
      std::make_shared<Detector>(*this, std::move(socket))->Run();
    }
  }
  Accept();
}

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(std::string method, const std::string& pattern, HttpHandler handler) {
  impl_->routes_.push_back({std::move(method), std::regex(pattern), std::move(handler)});
}

void HttpServer::RouteAsync(std::string method, const std::string& pattern, AsyncHttpHandler handler) {
  impl_->routes_.push_back({std::move(method), std::regex(pattern), nullptr, std::move(handler)});
}

void HttpServer::SetErrorWriter(ErrorWriter writer) { impl_->error_writer_ = std::move(writer); }

StatusOr<int> HttpServer::Bind(const std::string& host, int port) {
  // Every connection is a descriptor: take all the system allows this process.
  RaiseOpenFileLimit();
  if (!impl_->options_.tls_certificate_file.empty()) {
    impl_->tls_.emplace(ssl::context::tls_server);
    ssl::context& tls = *impl_->tls_;
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    ErrorCode error;
    tls.use_certificate_chain_file(impl_->options_.tls_certificate_file, error);
    if (error) {
      return InvalidArgumentError("--tls-cert '{}': {}", impl_->options_.tls_certificate_file, error.message());
    }
    tls.use_private_key_file(impl_->options_.tls_key_file, ssl::context::pem, error);
    if (error) return InvalidArgumentError("--tls-key '{}': {}", impl_->options_.tls_key_file, error.message());
  }
  ErrorCode error;
  net::ip::address address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, error);
  if (error) return InvalidArgumentError("--listen: '{}' is not an IP address of this machine", host);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  tcp::acceptor& acceptor = impl_->acceptor_;
  acceptor.open(endpoint.protocol(), error);
  if (!error) acceptor.set_option(net::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  // The kernel's largest accept queue (SOMAXCONN), so bursts of connecting agents are queued, not dropped.
  if (!error) acceptor.listen(net::socket_base::max_listen_connections, error);
  if (error) {
    return Status(StatusCode::kUnavailable, fmt::format("cannot listen on {}:{}: {}", host, port, error.message()));
  }
  return static_cast<int>(acceptor.local_endpoint().port());
}

void HttpServer::Serve() {
  impl_->Accept();
  auto guard = net::make_work_guard(impl_->io_);
  std::vector<std::thread> threads;
  for (int i = 1; i < impl_->options_.network_threads; ++i) threads.emplace_back([this] { impl_->io_.run(); });
  impl_->io_.run();
  for (std::thread& thread : threads) thread.join();
}

void HttpServer::Stop() {
  if (impl_->stopping_.exchange(true)) return;
  // No new connections; handlers still running finish and their replies go out; then the loops end.
  net::post(impl_->acceptor_.get_executor(), [this] {
    ErrorCode ignored;
    impl_->acceptor_.close(ignored);
  });
  impl_->api_lane_.workers.join();
  impl_->agent_lane_.workers.join();
  auto drained = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (std::chrono::steady_clock::now() < drained &&
         impl_->api_lane_.queued.load() + impl_->agent_lane_.queued.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->io_.stop();
}

size_t HttpServer::agent_backlog() const {
  if (impl_->options_.agent_path_prefix.empty() || impl_->stopping_) return 0;
  return impl_->agent_lane_.queued.load() + impl_->agent_lane_.answering.load();
}

HttpServer::Counters HttpServer::counters() const {
  return {.open_connections = impl_->connections_.load(), .shed = impl_->shed_.load(), .refused = impl_->refused_.load()};
}

}  // namespace allot
