// End to end with real processes: `allot server`, two `allot agent` processes (nodes a1 and a2,
// 4 emulated GPUs each), and the tasks they start.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/job.h"
#include "server/server_process.h"

namespace allot {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;
namespace fs = std::filesystem;

bool WaitUntil(const std::function<bool()>& done, double seconds = 20) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

std::string Read(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

bool ProcessGone(pid_t pid) { return kill(pid, 0) != 0; }

class AgentEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("allot-agents-{}-{}", getpid(),
                                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "work");
    // Jobs run as nobody (an agent never runs them as root): a scratch directory they may write,
    // like /tmp.
    fs::permissions(dir_ / "work", fs::perms::all | fs::perms::sticky_bit);
    server_ = std::make_unique<ServerProcess>(
        ALLOT_BINARY, std::string(ALLOT_SOURCE_DIR) + "/tests/server/agents.yaml", (dir_ / "data").string(),
        ServerArgs());
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.message();
    for (const char* node : {"a1", "a2"}) {
      agent_tokens_[node] = Call("POST", "/v1/tokens", json{{"role", "agent"}, {"node", node}}.dump())["token"];
    }
    for (const char* node : {"a1", "a2"}) StartAgent(node);
  }

  virtual std::vector<std::string> ServerArgs() const {
    return {"--heartbeat", "0.5", "--missed-heartbeats", "2", "--kill-grace", "1"};
  }

