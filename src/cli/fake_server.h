// A stand-in for `allot server` in the client tests: a real httplib::Server on 127.0.0.1 at an
// ephemeral port that answers each "METHOD /path" with a canned status and body, and records every
// request it receives so a test can check what the client sent.
//
//   FakeServer server;
//   server.Reply("GET", "/v1/whoami", 200, R"({"user": "kim", "role": "tenant"})");
//   ApiClient client = *ApiClient::Create({.server = server.url(), .token = "t"});
//   ... run a command ...
//   EXPECT_EQ(server.requests().at(0).authorization, "Bearer t");
//
// Unknown routes get the API's 404 error. Thread-safe: the server answers on its own thread.
#pragma once

#include <httplib.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace allot {

class FakeServer {
 public:
  struct Request {
    std::string method;
    std::string path;
    std::multimap<std::string, std::string> query;
    std::string authorization;
    std::string content_type;
    std::string body;
  };

  FakeServer() {
    auto handle = [this](const httplib::Request& request, httplib::Response& response) {
      Answer(request, response);
    };
    server_.Get(".*", handle);
    server_.Post(".*", handle);
    server_.Put(".*", handle);
    server_.Delete(".*", handle);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  ~FakeServer() {
    server_.stop();
    thread_.join();
  }

  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  // Answers `method` `path` (exact, without the query) with `status` and a JSON `body`.
  void Reply(const std::string& method, const std::string& path, int status, std::string body) {
    std::lock_guard lock(mutex_);
    replies_[{method, path}] = {status, std::move(body)};
  }

  // From now on answers everything as a standby does: 503, naming `leader` (server/standby.h).
  void StandBy(std::string leader) {
    std::lock_guard lock(mutex_);
    leader_ = std::move(leader);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void Answer(const httplib::Request& request, httplib::Response& response) {
    std::lock_guard lock(mutex_);
    requests_.push_back({.method = request.method,
                         .path = request.path,
                         .query = {request.params.begin(), request.params.end()},
                         .authorization = request.get_header_value("Authorization"),
                         .content_type = request.get_header_value("Content-Type"),
                         .body = request.body});
    if (!leader_.empty()) {
      response.status = 503;
      response.set_header("Retry-After", "1");
      response.set_header("X-Allot-Leader", leader_);
      response.set_content(R"({"code": "standby", "message": "this server is a standby"})", "application/json");
      return;
    }
    auto found = replies_.find({request.method, request.path});
    if (found == replies_.end()) {
      response.status = 404;
      response.set_content(R"({"code": "not_found", "message": "no such route"})",
                           "application/json");
      return;
    }
    response.status = found->second.first;
    response.set_content(found->second.second, "application/json");
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::pair<int, std::string>> replies_;
  std::vector<Request> requests_;
  std::string leader_;
};

}  // namespace allot
