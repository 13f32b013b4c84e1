// Slurm's commands against canned server replies: each test checks the exact text a Slurm user
// (or a script parsing it) sees, and what was sent to the server.
#include "cli/slurm_commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/fake_server.h"

namespace allot {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr Time kNow = 1796000000;  // 2026-11-30T00:53:20 UTC

// A pending job, a running two-node job, an array element and an ended batch job with two steps.
const char* const kJobs = R"({"jobs": [
  {"id": 12, "name": "train", "account": "lab-a", "user": "kim", "state": "pending",
   "reason": {"code": "resources", "message": "needs 16 GPUs"}, "user_held": false, "submit_time": 1795999000,
   "start_time": 0, "end_time": 0, "time_limit": 7200, "tasks": 2, "gpus_per_task": 8, "gpus": 16,
   "priority_class": "normal", "pool": "", "nodes": [], "array_job_id": 0, "array_index": null,
   "exit_code": null, "spec": {"pools": ["nacc-h200"], "batch": true}},
  {"id": 13, "name": "eval", "account": "lab-b", "user": "lee", "state": "running", "user_held": false,
   "submit_time": 1795990000, "start_time": 1795996277, "end_time": 0, "time_limit": 86400, "tasks": 2,
   "gpus_per_task": 8, "gpus": 16, "priority_class": "high", "pool": "nacc-h200", "nodes": ["n2", "n1"],
   "array_job_id": 0, "array_index": null, "exit_code": null, "spec": {"cpus_per_task": 64}},
  {"id": 15, "name": "sweep", "account": "lab-a", "user": "kim", "state": "pending", "user_held": true,
   "submit_time": 1795999500, "start_time": 0, "end_time": 0, "time_limit": 600, "tasks": 1,
   "gpus_per_task": 1, "gpus": 1, "priority_class": "normal", "pool": "", "nodes": [], "array_job_id": 14,
   "array_index": 1, "exit_code": null, "spec": {}},
  {"id": 9, "name": "ddp.sh", "account": "lab-a", "user": "kim", "state": "failed", "user_held": false,
   "submit_time": 1795990000, "start_time": 1795990010, "end_time": 1795993610, "time_limit": 7200, "tasks": 2,
   "gpus_per_task": 4, "gpus": 8, "priority_class": "normal", "pool": "nacc-h200", "nodes": ["n1", "n2"],
   "array_job_id": 0, "array_index": null, "exit_code": 3, "spec": {"batch": true},
   "steps": [{"step": 0, "state": "completed", "argv": ["/usr/bin/python3", "train.py"], "nodes": 2, "ntasks": 8, "exit_code": 0},
             {"step": 1, "state": "failed", "argv": ["bash", "-c", "exit 3"], "nodes": 1, "ntasks": 1, "exit_code": 3}]}
]})";

class SlurmCommandsTest : public ::testing::Test {
 protected:
  SlurmCommandsTest() : client_(std::move(ApiClient::Create({.server = server_.url(), .token = "allot_test"})).value()) {
    server_.Reply("GET", "/v1/jobs", 200, kJobs);
    server_.Reply("GET", "/v1/whoami", 200, R"({"user": "kim", "role": "tenant"})");
  }

  int Run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    CommandEnv env{.in = in_, .out = out_, .err = err_, .now = kNow};
    return RunSlurmCommand(client_, args, env);
  }

  FakeServer server_;
  ApiClient client_;
  std::istringstream in_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(SlurmCommandsTest, SqueuePrintsSlurmsDefaultTable) {
  ASSERT_EQ(Run({"squeue"}), 0) << err_.str();
  EXPECT_EQ(out_.str(),
            "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)\n"
            "                 9 nacc-h200   ddp.sh      kim  F    1:00:00      2 n[1-2]\n"
            "                12 nacc-h200    train      kim PD       0:00      2 (Resources)\n"
            "                13 nacc-h200     eval      lee  R    1:02:03      2 n[1-2]\n"
            "              14_1              sweep      kim PD       0:00      1 (JobHeldUser)\n");
  // Pending and running by default, as squeue.
  EXPECT_EQ(server_.requests().back().query.find("state")->second, "pending,running");
}

TEST_F(SlurmCommandsTest, SqueueFiltersAndFormatsAsScriptsAskIt) {
  ASSERT_EQ(Run({"squeue", "--me", "-h", "-t", "PD,R", "-o", "%i|%T|%r|%.4D|%b|%l"}), 0) << err_.str();
  EXPECT_EQ(out_.str(),
            "9|FAILED|None|   2|gres/gpu:4|2:00:00\n"
            "12|PENDING|Resources|   2|gres/gpu:8|2:00:00\n"
            "14_1|PENDING|JobHeldUser|   1|gres/gpu:1|10:00\n");
  EXPECT_EQ(server_.requests().back().query.find("user")->second, "kim");
  EXPECT_EQ(server_.requests().back().query.find("state")->second, "pending,running");

  ASSERT_EQ(Run({"squeue", "-j", "13", "-o", "%A %j"}), 0);
  EXPECT_EQ(out_.str(), "JOBID NAME\n13 eval\n");
}

TEST_F(SlurmCommandsTest, AnUnsupportedFlagIsAnErrorThatNamesIt) {
  EXPECT_EQ(Run({"squeue", "--sort=-p"}), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("squeue: --sort is not supported by allot's squeue; it supports -u/--user"));
  EXPECT_EQ(Run({"squeue", "-o", "%i %Y"}), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("field allot does not know (%Y)"));
  EXPECT_EQ(Run({"squeue", "-t", "XX"}), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("unknown job state 'XX'"));
  EXPECT_EQ(Run({"sbatch", "--export=NONE", "job.sh"}), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("--export is not supported by allot"));
  EXPECT_EQ(Run({"scontrol", "update", "JobId=12"}), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("scontrol: allot supports show job ID"));
}