  // The value of a metric without labels, from /metrics.
  double Metric(const std::string& name) {
    httplib::Client client = server_->Client();
    httplib::Result result = client.Get("/metrics", {{"Authorization", "Bearer " + server_->OperatorToken()}});
    if (!result) return -1;
    std::istringstream lines(result->body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return -1;
  }

  void TearDown() override {
    // Cancel what still runs, so no task outlives the test.
    json jobs = Call("GET", "/v1/jobs");
    for (const json& job : jobs["jobs"]) Call("POST", fmt::format("/v1/jobs/{}/cancel", job["id"].get<JobId>()));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    agents_.clear();
    server_.reset();
    fs::remove_all(dir_);
  }

  void StartAgent(const std::string& node, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--server", server_->url(), "--token", agent_tokens_[node], "--node", node, "--gpus", "4",
                                     "--gpu-model", "H200"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto agent = std::make_unique<AgentProcess>(ALLOT_BINARY, args, (dir_ / ("agent-" + node)).string());
    ASSERT_TRUE(agent->Start().ok());
    agents_[node] = std::move(agent);
  }

  json Call(const std::string& method, const std::string& path, const std::string& body = "",
            const std::string& token = "") {
    httplib::Client client = server_->Client();
    httplib::Headers headers = {{"Authorization", "Bearer " + (token.empty() ? server_->OperatorToken() : token)}};
    httplib::Result result = method == "GET" ? client.Get(path, headers)
                                             : client.Post(path, headers, body, "application/json");
    if (!result) return json::object();
    json reply = json::parse(result->body, nullptr, false);
    return reply.is_discarded() ? json::object() : reply;
  }

  JobId Submit(json spec, const std::string& token = "") {
    spec["account"] = "lab";
    json reply = Call("POST", "/v1/jobs", spec.dump(), token);
    EXPECT_TRUE(reply.contains("ids")) << reply.dump();
    return reply.contains("ids") ? reply["ids"][0].get<JobId>() : 0;
  }

  json Job(JobId id) { return Call("GET", fmt::format("/v1/jobs/{}", id)); }

  json WaitForState(JobId id, const std::string& state, double seconds = 20) {
    json job;
    WaitUntil([&] {
      job = Job(id);
      return job["state"] == state;
    }, seconds);
    return job;
  }

  std::string Logs(JobId id, int task) {
    return Call("GET", fmt::format("/v1/jobs/{}/logs?task={}", id, task)).value("data", "");
  }

  fs::path dir_;
  std::unique_ptr<ServerProcess> server_;
  std::map<std::string, std::string> agent_tokens_;  // node -> its agent's token
  std::map<std::string, std::unique_ptr<AgentProcess>> agents_;
};

TEST_F(AgentEndToEndTest, AGangAcrossTwoAgentsGetsItsRanksAndDisjointGpus) {
  JobId id = Submit({{"name", "ddp"}, {"tasks", 4}, {"gpus_per_task", 2},
                     {"command", {"sh", "-c",
                                  "echo rank=$RANK world=$WORLD_SIZE task=$ALLOT_TASK_INDEX "
                                  "gpus=$CUDA_VISIBLE_DEVICES nv=$NVIDIA_VISIBLE_DEVICES master=$MASTER_ADDR:$MASTER_PORT "
                                  "nodes=$ALLOT_NODELIST"}}});
  json job = WaitForState(id, "completed");
  ASSERT_EQ(job["state"], "completed") << job.dump();
  ASSERT_EQ(job["exit_code"], 0);
  std::map<std::string, std::set<std::string>> gpus_by_node;
  std::set<std::string> masters;
  for (int task = 0; task < 4; ++task) {
    std::string out;
    ASSERT_TRUE(WaitUntil([&] { return !(out = Logs(id, task)).empty(); })) << "no output from task " << task;
    EXPECT_THAT(out, HasSubstr(fmt::format("rank={} world=4 task={}", task, task)));
    std::string node = job["allocation"][task]["node"];
    std::string gpus = out.substr(out.find("gpus=") + 5);
    gpus = gpus.substr(0, gpus.find(' '));
    EXPECT_THAT(out, HasSubstr("nv=" + gpus));
    EXPECT_TRUE(gpus_by_node[node].insert(gpus).second) << "two tasks on " << node << " got GPUs " << gpus;
    masters.insert(out.substr(out.find("master=")));
  }
  EXPECT_EQ(gpus_by_node.size(), 2u) << "the gang should span both nodes";
  for (const auto& [node, sets] : gpus_by_node) EXPECT_EQ(sets, (std::set<std::string>{"0,1", "2,3"})) << node;
  EXPECT_EQ(masters.size(), 1u) << "every rank must meet at the same MASTER_ADDR:MASTER_PORT";
}

TEST_F(AgentEndToEndTest, ExitCodesComeBackAndTheTimeLimitKills) {
  JobId failing = Submit({{"command", {"sh", "-c", "echo partial; exit 7"}}});
  json failed = WaitForState(failing, "failed");
  EXPECT_EQ(failed["exit_code"], 7) << failed.dump();
  EXPECT_THAT(Logs(failing, 0), HasSubstr("partial"));

  JobId slow = Submit({{"time_limit", 2}, {"command", {"sleep", "600"}}});
  json timed_out = WaitForState(slow, "timeout", 15);
  EXPECT_EQ(timed_out["state"], "timeout") << timed_out.dump();
}

TEST_F(AgentEndToEndTest, CancelKillsTheWholeProcessGroup) {
  fs::path pid_file = dir_ / "work" / "child.pid";
  JobId id = Submit({{"command", {"sh", "-c", fmt::format("sleep 600 & echo $! > {}; wait", pid_file.string())}}});
  ASSERT_EQ(WaitForState(id, "running")["state"], "running");
  ASSERT_TRUE(WaitUntil([&] { return !Read(pid_file).empty(); }));
  pid_t child = std::stoi(Read(pid_file));
  EXPECT_FALSE(ProcessGone(child));
  json cancelled = Call("POST", fmt::format("/v1/jobs/{}/cancel", id));
  EXPECT_EQ(cancelled["state"], "cancelled") << cancelled.dump();
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(child); }, 10)) << "the task's child survived the cancel";
}

TEST_F(AgentEndToEndTest, ALostAgentsJobRunsElsewhereAndTheAgentComingBackCannotRunIt) {
  JobId id = Submit({{"gpus", 4},
                     {"command", {"sh", "-c", fmt::format("echo $$ > {}/epoch-$ALLOT_EPOCH.pid; exec sleep 600",
                                                          (dir_ / "work").string())}}});
  json first = WaitForState(id, "running");
  ASSERT_EQ(first["state"], "running");
  std::string lost_node = first["allocation"][0]["node"];
  uint64_t first_epoch = first["epoch"];
  fs::path first_pid_file = dir_ / "work" / fmt::format("epoch-{}.pid", first_epoch);
  ASSERT_TRUE(WaitUntil([&] { return !Read(first_pid_file).empty(); }));
  pid_t first_task = std::stoi(Read(first_pid_file));

  agents_[lost_node]->Kill();  // kill -9: the task under its shim runs on
  json moved;
  ASSERT_TRUE(WaitUntil([&] {
    moved = Job(id);
    return moved["state"] == "running" && moved["epoch"].get<uint64_t>() > first_epoch;
  })) << moved.dump();
  EXPECT_NE(moved["allocation"][0]["node"], lost_node);
  EXPECT_EQ(moved["restarts"], 1);
  json nodes = Call("GET", "/v1/nodes?state=down");
  ASSERT_EQ(nodes["nodes"].size(), 1u) << nodes.dump();
  EXPECT_EQ(nodes["nodes"][0]["name"], lost_node);

  // The agent comes back late: it finds its old task, and the server has it killed; the job runs
  // on in its new allocation only.
  StartAgent(lost_node);
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(first_task); }, 15)) << "the stale task still runs";
  json after = Job(id);
  EXPECT_EQ(after["state"], "running");
  EXPECT_EQ(after["epoch"], moved["epoch"]);
  EXPECT_TRUE(WaitUntil([&] { return Call("GET", "/v1/nodes?state=down")["nodes"].empty(); }))
      << "the node should be up again once its agent syncs";
}

