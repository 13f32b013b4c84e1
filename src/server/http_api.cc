#include "server/http_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/config.h"
#include "dashboard/assets.h"

namespace allot {
namespace {

using nlohmann::json;

// Parts of a route: a method, a path pattern with regex groups, and the OpenAPI path.
using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;

void WriteError(HttpResponse& response, const Status& status) {
  response.status = HttpStatusOf(status.code());
  // Rate-limited or shed: when to come back, so well-behaved clients back off instead of retrying at once.
  if (status.code() == StatusCode::kTooManyRequests || status.code() == StatusCode::kUnavailable) {
    response.set_header("Retry-After", "1");
  }
  json body = {{"code", ErrorCodeName(status.code())}, {"message", status.message()}};
  response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void WriteJson(HttpResponse& response, const StatusOr<json>& result, int success = 200) {
  if (!result.ok()) {
    WriteError(response, result.status());
    return;
  }
  response.status = success;
  // Replacing, not throwing: a reply that cannot be written must not turn into a 500 after the
  // change it reports has been made.
  response.set_content(result->dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

StatusOr<JobId> JobIdOf(const HttpRequest& request) {
  const std::string& text = request.matches[1];
  JobId id = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (error != std::errc() || end != text.data() + text.size() || id == 0) {
    return InvalidArgumentError("'{}' is not a job id", text);
  }
  return id;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) items.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

// The `limit` query parameter, when given, into `limit`.
Status LimitParam(const HttpRequest& request, size_t& limit) {
  if (!request.has_param("limit")) return OkStatus();
  const std::string text = request.get_param_value("limit");
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), limit);
  if (error != std::errc() || end != text.data() + text.size()) {
    return InvalidArgumentError("limit: '{}' is not a number", text);
  }
  return OkStatus();
}

// A time parameter (the audit log's, a job history's): Unix seconds or a date; 0 when absent.
StatusOr<Time> AuditTime(const HttpRequest& request, const char* name) {
  if (!request.has_param(name)) return Time{0};
  const std::string text = request.get_param_value(name);
  Time value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error == std::errc() && end == text.data() + text.size()) return value;
  StatusOr<Time> date = ParseTimePoint(text);
  if (!date.ok()) return InvalidArgumentError("{}: '{}' is neither Unix seconds nor a date YYYY-MM-DD", name, text);
  return *date;
}

}  // namespace

int HttpStatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists: return 409;
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kResourceExhausted: return 413;
    case StatusCode::kTooManyRequests: return 429;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

std::string_view ErrorCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kPermissionDenied: return "permission_denied";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
    case StatusCode::kResourceExhausted: return "payload_too_large";
    case StatusCode::kTooManyRequests: return "too_many_requests";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kInternal: return "internal";
  }
  return "internal";
}

HttpApi::HttpApi(Controller& controller, HttpOptions options)
    : controller_(controller),
      options_(options),
      server_({.network_threads = options.network_threads,
               .worker_threads = options.threads,
               .max_body_bytes = options.max_body_bytes,
               .max_connections = options.max_connections,
               .agent_path_prefix = "/v1/agents/",
               .tls_certificate_file = options.tls_certificate_file,
               .tls_key_file = options.tls_key_file}) {
  // Errors the front end answers by itself (no route, a limit, overload, a handler that threw)
  // get the same JSON shape as ours.
  server_.SetErrorWriter([](const HttpRequest&, HttpResponse& response, const std::string& message) {
    std::string_view code = response.status == 404   ? "not_found"
                            : response.status == 405 ? "method_not_allowed"
                            : response.status == 413 ? "payload_too_large"
                            : response.status == 431 ? "headers_too_large"
                            : response.status == 503 ? "unavailable"
                            : response.status >= 500 ? "internal"
                                                     : "invalid_argument";
    response.set_content(json{{"code", code}, {"message", message}}.dump(-1, ' ', false, json::error_handler_t::replace),
                         "application/json");
  });
  Register();
  controller_.SetAgentBacklog([this] { return server_.agent_backlog(); });
}

HttpApi::~HttpApi() { controller_.SetAgentBacklog(nullptr); }

