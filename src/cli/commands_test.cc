#include "cli/commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cli/fake_server.h"

namespace allot {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr Time kNow = 1796000000;  // 2026-11-30T00:53:20 UTC

// Replies in the shapes of docs/api.md.
const char* const kPendingJob = R"({
  "id": 12, "name": "train", "account": "lab-a", "user": "kim", "state": "pending",
  "reason": {"code": "resources", "message": "needs 16 GPUs in one pool; nacc-b200 has 8 free"},
  "held": false, "submit_time": 1795999000, "start_time": 0, "end_time": 0, "time_limit": 7200,
  "tasks": 2, "gpus_per_task": 8, "gpus": 16, "priority_class": "normal", "pool": "", "nodes": [],
  "allocation": [], "epoch": 0, "restarts": 0, "exit_code": null, "array_job_id": 0,
  "array_index": null, "spec": {"name": "train", "command": ["python", "train.py"]}})";

const char* const kRunningJob = R"({
  "id": 13, "name": "eval", "account": "lab-b", "user": "lee", "state": "running",
  "reason": {"code": "none", "message": ""}, "held": false, "submit_time": 1795990000,
  "start_time": 1795996277, "end_time": 0, "time_limit": 86400, "tasks": 4, "gpus_per_task": 8,
  "gpus": 32, "priority_class": "high", "pool": "nacc-b200", "nodes": ["n7", "n1", "n2", "n3"],
  "allocation": [{"node": "n1", "gpus": [0,1,2,3,4,5,6,7]}, {"node": "n2", "gpus": [0,1,2,3,4,5,6,7]},
                 {"node": "n3", "gpus": [0,1,2,3,4,5,6,7]}, {"node": "n7", "gpus": [0,1,2,3,4,5,6,7]}],
  "epoch": 1, "restarts": 0, "exit_code": null, "array_job_id": 0, "array_index": null,
  "spec": {"name": "eval", "script": "#!/bin/bash\nsrun eval.sh\n"}})";

std::string Error(const std::string& code, const std::string& message) {
  return json({{"code", code}, {"message", message}}).dump();
}

ApiClient MustCreate(const std::string& url) {
  StatusOr<ApiClient> client = ApiClient::Create({.server = url, .token = "allot_test"});
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return std::move(client).value();
}

// A port nothing listens on: bound once to learn a free number, then closed.
int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  close(fd);
  return ntohs(address.sin_port);
}

// Each test runs commands against a fresh fake server and reads what they printed.
class CommandsTest : public ::testing::Test {
 protected:
  CommandsTest() : client_(MustCreate(server_.url())) {}

  CommandEnv Env() { return {.in = in_, .out = out_, .err = err_, .now = kNow}; }

  // The one request the command sent.
  FakeServer::Request OnlyRequest() {
    std::vector<FakeServer::Request> requests = server_.requests();
    EXPECT_EQ(requests.size(), 1u);
    return requests.empty() ? FakeServer::Request{} : requests[0];
  }

  FakeServer server_;
  ApiClient client_;
  std::istringstream in_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST(ExitCodeTest, FollowsTheDocumentedCodes) {
  EXPECT_EQ(ExitCodeFor(OkStatus()), kExitOk);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kUnavailable, "")), kExitServerError);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kInternal, "")), kExitServerError);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kInvalidArgument, "")), kExitBadInput);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kNotFound, "")), kExitBadInput);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kFailedPrecondition, "")), kExitBadInput);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kUnauthenticated, "")), kExitNotAllowed);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kPermissionDenied, "")), kExitNotAllowed);
}

TEST_F(CommandsTest, QueuePrintsAnSqueueTableAndSendsTheFilters) {
  server_.Reply("GET", "/v1/jobs", 200,
                std::string(R"({"jobs": [)") + kPendingJob + "," + kRunningJob + "]}");
  int code =
      RunQueue(client_, {.account = "lab", .user = "kim", .states = "pending,running"}, Env());
  EXPECT_EQ(code, kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "JOBID  NAME   ACCOUNT  USER  STATE       TIME  GPUS  NODES  REASON/NODELIST\n"
            "   12  train  lab-a    kim   PENDING     0:00    16      -  (resources)\n"
            "   13  eval   lab-b    lee   RUNNING  1:02:03    32      4  n[1-3,7]\n");
  EXPECT_THAT(err_.str(), IsEmpty());
  FakeServer::Request request = OnlyRequest();
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.path, "/v1/jobs");
  EXPECT_EQ(request.authorization, "Bearer allot_test");
  EXPECT_EQ(request.query.find("account")->second, "lab");
  EXPECT_EQ(request.query.find("user")->second, "kim");
  EXPECT_EQ(request.query.find("state")->second, "pending,running");
}