TEST_F(AgentEndToEndTest, AnAgentEnrolsWithABootstrapTokenOnceAndKeepsItsOwn) {
  agents_.clear();
  // The nodes are enrolled already with the fixture's tokens: an operator revokes those first.
  const json tokens = Call("GET", "/v1/tokens")["tokens"];
  for (const json& token : tokens) {
    if (token["role"] == "agent") {
      httplib::Client client = server_->Client();
      httplib::Result revoked = client.Delete(fmt::format("/v1/tokens/{}", token["id"].get<int64_t>()),
                                              {{"Authorization", "Bearer " + server_->OperatorToken()}});
      ASSERT_TRUE(revoked && revoked->status == 200) << (revoked ? revoked->body : "no reply");
    }
  }
  std::string bootstrap = Call("POST", "/v1/tokens", R"({"role": "bootstrap"})")["token"];
  fs::path token_file = dir_ / "bootstrap.token";
  std::ofstream(token_file) << bootstrap << "\n";
  auto start = [&](const std::string& node) {
    auto agent = std::make_unique<AgentProcess>(
        ALLOT_BINARY, std::vector<std::string>{"--server", server_->url(), "--bootstrap-token", "@" + token_file.string(),
                                               "--node", node, "--gpus", "4", "--gpu-model", "H200"},
        (dir_ / ("agent-" + node)).string());
    ASSERT_TRUE(agent->Start().ok());
    agents_[node] = std::move(agent);
  };
  for (const char* node : {"a1", "a2"}) start(node);
  JobId id = Submit({{"tasks", 2}, {"gpus_per_task", 4}, {"command", {"true"}}});
  EXPECT_EQ(WaitForState(id, "completed")["state"], "completed");
  fs::path kept = dir_ / "agent-a1" / "node.token";
  ASSERT_TRUE(fs::exists(kept));
  EXPECT_EQ(fs::status(kept).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  // A restart uses the kept token: no second enrolment (which the server would refuse).
  agents_["a1"]->Stop();
  start("a1");
  JobId again = Submit({{"tasks", 2}, {"gpus_per_task", 4}, {"command", {"true"}}});
  EXPECT_EQ(WaitForState(again, "completed")["state"], "completed");
  EXPECT_EQ(Call("GET", "/v1/audit?action=node.enrol")["entries"].size(), 2u);
}

// Slurm's batch semantics for a script submitted as a Slurm user would: `allot submit` from the
// submit directory; the script runs once, on the first node, there, with SLURM_* set, and writes
// slurm-<id>.out there.
TEST_F(AgentEndToEndTest, ABatchScriptRunsOnceInTheSubmitDirectoryAsUnderSlurm) {
  fs::path submit_dir = dir_ / "work" / "project";
  fs::create_directories(submit_dir);
  fs::permissions(submit_dir, fs::perms::all);
  std::ofstream(submit_dir / "train.sh") << "#!/bin/sh\n"
                                            "#SBATCH --job-name=ddp --nodes=2 --gpus-per-node=4\n"
                                            "echo \"id=$SLURM_JOB_ID nodes=$SLURM_NNODES list=$SLURM_JOB_NODELIST "
                                            "procid=$SLURM_PROCID gpus=$SLURM_GPUS_ON_NODE dir=$SLURM_SUBMIT_DIR\"\n"
                                            "pwd\n"
                                            "echo ran >> runs.txt\n"
                                            "exit 3\n";
  std::string command = fmt::format("cd {} && {} submit train.sh --server {} --token {} 2>&1", submit_dir.string(),
                                    ALLOT_BINARY, server_->url(), server_->OperatorToken() + " -A lab");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char line[256] = {};
  std::string said = fgets(line, sizeof line, pipe) ? line : "";
  pclose(pipe);
  ASSERT_THAT(said, testing::StartsWith("Submitted job ")) << said;
  JobId id = std::stoull(said.substr(14));
  json done = WaitForState(id, "failed");
  ASSERT_EQ(done["state"], "failed") << done.dump();
  EXPECT_EQ(done["exit_code"], 3);
  EXPECT_EQ(done["nodes"].size(), 2u);
  EXPECT_EQ(Read(submit_dir / "runs.txt"), "ran\n");  // once, not once per node
  std::string out;
  ASSERT_TRUE(WaitUntil([&] { return !(out = Read(submit_dir / fmt::format("slurm-{}.out", id))).empty(); }));
  EXPECT_THAT(out, HasSubstr(fmt::format("id={} nodes=2 list=a[1-2] procid=0 gpus=4 dir={}\n", id, submit_dir.string())));
  EXPECT_THAT(out, HasSubstr(submit_dir.string() + "\n"));  // pwd
  EXPECT_TRUE(WaitUntil([&] { return Logs(id, 0) == out; }));  // and shipped for allot logs
}

// Submits a batch script from a directory the jobs may write, as `allot submit` from that
// directory; returns the job id.
JobId SubmitScript(const std::string& server, const std::string& token, const fs::path& dir, const std::string& name,
                   const std::string& text) {
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::all);
  std::ofstream(dir / name) << text;
  std::string command = fmt::format("cd {} && {} submit {} --server {} --token {} -A lab 2>&1", dir.string(),
                                    ALLOT_BINARY, name, server, token);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return 0;
  char line[512] = {};
  std::string said = fgets(line, sizeof line, pipe) ? line : "";
  pclose(pipe);
  EXPECT_THAT(said, testing::StartsWith("Submitted job ")) << said;
  return said.starts_with("Submitted job ") ? std::stoull(said.substr(14)) : 0;
}