TEST_F(SlurmCommandsTest, SbatchSubmitsTheScriptWithItsOptionsOverridingAndSaysSoAsSlurm) {
  server_.Reply("POST", "/v1/jobs", 201, R"({"ids": [41]})");
  const std::filesystem::path script = std::filesystem::temp_directory_path() / "allot-sbatch-test.sh";
  std::ofstream(script) << "#!/bin/bash\n#SBATCH --time=10 -J from-script\n#SBATCH --gres=gpu:2\nsrun python train.py \"$@\"\n";
  ASSERT_EQ(Run({"sbatch", "-J", "from-command-line", "--time=1:00:00", script.string(), "--lr", "3e-4"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "Submitted batch job 41\n");
  json sent = json::parse(server_.requests().back().body);
  EXPECT_EQ(sent["name"], "from-command-line");
  EXPECT_EQ(sent["time_limit"], 3600);
  EXPECT_EQ(sent["gpus_per_task"], 2);
  EXPECT_EQ(sent["script_args"], json({"--lr", "3e-4"}));
  EXPECT_EQ(sent["batch"], true);
  EXPECT_EQ(sent["submit_dir"], std::filesystem::current_path().string());

  ASSERT_EQ(Run({"sbatch", "--parsable", "--wrap", "hostname"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "41\n");
  sent = json::parse(server_.requests().back().body);
  EXPECT_EQ(sent["script"], "#!/bin/sh\nhostname\n");
  EXPECT_EQ(sent["name"], "wrap");

  EXPECT_EQ(Run({"sbatch", "--nodes=x", script.string()}), kExitBadInput);
  EXPECT_THAT(err_.str(), HasSubstr("sbatch: --nodes"));
  std::filesystem::remove(script);
}

TEST_F(SlurmCommandsTest, ScancelCancelsByIdArrayElementOrFilterAndReportsUnknownIds) {
  for (int id : {9, 12, 13, 15}) server_.Reply("POST", fmt::format("/v1/jobs/{}/cancel", id), 200, "{}");
  EXPECT_EQ(Run({"scancel", "12", "14_1"}), 0) << err_.str();
  std::vector<std::string> cancelled;
  for (const FakeServer::Request& request : server_.requests()) {
    if (request.method == "POST") cancelled.push_back(request.path);
  }
  EXPECT_EQ(cancelled, (std::vector<std::string>{"/v1/jobs/12/cancel", "/v1/jobs/15/cancel"}));
  EXPECT_EQ(Run({"scancel", "77"}), kExitServerError);
  EXPECT_EQ(err_.str(), "scancel: error: Kill job error on job id 77: Invalid job id specified\n");
  EXPECT_EQ(Run({"scancel"}), kExitBadInput);
}

TEST_F(SlurmCommandsTest, SinfoSummarisesPartitionsByNodeState) {
  server_.Reply("GET", "/v1/nodes", 200, R"({"nodes": [
    {"name": "n1", "pool": "nacc-h200", "gpus": 8, "gpus_allocated": 8, "state": "up"},
    {"name": "n2", "pool": "nacc-h200", "gpus": 8, "gpus_allocated": 8, "state": "up"},
    {"name": "n3", "pool": "nacc-h200", "gpus": 8, "gpus_allocated": 0, "state": "up"},
    {"name": "n4", "pool": "nacc-h200", "gpus": 8, "gpus_allocated": 3, "state": "up"},
    {"name": "e1", "pool": "edge", "gpus": 1, "gpus_allocated": 0, "state": "draining"}]})");
  ASSERT_EQ(Run({"sinfo"}), 0) << err_.str();
  EXPECT_EQ(out_.str(),
            "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\n"
            "nacc-h200    up   infinite      2  alloc n[1-2]\n"
            "nacc-h200    up   infinite      1   idle n3\n"
            "nacc-h200    up   infinite      1    mix n4\n"
            "edge         up   infinite      1  drain e1\n");
}

TEST_F(SlurmCommandsTest, SacctShowsJobsAndTheirStepsFromTheHistory) {
  ASSERT_EQ(Run({"sacct", "-j", "9"}), 0) << err_.str();
  EXPECT_EQ(out_.str(),
            "JobID           JobName  Partition    Account  AllocCPUS      State ExitCode \n"
            "------------ ---------- ---------- ---------- ---------- ---------- -------- \n"
            "9                ddp.sh  nacc-h200      lab-a          2     FAILED      3:0 \n"
            "9.batch           batch                 lab-a          2     FAILED      3:0 \n"
            "9.0             python3                 lab-a          2  COMPLETED      0:0 \n"
            "9.1                bash                 lab-a          2     FAILED      3:0 \n");
  ASSERT_EQ(Run({"sacct", "-j", "9", "-X", "-P", "-o", "JobID,State,Elapsed,NNodes,NodeList"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "JobID|State|Elapsed|NNodes|NodeList\n9|FAILED|1:00:00|2|n[1-2]\n");
  // By default the caller's jobs since midnight (UTC), as sacct.
  ASSERT_EQ(Run({"sacct", "-n", "-X", "-o", "JobID"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "12           \n13           \n14_1         \n");
}

TEST_F(SlurmCommandsTest, ScontrolExpandsHostListsWithoutAServer) {
  ASSERT_EQ(Run({"scontrol", "show", "hostnames", "gpu[01-03,10],login"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "gpu01\ngpu02\ngpu03\ngpu10\nlogin\n");
  EXPECT_TRUE(server_.requests().empty());
}

}  // namespace
}  // namespace allot
