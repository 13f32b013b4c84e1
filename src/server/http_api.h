// HttpApi: the REST routes of docs/api.md over a Controller, served by HttpServer (Beast).
//
//   HttpApi api(controller, {.threads = 64});
//   ALLOT_ASSIGN_OR_RETURN(int port, api.Bind("127.0.0.1", 8080));  // port 0: any free port
//   api.Serve();  // until Stop() from another thread
//
// Each route authenticates the bearer token, calls the controller, and answers JSON; errors are
// {"code", "message"} with the HTTP status of the error's kind. The front end's limits (body and
// header sizes, deadlines, connections, overload) are HttpServer's.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "server/controller.h"
#include "server/http_server.h"

namespace allot {

struct HttpOptions {
  int threads = 64;  // handlers at once; a submit holds its worker until its commit is durable
  int network_threads = 2;  // event loops (one serves tens of thousands of connections); a core each
  size_t max_body_bytes = 1 << 20;
  size_t max_connections = 100000;
  std::string tls_certificate_file;  // with tls_key_file: TLS on the same port as plain HTTP
  std::string tls_key_file;
  std::string reports_dir;  // reports for the dashboard (GET /v1/reports); "": none
};

// A route as OpenAPI names it: ("post", "/v1/jobs/{id}/cancel").
struct RouteName {
  std::string method;
  std::string path;
};

class HttpApi {
 public:
  HttpApi(Controller& controller, HttpOptions options = {});
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  StatusOr<int> Bind(const std::string& host, int port);
  void Serve();
  void Stop();

  // Every route served, for the test that keeps openapi.json and the server in step.
  static std::vector<RouteName> Routes();

 private:
  void Register();

  Controller& controller_;
  HttpOptions options_;
  HttpServer server_;
};

// The OpenAPI 3 document (src/server/openapi.json), compiled in.
std::string_view OpenApiDocument();

int HttpStatusOf(StatusCode code);
std::string_view ErrorCodeName(StatusCode code);

}  // namespace allot