TEST_F(CommandsTest, QueueLeavesUnsetFiltersToTheServer) {
  server_.Reply("GET", "/v1/jobs", 200, R"({"jobs": []})");
  EXPECT_EQ(RunQueue(client_, {}, Env()), kExitOk);
  EXPECT_THAT(OnlyRequest().query, IsEmpty());
  EXPECT_EQ(out_.str(), "JOBID  NAME  ACCOUNT  USER  STATE  TIME  GPUS  NODES  REASON/NODELIST\n");
}

TEST_F(CommandsTest, HistoryPrintsEndedJobsNewestFirstAndSaysHowToPage) {
  server_.Reply("GET", "/v1/jobs", 200, R"({"jobs": [
      {"id": 41, "name": "a", "account": "lab", "user": "kim", "state": "completed", "submit_time": 1796083200,
       "end_time": 1796083260, "exit_code": 0, "gpus": 2},
      {"id": 42, "name": "b", "account": "lab", "user": "kim", "state": "cancelled", "submit_time": 1796083300,
       "end_time": 1796083400, "exit_code": null, "gpus": 1}], "next_before": 41})");
  EXPECT_EQ(RunHistory(client_, {.account = "lab", .since = "2026-12-01", .before = "50", .limit = 2}, Env()), kExitOk)
      << err_.str();
  EXPECT_EQ(out_.str(),
            "JOBID  NAME  ACCOUNT  USER  STATE      SUBMIT               END                  GPUS  EXIT\n"
            "   42  b     lab      kim   CANCELLED  2026-12-01T00:01:40  2026-12-01T00:03:20     1     -\n"
            "   41  a     lab      kim   COMPLETED  2026-12-01T00:00:00  2026-12-01T00:01:00     2     0\n");
  EXPECT_EQ(err_.str(), "more: add --before 41\n");
  FakeServer::Request request = OnlyRequest();
  EXPECT_EQ(request.query.find("state")->second, "ended");
  EXPECT_EQ(request.query.find("since")->second, "2026-12-01");
  EXPECT_EQ(request.query.find("before")->second, "50");
  EXPECT_EQ(request.query.find("limit")->second, "2");
  EXPECT_EQ(request.query.count("until"), 0u);
}

TEST_F(CommandsTest, JsonOutputIsTheServersReply) {
  std::string reply = std::string(R"({"jobs": [)") + kRunningJob + "]}";
  server_.Reply("GET", "/v1/jobs", 200, reply);
  EXPECT_EQ(RunQueue(client_, {.output = OutputFormat::kJson}, Env()), kExitOk);
  EXPECT_EQ(out_.str(), json::parse(reply).dump(2) + "\n");
}

