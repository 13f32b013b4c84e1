// The hostile-client suite (docs/security.md): every attack the security review found, against a
// real `allot server` on loopback. Each asserts a clear 4xx or a refusal, and that nothing
// changed: the same job list, no file touched, memory near its baseline, the server still up.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "server/server_process.h"
#include "store/store.h"

namespace allot {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
namespace fs = std::filesystem;

struct Reply {
  int status = 0;
  json body;
};

// How much a server's memory may grow under an attack. AddressSanitizer's shadow memory and
// quarantine (the sanitizer build of CI) inflate every allocation several times over.
#ifdef __SANITIZE_ADDRESS__
constexpr size_t kMemoryAllowance = 256u << 20;
#else
constexpr size_t kMemoryAllowance = 64u << 20;
#endif

// A raw TCP connection to the server, for what no well-behaved client sends.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  // Sends what it can; the server may close the connection half-way (that is the point).
  void Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t sent = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (sent <= 0) return;
      data.remove_prefix(static_cast<size_t>(sent));
    }
  }
  // What the server sends until it closes, or until `seconds` pass.
  std::string Receive(double seconds) {
    std::string text;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd wait{fd_, POLLIN, 0};
      if (::poll(&wait, 1, 50) <= 0) continue;
      char buffer[4096];
      ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
      if (got <= 0) break;
      text.append(buffer, static_cast<size_t>(got));
    }
    return text;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class HostileClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("allot-hostile-{}-{}", getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    server_ = std::make_unique<ServerProcess>(ALLOT_BINARY, std::string(ALLOT_SOURCE_DIR) + "/tests/server/pool.yaml",
                                              (dir_ / "data").string(), ServerArgs());
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.message();
    operator_ = server_->OperatorToken();
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(dir_);
  }
  virtual std::vector<std::string> ServerArgs() const { return {"--static-nodes"}; }

  Reply Call(const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& token = "") {
    httplib::Client client = server_->Client();
    httplib::Headers headers = {{"Authorization", "Bearer " + (token.empty() ? operator_ : token)}};
    httplib::Result result = method == "GET"      ? client.Get(path, headers)
                             : method == "DELETE" ? client.Delete(path, headers)
                                                  : client.Post(path, headers, body, "application/json");
    Reply reply;
    if (!result) return reply;
    reply.status = result->status;
    reply.body = json::parse(result->body, nullptr, false);
    return reply;
  }
  std::string Token(const json& request) { return Call("POST", "/v1/tokens", request.dump()).body.value("token", ""); }
  json Jobs() { return Call("GET", "/v1/jobs?state=pending,running,completed,failed,cancelled").body["jobs"]; }
  bool Alive() { return Call("GET", "/v1/scheduler").status == 200; }
  // The job as it is once running, or after 2 s.
  json WaitUntilRunning(int id) {
    json job;
    for (int i = 0; i < 100 && (job = Call("GET", fmt::format("/v1/jobs/{}", id)).body)["state"] != "running"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return job;
  }

  fs::path dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string operator_;
};

