// HttpApi: the REST routes of docs/api.md over a Controller, served by cpp-httplib.
//
//   HttpApi api(controller, {.threads = 64});
//   ALLOT_ASSIGN_OR_RETURN(int port, api.Bind("127.0.0.1", 8080));  // port 0: any free port
//   api.Serve();  // until Stop() from another thread
//
// Each route authenticates the bearer token, calls the controller, and answers JSON; errors are
// {"code", "message"} with the HTTP status of the error's kind. Bodies over 1 MiB are refused
// before they are read whole.
#pragma once

#include <httplib.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "server/controller.h"

namespace allot {

struct HttpOptions {
  int threads = 64;  // requests in flight; a submit holds its thread until its commit is durable
  size_t max_body_bytes = 1 << 20;
};

// A route as OpenAPI names it: ("post", "/v1/jobs/{id}/cancel").
struct RouteName {
  std::string method;
  std::string path;
};

class HttpApi {
 public:
  HttpApi(Controller& controller, HttpOptions options = {});
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
  httplib::Server server_;
};

// The OpenAPI 3 document (src/server/openapi.json), compiled in.
std::string_view OpenApiDocument();

int HttpStatusOf(StatusCode code);
std::string_view ErrorCodeName(StatusCode code);

}  // namespace allot