TEST_F(CommandsTest, ARefusedTokenExitsThreeWithTheServersMessage) {
  server_.Reply("GET", "/v1/jobs", 401, Error("unauthenticated", "unknown or revoked token"));
  EXPECT_EQ(RunQueue(client_, {}, Env()), kExitNotAllowed);
  EXPECT_EQ(err_.str(), "allot: unknown or revoked token\n");
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(CommandsTest, AForbiddenRequestExitsThree) {
  server_.Reply("GET", "/v1/tokens", 403,
                Error("permission_denied", "only an operator may list tokens"));
  EXPECT_EQ(RunTokenList(client_, OutputFormat::kTable, Env()), kExitNotAllowed);
  EXPECT_EQ(err_.str(), "allot: only an operator may list tokens\n");
}

TEST_F(CommandsTest, AServerErrorExitsOne) {
  server_.Reply("GET", "/v1/nodes", 500, Error("internal", "store: disk I/O error"));
  EXPECT_EQ(RunNodes(client_, {}, Env()), kExitServerError);
  EXPECT_EQ(err_.str(), "allot: store: disk I/O error\n");
}

TEST_F(CommandsTest, AReplyWithoutTheListExitsOne) {
  server_.Reply("GET", "/v1/pools", 200, R"({"something": "else"})");
  EXPECT_EQ(RunPools(client_, OutputFormat::kTable, Env()), kExitServerError);
  EXPECT_THAT(err_.str(), HasSubstr("has no 'pools' list"));
}

TEST(CommandsUnreachableTest, AnUnreachableServerExitsOne) {
  ApiClient client = MustCreate("http://127.0.0.1:" + std::to_string(UnusedPort()));
  std::istringstream in;
  std::ostringstream out;
  std::ostringstream err;
  CommandEnv env{.in = in, .out = out, .err = err, .now = kNow};
  EXPECT_EQ(RunStatus(client, OutputFormat::kTable, env), kExitServerError);
  EXPECT_THAT(err.str(), StartsWith("allot: cannot reach the allot server at http://127.0.0.1:"));
  EXPECT_THAT(out.str(), IsEmpty());

  // Cancelling several jobs stops at the first: the others cannot fare better.
  err.str("");
  EXPECT_EQ(RunJobAction(client, JobAction::kCancel, {"1", "2", "3"}, env), kExitServerError);
  EXPECT_THAT(err.str(), HasSubstr("allot: cannot cancel job 1: cannot reach the allot server"));
  EXPECT_THAT(err.str(), HasSubstr("allot: 2 more jobs not tried\n"));
}

TEST_F(CommandsTest, SubmitSendsTheScriptWithOverridesAndReportsTheArray) {
  in_.str(
      "#!/bin/bash\n"
      "#SBATCH --job-name=sweep\n"
      "#SBATCH --account=lab-a\n"
      "#SBATCH --nodes=1 --gpus-per-node=8\n"
      "#SBATCH --array=0-15\n"
      "python sweep.py $SLURM_ARRAY_TASK_ID\n");
  std::string ids = "[";
  for (int id = 123; id <= 138; ++id) ids += (id == 123 ? "" : ",") + std::to_string(id);
  server_.Reply("POST", "/v1/jobs", 201, R"({"ids": )" + ids + "]}");
  int code = RunSubmit(client_, {.file = "-", .account = "lab-b"}, Env());
  EXPECT_EQ(code, kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "Submitted job array 123 (16 jobs: 123-138)\n");

  FakeServer::Request request = OnlyRequest();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/v1/jobs");
  EXPECT_EQ(request.authorization, "Bearer allot_test");
  EXPECT_EQ(request.content_type, "application/json");
  json body = json::parse(request.body);
  EXPECT_EQ(body["name"], "sweep");
  EXPECT_EQ(body["account"], "lab-b");  // --account wins over #SBATCH --account
  EXPECT_EQ(body["array"], "0-15");
  EXPECT_EQ(body["gpus_per_task"], 8);
  EXPECT_THAT(body["script"].get<std::string>(), StartsWith("#!/bin/bash\n"));
}

TEST_F(CommandsTest, SubmitNamesAnUnnamedScriptAfterItsFile) {
  std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("allot_submit_" + std::to_string(getpid()) + ".sh");
  std::ofstream(file) << "#!/bin/bash\n#SBATCH --gpus=1\nnvidia-smi\n";
  server_.Reply("POST", "/v1/jobs", 201, R"({"ids": [77]})");
  int code = RunSubmit(client_, {.file = file.string(), .name = ""}, Env());
  std::filesystem::remove(file);
  EXPECT_EQ(code, kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "Submitted job 77\n");
  json body = json::parse(OnlyRequest().body);
  EXPECT_EQ(body["name"], file.filename().string());
  EXPECT_FALSE(body.contains("account"));  // the server picks the token's account
}

TEST_F(CommandsTest, SubmitNameOverrideAndJsonOutput) {
  in_.str("#!/bin/bash\n#SBATCH -J old\nhostname\n");
  server_.Reply("POST", "/v1/jobs", 201, R"({"ids": [5]})");
  int code = RunSubmit(client_, {.file = "-", .name = "new", .output = OutputFormat::kJson}, Env());
  EXPECT_EQ(code, kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "{\n  \"ids\": [\n    5\n  ]\n}\n");
  EXPECT_EQ(json::parse(OnlyRequest().body)["name"], "new");
}

TEST_F(CommandsTest, AnEndlessSubmitFileIsRefusedNotReadWhole) {
  // /dev/zero used to be read until the client ran out of memory (bad_alloc).
  EXPECT_EQ(RunSubmit(client_, {.file = "/dev/zero"}, Env()), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("/dev/zero is over 1024 KiB"));
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(CommandsTest, ABadSubmitFileExitsTwoBeforeAnyRequest) {
  in_.str("#!/bin/bash\n#SBATCH --gpuz=8\nhostname\n");
  EXPECT_EQ(RunSubmit(client_, {.file = "-"}, Env()), kExitBadInput);
  EXPECT_THAT(err_.str(), StartsWith("allot: <stdin>:2: unknown #SBATCH option '--gpuz'"));
  EXPECT_THAT(server_.requests(), IsEmpty());

  err_.str("");
  EXPECT_EQ(RunSubmit(client_, {.file = "/nonexistent/job.sh"}, Env()), kExitBadInput);
  EXPECT_THAT(err_.str(), StartsWith("allot: cannot read /nonexistent/job.sh: "));
  EXPECT_THAT(server_.requests(), IsEmpty());
}

TEST_F(CommandsTest, ASubmissionTheServerRejectsExitsTwo) {
  in_.str("#!/bin/bash\n#SBATCH --gpus=1\nhostname\n");
  server_.Reply("POST", "/v1/jobs", 400,
                Error("invalid_argument", "account 'lab-x' has no quota in any pool"));
  EXPECT_EQ(RunSubmit(client_, {.file = "-"}, Env()), kExitBadInput);
  EXPECT_EQ(err_.str(), "allot: account 'lab-x' has no quota in any pool\n");
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(CommandsTest, ShowPrintsAKeyValueBlockWithThePendingReason) {
  server_.Reply("GET", "/v1/jobs/12", 200, kPendingJob);
  EXPECT_EQ(RunShow(client_, "12", OutputFormat::kTable, Env()), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "JobId=12 JobName=train\n"
            "   UserId=kim Account=lab-a PriorityClass=normal\n"
            "   JobState=PENDING Reason=resources Held=no Restarts=0 ExitCode=-\n"
            "   ReasonMessage=needs 16 GPUs in one pool; nacc-b200 has 8 free\n"
            "   RunTime=0:00 TimeLimit=2:00:00\n"
            "   SubmitTime=2026-11-30T00:36:40 StartTime=- EndTime=-\n"
            "   Tasks=2 GpusPerTask=8 Gpus=16 Pool=-\n"
            "   NodeList=- NumNodes=0\n"
            "   Command=python train.py\n");
}

TEST_F(CommandsTest, ShowPrintsWhereARunningJobRuns) {
  server_.Reply("GET", "/v1/jobs/13", 200, kRunningJob);
  EXPECT_EQ(RunShow(client_, "13", OutputFormat::kTable, Env()), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("   JobState=RUNNING Held=no"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("Reason")));
  EXPECT_THAT(out_.str(), HasSubstr("   RunTime=1:02:03 TimeLimit=1-00:00:00\n"));
  EXPECT_THAT(out_.str(), HasSubstr("   NodeList=n[1-3,7] NumNodes=4\n"));
  EXPECT_THAT(out_.str(), HasSubstr("   GpuAllocation=n1(0-7),n2(0-7),n3(0-7),n7(0-7)\n"));
  EXPECT_THAT(out_.str(), HasSubstr("   Command=(batch script)\n"));
}

TEST_F(CommandsTest, ShowExpandsOutputPatternsAsScontrolDoes) {
  server_.Reply("GET", "/v1/jobs/21", 200, R"({"id": 21, "name": "ddp", "user": "kim", "state": "pending",
      "array_job_id": 0, "array_index": null,
      "spec": {"script": "#!/bin/sh\ntrue\n", "batch": true, "submit_dir": "/home/kim/proj", "error": "logs/%x-%j.err"}})");
  EXPECT_EQ(RunShow(client_, "21", OutputFormat::kTable, Env()), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("   WorkDir=/home/kim/proj\n"));
  EXPECT_THAT(out_.str(), HasSubstr("   StdOut=/home/kim/proj/slurm-21.out StdErr=/home/kim/proj/logs/ddp-21.err\n"));
}

TEST_F(CommandsTest, ShowRejectsAnIdThatIsNotANumber) {
  EXPECT_EQ(RunShow(client_, "12abc", OutputFormat::kTable, Env()), kExitBadInput);
  EXPECT_EQ(err_.str(), "allot: '12abc' is not a job id; ids are positive integers such as 12\n");
  EXPECT_THAT(server_.requests(), IsEmpty());
}

TEST_F(CommandsTest, ShowOfAnUnknownJobExitsTwo) {
  server_.Reply("GET", "/v1/jobs/99", 404, Error("not_found", "unknown job 99"));
  EXPECT_EQ(RunShow(client_, "99", OutputFormat::kTable, Env()), kExitBadInput);
  EXPECT_EQ(err_.str(), "allot: unknown job 99\n");
}

TEST_F(CommandsTest, CancelReportsEachJobAndExitsWithTheWorstCode) {
  server_.Reply("POST", "/v1/jobs/12/cancel", 200, kPendingJob);
  server_.Reply("POST", "/v1/jobs/13/cancel", 409,
                Error("failed_precondition", "job 13 has already ended"));
  server_.Reply("POST", "/v1/jobs/14/cancel", 200, kPendingJob);
  int code = RunJobAction(client_, JobAction::kCancel, {"12", "13", "x", "14"}, Env());
  EXPECT_EQ(code, kExitBadInput);
  EXPECT_EQ(out_.str(), "Cancelled job 12\nCancelled job 14\n");
  EXPECT_EQ(err_.str(),
            "allot: cannot cancel job 13: job 13 has already ended\n"
            "allot: 'x' is not a job id; ids are positive integers such as 12\n");
  std::vector<FakeServer::Request> requests = server_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/v1/jobs/12/cancel");
  EXPECT_EQ(requests[2].path, "/v1/jobs/14/cancel");
}

TEST_F(CommandsTest, HoldAndReleasePostToTheirRoutes) {
  server_.Reply("POST", "/v1/jobs/12/hold", 200, kPendingJob);
  server_.Reply("POST", "/v1/jobs/12/release", 403,
                Error("permission_denied", "job 12 was held by an operator"));
  EXPECT_EQ(RunJobAction(client_, JobAction::kHold, {"12"}, Env()), kExitOk);
  EXPECT_EQ(RunJobAction(client_, JobAction::kRelease, {"12"}, Env()), kExitNotAllowed);
  EXPECT_EQ(out_.str(), "Held job 12\n");
  EXPECT_EQ(err_.str(), "allot: cannot release job 12: job 12 was held by an operator\n");
}

TEST_F(CommandsTest, NodesPrintsATableAndSendsTheFilters) {
  server_.Reply("GET", "/v1/nodes", 200, R"({"nodes": [
    {"name": "n1", "pool": "nacc-b200", "gpu_model": "B200", "gpus": 8, "gpus_allocated": 8,
     "cpus": 112, "memory": 2199023255552, "state": "up", "reason": "", "jobs": [12, 15]},
    {"name": "n10", "pool": "nacc-b200", "gpu_model": "B200", "gpus": 8, "gpus_allocated": 0,
     "cpus": 112, "memory": 2199023255552, "state": "drained", "reason": "bad fan", "jobs": []}]})");
  EXPECT_EQ(RunNodes(client_, {.pool = "nacc-b200", .state = "up"}, Env()), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "NODE  POOL       MODEL  GPUS  ALLOC  STATE    JOBS\n"
            "n1    nacc-b200  B200      8      8  up       12,15\n"
            "n10   nacc-b200  B200      8      0  drained  -\n");
  FakeServer::Request request = OnlyRequest();
  EXPECT_EQ(request.path, "/v1/nodes");
  EXPECT_EQ(request.query.find("pool")->second, "nacc-b200");
  EXPECT_EQ(request.query.find("state")->second, "up");
}