std::vector<RouteName> HttpApi::Routes() {
  return {{"get", "/healthz"},
          {"get", "/openapi.json"},
          {"get", "/metrics"},
          {"get", "/v1/whoami"},
          {"post", "/v1/jobs"},
          {"get", "/v1/jobs"},
          {"get", "/v1/jobs/{id}"},
          {"post", "/v1/jobs/{id}/cancel"},
          {"post", "/v1/jobs/{id}/hold"},
          {"post", "/v1/jobs/{id}/release"},
          {"post", "/v1/jobs/{id}/finish"},
          {"get", "/v1/jobs/{id}/logs"},
          {"post", "/v1/jobs/{id}/steps"},
          {"get", "/v1/jobs/{id}/steps/{step}"},
          {"post", "/v1/jobs/{id}/steps/{step}/cancel"},
          {"post", "/v1/agents/{name}/register"},
          {"post", "/v1/agents/{name}/sync"},
          {"get", "/v1/accounts"},
          {"get", "/v1/accounts/{name}"},
          {"put", "/v1/accounts/{name}/quotas/{pool}"},
          {"put", "/v1/accounts/{name}/grants/{grant}"},
          {"get", "/v1/nodes"},
          {"post", "/v1/nodes/{name}/drain"},
          {"post", "/v1/nodes/{name}/resume"},
          {"get", "/v1/pools"},
          {"get", "/v1/usage"},
          {"get", "/v1/reasons"},
          {"get", "/v1/queue"},
          {"get", "/v1/events"},
          {"get", "/v1/reports"},
          {"get", "/v1/reports/{name}"},
          {"get", "/v1/scheduler"},
          {"post", "/v1/tokens"},
          {"get", "/v1/tokens"},
          {"delete", "/v1/tokens/{id}"},
          {"get", "/v1/audit"}};
}