TEST_F(AgentEndToEndTest, SrunInABatchScriptStartsRanksOnEveryNodeOfTheJob) {
  fs::path project = dir_ / "work" / "steps";
  JobId id = SubmitScript(server_->url(), server_->OperatorToken(), project, "ddp.sh",
                          "#!/bin/bash\n"
                          "#SBATCH --nodes=2 --ntasks-per-node=2 --gpus-per-node=4\n"
                          "export FROM_SCRIPT=yes\n"
                          "srun --label --gpus-per-task=2 bash -c 'echo \"rank=$SLURM_PROCID local=$SLURM_LOCALID "
                          "node=$SLURM_NODEID world=$WORLD_SIZE cuda=$CUDA_VISIBLE_DEVICES step=$SLURM_STEP_ID "
                          "env=$FROM_SCRIPT\"'\n"
                          "srun -n 1 bash -c 'exit 5'\n"
                          "echo \"second step: $?\"\n"
                          "srun --mpi=pmix true\n"
                          "echo \"pmix: $?\"\n");
  ASSERT_NE(id, 0u);
  json done = WaitForState(id, "completed", 30);
  ASSERT_EQ(done["state"], "completed") << done.dump() << Logs(id, 0);
  std::string out = Read(project / fmt::format("slurm-{}.out", id));
  // Four ranks over two distinct nodes, each with its own pair of the node's GPUs.
  for (const char* line : {"0: rank=0 local=0 node=0 world=4 cuda=0,1 step=0 env=yes\n",
                           "1: rank=1 local=1 node=0 world=4 cuda=2,3 step=0 env=yes\n",
                           "2: rank=2 local=0 node=1 world=4 cuda=0,1 step=0 env=yes\n",
                           "3: rank=3 local=1 node=1 world=4 cuda=2,3 step=0 env=yes\n"}) {
    EXPECT_THAT(out, HasSubstr(line));
  }
  EXPECT_THAT(out, HasSubstr("second step: 5\n"));  // the step's exit status comes back to the script
  EXPECT_THAT(out, HasSubstr("--mpi=pmix: allot provides no PMI server"));
  EXPECT_THAT(out, HasSubstr("pmix: 2\n"));
  json step = Call("GET", fmt::format("/v1/jobs/{}/steps/1", id));
  EXPECT_EQ(step["state"], "failed") << step.dump();
  EXPECT_EQ(step["exit_code"], 5);
}