TEST_F(CommandsTest, PoolsPrintsATable) {
  server_.Reply("GET", "/v1/pools", 200, R"({"pools": [
    {"name": "nacc-b200", "site": "gwangju", "gpu_model": "B200", "nodes": 576, "gpus": 4608,
     "gpus_allocated": 1024, "nodes_up": 570}]})");
  EXPECT_EQ(RunPools(client_, OutputFormat::kTable, Env()), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "POOL       SITE     MODEL  NODES   UP  GPUS  ALLOC   USED\n"
            "nacc-b200  gwangju  B200     576  570  4608   1024  22.2%\n");
}

TEST_F(CommandsTest, AccountsPrintsTheTreeAndItsGrants) {
  // Listed child first: the tree order comes from the paths, the sibling order from the server.
  server_.Reply("GET", "/v1/accounts", 200, R"({"accounts": [
    {"name": "lab-a", "path": "public/nacc/lab-a", "parent": "nacc", "allocated_gpus": 16,
     "quotas": {"nacc-b200": {"nominal": 64, "borrow_limit": null, "lend_limit": 32, "allocated": 16}},
     "grants": [{"name": "q1", "gpu_hours": 20000, "used_gpu_hours": 1.5, "start": 0, "end": 7776000}]},
    {"name": "public", "path": "public", "parent": "", "allocated_gpus": 16, "quotas": {}, "grants": []},
    {"name": "nacc", "path": "public/nacc", "parent": "public", "allocated_gpus": 16,
     "quotas": {"kt-h200": {"nominal": 0, "borrow_limit": 8, "lend_limit": null, "allocated": 0},
                "nacc-b200": {"nominal": 512, "borrow_limit": null, "lend_limit": null, "allocated": 16}},
     "grants": []},
    {"name": "kt", "path": "public/kt", "parent": "public", "allocated_gpus": 0, "quotas": {}}]})");
  EXPECT_EQ(RunAccounts(client_, OutputFormat::kTable, Env()), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "ACCOUNT    POOL       NOMINAL  BORROW_LIMIT  LEND_LIMIT  ALLOCATED\n"
            "public     -                -             -           -         16\n"
            "  nacc     kt-h200          0             8           -          0\n"
            "  nacc     nacc-b200      512             -           -         16\n"
            "    lab-a  nacc-b200       64             -          32         16\n"
            "  kt       -                -             -           -          0\n"
            "\n"
            "ACCOUNT  GRANT  GPU_HOURS  USED  START  END\n"
            "lab-a    q1       20000.0   1.5  -      1970-04-01T00:00:00\n");
}

