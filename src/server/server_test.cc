// API tests against a real `allot server` process on loopback.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <thread>
#include <fstream>
#include <set>
#include <sys/wait.h>

#include "server/http_api.h"
#include "server/server_process.h"

namespace allot {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string TempDir(std::string_view name) {
  auto dir = std::filesystem::temp_directory_path() / fmt::format("allot-{}-{}", name, getpid());
  std::filesystem::remove_all(dir);
  return dir.string();
}

struct Reply {
  int status = 0;
  json body;
  std::string text;
};

class Api {
 public:
  Api(const ServerProcess& server, std::string token) : client_(server.Client()), token_(std::move(token)) {}

  Reply Call(const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& content_type = "application/json") {
    httplib::Headers headers;
    if (!token_.empty()) headers.emplace("Authorization", "Bearer " + token_);
    httplib::Result result = method == "GET"    ? client_.Get(path, headers)
                             : method == "POST" ? client_.Post(path, headers, body, content_type)
                             : method == "PUT"  ? client_.Put(path, headers, body, content_type)
                                                : client_.Delete(path, headers);
    Reply reply;
    if (!result) return reply;
    reply.status = result->status;
    reply.text = result->body;
    reply.body = json::parse(result->body, nullptr, false);
    return reply;
  }
  Reply Get(const std::string& path) { return Call("GET", path); }
  Reply Post(const std::string& path, const std::string& body = "") { return Call("POST", path, body); }
  Reply Put(const std::string& path, const std::string& body) { return Call("PUT", path, body); }

  // Submits and returns the first id (0 on failure).
  JobId Submit(const json& spec) {
    Reply reply = Post("/v1/jobs", spec.dump());
    EXPECT_EQ(reply.status, 201) << reply.text;
    return reply.status == 201 ? reply.body["ids"][0].get<JobId>() : 0;
  }

 private:
  httplib::Client client_;
  std::string token_;
};

// Polls until `done` holds or 20 s pass (passes run within ~0.1 s of an event; the margin is for
// loaded CI machines and sanitizer builds). Returns whether it held.
bool WaitUntil(const std::function<bool()>& done) {
  for (int i = 0; i < 400; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = TempDir("server-test");
    server_ = new ServerProcess(ALLOT_BINARY, std::string(ALLOT_SOURCE_DIR) + "/tests/server/pool.yaml", data_dir_,
                                std::vector<std::string>{"--static-nodes"});
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.message();
    Api op(*server_, server_->OperatorToken());
    for (const char* account : {"lab-a", "lab-b"}) {
      Reply reply = op.Post("/v1/tokens", json{{"role", "tenant"}, {"account", account}, {"user", std::string("user-") + account}}.dump());
      ASSERT_EQ(reply.status, 201) << reply.text;
      tenant_tokens_[account] = reply.body["token"];
    }
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->Stop(), 0);
    delete server_;
    std::filesystem::remove_all(data_dir_);
  }

  Api Operator() { return Api(*server_, server_->OperatorToken()); }
  Api Tenant(const std::string& account) { return Api(*server_, tenant_tokens_[account]); }

  static inline ServerProcess* server_ = nullptr;
  static inline std::string data_dir_;
  static inline std::map<std::string, std::string> tenant_tokens_;
};