TEST_F(AgentEndToEndTest, AStepIsKilledWhenItsJobEndsAndItsCredentialDiesWithIt) {
  fs::path project = dir_ / "work" / "cancel";
  JobId id = SubmitScript(server_->url(), server_->OperatorToken(), project, "long.sh",
                          "#!/bin/bash\n"
                          "#SBATCH --nodes=2 --gpus-per-node=1\n"
                          "echo $ALLOT_JOB_TOKEN > token\n"
                          "srun bash -c 'echo $$ > pid.$SLURM_PROCID; sleep 300'\n");
  ASSERT_NE(id, 0u);
  ASSERT_TRUE(WaitUntil([&] { return fs::exists(project / "pid.0") && fs::exists(project / "pid.1"); }, 30));
  pid_t rank1 = 0;
  ASSERT_TRUE(WaitUntil([&] { return (rank1 = std::atoi(Read(project / "pid.1").c_str())) > 0; }));
  std::string token = Read(project / "token");
  token.erase(token.find_last_not_of('\n') + 1);
  // The job's credential reads its own job, and no other route.
  EXPECT_EQ(Call("GET", fmt::format("/v1/jobs/{}", id), "", token)["id"], id);
  EXPECT_THAT(Call("GET", "/v1/nodes", "", token).dump(), HasSubstr("only starts and follows that job's steps"));
  Call("POST", fmt::format("/v1/jobs/{}/cancel", id));
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(rank1); }, 20)) << "rank 1's task outlived its job";
  EXPECT_THAT(Call("GET", fmt::format("/v1/jobs/{}", id), "", token).dump(), HasSubstr("allocation that has ended"));
}