TEST_F(CommandsTest, UsageIndentsAccountsByDepthAndSendsTheQuery) {
  server_.Reply("GET", "/v1/usage", 200, R"({"start": 1793491200, "end": 1796083200,
    "period": "month", "rows": [
      {"account": "nacc", "path": "public/nacc", "period_start": 1793491200, "gpu_hours": 1234.5},
      {"account": "lab-a", "path": "public/nacc/lab-a", "period_start": 1793491200, "gpu_hours": 1000},
      {"account": "nacc", "path": "public/nacc", "period_start": 1796083200, "gpu_hours": 12.3}]})");
  int code = RunUsage(
      client_, {.start = "2026-11-01", .end = "2026-12-01", .period = "month", .account = "nacc"},
      Env());
  EXPECT_EQ(code, kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "GPU-hours from 2026-11-01T00:00:00 to 2026-12-01T00:00:00 UTC, per month\n"
            "\n"
            "ACCOUNT  PERIOD   GPU_HOURS\n"
            "nacc     2026-11     1234.5\n"
            "  lab-a  2026-11     1000.0\n"
            "nacc     2026-12       12.3\n");
  FakeServer::Request request = OnlyRequest();
  EXPECT_EQ(request.path, "/v1/usage");
  EXPECT_EQ(request.query.find("start")->second, "2026-11-01");
  EXPECT_EQ(request.query.find("end")->second, "2026-12-01");
  EXPECT_EQ(request.query.find("period")->second, "month");
  EXPECT_EQ(request.query.find("account")->second, "nacc");
}