TEST_F(ServerTest, OperatorTokenFileIsPrivate) {
  struct stat info {};
  ASSERT_EQ(stat((data_dir_ + "/operator.token").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_THAT(server_->OperatorToken(), HasSubstr("allot_"));
}

TEST_F(ServerTest, HealthAndOpenApiNeedNoToken) {
  Api anonymous(*server_, "");
  EXPECT_EQ(anonymous.Get("/healthz").status, 200);
  Reply openapi = anonymous.Get("/openapi.json");
  ASSERT_EQ(openapi.status, 200);
  EXPECT_EQ(openapi.body["openapi"].get<std::string>().substr(0, 2), "3.");
}

TEST_F(ServerTest, RequestsWithoutAValidTokenAreRefused) {
  Api anonymous(*server_, "");
  Reply reply = anonymous.Get("/v1/jobs");
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(reply.body["code"], "unauthenticated");
  EXPECT_THAT(reply.body["message"].get<std::string>(), HasSubstr("Authorization: Bearer"));
  Api forged(*server_, "allot_" + std::string(64, '0'));
  EXPECT_EQ(forged.Get("/v1/jobs").status, 401);
  EXPECT_EQ(forged.Get("/metrics").status, 401);
}

TEST_F(ServerTest, SubmitGetListAndCancel) {
  Api lab = Tenant("lab-a");
  JobId id = lab.Submit({{"name", "train"}, {"tasks", 2}, {"gpus_per_task", 8}, {"time_limit", "2h"},
                         {"command", {"python", "train.py"}}});
  ASSERT_GT(id, 0u);
  Reply job = lab.Get(fmt::format("/v1/jobs/{}", id));
  ASSERT_EQ(job.status, 200) << job.text;
  EXPECT_EQ(job.body["account"], "lab-a");  // the token's account
  EXPECT_EQ(job.body["user"], "user-lab-a");
  EXPECT_EQ(job.body["gpus"], 16);
  EXPECT_EQ(job.body["time_limit"], 7200);
  EXPECT_EQ(job.body["spec"]["command"], json({"python", "train.py"}));

  Reply list = lab.Get("/v1/jobs?state=pending,running");
  ASSERT_EQ(list.status, 200);
  bool listed = false;
  for (const json& entry : list.body["jobs"]) listed |= entry["id"] == id;
  EXPECT_TRUE(listed);

  Reply cancelled = lab.Post(fmt::format("/v1/jobs/{}/cancel", id));
  ASSERT_EQ(cancelled.status, 200) << cancelled.text;
  EXPECT_EQ(cancelled.body["state"], "cancelled");
  Reply again = lab.Post(fmt::format("/v1/jobs/{}/cancel", id));
  EXPECT_EQ(again.status, 409);
  EXPECT_THAT(again.body["message"].get<std::string>(), HasSubstr("already ended"));
  Reply history = lab.Get("/v1/jobs?state=cancelled");
  ASSERT_EQ(history.status, 200);
  ASSERT_FALSE(history.body["jobs"].empty());
  EXPECT_EQ(history.body["jobs"].back()["id"], id);
}

TEST_F(ServerTest, JobsStartAndAgentsReportTheirEnd) {
  Api op = Operator();
  JobId id = op.Submit({{"account", "lab-b"}, {"gpus", 8}, {"command", {"true"}}});
  json job;
  WaitUntil([&] {
    job = op.Get(fmt::format("/v1/jobs/{}", id)).body;
    return job["state"] == "running";
  });
  ASSERT_EQ(job["state"], "running") << job.dump();
  EXPECT_EQ(job["allocation"].size(), 1u);
  EXPECT_EQ(job["allocation"][0]["gpus"].size(), 8u);
  EXPECT_EQ(job["pool"], "gpu");

  Reply agent_token = op.Post("/v1/tokens", json{{"role", "agent"}, {"node", job["nodes"][0]}}.dump());
  ASSERT_EQ(agent_token.status, 201);
  Api agent(*server_, agent_token.body["token"]);
  // A report for an older allocation is fenced off.
  Reply stale = agent.Post(fmt::format("/v1/jobs/{}/finish", id),
                           json{{"exit_code", 0}, {"epoch", job["epoch"].get<uint64_t>() + 1}}.dump());
  EXPECT_EQ(stale.status, 409) << stale.text;
  Reply finished = agent.Post(fmt::format("/v1/jobs/{}/finish", id),
                              json{{"exit_code", 3}, {"epoch", job["epoch"]}}.dump());
  ASSERT_EQ(finished.status, 200) << finished.text;
  EXPECT_EQ(finished.body["state"], "failed");
  EXPECT_EQ(finished.body["exit_code"], 3);
  // Agents may not submit or read jobs.
  EXPECT_EQ(agent.Post("/v1/jobs", R"({"account": "lab-a"})").status, 403);
  EXPECT_EQ(agent.Get("/v1/jobs").status, 403);
}

TEST_F(ServerTest, TenantsAreIsolated) {
  Api lab_a = Tenant("lab-a");
  Api lab_b = Tenant("lab-b");
  JobId id = lab_a.Submit({{"gpus", 1}, {"command", {"sleep", "100"}}, {"time_limit", "1h"}});
  ASSERT_GT(id, 0u);
  // Another tenant's job is neither visible nor cancellable: "not found", as if it did not exist.
  EXPECT_EQ(lab_b.Get(fmt::format("/v1/jobs/{}", id)).status, 404);
  EXPECT_EQ(lab_b.Post(fmt::format("/v1/jobs/{}/cancel", id)).status, 404);
  EXPECT_EQ(lab_b.Post(fmt::format("/v1/jobs/{}/hold", id)).status, 404);
  Reply visible = lab_b.Get("/v1/jobs");
  for (const json& job : visible.body["jobs"]) EXPECT_EQ(job["account"], "lab-b");
  EXPECT_EQ(lab_b.Get("/v1/jobs?account=lab-a").status, 404);
  // Nor can it submit into another subtree.
  Reply foreign = lab_b.Post("/v1/jobs", R"({"account": "lab-a", "command": ["true"]})");
  EXPECT_EQ(foreign.status, 403);
  // Nor change quotas, grants, nodes or tokens.
  EXPECT_EQ(lab_b.Put("/v1/accounts/lab-b/quotas/gpu", R"({"nominal": 32})").status, 403);
  EXPECT_EQ(lab_b.Put("/v1/accounts/lab-b/grants/more", R"({"gpu_hours": 10})").status, 403);
  EXPECT_EQ(lab_b.Post("/v1/nodes/n1/drain").status, 403);
  EXPECT_EQ(lab_b.Post("/v1/tokens", R"({"role": "operator"})").status, 403);
  EXPECT_EQ(lab_b.Get("/metrics").status, 403);
  // Accounts: only its own subtree.
  Reply accounts = lab_b.Get("/v1/accounts");
  ASSERT_EQ(accounts.status, 200);
  ASSERT_EQ(accounts.body["accounts"].size(), 1u);
  EXPECT_EQ(accounts.body["accounts"][0]["name"], "lab-b");
  EXPECT_EQ(lab_b.Get("/v1/accounts/lab-a").status, 404);
  // Its own job it may cancel.
  EXPECT_EQ(lab_a.Post(fmt::format("/v1/jobs/{}/cancel", id)).status, 200);
}

TEST_F(ServerTest, BadInputGetsAClearErrorAndChangesNothing) {
  Api lab = Tenant("lab-a");
  size_t before = lab.Get("/v1/jobs?state=pending,running,cancelled,failed,completed&limit=100000").body["jobs"].size();
  auto expect_error = [&](const std::string& body, int status, const std::string& message) {
    Reply reply = lab.Post("/v1/jobs", body);
    EXPECT_EQ(reply.status, status) << body << " -> " << reply.text;
    EXPECT_THAT(reply.body.value("message", ""), HasSubstr(message)) << body;
    EXPECT_FALSE(reply.body.value("code", "").empty());
  };
  expect_error(R"({"tasks": 2, )", 400, "request:");
  expect_error(R"({"gpus_per_tsk": 2})", 400, "unknown field 'gpus_per_tsk'");
  expect_error(R"({"account": "no-such-lab"})", 400, "unknown account 'no-such-lab'");
  expect_error(R"({"tasks": 9, "gpus_per_task": 8, "command": ["x"]})", 400, "");
  expect_error(R"({"gpus": 1, "pools": ["nowhere"]})", 400, "nowhere");
  expect_error(R"({"gpus": 1, "time_limit": "30d"})", 400, "maximum");
  expect_error(R"({"gpus": 1, "dependency": "afterok:999999"})", 400, "999999");
  expect_error(R"({"gpus": 1, "array": "9-1"})", 400, "backwards");
  Reply huge = lab.Post("/v1/jobs", R"({"name": ")" + std::string(2 << 20, 'x') + R"("})");
  EXPECT_EQ(huge.status, 413);
  EXPECT_EQ(huge.body.value("code", ""), "payload_too_large");
  Reply no_route = lab.Get("/v1/nothing-here");
  EXPECT_EQ(no_route.status, 404);
  EXPECT_EQ(no_route.body.value("code", ""), "not_found");
  EXPECT_EQ(lab.Post("/v1/jobs/123456789/release").status, 404);
  size_t after = lab.Get("/v1/jobs?state=pending,running,cancelled,failed,completed&limit=100000").body["jobs"].size();
  EXPECT_EQ(before, after);
}

TEST_F(ServerTest, HoldAndRelease) {
  Api lab = Tenant("lab-a");
  // A job that waits for another cannot start under the test's feet.
  JobId first = lab.Submit({{"gpus", 1}, {"command", {"sleep", "1000"}}});
  JobId id = lab.Submit({{"gpus", 1}, {"command", {"true"}}, {"dependency", fmt::format("afterany:{}", first)}});
  Reply held = lab.Post(fmt::format("/v1/jobs/{}/hold", id));
  ASSERT_EQ(held.status, 200) << held.text;
  EXPECT_EQ(held.body["reason"]["code"], "held");
  EXPECT_EQ(held.body["held"], true);
  EXPECT_EQ(lab.Post(fmt::format("/v1/jobs/{}/hold", id)).status, 409);
  Reply released = lab.Post(fmt::format("/v1/jobs/{}/release", id));
  ASSERT_EQ(released.status, 200) << released.text;
  EXPECT_EQ(released.body["held"], false);
  EXPECT_EQ(released.body["reason"]["code"], "dependency");
  EXPECT_EQ(lab.Post(fmt::format("/v1/jobs/{}/release", id)).status, 409);
  lab.Post(fmt::format("/v1/jobs/{}/cancel", id));
  lab.Post(fmt::format("/v1/jobs/{}/cancel", first));
}

TEST_F(ServerTest, ARetriedSubmitWithItsIdempotencyKeyMakesOneJob) {
  httplib::Client client = server_->Client();
  httplib::Headers headers = {{"Authorization", "Bearer " + tenant_tokens_["lab-a"]}, {"Idempotency-Key", "k-123"}};
  std::string body = R"({"gpus": 1, "command": ["true"], "array": "0-2", "hold": true})";
  auto first = client.Post("/v1/jobs", headers, body, "application/json");
  auto second = client.Post("/v1/jobs", headers, body, "application/json");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->status, 201);
  EXPECT_EQ(second->status, 201);
  EXPECT_EQ(json::parse(first->body), json::parse(second->body));
  EXPECT_EQ(json::parse(first->body)["ids"].size(), 3u);
  // The same key from another user is another submit.
  headers = {{"Authorization", "Bearer " + tenant_tokens_["lab-b"]}, {"Idempotency-Key", "k-123"}};
  auto other = client.Post("/v1/jobs", headers, body, "application/json");
  ASSERT_TRUE(other);
  EXPECT_NE(json::parse(other->body)["ids"], json::parse(first->body)["ids"]);
  for (const auto* reply : {&first, &other}) {
    json ids = json::parse((*reply)->body)["ids"];
    for (const json& id : ids) Operator().Post(fmt::format("/v1/jobs/{}/cancel", id.get<JobId>()));
  }
}

// A client whose reply was lost in a crash or a failover retries with its key after the restart:
// the job it made is found, even when it has ended meanwhile.
TEST_F(ServerTest, AKeyOutlivesARestartEvenWhenItsJobHasEnded) {
  httplib::Headers headers = {{"Authorization", "Bearer " + tenant_tokens_["lab-a"]}, {"Idempotency-Key", "k-restart"}};
  std::string body = R"({"gpus": 1, "command": ["true"], "hold": true})";
  httplib::Result first = server_->Client().Post("/v1/jobs", headers, body, "application/json");
  ASSERT_TRUE(first && first->status == 201);
  JobId id = json::parse(first->body)["ids"][0].get<JobId>();
  ASSERT_EQ(Operator().Post(fmt::format("/v1/jobs/{}/cancel", id)).status, 200);
  server_->Kill();
  ASSERT_TRUE(server_->Start().ok());
  httplib::Result again = server_->Client().Post("/v1/jobs", headers, body, "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 201);
  EXPECT_EQ(json::parse(again->body)["ids"], json::parse(first->body)["ids"]);
  EXPECT_EQ(Tenant("lab-a").Get(fmt::format("/v1/jobs/{}", id + 1)).status, 404);
}

// The history of ended jobs comes in pages, newest first, filtered by submit time.
TEST_F(ServerTest, HistoryPagesEndedJobsNewestFirst) {
  Api lab = Tenant("lab-a");
  std::vector<JobId> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(lab.Submit({{"gpus", 1}, {"command", {"true"}}, {"hold", true}}));
    ASSERT_EQ(lab.Post(fmt::format("/v1/jobs/{}/cancel", ids.back())).status, 200);
  }
  // Every ended job of the account (other tests of a shared server may have ended some too).
  Reply all = lab.Get("/v1/jobs?state=ended&limit=1000");
  ASSERT_EQ(all.status, 200) << all.text;
  std::vector<JobId> expected;
  for (const json& job : all.body["jobs"]) expected.push_back(job["id"].get<JobId>());
  EXPECT_FALSE(all.body.contains("next_before"));  // not a full page
  ASSERT_TRUE(std::is_sorted(expected.begin(), expected.end()));
  for (JobId id : ids) EXPECT_TRUE(std::count(expected.begin(), expected.end(), id)) << id;
  // Pages of two, newest first, until one is not full: together they are the whole history.
  std::vector<JobId> paged;
  std::string before;
  for (int page = 0; page < 100; ++page) {
    Reply reply = lab.Get("/v1/jobs?state=ended&limit=2" + before);
    ASSERT_EQ(reply.status, 200) << reply.text;
    ASSERT_LE(reply.body["jobs"].size(), 2u);
    std::vector<JobId> in_page;
    for (const json& job : reply.body["jobs"]) in_page.push_back(job["id"].get<JobId>());
    paged.insert(paged.begin(), in_page.begin(), in_page.end());  // each page is older than the last
    if (!reply.body.contains("next_before")) break;
    EXPECT_EQ(reply.body["next_before"], in_page.front());
    before = fmt::format("&before={}", reply.body["next_before"].get<JobId>());
  }
  EXPECT_EQ(paged, expected);
  EXPECT_EQ(lab.Get("/v1/jobs?state=cancelled&since=2099-01-01").body["jobs"].size(), 0u);
  EXPECT_EQ(lab.Get("/v1/jobs?state=ended&until=2099-01-01&limit=1000").body["jobs"].size(), expected.size());
  EXPECT_EQ(lab.Get("/v1/jobs?state=ended&before=x").status, 400);
  EXPECT_EQ(lab.Get("/v1/jobs?state=ended&since=yesterday").status, 400);
}

// A NUL in a user name (which PostgreSQL's text refuses, and which would fail the commit) is bad
// input, refused before anything is written.
TEST_F(ServerTest, AUserNameWithAControlCharacterIsRefused) {
  Api op = Operator();
  Reply submit = op.Post("/v1/jobs", R"({"account": "lab-a", "user": "a\u0000b", "gpus": 1, "command": ["true"]})");
  EXPECT_EQ(submit.status, 400) << submit.text;
  EXPECT_THAT(submit.text, HasSubstr("control character"));
  Reply token = op.Post("/v1/tokens", R"({"role": "tenant", "account": "lab-a", "user": "x\u0000"})");
  EXPECT_EQ(token.status, 400) << token.text;
  EXPECT_EQ(op.Get("/healthz").status, 200);
}

TEST_F(ServerTest, SubmittedHeldWaitsForRelease) {
  Api lab = Tenant("lab-a");
  JobId id = lab.Submit({{"gpus", 1}, {"command", {"true"}}, {"hold", true}});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  json job = lab.Get(fmt::format("/v1/jobs/{}", id)).body;
  EXPECT_EQ(job["state"], "pending");
  EXPECT_EQ(job["reason"]["code"], "held");
  EXPECT_EQ(lab.Post(fmt::format("/v1/jobs/{}/release", id)).status, 200);
  lab.Post(fmt::format("/v1/jobs/{}/cancel", id));
}

TEST_F(ServerTest, DependenciesWaitForTheirJobs) {
  Api op = Operator();
  JobId first = op.Submit({{"account", "lab-a"}, {"gpus", 1}, {"pools", {"edge"}}, {"command", {"true"}}});
  JobId second = op.Submit({{"account", "lab-a"}, {"gpus", 1}, {"pools", {"edge"}}, {"command", {"true"}},
                            {"dependency", fmt::format("afterok:{}", first)}});
  json running;
  ASSERT_TRUE(WaitUntil([&] {
    running = op.Get(fmt::format("/v1/jobs/{}", first)).body;
    return running["state"] == "running";
  })) << running.dump();
  // The scheduling loop resolves dependencies after the submit; until then the reason says so.
  json waiting;
  ASSERT_TRUE(WaitUntil([&] {
    waiting = op.Get(fmt::format("/v1/jobs/{}", second)).body;
    return waiting["reason"]["message"].get<std::string>().find(fmt::format("job {}", first)) != std::string::npos;
  })) << waiting.dump();
  EXPECT_EQ(waiting["state"], "pending");
  EXPECT_EQ(waiting["reason"]["code"], "dependency") << waiting.dump();
  ASSERT_EQ(op.Post(fmt::format("/v1/jobs/{}/finish", first), R"({"exit_code": 0})").status, 200);
  json started;
  EXPECT_TRUE(WaitUntil([&] {
    started = op.Get(fmt::format("/v1/jobs/{}", second)).body;
    return started["state"] == "running";
  })) << started.dump();
  op.Post(fmt::format("/v1/jobs/{}/cancel", second));
}

TEST_F(ServerTest, ArraysMakeOneJobPerIndexAndHonourTheirLimit) {
  Api lab = Tenant("lab-b");
  Reply reply = lab.Post("/v1/jobs", R"({"gpus": 1, "pools": ["gpu"], "array": "0-5%2", "command": ["true"]})");
  ASSERT_EQ(reply.status, 201) << reply.text;
  ASSERT_EQ(reply.body["ids"].size(), 6u);
  JobId first = reply.body["ids"][0];
  EXPECT_EQ(reply.body["array_job_id"], first);
  auto count_running = [&] {
    int running = 0;
    for (const json& id : reply.body["ids"]) {
      json job = lab.Get(fmt::format("/v1/jobs/{}", id.get<JobId>())).body;
      EXPECT_EQ(job["array_job_id"], first);
      running += job["state"] == "running" ? 1 : 0;
    }
    return running;
  };
  EXPECT_TRUE(WaitUntil([&] { return count_running() == 2; }));
  // Several passes later, still no more than the limit.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(count_running(), 2);
  for (const json& id : reply.body["ids"]) lab.Post(fmt::format("/v1/jobs/{}/cancel", id.get<JobId>()));
}

TEST_F(ServerTest, OperatorsChangeQuotasGrantsAndNodes) {
  Api op = Operator();
  Reply quota = op.Put("/v1/accounts/acme/quotas/gpu", R"({"nominal": 8, "borrow_limit": 0})");
  ASSERT_EQ(quota.status, 200) << quota.text;
  EXPECT_EQ(quota.body["quotas"]["gpu"]["nominal"], 8);
  EXPECT_EQ(quota.body["quotas"]["gpu"]["borrow_limit"], 0);
  EXPECT_EQ(op.Put("/v1/accounts/acme/quotas/gpu", R"({"nominal": -1})").status, 400);
  EXPECT_EQ(op.Put("/v1/accounts/acme/quotas/nowhere", R"({"nominal": 1})").status, 404);
  EXPECT_EQ(op.Put("/v1/accounts/acme/quotas/gpu", R"({"nominal": 1, "extra": 2})").status, 400);
  Reply grant = op.Put("/v1/accounts/acme/grants/q2", R"({"gpu_hours": 500, "start": "2026-01-01", "end": "2027-01-01"})");
  ASSERT_EQ(grant.status, 200) << grant.text;
  bool found = false;
  for (const json& g : grant.body["grants"]) found |= g["name"] == "q2" && g["gpu_hours"] == 500;
  EXPECT_TRUE(found);

  Reply drained = op.Post("/v1/nodes/n4/drain", R"({"reason": "fan"})");
  ASSERT_EQ(drained.status, 200) << drained.text;
  EXPECT_EQ(drained.body["state"], "draining");
  EXPECT_EQ(drained.body["reason"], "fan");
  Reply listed = op.Get("/v1/nodes?state=draining");
  ASSERT_EQ(listed.body["nodes"].size(), 1u);
  EXPECT_EQ(op.Post("/v1/nodes/n4/resume").body["state"], "up");
  EXPECT_EQ(op.Post("/v1/nodes/zz/drain").status, 404);
  Reply pools = op.Get("/v1/pools");
  ASSERT_EQ(pools.body["pools"].size(), 2u);
  EXPECT_EQ(pools.body["pools"][0]["gpus"], 32);
}

TEST_F(ServerTest, MetricsExposeThePool) {
  Reply metrics = Operator().Get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  for (const char* line : {"allot_gpus_total{pool=\"gpu\"} 32", "allot_jobs{state=\"pending\"}",
                           "allot_scheduling_pass_seconds_bucket{le=\"+Inf\"}", "allot_submits_total",
                           "allot_account_gpus_nominal{account=\"lab-a\",pool=\"gpu\"} 16",
                           "# TYPE allot_scheduling_pass_seconds histogram"}) {
    EXPECT_THAT(metrics.text, HasSubstr(line));
  }
}

TEST_F(ServerTest, UsageCountsGpuHoursUpTheTree) {
  Api op = Operator();
  Reply usage = op.Get("/v1/usage?period=day");
  ASSERT_EQ(usage.status, 200) << usage.text;
  EXPECT_EQ(usage.body["period"], "day");
  EXPECT_EQ(op.Get("/v1/usage?period=fortnight").status, 400);
  EXPECT_EQ(op.Get("/v1/usage?start=yesterday").status, 400);
  Reply tenant = Tenant("lab-a").Get("/v1/usage");
  ASSERT_EQ(tenant.status, 200);
  for (const json& row : tenant.body["rows"]) EXPECT_EQ(row["account"], "lab-a");
}

TEST_F(ServerTest, TokensCanBeRevoked) {
  Api op = Operator();
  Reply created = op.Post("/v1/tokens", R"({"role": "tenant", "account": "lab-b", "user": "temp"})");
  ASSERT_EQ(created.status, 201);
  Api temp(*server_, created.body["token"]);
  EXPECT_EQ(temp.Get("/v1/whoami").body["user"], "temp");
  EXPECT_EQ(op.Call("DELETE", fmt::format("/v1/tokens/{}", created.body["id"].get<int64_t>())).status, 200);
  EXPECT_EQ(temp.Get("/v1/whoami").status, 401);
  EXPECT_EQ(op.Post("/v1/tokens", R"({"role": "tenant"})").status, 400);
  EXPECT_EQ(op.Post("/v1/tokens", R"({"role": "king"})").status, 400);
}

// openapi.json and the server's routes must name the same paths and methods.
TEST(OpenApiTest, DocumentMatchesTheRoutes) {
  json document = json::parse(OpenApiDocument());
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, methods] : document["paths"].items()) {
    for (const auto& [method, operation] : methods.items()) {
      if (method == "parameters") continue;
      documented.insert({method, path});
      EXPECT_TRUE(operation.contains("responses")) << method << " " << path;
    }
  }
  std::set<std::pair<std::string, std::string>> served;
  for (const RouteName& route : HttpApi::Routes()) served.insert({route.method, route.path});
  EXPECT_EQ(documented, served);
}

}  // namespace
}  // namespace allot