TEST_F(HostileClientTest, BytesThatAreNotUtf8AreRefusedAndLeaveNoGhostJob) {
  std::string tenant = Token({{"role", "tenant"}, {"account", "lab-a"}});
  std::string body = "{\"name\": \"x\xFF\", \"gpus\": 1, \"command\": [\"true\"]}";
  Reply refused = Call("POST", "/v1/jobs", body, tenant);
  EXPECT_EQ(refused.status, 400);
  EXPECT_THAT(refused.body.value("message", ""), HasSubstr("not valid UTF-8 at byte 11"));
  EXPECT_TRUE(Jobs().empty());
  // The same in YAML, and in a header.
  EXPECT_EQ(Call("POST", "/v1/jobs", "name: \"x\xC0\xAF\"\ngpus: 1\ncommand: [\"true\"]\n", tenant).status, 400);
  // The next submit gets job 1 and the passes go on.
  Reply next = Call("POST", "/v1/jobs", R"({"gpus": 1, "command": ["true"]})", tenant);
  ASSERT_EQ(next.status, 201);
  EXPECT_EQ(next.body["ids"][0], 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(Alive());
  EXPECT_EQ(Call("GET", "/v1/jobs").status, 200);
}

TEST_F(HostileClientTest, ValidEscapesOutsideTheBasicPlaneAreAccepted) {
  Reply submitted = Call("POST", "/v1/jobs", R"({"name": "launch-\ud83d\ude80", "account": "lab-a", "gpus": 1, "command": ["true"]})");
  ASSERT_EQ(submitted.status, 201) << submitted.body.dump();
  Reply job = Call("GET", fmt::format("/v1/jobs/{}", submitted.body["ids"][0].get<int>()));
  EXPECT_EQ(job.body["name"], "launch-\xF0\x9F\x9A\x80");
}

TEST_F(HostileClientTest, DeeplyNestedBodiesAreRefusedOnEveryRoute) {
  std::string agent = Token({{"role", "agent"}, {"node", "n1"}});
  std::string deep = "{\"tasks\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  Reply sync = Call("POST", "/v1/agents/n1/sync", deep, agent);
  EXPECT_EQ(sync.status, 400);
  EXPECT_THAT(sync.body.value("message", ""), HasSubstr("nested more than 64 levels"));
  EXPECT_EQ(Call("POST", "/v1/jobs", std::string(50000, '[')).status, 400);
  EXPECT_TRUE(Alive());
}

TEST_F(HostileClientTest, YamlAliasesCannotMultiplyASmallBody) {
  // A billion-laughs body: each level names the one above ten times.
  std::string yaml = "a0: &a0 [\"" + std::string(100, 'x') + "\"]\n";
  for (int level = 1; level <= 8; ++level) {
    yaml += fmt::format("a{}: &a{} [", level, level);
    for (int i = 0; i < 10; ++i) yaml += fmt::format("{}*a{}", i ? ", " : "", level - 1);
    yaml += "]\n";
  }
  yaml += "gpus: 1\ncommand: *a8\n";
  size_t before = server_->ResidentBytes();
  Reply refused = Call("POST", "/v1/jobs", yaml);
  EXPECT_EQ(refused.status, 400);
  EXPECT_THAT(refused.body.value("message", ""), HasSubstr("expands to more than"));
  EXPECT_LT(server_->ResidentBytes(), before + kMemoryAllowance);
  EXPECT_TRUE(Jobs().empty());
}

TEST_F(HostileClientTest, AnArrayCostsMemoryLinearInItsElements) {
  size_t before = server_->ResidentBytes();
  Reply submitted = Call("POST", "/v1/jobs",
                         R"({"account": "lab-a", "gpus": 1, "command": ["true"], "array": "0-9999", "hold": true})");
  ASSERT_EQ(submitted.status, 201) << submitted.body.dump();
  EXPECT_EQ(submitted.body["ids"].size(), 10000u);
  // 10,000 elements used to add 416 MB (each kept its own copy of the index list).
  EXPECT_LT(server_->ResidentBytes(), before + kMemoryAllowance);
}

TEST_F(HostileClientTest, MalformedNumbersAndOutOfRangeValuesAreClientErrors) {
  EXPECT_EQ(Call("DELETE", "/v1/tokens/99999999999999999999").status, 404);
  Reply submitted = Call("POST", "/v1/jobs", R"({"account": "lab-a", "gpus": 1, "command": ["true"]})");
  ASSERT_EQ(submitted.status, 201);
  int id = submitted.body["ids"][0];
  WaitUntilRunning(id);
  Reply huge = Call("POST", fmt::format("/v1/jobs/{}/finish", id), R"({"exit_code": 4294967296})");
  EXPECT_EQ(huge.status, 400);
  EXPECT_EQ(Call("GET", fmt::format("/v1/jobs/{}", id)).body["state"], "running");
}

TEST_F(HostileClientTest, ALogReadInsideACharacterStartsAtTheNextOne) {
  Reply submitted = Call("POST", "/v1/jobs", R"({"account": "lab-a", "gpus": 8, "command": ["true"]})");
  ASSERT_EQ(submitted.status, 201);
  int id = submitted.body["ids"][0];
  json job = WaitUntilRunning(id);
  ASSERT_EQ(job["state"], "running");
  std::string node = job["nodes"][0];
  std::string agent = Token({{"role", "agent"}, {"node", node}});
  json report = {{"gpus", 8}, {"gpu_model", "H200"},
                 {"tasks", {{{"job", id}, {"epoch", job["epoch"]}, {"task", 0}, {"state", "running"}}}},
                 {"logs", {{{"job", id}, {"task", 0}, {"stream", "out"}, {"offset", 0}, {"data", "\xED\x95\x9C\xEA\xB8\x80!"}}}}};
  ASSERT_EQ(Call("POST", fmt::format("/v1/agents/{}/sync", node), report.dump(), agent).status, 200);
  // Byte 1 is inside 한 (3 bytes): the reply starts at 글 and says where the next read starts.
  Reply inside = Call("GET", fmt::format("/v1/jobs/{}/logs?offset=1", id));
  ASSERT_EQ(inside.status, 200) << inside.body.dump();  // was 500 (the reply could not be written)
  EXPECT_EQ(inside.body["data"], "\xEA\xB8\x80!");
  EXPECT_EQ(inside.body["next_offset"], 7);
}

TEST_F(HostileClientTest, TheLastOperatorTokenCannotBeRevoked) {
  Reply tokens = Call("GET", "/v1/tokens");
  int64_t id = tokens.body["tokens"][0]["id"];
  Reply refused = Call("DELETE", fmt::format("/v1/tokens/{}", id));
  EXPECT_EQ(refused.status, 409);
  EXPECT_THAT(refused.body.value("message", ""), HasSubstr("last operator token"));
  EXPECT_EQ(Call("GET", "/v1/whoami").status, 200);
}

TEST_F(HostileClientTest, IdempotencyKeysBelongToTheirAccount) {
  std::string kim_a = Token({{"role", "tenant"}, {"account", "lab-a"}, {"user", "kim"}});
  std::string kim_b = Token({{"role", "tenant"}, {"account", "lab-b"}, {"user", "kim"}});
  auto submit = [&](const std::string& token) {
    httplib::Client client = server_->Client();
    httplib::Result result = client.Post("/v1/jobs", {{"Authorization", "Bearer " + token}, {"Idempotency-Key", "k1"}},
                                         R"({"gpus": 1, "command": ["true"], "hold": true})", "application/json");
    return result ? json::parse(result->body, nullptr, false) : json();
  };
  json first = submit(kim_a);
  json second = submit(kim_b);
  ASSERT_TRUE(first.contains("ids") && second.contains("ids"));
  EXPECT_NE(first["ids"], second["ids"]);
  EXPECT_EQ(Jobs().size(), 2u);
  EXPECT_EQ(submit(kim_a)["ids"], first["ids"]);  // a retry still gets its own first reply
}

TEST_F(HostileClientTest, AnAgentTokenSpeaksForItsOwnNodeOnly) {
  EXPECT_EQ(Call("POST", "/v1/tokens", R"({"role": "agent"})").status, 400);  // no fleet-wide agent tokens
  std::string n1 = Token({{"role", "agent"}, {"node", "n1"}});
  Reply other = Call("POST", "/v1/agents/n2/sync", R"({"gpus": 8, "gpu_model": "H200"})", n1);
  EXPECT_EQ(other.status, 403);
  EXPECT_THAT(other.body.value("message", ""), HasSubstr("node 'n1''s, not 'n2''s"));
  // A job on n2 (the only node with 8 free GPUs left once n1's are taken): n1's agent can neither
  // end it nor write into its log.
  Reply held = Call("POST", "/v1/jobs", R"({"account": "lab-a", "gpus_per_task": 8, "tasks": 2, "command": ["true"]})");
  ASSERT_EQ(held.status, 201);
  int id = held.body["ids"][0];
  json job = WaitUntilRunning(id);
  ASSERT_EQ(job["state"], "running");
  std::string elsewhere;
  for (const char* node : {"n1", "n2", "n3", "n4"}) {
    if (std::find(job["nodes"].begin(), job["nodes"].end(), node) == job["nodes"].end()) elsewhere = node;
  }
  std::string outsider = Token({{"role", "agent"}, {"node", elsewhere}});
  EXPECT_EQ(Call("POST", fmt::format("/v1/jobs/{}/finish", id), R"({"exit_code": 0})", outsider).status, 403);
  json forged = {{"gpus", 8}, {"gpu_model", "H200"}, {"tasks", json::array()},
                 {"logs", {{{"job", id}, {"task", 0}, {"stream", "out"}, {"offset", 0}, {"data", "forged\n"}}}}};
  EXPECT_EQ(Call("POST", fmt::format("/v1/agents/{}/sync", elsewhere), forged.dump(), outsider).status, 200);
  EXPECT_EQ(Call("GET", fmt::format("/v1/jobs/{}/logs", id)).body.value("data", "?"), "");
  EXPECT_EQ(Call("GET", fmt::format("/v1/jobs/{}", id)).body["state"], "running");
}

TEST_F(HostileClientTest, OnlyAJobsUserOrItsOwnCredentialStartsStepsInIt) {
  std::string kim = Token({{"role", "tenant"}, {"account", "lab-a"}, {"user", "kim"}});
  std::string lee = Token({{"role", "tenant"}, {"account", "lab-a"}, {"user", "lee"}});
  std::string agent = Token({{"role", "agent"}, {"node", "n1"}});
  Reply submitted = Call("POST", "/v1/jobs", R"({"tasks": 1, "gpus_per_task": 1, "command": ["sleep", "60"]})", kim);
  ASSERT_EQ(submitted.status, 201);
  int id = submitted.body["ids"][0];
  ASSERT_EQ(WaitUntilRunning(id)["state"], "running");
  const std::string steps = fmt::format("/v1/jobs/{}/steps", id);
  const std::string step = R"({"argv": ["hostname"]})";
  // Another user of the same account sees the job but may not run in its allocation; agents may not at all.
  EXPECT_EQ(Call("POST", steps, step, lee).status, 403);
  EXPECT_EQ(Call("POST", steps, step, agent).status, 403);
  // A forged or altered job credential is refused before anything is looked up.
  EXPECT_EQ(Call("POST", steps, step, fmt::format("allotjob_{}_1_{}", id, std::string(64, '0'))).status, 401);
  EXPECT_EQ(Call("POST", steps, step, fmt::format("allotjob_{}_1", id)).status, 401);
  // Its user may; a malformed or oversized step changes nothing.
  EXPECT_EQ(Call("POST", steps, R"({"argv": "hostname"})", kim).status, 400);
  EXPECT_EQ(Call("POST", steps, R"({"argv": ["x"], "ntasks": 600})", kim).status, 400);
  Reply started = Call("POST", steps, step, kim);
  ASSERT_EQ(started.status, 201) << started.body.dump();
  EXPECT_EQ(started.body["step"], 0);
  EXPECT_EQ(Call("GET", fmt::format("/v1/jobs/{}", id)).body["steps"].size(), 1u);
}

TEST_F(HostileClientTest, ABootstrapTokenEnrolsEachNodeOnceAndDoesNothingElse) {
  std::string bootstrap = Token({{"role", "bootstrap"}});
  ASSERT_FALSE(bootstrap.empty());
  Reply enrolled = Call("POST", "/v1/agents/n1/register", "{}", bootstrap);
  ASSERT_EQ(enrolled.status, 201) << enrolled.body.dump();
  EXPECT_EQ(enrolled.body["node"], "n1");
  std::string n1 = enrolled.body["token"];
  EXPECT_EQ(Call("POST", "/v1/agents/n1/sync", R"({"gpus": 8, "gpu_model": "H200"})", n1).status, 200);
  EXPECT_EQ(Call("POST", "/v1/agents/n2/sync", R"({"gpus": 8})", n1).status, 403);
  // Once per node: a stolen bootstrap token cannot take over an enrolled node.
  Reply again = Call("POST", "/v1/agents/n1/register", "{}", bootstrap);
  EXPECT_EQ(again.status, 409);
  EXPECT_THAT(again.body.value("message", ""), HasSubstr("enrolled already"));
  EXPECT_EQ(Call("POST", "/v1/agents/nowhere/register", "{}", bootstrap).status, 404);
  for (const char* path : {"/v1/jobs", "/v1/tokens", "/v1/nodes", "/v1/whoami"}) {
    EXPECT_EQ(Call("GET", path, "", bootstrap).status, 403) << path;
  }
  EXPECT_EQ(Call("POST", "/v1/agents/n2/sync", R"({"gpus": 8})", bootstrap).status, 403);
  EXPECT_EQ(Call("GET", "/v1/audit?action=node.enrol").body["entries"].size(), 1u);
}

TEST_F(HostileClientTest, TheStoreAndTokenAreTheServersAlone) {
  struct stat info {};
  ASSERT_EQ(stat((dir_ / "data").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0700u);
  for (const char* file : {"allot.db", "operator.token"}) {
    ASSERT_EQ(stat((dir_ / "data" / file).c_str(), &info), 0) << file;
    EXPECT_EQ(info.st_mode & 0777, 0600u) << file;
  }
}

TEST_F(HostileClientTest, ADamagedRowFailsItsJobButNotTheStart) {
  Reply submitted = Call("POST", "/v1/jobs", R"({"account": "lab-a", "gpus": 1, "command": ["true"], "hold": true})");
  ASSERT_EQ(submitted.status, 201);
  server_->Kill();
  {
    StatusOr<std::unique_ptr<Store>> store = Store::Open((dir_ / "data" / "allot.db").string());
    ASSERT_TRUE(store.ok());
    WriteBatch batch;
    batch.PutJob({.id = 2, .state = "running", .account = "lab-a", .user = "x", .submit_time = 1, .end_time = 0,
                  .doc = R"({"spec": {"gpus": 1, "command": ["true"]}, "task_exits": {"zero": "one"}, "pool": 7})"});
    ASSERT_TRUE((*store)->Commit(std::move(batch)).ok());
  }
  ASSERT_TRUE(server_->Start().ok());
  Reply damaged = Call("GET", "/v1/jobs/2");
  EXPECT_EQ(damaged.body["state"], "failed");
  EXPECT_THAT(damaged.body.value("end_reason", ""), HasSubstr("could not be restored"));
  EXPECT_EQ(Call("GET", "/v1/jobs/1").body["state"], "pending");
}

TEST_F(HostileClientTest, PrivilegedActionsAreAuditedDurablyForOperatorsOnly) {
  std::string tenant = Token({{"role", "tenant"}, {"account", "lab-a"}, {"user", "kim"}});
  ASSERT_EQ(Call("POST", "/v1/nodes/n3/drain", R"({"reason": "bad fan"})").status, 200);
  httplib::Client client = server_->Client();
  auto put = client.Put("/v1/accounts/lab-a/quotas/gpu", {{"Authorization", "Bearer " + operator_}},
                        R"({"nominal": 8})", "application/json");
  ASSERT_TRUE(put && put->status == 200);
  server_->Kill();  // acknowledged, so durable
  ASSERT_TRUE(server_->Start().ok());
  Reply log = Call("GET", "/v1/audit");
  ASSERT_EQ(log.status, 200);
  const json& entries = log.body["entries"];
  ASSERT_EQ(entries.size(), 3u) << entries.dump();  // newest first
  EXPECT_EQ(entries[0]["action"], "quota.set");
  EXPECT_EQ(entries[0]["target"], "lab-a/gpu");
  EXPECT_EQ(entries[0]["detail"]["nominal"], 8);
  EXPECT_EQ(entries[1]["action"], "node.drain");
  EXPECT_EQ(entries[1]["detail"]["reason"], "bad fan");
  EXPECT_EQ(entries[2]["action"], "token.create");
  EXPECT_EQ(entries[2]["detail"]["user"], "kim");
  EXPECT_EQ(entries[2]["user"], "operator");
  EXPECT_THAT(entries[2].value("remote", ""), HasSubstr("127.0.0.1:"));
  EXPECT_EQ(log.body.dump().find(tenant), std::string::npos);  // never a token's text
  EXPECT_EQ(Call("GET", "/v1/audit?action=token.").body["entries"].size(), 1u);
  EXPECT_EQ(Call("GET", "/v1/audit", "", tenant).status, 403);
}

class RateLimitTest : public HostileClientTest {
 protected:
  std::vector<std::string> ServerArgs() const override {
    return {"--static-nodes", "--submit-rate", "0.5", "--submit-burst", "3"};
  }
};

TEST_F(RateLimitTest, ATenantOverItsSubmitRateGets429WithRetryAfter) {
  std::string tenant = Token({{"role", "tenant"}, {"account", "lab-a"}});
  httplib::Client client = server_->Client();
  httplib::Headers headers = {{"Authorization", "Bearer " + tenant}};
  const std::string spec = R"({"gpus": 1, "command": ["true"], "hold": true})";
  for (int i = 0; i < 3; ++i) {
    auto accepted = client.Post("/v1/jobs", headers, spec, "application/json");
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->status, 201) << i;
  }
  auto limited = client.Post("/v1/jobs", headers, spec, "application/json");
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->status, 429);
  EXPECT_EQ(limited->get_header_value("Retry-After"), "1");
  EXPECT_THAT(limited->body, HasSubstr("submits more than 0.5 requests a second"));
  EXPECT_EQ(Jobs().size(), 3u);
  // Another tenant's token has its own bucket; operators are not limited.
  std::string other = Token({{"role", "tenant"}, {"account", "lab-b"}});
  EXPECT_EQ(Call("POST", "/v1/jobs", spec, other).status, 201);
  EXPECT_EQ(Call("POST", "/v1/jobs", R"({"account": "lab-a", "gpus": 1, "command": ["true"], "hold": true})").status, 201);
}