TEST_F(CommandsTest, UsageChecksDatesAndPeriodBeforeAnyRequest) {
  EXPECT_EQ(RunUsage(client_, {.start = "2026-13-01"}, Env()), kExitBadInput);
  EXPECT_EQ(RunUsage(client_, {.end = "1/12/2026"}, Env()), kExitBadInput);
  EXPECT_EQ(RunUsage(client_, {.start = "2026-12-02", .end = "2026-12-01"}, Env()), kExitBadInput);
  EXPECT_EQ(RunUsage(client_, {.period = "year"}, Env()), kExitBadInput);
  EXPECT_EQ(err_.str(),
            "allot: --start '2026-13-01' is not a date; write YYYY-MM-DD (UTC)\n"
            "allot: --end '1/12/2026' is not a date; write YYYY-MM-DD (UTC)\n"
            "allot: --start 2026-12-02 is after --end 2026-12-01\n"
            "allot: --period 'year': write day, week, month or total\n");
  EXPECT_THAT(server_.requests(), IsEmpty());
}

TEST_F(CommandsTest, TokenCreatePrintsOnlyTheTokenOnStdout) {
  server_.Reply("POST", "/v1/tokens", 201,
                R"({"id": 7, "token": "allot_0123456789abcdef", "role": "tenant",
                    "account": "lab-a", "user": "kim"})");
  int code = RunTokenCreate(client_, {.role = "tenant", .account = "lab-a", .user = "kim"}, Env());
  EXPECT_EQ(code, kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "allot_0123456789abcdef\n");
  EXPECT_THAT(err_.str(), HasSubstr("Created token 7 (role tenant, account lab-a, user kim)"));
  EXPECT_THAT(err_.str(), HasSubstr("shown only this once"));
  EXPECT_EQ(json::parse(OnlyRequest().body),
            json({{"role", "tenant"}, {"account", "lab-a"}, {"user", "kim"}}));
}