namespace allot {
namespace {

// The `allot` client commands, run as a user runs them, against the same server.
class CliTest : public ServerTest {
 protected:
  struct Run {
    int exit_code = -1;
    std::string out;
  };
  // Runs `allot ARGS` with ALLOT_SERVER and ALLOT_TOKEN set; stdout and stderr together.
  static Run Cli(const std::string& args, const std::string& token_file = "") {
    std::string token = token_file.empty() ? "@" + data_dir_ + "/operator.token" : token_file;
    std::string command = fmt::format("ALLOT_SERVER={} ALLOT_TOKEN={} XDG_CONFIG_HOME=/nonexistent {} {} 2>&1",
                                      server_->url(), token, ALLOT_BINARY, args);
    Run run;
    FILE* pipe = popen(command.c_str(), "r");
    char buffer[4096];
    size_t read;
    while ((read = fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, read);
    int status = pclose(pipe);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
  }
  static std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = data_dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
};

TEST_F(CliTest, SubmitAnSbatchScriptQueueShowAndCancel) {
  std::string script = WriteFile("train.sh", R"(#!/bin/bash
#SBATCH --job-name=llm-pretrain
#SBATCH --account=lab-b
#SBATCH --partition=gpu
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gres=gpu:H200:8
#SBATCH --cpus-per-task=4
#SBATCH --time=1-00:00:00
#SBATCH --qos=normal
#SBATCH --output=logs/%x-%j.out
#SBATCH --error=logs/%x-%j.err
#SBATCH --exclusive

module load cuda
srun python -m torch.distributed.run --nproc_per_node=8 train.py
)");
  Run submitted = Cli("submit " + script);
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out;
  ASSERT_THAT(submitted.out, HasSubstr("Submitted job "));
  std::string id = submitted.out.substr(submitted.out.find("job ") + 4);
  id = id.substr(0, id.find_first_not_of("0123456789"));

  Run queue = Cli("queue --account lab-b");
  EXPECT_EQ(queue.exit_code, 0) << queue.out;
  EXPECT_THAT(queue.out, HasSubstr("llm-pretrain"));
  Run json_queue = Cli("queue -o json");
  ASSERT_EQ(json_queue.exit_code, 0);
  json parsed = json::parse(json_queue.out, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << json_queue.out;
  bool listed = false;
  for (const json& job : parsed["jobs"]) {
    if (std::to_string(job["id"].get<JobId>()) != id) continue;
    listed = true;
    EXPECT_EQ(job["tasks"], 2);
    EXPECT_EQ(job["gpus_per_task"], 8);
    EXPECT_EQ(job["time_limit"], 86400);
    EXPECT_EQ(job["spec"]["exclusive"], true);
    EXPECT_THAT(job["spec"]["script"].get<std::string>(), HasSubstr("torch.distributed.run"));
  }
  EXPECT_TRUE(listed) << json_queue.out;

  Run show = Cli("show " + id);
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_THAT(show.out, HasSubstr("JobName=llm-pretrain"));
  Run cancel = Cli("cancel " + id);
  EXPECT_EQ(cancel.exit_code, 0) << cancel.out;
  Run again = Cli("cancel " + id);
  EXPECT_EQ(again.exit_code, 2) << again.out;
  EXPECT_THAT(again.out, HasSubstr("already ended"));
}

TEST_F(CliTest, ErrorsHaveDocumentedExitCodes) {
  std::string typo = WriteFile("typo.sh", "#!/bin/bash\n#SBATCH --acount=lab-a\ntrue\n");
  size_t before = Operator().Get("/v1/jobs").body["jobs"].size();
  Run bad_option = Cli("submit " + typo);
  EXPECT_EQ(bad_option.exit_code, 2);
  EXPECT_THAT(bad_option.out, HasSubstr("--acount"));
  std::string impossible = WriteFile("big.sh", "#!/bin/bash\n#SBATCH --account=lab-a\n#SBATCH --nodes=9\n#SBATCH --gpus-per-node=8\ntrue\n");
  Run too_big = Cli("submit " + impossible);
  EXPECT_EQ(too_big.exit_code, 2) << too_big.out;
  EXPECT_EQ(Operator().Get("/v1/jobs").body["jobs"].size(), before);

  Run unauthenticated = Cli("queue", "allot_bogus");
  EXPECT_EQ(unauthenticated.exit_code, 3) << unauthenticated.out;
  std::string tenant_token = WriteFile("tenant.token", tenant_tokens_["lab-a"]);
  Run forbidden = Cli("token create --role operator", "@" + tenant_token);
  EXPECT_EQ(forbidden.exit_code, 3) << forbidden.out;
  Run missing = Cli("show 987654");
  EXPECT_EQ(missing.exit_code, 2);
  Run unreachable = Run{};
  {
    std::string command = fmt::format("ALLOT_SERVER=http://127.0.0.1:1 ALLOT_TOKEN=x {} queue 2>&1", ALLOT_BINARY);
    int status = system(command.c_str());
    unreachable.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  EXPECT_EQ(unreachable.exit_code, 1);
}

TEST_F(CliTest, TokensFromTheCliWork) {
  Run created = Cli("token create --role tenant --account lab-a --user kim");
  ASSERT_EQ(created.exit_code, 0) << created.out;
  std::string token = created.out.substr(created.out.find("allot_"), 70);
  std::string file = WriteFile("kim.token", token);
  Run whoami = Cli("whoami -o json", "@" + file);
  ASSERT_EQ(whoami.exit_code, 0) << whoami.out;
  EXPECT_EQ(json::parse(whoami.out)["user"], "kim");
}

}  // namespace
}  // namespace allot
