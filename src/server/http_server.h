// HttpServer: the server's event-driven network front end (Boost.Beast over Asio), for the REST
// API and the agent protocol alike, plain HTTP and TLS on one listener.
//
// A connection costs a socket and a small session object, never a thread: a few network threads
// read requests and write replies, and handlers run on a pool of worker threads, where they may
// wait on the state lock or for a commit to be durable. Every limit is enforced before anything
// is allocated for a request, and overload is refused at once instead of queued without bound:
//
//   what                                 default      over it
//   header bytes / header fields         16 KiB / 100 431, connection closed
//   body bytes (any transfer encoding)   1 MiB        413, connection closed
//   time to send the whole header        10 s         connection closed (slow clients hold nothing)
//   time to send the body                30 s         connection closed
//   idle keep-alive connection           30 s         connection closed
//   open connections                     100,000      503 + Retry-After, closed (an agent each)
//   requests waiting for a worker        4,096        503 + Retry-After
//
//   HttpServer server({.worker_threads = 64});
//   server.Route("GET", "/v1/jobs/([0-9]+)", [](const HttpRequest& request, HttpResponse& response) {
//     response.set_content(request.matches[1].str(), "text/plain");
//   });
//   ALLOT_ASSIGN_OR_RETURN(int port, server.Bind("127.0.0.1", 8080));
//   server.Serve();  // until Stop() from another thread
//
// Thread-safety: Route and the setters before Bind; Stop from any thread.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace allot {

// A request as handlers see it. The accessors keep cpp-httplib's names, which the routes were
// first written against.
struct HttpRequest {
  std::string method;  // "GET"
  std::string target;  // "/v1/jobs?state=running"
  std::string path;    // "/v1/jobs", percent-decoded
  std::multimap<std::string, std::string, std::less<>> params;  // the query, decoded
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::smatch matches;  // the route's groups, over `path`
  std::string remote_addr;
  int remote_port = 0;

  // Case-insensitive; "" when absent.
  std::string get_header_value(std::string_view name) const;
  bool has_param(std::string_view name) const;
  std::string get_param_value(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, fills in the rest of the response before it is written, on a worker of the
  // request's lane (one such render at a time per lane): for a reply answered under a lock (a
  // long poll's) whose text costs more to make than the answer itself.
  std::function<void(HttpResponse&)> render;

  void set_content(std::string content, std::string_view content_type);
  void set_header(std::string name, std::string value);
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;
// Answers a request later, from any thread, exactly once; cheap (it hands the reply to the
// connection's network thread, or first to a worker to render it: HttpResponse::render). Until
// it is called, the request holds a socket and no thread.
using HttpResponder = std::function<void(HttpResponse)>;
using AsyncHttpHandler = std::function<void(const HttpRequest&, HttpResponder)>;

struct HttpServerOptions {
  int network_threads = 1;  // event loops; one serves tens of thousands of connections
  int worker_threads = 64;  // handlers that may block (the state lock, a commit, a long poll)
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;
  size_t max_header_fields = 100;
  double header_timeout_seconds = 10;
  double body_timeout_seconds = 30;
  double idle_timeout_seconds = 30;
  double write_timeout_seconds = 30;
  size_t max_connections = 100000;  // every node's agent holds one, the national pool has 36,880
  size_t max_queued_requests = 4096;  // per lane
  // Requests whose path starts with this prefix (the agents' syncs) have a lane of their own:
  // their own workers and queue, so that thousands of agents answering a pass at once never
  // queue a person's submit behind them (Kubernetes' API priority and fairness keeps node
  // heartbeats apart from users' requests the same way). Empty: one lane for everything.
  std::string agent_path_prefix;
  int agent_worker_threads = 32;
  // TLS on the same listener as plain HTTP: a connection whose first bytes are a TLS handshake
  // is served over TLS. Empty: plain HTTP only.
  std::string tls_certificate_file;  // PEM, the chain
  std::string tls_key_file;          // PEM
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // `pattern` must match the whole decoded path; its groups land in request.matches.
  void Route(std::string method, const std::string& pattern, HttpHandler handler);
  // A route whose handler may answer later (a long poll): it runs on a worker, returns, and the
  // responder it was given sends the reply when the handler's owner calls it.
  void RouteAsync(std::string method, const std::string& pattern, AsyncHttpHandler handler);
  // Fills the body of an error the server answers by itself (no route, a limit, overload, a
  // handler that threw): status is set; message says what happened.
  using ErrorWriter = std::function<void(const HttpRequest&, HttpResponse&, const std::string& message)>;
  void SetErrorWriter(ErrorWriter writer);

  // Listens (port 0: any free port) and returns the port. Fails if TLS files do not load.
  StatusOr<int> Bind(const std::string& host, int port);
  // Serves until Stop(); handlers still running finish first.
  void Serve();
  void Stop();

  // Agent-lane requests not yet done: waiting for a worker, or answered and waiting to be made
  // into text and handed to their connections (HttpResponse::render). What an owner that wakes
  // thousands of waiting requests at once watches to wake them no faster than they go out (0
  // without an agent lane, and once stopping).
  size_t agent_backlog() const;

  // For /metrics.
  struct Counters {
    size_t open_connections = 0;
    uint64_t shed = 0;     // refused with 503 (connections or queue full)
    uint64_t refused = 0;  // refused for a limit (431, 413, 400, timeouts)
  };
  Counters counters() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace allot