TEST_F(CommandsTest, TokenCreateChecksTheRole) {
  EXPECT_EQ(RunTokenCreate(client_, {.role = "admin"}, Env()), kExitBadInput);
  EXPECT_EQ(err_.str(), "allot: --role 'admin': write operator, tenant, agent or bootstrap\n");
  EXPECT_THAT(server_.requests(), IsEmpty());
}

TEST_F(CommandsTest, TokenListAndRevoke) {
  server_.Reply("GET", "/v1/tokens", 200, R"({"tokens": [
    {"id": 1, "role": "operator", "account": "", "user": "", "created": 1796000000},
    {"id": 7, "role": "tenant", "account": "lab-a", "user": "kim", "created": 1796000100}]})");
  server_.Reply("DELETE", "/v1/tokens/7", 200, R"({"id": 7, "revoked": true})");
  EXPECT_EQ(RunTokenList(client_, OutputFormat::kTable, Env()), kExitOk) << err_.str();
  EXPECT_EQ(RunTokenRevoke(client_, "7", Env()), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "ID  ROLE      ACCOUNT  USER  CREATED\n"
            " 1  operator  -        -     2026-11-30T00:53:20\n"
            " 7  tenant    lab-a    kim   2026-11-30T00:55:00\n"
            "Revoked token 7\n");
  std::vector<FakeServer::Request> requests = server_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].method, "DELETE");
  EXPECT_EQ(requests[1].path, "/v1/tokens/7");
}

TEST_F(CommandsTest, StatusPrintsKeyValueLines) {
  server_.Reply("GET", "/v1/scheduler", 200, R"({"passes": 120, "last_pass_time": 1796000000,
    "last_pass_seconds": 0.012, "pending": 40, "running": 12, "held": 1, "gpus": 4608,
    "gpus_allocated": 1024, "pass_interval": 30, "version": "0.1.0"})");
  EXPECT_EQ(RunStatus(client_, OutputFormat::kTable, Env()), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "server:            " + server_.url() +
                            "\n"
                            "scheduling passes: 120\n"
                            "last pass:         2026-11-30T00:53:20 UTC, took 0.012 s\n"
                            "pass interval:     30 s\n"
                            "pending jobs:      40 (1 held)\n"
                            "running jobs:      12\n"
                            "GPUs allocated:    1024 of 4608 (22.2%)\n"
                            "version:           0.1.0\n");
  EXPECT_EQ(OnlyRequest().path, "/v1/scheduler");
}

TEST_F(CommandsTest, WhoamiPrintsTheTokensIdentity) {
  server_.Reply("GET", "/v1/whoami", 200,
                R"({"user": "kim", "role": "tenant", "account": "lab-a"})");
  EXPECT_EQ(RunWhoami(client_, OutputFormat::kTable, Env()), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "user:    kim\nrole:    tenant\naccount: lab-a\nserver:  " + server_.url() + "\n");
}

TEST_F(CommandsTest, RunWithClientRunsTheCommandOnlyWithValidSettings) {
  int runs = 0;
  auto command = [&](ApiClient& client) {
    ++runs;
    return RunWhoami(client, OutputFormat::kJson, Env());
  };
  server_.Reply("GET", "/v1/whoami", 200, R"({"user": "kim"})");
  EXPECT_EQ(RunWithClient({.server = server_.url(), .token = "secret"}, err_, command), kExitOk);
  EXPECT_EQ(OnlyRequest().authorization, "Bearer secret");
  EXPECT_EQ(RunWithClient({.server = "localhost:8080", .token = "secret"}, err_, command),
            kExitBadInput);
  EXPECT_EQ(runs, 1);
  EXPECT_THAT(err_.str(), StartsWith("allot: server from --server: 'localhost:8080' is not a "
                                     "server URL"));
}

}  // namespace
}  // namespace allot
