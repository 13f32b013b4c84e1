// The API behind the dashboard, against a real `allot server`: the queue in the scheduler's order
// with places, reasons and reservations; the change feed; shares, borrowing and lending; the
// dashboard's own files and the reports it shows. (The page itself is tested in a browser:
// tests/browser.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/job.h"
#include "server/server_process.h"

namespace allot {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

class DashboardApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = (std::filesystem::temp_directory_path() / fmt::format("allot-dashboard-{}", getpid())).string();
    reports_dir_ = data_dir_ + "-reports";
    std::filesystem::remove_all(data_dir_);
    std::filesystem::remove_all(reports_dir_);
    std::filesystem::create_directories(reports_dir_ + "/month");
    std::ofstream(reports_dir_ + "/month/index.html") << "<html><body><h1>Summary</h1></body></html>";
    std::filesystem::create_directories(reports_dir_ + "/not-a-report");  // no index.html
    server_ = std::make_unique<ServerProcess>(ALLOT_BINARY, std::string(ALLOT_SOURCE_DIR) + "/tests/server/pool.yaml",
                                              data_dir_,
                                              std::vector<std::string>{"--static-nodes", "--reports", reports_dir_});
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.message();
    for (const char* account : {"lab-a", "lab-b"}) {
      json reply = Call("POST", "/v1/tokens", server_->OperatorToken(),
                        json{{"role", "tenant"}, {"account", account}, {"user", std::string("user-") + account}}.dump())
                       .second;
      tokens_[account] = reply["token"];
    }
  }
  void TearDown() override {
    EXPECT_EQ(server_->Stop(), 0);
    std::filesystem::remove_all(data_dir_);
    std::filesystem::remove_all(reports_dir_);
  }

  std::pair<int, json> Call(const std::string& method, const std::string& path, const std::string& token,
                            const std::string& body = "") {
    httplib::Result result = Raw(method, path, token, body);
    if (!result) return {0, json()};
    return {result->status, json::parse(result->body, nullptr, false)};
  }
  httplib::Result Raw(const std::string& method, const std::string& path, const std::string& token,
                      const std::string& body = "") {
    httplib::Client client = server_->Client();
    client.set_read_timeout(60);
    httplib::Headers headers;
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return method == "GET" ? client.Get(path, headers) : client.Post(path, headers, body, "application/json");
  }
  JobId Submit(const std::string& account, int tasks) {
    auto [status, reply] = Call("POST", "/v1/jobs", tokens_[account],
                                json{{"tasks", tasks}, {"gpus_per_task", 8}, {"time_limit", "1h"},
                                     {"command", {"sleep", "1000"}}}.dump());
    EXPECT_EQ(status, 201) << reply.dump();
    return status == 201 ? reply["ids"][0].get<JobId>() : 0;
  }
  std::string State(JobId id) {
    return Call("GET", fmt::format("/v1/jobs/{}", id), server_->OperatorToken()).second.value("state", "");
  }
  static uint64_t EventId(const std::string& text) {
    std::smatch match;
    return std::regex_search(text, match, std::regex("(^|\\n)id: ([0-9]+)\\n")) ? std::stoull(match[2]) : 0;
  }

  std::string data_dir_;
  std::string reports_dir_;
  std::unique_ptr<ServerProcess> server_;
  std::map<std::string, std::string> tokens_;
};

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 400 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return done();
}