void HttpApi::Register() {
  Controller& c = controller_;
  // Wraps a handler that needs a caller: authenticates first.
  // A bootstrap token is good for enrolling nodes and nothing else; a job's own credential for
  // its job's steps, its document and its logs.
  enum class Also { kNone, kBootstrap, kJob };
  auto authed = [&c](std::function<void(const Principal&, const HttpRequest&, HttpResponse&)> handler,
                     Also also = Also::kNone) {
    return [&c, handler, also](const HttpRequest& request, HttpResponse& response) {
      StatusOr<Principal> who = c.Authenticate(BearerToken(request.get_header_value("Authorization")));
      if (!who.ok()) {
        response.set_header("WWW-Authenticate", "Bearer");
        WriteError(response, who.status());
        return;
      }
      if (who->role == Role::kBootstrap && also != Also::kBootstrap) {
        WriteError(response, Status(StatusCode::kPermissionDenied,
                                    "a bootstrap token only enrols nodes (POST /v1/agents/{node}/register)"));
        return;
      }
      if (who->role == Role::kJob && also != Also::kJob) {
        WriteError(response, Status(StatusCode::kPermissionDenied,
                                    "a job's credential only starts and follows that job's steps and reads its logs"));
        return;
      }
      who->remote = fmt::format("{}:{}", request.remote_addr, request.remote_port);
      handler(*who, request, response);
    };
  };
  const std::string kName = "([^/]+)";
  const std::string kId = "([0-9]+)";

  server_.Route("GET", "/healthz", [](const HttpRequest&, HttpResponse& response) {
    response.set_content(R"({"status": "ok"})", "application/json");
  });
  // The dashboard (src/dashboard): its files need no token, the API calls they make do. The page
  // may load and call nothing but this server, runs only its own scripts, and no other site may
  // frame it. Inline styles are allowed for the reports it shows in a sandboxed frame (a srcdoc
  // frame takes its parent's policy); its own pages use none.
  auto serve_asset = [](std::string_view name, HttpResponse& response) {
    const DashboardAsset* asset = FindDashboardAsset(name);
    if (!asset) {
      response.status = 404;
      response.set_content(json{{"code", "not_found"}, {"message", fmt::format("no dashboard file '{}'", name)}}.dump(),
                           "application/json");
      return;
    }
    response.set_header("Content-Security-Policy",
                        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                        "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'self'; "
                        "frame-ancestors 'none'");
    response.set_header("X-Content-Type-Options", "nosniff");
    response.set_header("Referrer-Policy", "no-referrer");
    response.set_header("Cache-Control", "no-cache");
    response.set_content(std::string(asset->body), asset->content_type);
  };
  server_.Route("GET", "/", [serve_asset](const HttpRequest&, HttpResponse& response) {
    serve_asset("index.html", response);
  });
  server_.Route("GET", "/dashboard/([a-z]+\\.(js|css))", [serve_asset](const HttpRequest& request, HttpResponse& response) {
    serve_asset(request.matches[1].str(), response);
  });
  server_.Route("GET", "/openapi.json", [](const HttpRequest&, HttpResponse& response) {
    response.set_content(std::string(OpenApiDocument()), "application/json");
  });
  server_.Route("GET", "/metrics", authed([&c](const Principal& who, const HttpRequest&, HttpResponse& response) {
    StatusOr<std::string> text = c.Metrics(who);
    if (!text.ok()) return WriteError(response, text.status());
    response.set_content(*text, "text/plain; version=0.0.4");
  }));
  server_.Route("GET", "/v1/whoami", authed([](const Principal& who, const HttpRequest&, HttpResponse& response) {
    WriteJson(response, json{{"user", who.user}, {"role", RoleName(who.role)}, {"account", who.account}});
  }));

  server_.Route("POST", "/v1/jobs", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    StatusOr<json> result = c.Submit(who, request.body, request.get_header_value("Idempotency-Key"));
    if (!result.ok()) c.CountSubmitError();
    WriteJson(response, result, 201);
  }));
  server_.Route("GET", "/v1/jobs", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    ListJobsQuery query;
    query.states = SplitList(request.get_param_value("state"));
    query.account = request.get_param_value("account");
    query.user = request.get_param_value("user");
    query.with_steps = request.get_param_value("steps") == "true";
    if (Status limit = LimitParam(request, query.limit); !limit.ok()) return WriteError(response, limit);
    StatusOr<Time> since = AuditTime(request, "since");
    if (!since.ok()) return WriteError(response, since.status());
    StatusOr<Time> until = AuditTime(request, "until");
    if (!until.ok()) return WriteError(response, until.status());
    query.submitted_since = *since;
    query.submitted_until = *until;
    if (request.has_param("before")) {
      const std::string text = request.get_param_value("before");
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), query.before);
      if (error != std::errc() || end != text.data() + text.size() || query.before == 0) {
        return WriteError(response, InvalidArgumentError("before: '{}' is not a job id", text));
      }
    }
    WriteJson(response, c.ListJobs(who, query));
  }));
  auto job_route = [&](std::function<StatusOr<json>(const Principal&, JobId, const HttpRequest&)> call,
                       Also also = Also::kNone, int status = 200) {
    return authed([call, status](const Principal& who, const HttpRequest& request, HttpResponse& response) {
      StatusOr<JobId> id = JobIdOf(request);
      if (!id.ok()) return WriteError(response, id.status());
      if (who.role == Role::kJob && who.job != *id) return WriteError(response, NotFoundError("no job {}", *id));
      WriteJson(response, call(who, *id, request), status);
    }, also);
  };
  server_.Route("GET", "/v1/jobs/" + kId, job_route([&c](const Principal& who, JobId id, const HttpRequest&) {
    return c.GetJob(who, id, /*with_queue_place=*/true);
  }, Also::kJob));
  server_.Route("POST", "/v1/jobs/" + kId + "/steps", job_route([&c](const Principal& who, JobId id, const HttpRequest& request) {
    return c.CreateStep(who, id, request.body);
  }, Also::kJob, 201));
  auto step_of = [](const HttpRequest& request) -> StatusOr<int> {
    const std::string text = request.matches[2].str();
    int step = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), step);
    if (error != std::errc() || end != text.data() + text.size()) return InvalidArgumentError("'{}' is not a step", text);
    return step;
  };
  server_.Route("GET", "/v1/jobs/" + kId + "/steps/" + kId, job_route([&c, step_of](const Principal& who, JobId id, const HttpRequest& request) -> StatusOr<json> {
    ALLOT_ASSIGN_OR_RETURN(int step, step_of(request));
    return c.GetStep(who, id, step);
  }, Also::kJob));
  server_.Route("POST", "/v1/jobs/" + kId + "/steps/" + kId + "/cancel", job_route([&c, step_of](const Principal& who, JobId id, const HttpRequest& request) -> StatusOr<json> {
    ALLOT_ASSIGN_OR_RETURN(int step, step_of(request));
    return c.CancelStep(who, id, step);
  }, Also::kJob));
  server_.Route("POST", "/v1/jobs/" + kId + "/cancel", job_route([&c](const Principal& who, JobId id, const HttpRequest&) {
    return c.CancelJob(who, id);
  }));
  server_.Route("POST", "/v1/jobs/" + kId + "/hold", job_route([&c](const Principal& who, JobId id, const HttpRequest&) {
    return c.HoldJob(who, id);
  }));
  server_.Route("POST", "/v1/jobs/" + kId + "/release", job_route([&c](const Principal& who, JobId id, const HttpRequest&) {
    return c.ReleaseJob(who, id);
  }));
  server_.Route("POST", "/v1/jobs/" + kId + "/finish", job_route([&c](const Principal& who, JobId id, const HttpRequest& request) {
    return c.FinishJob(who, id, request.body);
  }));

  server_.Route("GET", "/v1/jobs/" + kId + "/logs", job_route([&c](const Principal& who, JobId id, const HttpRequest& request) -> StatusOr<json> {
    int task = 0;
    int64_t offset = 0;
    for (auto [name, target] : {std::pair<const char*, int64_t*>{"offset", &offset}}) {
      if (!request.has_param(name)) continue;
      const std::string text = request.get_param_value(name);
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *target);
      if (error != std::errc() || end != text.data() + text.size()) return InvalidArgumentError("{}: '{}' is not a number", name, text);
    }
    if (request.has_param("task")) {
      const std::string text = request.get_param_value("task");
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), task);
      if (error != std::errc() || end != text.data() + text.size() || task < 0) return InvalidArgumentError("task: '{}' is not a task index", text);
    }
    std::string stream = request.has_param("stream") ? request.get_param_value("stream") : "out";
    return c.JobLogs(who, id, task, stream, offset);
  }, Also::kJob));
  server_.Route("POST", "/v1/agents/" + kName + "/register", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    WriteJson(response, c.RegisterAgent(who, request.matches[1].str()), 201);
  }, Also::kBootstrap));
  // Answered later when the agent has nothing to do yet (a long poll that holds no thread).
  server_.RouteAsync("POST", "/v1/agents/" + kName + "/sync", [&c](const HttpRequest& request, HttpResponder respond) {
    HttpResponse response;
    StatusOr<Principal> who = c.Authenticate(BearerToken(request.get_header_value("Authorization")));
    if (!who.ok() || who->role == Role::kBootstrap) {
      if (!who.ok()) response.set_header("WWW-Authenticate", "Bearer");
      WriteError(response, who.ok() ? Status(StatusCode::kPermissionDenied, "a bootstrap token only enrols nodes")
                                    : who.status());
      return respond(std::move(response));
    }
    c.AgentSync(*who, request.matches[1].str(), request.body, [respond](StatusOr<SyncReply> reply, bool under_lock) {
      HttpResponse response;
      if (!reply.ok()) {
        WriteError(response, reply.status());
      } else if (under_lock) {
        // The text is made later, outside the state lock (HttpResponse::render).
        response.render = [reply = std::make_shared<SyncReply>(std::move(*reply))](HttpResponse& response) {
          response.set_content(RenderSyncReply(*reply), "application/json");
        };
      } else {
        response.set_content(RenderSyncReply(*reply), "application/json");
      }
      respond(std::move(response));
    });
  });

  server_.Route("GET", "/v1/accounts", authed([&c](const Principal& who, const HttpRequest&, HttpResponse& response) {
    WriteJson(response, c.ListAccounts(who));
  }));
  server_.Route("GET", "/v1/accounts/" + kName, authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    WriteJson(response, c.GetAccount(who, request.matches[1].str()));
  }));
  server_.Route("PUT", "/v1/accounts/" + kName + "/quotas/" + kName,
              authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
                WriteJson(response, c.SetQuota(who, request.matches[1].str(), request.matches[2].str(), request.body));
              }));
  server_.Route("PUT", "/v1/accounts/" + kName + "/grants/" + kName,
              authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
                WriteJson(response, c.SetGrant(who, request.matches[1].str(), request.matches[2].str(), request.body));
              }));

  server_.Route("GET", "/v1/nodes", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    WriteJson(response, c.ListNodes(who, request.get_param_value("pool"), request.get_param_value("state")));
  }));
  server_.Route("POST", "/v1/nodes/" + kName + "/drain", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    WriteJson(response, c.DrainNode(who, request.matches[1].str(), request.body));
  }));
  server_.Route("POST", "/v1/nodes/" + kName + "/resume", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    WriteJson(response, c.ResumeNode(who, request.matches[1].str()));
  }));
  server_.Route("GET", "/v1/pools", authed([&c](const Principal& who, const HttpRequest&, HttpResponse& response) {
    WriteJson(response, c.ListPools(who));
  }));

  server_.Route("GET", "/v1/usage", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    UsageQuery query{request.get_param_value("start"), request.get_param_value("end"),
                     request.get_param_value("period"), request.get_param_value("account")};
    WriteJson(response, c.Usage(who, query));
  }));
  server_.Route("GET", "/v1/reasons", authed([&c](const Principal& who, const HttpRequest&, HttpResponse& response) {
    WriteJson(response, c.PendingReasons(who));
  }));
  server_.Route("GET", "/v1/queue", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    QueueQuery query{.account = request.get_param_value("account"), .user = request.get_param_value("user")};
    if (Status limit = LimitParam(request, query.limit); !limit.ok()) return WriteError(response, limit);
    if (request.has_param("offset")) {
      const std::string text = request.get_param_value("offset");
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), query.offset);
      if (error != std::errc() || end != text.data() + text.size()) {
        return WriteError(response, InvalidArgumentError("offset: '{}' is not a number", text));
      }
    }
    WriteJson(response, c.PendingQueue(who, query));
  }));
  // The change feed, in Server-Sent Events framing: each reply is one event (id: the change
  // number) and ends, and the client asks again with the id it has (?after=, or Last-Event-ID;
  // an EventSource cannot send the bearer token, so clients use fetch). A reply comes at once when the id is not the current one, else
  // at the next change or after `timeout` seconds (default 25, at most 55), so a client is told
  // of a change as soon as it happens while no thread waits on it.
  server_.RouteAsync("GET", "/v1/events", [&c](const HttpRequest& request, HttpResponder respond) {
    HttpResponse response;
    StatusOr<Principal> who = c.Authenticate(BearerToken(request.get_header_value("Authorization")));
    if (!who.ok() || who->role == Role::kAgent || who->role == Role::kBootstrap || who->role == Role::kJob) {
      if (!who.ok()) response.set_header("WWW-Authenticate", "Bearer");
      WriteError(response, who.ok() ? Status(StatusCode::kPermissionDenied, "the change feed is for people's tokens")
                                    : who.status());
      return respond(std::move(response));
    }
    std::string after_text = request.has_param("after") ? request.get_param_value("after")
                                                        : request.get_header_value("Last-Event-ID");
    uint64_t after = 0;
    double timeout = 25;
    if (!after_text.empty()) {
      auto [end, error] = std::from_chars(after_text.data(), after_text.data() + after_text.size(), after);
      if (error != std::errc() || end != after_text.data() + after_text.size()) {
        WriteError(response, InvalidArgumentError("after: '{}' is not a change number", after_text));
        return respond(std::move(response));
      }
    }
    if (request.has_param("timeout")) {
      const std::string text = request.get_param_value("timeout");
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), timeout);
      if (error != std::errc() || end != text.data() + text.size() || !(timeout >= 0 && timeout <= 55)) {
        WriteError(response, InvalidArgumentError("timeout: '{}' must be seconds from 0 to 55", text));
        return respond(std::move(response));
      }
    }
    c.WaitForChange(*who, after_text.empty() ? 0 : after, timeout, [respond](uint64_t sequence) {
      HttpResponse response;
      response.set_header("Cache-Control", "no-store");
      response.set_content(fmt::format("id: {}\nretry: 500\nevent: change\ndata: {{\"sequence\": {}}}\n\n", sequence, sequence),
                           "text/event-stream");
      respond(std::move(response));
    });
  });
  // Reports of `allot sim --report` and `allot plan --report` in --reports DIR, for operators:
  // each is a directory with an index.html. The page comes with a policy of its own, styles but
  // no scripts and nothing fetched, so it renders as a static document wherever it is shown.
  const std::string reports_dir = options_.reports_dir;
  server_.Route("GET", "/v1/reports", authed([reports_dir](const Principal& who, const HttpRequest&, HttpResponse& response) {
    if (!who.is_operator()) return WriteError(response, Status(StatusCode::kPermissionDenied, "reports are for operators"));
    json reports = json::array();
    std::error_code error;
    if (!reports_dir.empty()) {
      for (const auto& entry : std::filesystem::directory_iterator(reports_dir, error)) {
        std::filesystem::path page = entry.path() / "index.html";
        if (!entry.is_directory() || !std::filesystem::is_regular_file(page)) continue;
        auto modified = std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::file_clock::to_sys(std::filesystem::last_write_time(page, error)).time_since_epoch());
        reports.push_back({{"name", entry.path().filename().string()}, {"modified", modified.count()}});
      }
    }
    std::sort(reports.begin(), reports.end(), [](const json& a, const json& b) { return a["modified"] > b["modified"]; });
    WriteJson(response, json{{"directory", reports_dir}, {"reports", reports}});
  }));
  server_.Route("GET", "/v1/reports/" + kName, authed([reports_dir](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    if (!who.is_operator()) return WriteError(response, Status(StatusCode::kPermissionDenied, "reports are for operators"));
    const std::string name = request.matches[1].str();
    // A name is one directory entry: never a path that leaves the directory.
    if (reports_dir.empty() || name == "." || name == ".." || name.find('\0') != std::string::npos) {
      return WriteError(response, NotFoundError("no report '{}'", name));
    }
    // Nor one that a link leads out of it, nor anything but a plain file of sane size.
    std::error_code error;
    const std::filesystem::path root = std::filesystem::canonical(reports_dir, error);
    const std::filesystem::path page = std::filesystem::canonical(std::filesystem::path(reports_dir) / name / "index.html", error);
    constexpr uintmax_t kMaxReportBytes = 64 << 20;
    if (error || page.parent_path().parent_path() != root || !std::filesystem::is_regular_file(page, error) ||
        std::filesystem::file_size(page, error) > kMaxReportBytes || error) {
      return WriteError(response, NotFoundError("no report '{}'", name));
    }
    std::ifstream file(page, std::ios::binary);
    if (!file) return WriteError(response, NotFoundError("no report '{}'", name));
    std::string html((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    response.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox");
    response.set_header("X-Content-Type-Options", "nosniff");
    response.set_content(std::move(html), "text/html; charset=utf-8");
  }));
  server_.Route("GET", "/v1/scheduler", authed([&c](const Principal& who, const HttpRequest&, HttpResponse& response) {
    WriteJson(response, c.SchedulerStatus(who));
  }));

  server_.Route("POST", "/v1/tokens", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    WriteJson(response, c.CreateToken(who, request.body), 201);
  }));
  server_.Route("GET", "/v1/tokens", authed([&c](const Principal& who, const HttpRequest&, HttpResponse& response) {
    WriteJson(response, c.ListTokens(who));
  }));
  server_.Route("DELETE", "/v1/tokens/" + kId, authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    const std::string text = request.matches[1].str();
    int64_t id = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (error != std::errc() || end != text.data() + text.size()) {
      return WriteError(response, NotFoundError("no live token {}", text));
    }
    WriteJson(response, c.RevokeToken(who, id));
  }));
  server_.Route("GET", "/v1/audit", authed([&c](const Principal& who, const HttpRequest& request, HttpResponse& response) {
    AuditQuery query{.action = request.get_param_value("action"), .user = request.get_param_value("user")};
    StatusOr<Time> since = AuditTime(request, "since");
    StatusOr<Time> until = AuditTime(request, "until");
    if (!since.ok()) return WriteError(response, since.status());
    if (!until.ok()) return WriteError(response, until.status());
    query.since = *since;
    query.until = *until;
    if (Status limit = LimitParam(request, query.limit); !limit.ok()) return WriteError(response, limit);
    WriteJson(response, c.ListAudit(who, query));
  }));
}

StatusOr<int> HttpApi::Bind(const std::string& host, int port) { return server_.Bind(host, port); }

void HttpApi::Serve() { server_.Serve(); }

void HttpApi::Stop() { server_.Stop(); }

}  // namespace allot