TEST_F(HostileClientTest, ChunkedBodiesAreLimitedLikeAnyOther) {
  RawConnection connection(server_->port());
  connection.Send(fmt::format("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n"
                              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", operator_));
  const std::string chunk = "10000\r\n" + std::string(0x10000, ' ') + "\r\n";
  for (int i = 0; i < 40; ++i) connection.Send(chunk);  // 2.5 MiB: 32 MiB used to be taken
  connection.Send("0\r\n\r\n");
  std::string reply = connection.Receive(5);
  EXPECT_THAT(reply, testing::StartsWith("HTTP/1.1 413"));
  EXPECT_THAT(reply, HasSubstr("payload_too_large"));
  EXPECT_TRUE(Jobs().empty());
}

TEST_F(HostileClientTest, HeadersAreLimitedInCountAndSize) {
  size_t before = server_->ResidentBytes();
  std::string many = "GET /v1/jobs HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 200; ++i) many += fmt::format("X-Filler-{}: 1\r\n", i);
  RawConnection count(server_->port());
  count.Send(many + "\r\n");
  EXPECT_THAT(count.Receive(5), testing::StartsWith("HTTP/1.1 431"));
  RawConnection size(server_->port());
  size.Send("GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(96 << 10, 'x') + "\r\n\r\n");
  EXPECT_THAT(size.Receive(5), testing::StartsWith("HTTP/1.1 431"));
  EXPECT_LT(server_->ResidentBytes(), before + kMemoryAllowance);
  EXPECT_TRUE(Alive());
}

TEST_F(HostileClientTest, SlowClientsDoNotStallTheApi) {
  // 64 connections that send one header byte now and then used to take every API thread.
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 64; ++i) {
    slow.push_back(std::make_unique<RawConnection>(server_->port()));
    slow.back()->Send("GET /v1/jobs HTTP/1.1\r\nX-");
  }
  for (auto& connection : slow) connection->Send("a");
  auto started = std::chrono::steady_clock::now();
  std::string command = fmt::format("{} queue --server {} --token {} >/dev/null 2>&1", ALLOT_BINARY, server_->url(), operator_);
  EXPECT_EQ(std::system(command.c_str()), 0);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_LT(seconds, 1.0) << "allot queue took " << seconds << " s beside 64 slow clients";
}

class ConnectionCapTest : public HostileClientTest {
 protected:
  std::vector<std::string> ServerArgs() const override { return {"--static-nodes", "--max-connections", "8"}; }
};

TEST_F(ConnectionCapTest, ConnectionsOverTheCapGet503AndRetryAfter) {
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<RawConnection>(server_->port()));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RawConnection over(server_->port());
  over.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string reply = over.Receive(5);
  EXPECT_THAT(reply, testing::StartsWith("HTTP/1.1 503"));
  EXPECT_THAT(reply, HasSubstr("Retry-After: 1"));
  held.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(Alive());
}

// TLS on the server's one port: the CLI verifies the server against a CA file; plain HTTP still
// answers on the same port (for --dev and loopback).
class TlsTest : public HostileClientTest {
 protected:
  void SetUp() override {
    tls_dir_ = fs::temp_directory_path() / fmt::format("allot-tls-{}", getpid());
    fs::create_directories(tls_dir_);
    std::string make = fmt::format(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout {0}/key.pem -out {0}/cert.pem -days 1 -subj /CN=localhost "
        "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", tls_dir_.string());
    ASSERT_EQ(std::system(make.c_str()), 0) << "openssl could not make a test certificate";
    HostileClientTest::SetUp();
  }
  void TearDown() override {
    HostileClientTest::TearDown();
    fs::remove_all(tls_dir_);
  }
  std::vector<std::string> ServerArgs() const override {
    // No --static-nodes: only the node whose agent registers (over TLS) takes jobs.
    return {"--tls-cert", (tls_dir_ / "cert.pem").string(), "--tls-key", (tls_dir_ / "key.pem").string()};
  }
  int Cli(const std::string& server, const std::string& extra) {
    std::string command = fmt::format("{} queue --server {} --token {} {} >/dev/null 2>&1", ALLOT_BINARY, server,
                                      operator_, extra);
    return WEXITSTATUS(std::system(command.c_str()));
  }
  fs::path tls_dir_;
};

TEST_F(TlsTest, TheCliVerifiesTheServerAndPlainHttpStillAnswers) {
  std::string https = fmt::format("https://127.0.0.1:{}", server_->port());
  EXPECT_EQ(Cli(https, "--ca-file " + (tls_dir_ / "cert.pem").string()), 0);
  EXPECT_NE(Cli(https, ""), 0);  // an unknown CA is refused
  EXPECT_EQ(Cli(fmt::format("http://127.0.0.1:{}", server_->port()), ""), 0);
}

TEST_F(TlsTest, AnAgentRunsJobsOverTls) {
  std::string node_token = Token({{"role", "agent"}, {"node", "n1"}});
  AgentProcess agent(ALLOT_BINARY,
                     {"--server", fmt::format("https://127.0.0.1:{}", server_->port()), "--ca-file",
                      (tls_dir_ / "cert.pem").string(), "--token", node_token, "--node", "n1", "--gpus", "8",
                      "--gpu-model", "H200"},
                     (dir_ / "agent-n1").string());
  ASSERT_TRUE(agent.Start().ok());
  Reply submitted = Call("POST", "/v1/jobs", R"({"account": "lab-a", "gpus": 8, "command": ["sh", "-c", "echo over-tls"]})");
  ASSERT_EQ(submitted.status, 201);
  int id = submitted.body["ids"][0];
  std::string output;
  for (int i = 0; i < 200 && output.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    output = Call("GET", fmt::format("/v1/jobs/{}/logs", id)).body.value("data", "");
  }
  EXPECT_EQ(output, "over-tls\n");
}

class UnregisteredNodesTest : public HostileClientTest {
 protected:
  std::vector<std::string> ServerArgs() const override { return {}; }
};

TEST_F(UnregisteredNodesTest, NodesTakeNoJobsUntilTheirAgentRegisters) {
  Reply submitted = Call("POST", "/v1/jobs", R"({"account": "lab-a", "gpus": 1, "command": ["true"]})");
  ASSERT_EQ(submitted.status, 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Call("GET", "/v1/jobs/1").body["state"], "pending");
  Reply nodes = Call("GET", "/v1/nodes?pool=gpu");
  ASSERT_EQ(nodes.body["nodes"].size(), 4u);
  EXPECT_EQ(nodes.body["nodes"][0]["state"], "down");
  EXPECT_THAT(nodes.body["nodes"][0].value("reason", ""), HasSubstr("no agent has registered"));
}

}  // namespace
}  // namespace allot