// The gpu pool has 32 GPUs; lab-a and lab-b 16 nominal each. First lab-a takes all 32, borrowing
// lab-b's idle 16; then each holds its own 16 and both queue more: the queue says who is next,
// why each waits and when the reserved one starts; a tenant sees only its own jobs, with their
// places in the whole queue.
TEST_F(DashboardApiTest, TheQueueSaysEachJobsPlaceReasonAndExpectedStart) {
  const std::string op = server_->OperatorToken();
  JobId big = Submit("lab-a", 4);
  ASSERT_TRUE(WaitFor([&] { return State(big) == "running"; }));
  json accounts = Call("GET", "/v1/accounts", op).second["accounts"];
  std::map<std::string, json> by_name;
  for (const json& account : accounts) by_name[account["name"]] = account;
  EXPECT_EQ(by_name["lab-a"]["quotas"]["gpu"]["borrowed"], 16);
  EXPECT_EQ(by_name["lab-b"]["quotas"]["gpu"]["lent"], 16);
  EXPECT_EQ(by_name["lab-b"]["quotas"]["gpu"]["borrowed"], 0);
  EXPECT_LT(by_name["lab-a"]["fair_share_factor"].get<double>(), 0.5);  // holds everything
  EXPECT_DOUBLE_EQ(by_name["lab-b"]["fair_share_factor"].get<double>(), 1.0);  // has used nothing
  ASSERT_EQ(Call("POST", fmt::format("/v1/jobs/{}/cancel", big), op).first, 200);

  JobId a_runs = Submit("lab-a", 2);
  JobId b_runs = Submit("lab-b", 2);
  ASSERT_TRUE(WaitFor([&] { return State(a_runs) == "running" && State(b_runs) == "running"; }));
  JobId a_next = Submit("lab-a", 2);
  JobId b_next = Submit("lab-b", 2);
  JobId b_held = Submit("lab-b", 1);
  ASSERT_EQ(Call("POST", fmt::format("/v1/jobs/{}/hold", b_held), tokens_["lab-b"]).first, 200);
  json queue;
  ASSERT_TRUE(WaitFor([&] {
    queue = Call("GET", "/v1/queue", op).second;
    return queue["jobs"].size() == 3 && queue["jobs"][0]["reason"]["code"] == "reserved";
  })) << queue.dump(2);
  EXPECT_EQ(queue["total"], 3);
  EXPECT_EQ(queue["queue_length"], 2);
  EXPECT_EQ(queue["running"], 2);
  // The first in line holds the reservation, for when the running jobs' hour is over.
  EXPECT_EQ(queue["jobs"][0]["position"], 1);
  const Time now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(queue["jobs"][0]["expected_start"].get<double>(), static_cast<double>(now + 3600), 120.0);
  EXPECT_EQ(queue["jobs"][1]["position"], 2);
  EXPECT_TRUE(queue["jobs"][1]["expected_start"].is_null());
  EXPECT_EQ(std::set<JobId>({queue["jobs"][0]["id"], queue["jobs"][1]["id"]}), std::set<JobId>({a_next, b_next}));
  EXPECT_EQ(queue["jobs"][2]["id"], b_held);  // held: last, without a place
  EXPECT_TRUE(queue["jobs"][2]["position"].is_null());
  EXPECT_EQ(queue["jobs"][2]["reason"]["code"], "held");
  const int a_place = queue["jobs"][0]["id"] == a_next ? 1 : 2;

  // A page at a time.
  json page = Call("GET", "/v1/queue?offset=1&limit=1", op).second;
  ASSERT_EQ(page["jobs"].size(), 1u);
  EXPECT_EQ(page["jobs"][0]["id"], queue["jobs"][1]["id"]);
  // A tenant sees its own jobs only, with their places in the whole queue.
  json mine = Call("GET", "/v1/queue", tokens_["lab-a"]).second;
  ASSERT_EQ(mine["jobs"].size(), 1u);
  EXPECT_EQ(mine["jobs"][0]["id"], a_next);
  EXPECT_EQ(mine["jobs"][0]["position"], a_place);
  EXPECT_EQ(Call("GET", "/v1/queue?account=lab-b", tokens_["lab-a"]).first, 404);
  // The job's own document says the same.
  json job = Call("GET", fmt::format("/v1/jobs/{}", a_next), tokens_["lab-a"]).second;
  EXPECT_EQ(job["queue_position"], a_place);
  EXPECT_EQ(job["queue_length"], 2);
  EXPECT_EQ(Call("GET", fmt::format("/v1/jobs/{}", queue["jobs"][0]["id"].get<JobId>()), op).second["expected_start"],
            queue["jobs"][0]["expected_start"]);
  // Bad input says what to fix.
  auto [status, error] = Call("GET", "/v1/queue?limit=0", op);
  EXPECT_EQ(status, 400);
  EXPECT_THAT(error["message"].get<std::string>(), HasSubstr("limit"));
  EXPECT_EQ(Call("GET", "/v1/queue?offset=-1", op).first, 400);
}

