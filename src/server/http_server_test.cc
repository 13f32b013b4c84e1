#include "server/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

namespace allot {
namespace {

// Agents' syncs have a lane of their own: with every agent worker busy, a person's request is
// still answered at once (it never queues behind a burst of syncs).
TEST(HttpServerTest, BusyAgentWorkersDoNotDelayOtherRequests) {
  HttpServer server({.worker_threads = 1, .agent_path_prefix = "/v1/agents/", .agent_worker_threads = 1});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  server.Route("POST", "/v1/agents/([a-z0-9]+)/sync", [released](const HttpRequest&, HttpResponse& response) {
    released.wait();  // an agent's sync holding its lane's only worker
    response.set_content("{}", "application/json");
  });
  server.Route("GET", "/v1/jobs", [](const HttpRequest&, HttpResponse& response) {
    response.set_content("{\"jobs\": []}", "application/json");
  });
  StatusOr<int> port = server.Bind("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.status().message();
  std::thread serving([&] { server.Serve(); });

  auto sync = std::async(std::launch::async, [&] {
    httplib::Client agent("127.0.0.1", *port);
    return agent.Post("/v1/agents/n1/sync", "{}", "application/json");
  });
  // A second sync waits behind the first, in the agents' queue.
  auto queued = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    httplib::Client agent("127.0.0.1", *port);
    return agent.Post("/v1/agents/n2/sync", "{}", "application/json");
  });
  // However the test ends, the held sync is let go and the server stops (declared after the
  // requests, so this runs before their futures wait for them).
  struct Cleanup {
    std::promise<void>& release;
    HttpServer& server;
    std::thread& serving;
    ~Cleanup() {
      try {
        release.set_value();
      } catch (const std::future_error&) {  // already let go
      }
      server.Stop();
      serving.join();
    }
  } cleanup{release, server, serving};
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  httplib::Client person("127.0.0.1", *port);
  person.set_read_timeout(5, 0);
  auto listed = person.Get("/v1/jobs");
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->status, 200);
  EXPECT_EQ(sync.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "the sync was not held";
  // What the controller paces a pass's wakes by: the agents' requests not yet done (the queued
  // one; the held one is being handled, and the person's is in the other lane).
  EXPECT_EQ(server.agent_backlog(), 1u);

  release.set_value();
  auto synced = sync.get();
  auto synced_later = queued.get();
  ASSERT_TRUE(synced && synced_later);
  EXPECT_EQ(synced->status, 200);
  EXPECT_EQ(synced_later->status, 200);
  // Both replies are out (the count drops just after a reply is handed to its socket).
  for (int i = 0; i < 100 && server.agent_backlog() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server.agent_backlog(), 0u);
}

}  // namespace
}  // namespace allot