TEST_F(AgentEndToEndTest, EachJobRunsAsTheUnixUserItsUserMapsTo) {
  if (geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  if (!getpwnam("nobody")) GTEST_SKIP() << "no user 'nobody' here";
  fs::path map = dir_ / "users.yaml";
  std::ofstream(map) << "users:\n  alice: nobody\n";
  agents_.clear();
  for (const char* node : {"a1", "a2"}) StartAgent(node, {"--user-map", map.string()});
  std::string alice = Call("POST", "/v1/tokens", R"({"role": "tenant", "account": "lab", "user": "alice"})")["token"];
  std::string carol = Call("POST", "/v1/tokens", R"({"role": "tenant", "account": "lab", "user": "carol"})")["token"];

  JobId mapped = Submit({{"gpus", 1}, {"command", {"/bin/sh", "-c", "id -un; echo $HOME"}}}, alice);
  json done = WaitForState(mapped, "completed");
  EXPECT_EQ(done["state"], "completed") << done.dump();
  EXPECT_TRUE(WaitUntil([&] { return !Logs(mapped, 0).empty(); }));
  EXPECT_EQ(Logs(mapped, 0), fmt::format("nobody\n{}\n", getpwnam("nobody")->pw_dir));

  // No line for carol and no default: her job does not run, and says why.
  JobId unmapped = Submit({{"gpus", 1}, {"command", {"true"}}}, carol);
  json failed = WaitForState(unmapped, "failed");
  EXPECT_EQ(failed["exit_code"], 126) << failed.dump();
  std::string why;
  EXPECT_TRUE(WaitUntil([&] {
    why = Call("GET", fmt::format("/v1/jobs/{}/logs?stream=err", unmapped)).value("data", "");
    return !why.empty();
  }));
  EXPECT_THAT(why, HasSubstr("no Unix user is mapped for user 'carol' of account 'lab'"));
}

// The path a new user walks: `allot server --dev`, then an #SBATCH script through `allot submit`
// from their own directory (which the job's user, nobody when root runs --dev, may not enter).
// It used to fail with 127: the embedded agent's state directory was relative.
TEST(DevClusterTest, AnSbatchScriptRunsOnTheOneCommandCluster) {
  fs::path dir = fs::temp_directory_path() / fmt::format("allot-dev-{}", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir / "home");
  fs::permissions(dir / "home", fs::perms::owner_all);  // like /root
  ServerProcess server(ALLOT_BINARY, "", (dir / "home" / ".allot").string(), {"--dev"});
  ASSERT_TRUE(server.Start().ok());
  std::ofstream(dir / "home" / "hello.sh") << "#!/bin/bash\n#SBATCH --gpus=1\necho \"hello from $SLURM_JOB_ID as $(id -un)\"\n";
  std::string command = fmt::format("cd {} && {} submit hello.sh --server {} --token @.allot/operator.token 2>&1",
                                    (dir / "home").string(), ALLOT_BINARY, server.url());
  ASSERT_EQ(std::system(command.c_str()), 0);
  httplib::Client client = server.Client();
  httplib::Headers headers = {{"Authorization", "Bearer " + server.OperatorToken()}};
  json job;
  ASSERT_TRUE(WaitUntil([&] {
    auto reply = client.Get("/v1/jobs/1", headers);
    job = reply ? json::parse(reply->body, nullptr, false) : json();
    return job.is_object() && job.value("state", "") == "completed";
  })) << job.dump();
  std::string out;
  ASSERT_TRUE(WaitUntil([&] {
    auto reply = client.Get("/v1/jobs/1/logs", headers);
    out = reply ? json::parse(reply->body, nullptr, false).value("data", "") : "";
    return !out.empty();
  }));
  EXPECT_THAT(out, HasSubstr(fmt::format("hello from 1 as {}\n", geteuid() == 0 ? "nobody" : getpwuid(geteuid())->pw_name)));
  if (geteuid() == 0) {
    // nobody cannot enter a private home: the script ran in its own directory, and says so.
    EXPECT_THAT(out, HasSubstr("cannot enter the working directory " + (dir / "home").string()));
  }

  // The example the server's hints name, through Slurm's own command, with the hints' settings.
  command = fmt::format("cd {} && PATH={}:$PATH ALLOT_SERVER={} ALLOT_TOKEN=@{} sbatch {}/examples/hello.sh 2>&1",
                        (dir / "home").string(), fs::path(ALLOT_BINARY).parent_path().string(), server.url(),
                        (dir / "home" / ".allot" / "operator.token").string(), ALLOT_SOURCE_DIR);
  ASSERT_EQ(std::system(command.c_str()), 0);
  ASSERT_TRUE(WaitUntil([&] {
    auto reply = client.Get("/v1/jobs/2", headers);
    job = reply ? json::parse(reply->body, nullptr, false) : json();
    return job.is_object() && job.value("state", "") == "completed";
  })) << job.dump();
  ASSERT_TRUE(WaitUntil([&] {
    auto reply = client.Get("/v1/jobs/2/logs", headers);
    out = reply ? json::parse(reply->body, nullptr, false).value("data", "") : "";
    return out.find("1: rank 1 has GPU 1") != std::string::npos;
  })) << out;
  EXPECT_THAT(out, HasSubstr("0: rank 0 has GPU 0\n"));
  server.Stop();
  fs::remove_all(dir);
}

// A server with 2 handler threads: both agents long-poll at once, and a submit still finds a
// thread. Both nodes run their tasks.
class AgentLongPollLimitTest : public AgentEndToEndTest {
 protected:
  std::vector<std::string> ServerArgs() const override {
    return {"--heartbeat", "2", "--missed-heartbeats", "3", "--kill-grace", "1", "--threads", "2"};
  }
};

TEST_F(AgentLongPollLimitTest, AgentsNeverHoldTheThreadsSubmitsNeed) {
  // Both agents idle, both long-polling at once on a server with 2 handler threads: a waiting
  // sync holds a socket, not a thread, so submits still find one.
  EXPECT_TRUE(WaitUntil([&] { return Metric("allot_agent_long_polls") == 2; }, 10));
  JobId id = Submit({{"tasks", 2}, {"gpus_per_task", 4}, {"command", {"sh", "-c", "echo on $ALLOT_TASK_INDEX"}}});
  ASSERT_NE(id, 0u);
  json job = WaitForState(id, "completed");
  ASSERT_EQ(job["state"], "completed") << job.dump();
  std::set<std::string> nodes;
  for (const json& task : job["allocation"]) nodes.insert(task["node"].get<std::string>());
  EXPECT_EQ(nodes.size(), 2u) << "the job should span both nodes, so both agents got work";
  EXPECT_TRUE(Call("GET", "/v1/nodes?state=down")["nodes"].empty()) << "a capped agent must still sync in time";
}

}  // namespace
}  // namespace allot