// The change feed answers at once with the current number, then holds a request that names it
// until something changes.
TEST_F(DashboardApiTest, TheChangeFeedWakesAWaitingClientAtTheNextChange) {
  const std::string token = tokens_["lab-a"];
  httplib::Result first = Raw("GET", "/v1/events", token);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200) << first->body;
  EXPECT_THAT(first->get_header_value("Content-Type"), HasSubstr("text/event-stream"));
  uint64_t id = EventId(first->body);
  ASSERT_GT(id, 0u) << first->body;
  EXPECT_THAT(first->body, HasSubstr("event: change\n"));

  auto waiting = std::async(std::launch::async, [&] {
    auto began = std::chrono::steady_clock::now();
    httplib::Result next = Raw("GET", fmt::format("/v1/events?after={}&timeout=30", id), token);
    return std::make_pair(next ? EventId(next->body) : 0,
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(waiting.wait_for(std::chrono::seconds(0)), std::future_status::timeout) << "it did not wait";
  Submit("lab-a", 1);
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "the submit did not wake it";
  auto [next_id, seconds] = waiting.get();
  EXPECT_GT(next_id, id);
  EXPECT_LT(seconds, 10.0);

  // A number the server never gave (one from before a restart) is answered at once.
  httplib::Result stale = Raw("GET", fmt::format("/v1/events?after={}", next_id + 1000), token);
  ASSERT_TRUE(stale);
  EXPECT_GT(EventId(stale->body), 0u);
  EXPECT_NE(EventId(stale->body), next_id + 1000);

  // The current number in the Last-Event-ID header, as an EventSource sends it: with nothing
  // new, the request waits out its timeout and gets the same number back.
  uint64_t current = EventId(Raw("GET", "/v1/events", token)->body);
  httplib::Client client = server_->Client();
  auto began = std::chrono::steady_clock::now();
  httplib::Result quiet = client.Get("/v1/events?timeout=0.5",
                                     {{"Authorization", "Bearer " + token}, {"Last-Event-ID", std::to_string(current)}});
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  ASSERT_TRUE(quiet);
  if (EventId(quiet->body) == current) {  // else a pass ran meanwhile, which is a change too
    EXPECT_GE(waited, 0.45);
  }
  EXPECT_LT(waited, 10.0);

  EXPECT_EQ(Raw("GET", "/v1/events?after=abc", token)->status, 400);
  EXPECT_EQ(Raw("GET", "/v1/events?timeout=100", token)->status, 400);
  EXPECT_EQ(Raw("GET", "/v1/events?timeout=nan", token)->status, 400);
  EXPECT_EQ(Raw("GET", "/v1/events", "")->status, 401);
}

// The pool view's counts: a draining node's idle GPUs count as draining, per pool and per pod,
// and the pods add up to their pool.
TEST_F(DashboardApiTest, PoolsCountDrainingGpusPerPoolAndPod) {
  const std::string op = server_->OperatorToken();
  ASSERT_EQ(Call("POST", "/v1/nodes/n1/drain", op, R"({"reason": "bad fan"})").first, 200);
  json pools = Call("GET", "/v1/pools", op).second["pools"];
  json gpu;
  for (const json& pool : pools) {
    if (pool["name"] == "gpu") gpu = pool;
  }
  ASSERT_TRUE(gpu.is_object()) << pools.dump();
  EXPECT_EQ(gpu["gpus"], 32);
  EXPECT_EQ(gpu["gpus_draining"], 8);
  EXPECT_EQ(gpu["gpus_down"], 0);
  EXPECT_EQ(gpu["nodes_up"], 3);
  ASSERT_FALSE(gpu["pods"].empty());
  int64_t pod_gpus = 0, pod_draining = 0;
  for (const json& pod : gpu["pods"]) {
    pod_gpus += pod["gpus"].get<int64_t>();
    pod_draining += pod["gpus_draining"].get<int64_t>();
  }
  EXPECT_EQ(pod_gpus, 32);
  EXPECT_EQ(pod_draining, 8);
}

TEST_F(DashboardApiTest, TheDashboardIsServedFromTheBinaryWithAStrictPolicy) {
  httplib::Result page = Raw("GET", "/", "");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->get_header_value("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(page->body, HasSubstr("/dashboard/app.js"));
  const std::string policy = page->get_header_value("Content-Security-Policy");
  EXPECT_THAT(policy, HasSubstr("default-src 'none'"));
  EXPECT_THAT(policy, HasSubstr("script-src 'self'"));
  EXPECT_THAT(policy, HasSubstr("connect-src 'self'"));
  EXPECT_THAT(policy, HasSubstr("frame-ancestors 'none'"));
  for (const char* file : {"app.js", "api.js", "views.js", "charts.js", "style.css"}) {
    httplib::Result asset = Raw("GET", fmt::format("/dashboard/{}", file), "");
    ASSERT_TRUE(asset);
    EXPECT_EQ(asset->status, 200) << file;
    EXPECT_FALSE(asset->body.empty()) << file;
  }
  EXPECT_THAT(Raw("GET", "/dashboard/app.js", "")->get_header_value("Content-Type"), HasSubstr("javascript"));
  EXPECT_EQ(Raw("GET", "/dashboard/missing.js", "")->status, 404);
}

TEST_F(DashboardApiTest, OperatorsSeeTheReportsDirectoryAndNothingOutsideIt) {
  const std::string op = server_->OperatorToken();
  auto [status, list] = Call("GET", "/v1/reports", op);
  ASSERT_EQ(status, 200) << list.dump();
  ASSERT_EQ(list["reports"].size(), 1u) << list.dump();  // not-a-report has no index.html
  EXPECT_EQ(list["reports"][0]["name"], "month");
  httplib::Result report = Raw("GET", "/v1/reports/month", op);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->status, 200);
  EXPECT_THAT(report->body, HasSubstr("<h1>Summary</h1>"));
  EXPECT_THAT(report->get_header_value("Content-Security-Policy"), HasSubstr("sandbox"));
  EXPECT_EQ(Raw("GET", "/v1/reports/%2e%2e", op)->status, 404);
  // A link in the directory that leads out of it is not followed.
  std::filesystem::create_directories(data_dir_ + "-outside");
  std::ofstream(data_dir_ + "-outside/index.html") << "secret";
  std::filesystem::create_directory_symlink(data_dir_ + "-outside", reports_dir_ + "/escape");
  EXPECT_EQ(Raw("GET", "/v1/reports/escape", op)->status, 404);
  std::filesystem::remove_all(data_dir_ + "-outside");
  EXPECT_EQ(Raw("GET", "/v1/reports/nope", op)->status, 404);
  EXPECT_EQ(Raw("GET", "/v1/reports", tokens_["lab-a"])->status, 403);
  EXPECT_EQ(Raw("GET", "/v1/reports/month", tokens_["lab-a"])->status, 403);
}

TEST(DashboardServeTest, AMissingReportsDirectoryIsRefusedAtStart) {
  std::string data_dir = (std::filesystem::temp_directory_path() / fmt::format("allot-reports-{}", getpid())).string();
  ServerProcess server(ALLOT_BINARY, std::string(ALLOT_SOURCE_DIR) + "/tests/server/pool.yaml", data_dir,
                       std::vector<std::string>{"--static-nodes", "--reports", data_dir + "/no-such-dir"});
  Status started = server.Start();
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(started.message(), HasSubstr("exit status 2"));  // bad input; stderr names the directory
  std::filesystem::remove_all(data_dir);
}

}  // namespace
}  // namespace allot
