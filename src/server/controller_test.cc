// The Controller in process, on an injected clock: what depends on time passing (days of
// history) is checked without waiting for it.
#include "server/controller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "core/config.h"

namespace allot {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("allot-controller-{}-{}", getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Controller> Open(ControllerOptions options) {
    StatusOr<Config> config = LoadConfigFile(std::string(ALLOT_SOURCE_DIR) + "/tests/server/pool.yaml");
    EXPECT_TRUE(config.ok()) << config.status().message();
    return Open(std::move(*config), std::move(options));
  }

  std::unique_ptr<Controller> Open(Config config, ControllerOptions options) {
    options.data_dir = dir_.string();
    options.now = [this] { return clock_; };
    options.nodes_need_agents = false;
    StatusOr<std::unique_ptr<Controller>> controller = Controller::Open(std::move(config), std::move(options));
    EXPECT_TRUE(controller.ok()) << controller.status().message();
    return controller.ok() ? std::move(*controller) : nullptr;
  }

  JobId SubmitAndCancel(Controller& controller) {
    StatusOr<json> submitted =
        controller.Submit(kOperator, R"({"account": "lab-a", "gpus": 1, "command": ["true"], "hold": true})");
    EXPECT_TRUE(submitted.ok()) << submitted.status().message();
    JobId id = (*submitted)["ids"][0].get<JobId>();
    EXPECT_TRUE(controller.CancelJob(kOperator, id).ok());
    return id;
  }

  const Principal kOperator{.user = "root", .role = Role::kOperator};
  fs::path dir_;
  Time clock_ = 1796083200;  // 2026-12-01
};

TEST_F(ControllerTest, HistoryRetentionDeletesJobsEndedLongerAgoOnly) {
  std::unique_ptr<Controller> controller = Open({.history_retention_days = 2});
  ASSERT_NE(controller, nullptr);
  JobId old_job = SubmitAndCancel(*controller);
  clock_ += 86400;
  JobId newer_job = SubmitAndCancel(*controller);
  controller->TickForTest();
  EXPECT_TRUE(controller->GetJob(kOperator, old_job).ok());  // ended a day ago: kept
  clock_ += 86400 + 3600;
  controller->TickForTest();
  StatusOr<json> purged = controller->GetJob(kOperator, old_job);
  ASSERT_FALSE(purged.ok());
  EXPECT_EQ(purged.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(controller->GetJob(kOperator, newer_job).ok());  // ended a day and an hour ago
}

TEST_F(ControllerTest, WithoutRetentionHistoryIsKept) {
  std::unique_ptr<Controller> controller = Open({});
  ASSERT_NE(controller, nullptr);
  JobId job = SubmitAndCancel(*controller);
  clock_ += 400 * 86400;
  controller->TickForTest();
  EXPECT_TRUE(controller->GetJob(kOperator, job).ok());
}

// One node of 8 GPUs under las: a job preempted for a newcomer keeps the service it attained,
// in its record and across a restart, so it still waits behind jobs that have run less.
TEST_F(ControllerTest, AttainedServiceSurvivesARestart) {
  constexpr std::string_view kLasPool = R"(
pools: [{name: gpu}]
nodes: [{name: n, pool: gpu, gpus: 8}]
accounts: [{name: lab-a}]
policy: {queue_order: las, backfill: easy, las_thresholds: [1], las_promote: 0}
)";
  auto open = [&] {
    StatusOr<Config> config = ParseConfig(kLasPool, "test");
    EXPECT_TRUE(config.ok()) << config.status().message();
    return Open(std::move(*config), {});
  };
  auto submit = [&](Controller& controller, int gpus) {
    StatusOr<json> submitted = controller.Submit(
        kOperator, fmt::format(R"({{"account": "lab-a", "gpus": {}, "command": ["true"], "time_limit": "10h"}})", gpus));
    EXPECT_TRUE(submitted.ok()) << submitted.status().message();
    return submitted.ok() ? (*submitted)["ids"][0].get<JobId>() : JobId{0};
  };
  const Time start = clock_;
  std::unique_ptr<Controller> controller = open();
  ASSERT_NE(controller, nullptr);
  JobId long_job = submit(*controller, 8);
  controller->TickForTest();
  ASSERT_EQ((*controller->GetJob(kOperator, long_job))["state"], "running");
  clock_ += 1800;  // 8 GPUs x 30 min: 4 GPU-hours, past the 1 GPU-hour threshold
  JobId newcomer = submit(*controller, 1);
  controller->TickForTest();
  ASSERT_EQ((*controller->GetJob(kOperator, newcomer))["state"], "running");
  json preempted = *controller->GetJob(kOperator, long_job);
  EXPECT_EQ(preempted["state"], "pending");
  EXPECT_EQ(preempted["restarts"], 1);
  EXPECT_DOUBLE_EQ(preempted["attained_gpu_seconds"].get<double>(), 8 * 1800.0);
  EXPECT_EQ(preempted["requeue_time"], start + 1800);

  controller.reset();
  clock_ += 60;
  controller = open();
  ASSERT_NE(controller, nullptr);
  json restored = *controller->GetJob(kOperator, long_job);
  EXPECT_EQ(restored["restarts"], 1);
  EXPECT_DOUBLE_EQ(restored["attained_gpu_seconds"].get<double>(), 8 * 1800.0);
  EXPECT_EQ(restored["requeue_time"], start + 1800);
  // A job that has not run goes ahead of it, though submitted later.
  JobId fresh = submit(*controller, 8);
  controller->TickForTest();
  EXPECT_EQ((*controller->GetJob(kOperator, fresh, /*with_queue_place=*/true))["queue_position"], 1);
  EXPECT_EQ((*controller->GetJob(kOperator, long_job, /*with_queue_place=*/true))["queue_position"], 2);
}

// A sync is a sign of life as it arrives; one refused (its agent found other GPUs than the
// config says) is not, and its node is taken for lost on time. A sync gets its node's tasks with
// the variables their start shares and each task's own over them.
TEST_F(ControllerTest, ARefusedSyncIsNoHeartbeatAndAssignmentsCarryTheJobsVariables) {
  std::unique_ptr<Controller> controller = Open({});  // taken for lost after 3 x 5 s
  ASSERT_NE(controller, nullptr);
  auto sync = [&](const std::string& node, std::string_view body) {
    std::optional<StatusOr<SyncReply>> answer;
    controller->AgentSync(kOperator, node, body, [&](StatusOr<SyncReply> reply, bool) { answer = std::move(reply); });
    EXPECT_TRUE(answer.has_value()) << "a sync that asks for no wait is answered at once";
    return answer.value_or(StatusOr<SyncReply>(InternalError("not answered")));
  };
  StatusOr<json> submitted =
      controller->Submit(kOperator, R"({"account": "lab-a", "gpus": 8, "command": ["train"], "time_limit": "1h"})");
  ASSERT_TRUE(submitted.ok()) << submitted.status().message();
  const JobId id = (*submitted)["ids"][0].get<JobId>();
  controller->TickForTest();
  json job = *controller->GetJob(kOperator, id);
  ASSERT_EQ(job["state"], "running");
  const std::string node = job["nodes"][0];
  std::string other;
  const json nodes = *controller->ListNodes(kOperator, "gpu", "");
  for (const json& each : nodes["nodes"]) {
    if (each["name"] != node) other = each["name"];
  }
  ASSERT_FALSE(other.empty());

  StatusOr<SyncReply> first = sync(node, R"({"gpus": 8, "gpu_model": "H200", "tasks": []})");
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->node, node);
  ASSERT_EQ(first->assignments.size(), 1u);
  const TaskAssignment& task = first->assignments[0];
  EXPECT_EQ(task.job, id);
  EXPECT_THAT(task.argv, ::testing::ElementsAre("train"));
  ASSERT_NE(task.shared_environment, nullptr);
  const EnvironmentVariables variables = task.MergedEnvironment();
  EXPECT_EQ(variables.at("ALLOT_JOB_ID"), std::to_string(id));
  EXPECT_EQ(variables.at("CUDA_VISIBLE_DEVICES"), "0,1,2,3,4,5,6,7");
  EXPECT_EQ(variables.at("SLURM_JOB_NODELIST"), node);
  EXPECT_EQ(variables.at("ALLOT_NODELIST"), node);
  // The reply is written in the protocol version the report named: the node list as a hostlist
  // for an agent of version 2, every name in ALLOT_NODELIST for one that named none.
  EXPECT_EQ(first->protocol, 1);
  EXPECT_THAT(RenderSyncReply(*first), ::testing::HasSubstr(fmt::format(R"("ALLOT_NODELIST":"{}")", node)));
  StatusOr<SyncReply> newer = sync(node, R"({"gpus": 8, "tasks": [], "protocol": 2})");
  ASSERT_TRUE(newer.ok()) << newer.status().message();
  ASSERT_EQ(newer->assignments.size(), 1u);
  EXPECT_EQ(newer->protocol, 2);
  EXPECT_THAT(RenderSyncReply(*newer), ::testing::HasSubstr(fmt::format(R"("nodelist":"{}")", node)));
  EXPECT_THAT(RenderSyncReply(*newer), ::testing::Not(::testing::HasSubstr("ALLOT_NODELIST")));
  EXPECT_TRUE(sync(other, R"({"gpus": 8})").ok());

  clock_ += 10;
  StatusOr<SyncReply> refused = sync(node, R"({"gpus": 4, "tasks": [{"job": 1, "epoch": 1, "task": 0, "state": "running"}]})");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("its agent found 4"));
  ASSERT_TRUE(sync(other, R"({"gpus": 8})").ok());
  clock_ += 10;  // 20 s since the node's last sync that counted, 10 s since the other's
  controller->TickForTest();
  json down = *controller->ListNodes(kOperator, "gpu", "down");
  ASSERT_EQ(down["nodes"].size(), 1u) << down.dump();
  EXPECT_EQ(down["nodes"][0]["name"], node);
  EXPECT_EQ((*controller->GetJob(kOperator, id))["restarts"], 1);  // requeued off the lost node
}

// A pass that gives work to more nodes than a slice wakes them no faster than the front end sends
// their replies: the next slice waits until all but a slice of the earlier replies are out, so a
// person's request that arrives meanwhile queues behind a slice, not behind the whole pass.
TEST_F(ControllerTest, APassWakesItsNodesNoFasterThanTheirRepliesGoOut) {
  constexpr int kNodes = 600;  // over two slices of 256
  StatusOr<Config> config = ParseConfig(fmt::format(R"(
pools: [{{name: gpu, gpu_model: H200}}]
nodes: [{{name: n, count: {0}, pool: gpu, gpus: 1}}]
accounts: [{{name: lab, quota: {{gpu: {0}}}}}]
policy: {{pass_interval: 0}}
)", kNodes), "pool.yaml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  std::unique_ptr<Controller> controller = Open(std::move(*config), {});
  ASSERT_NE(controller, nullptr);
  // An emulated front end: replies handed to it wait to be sent; each look at its backlog finds
  // 64 more sent.
  size_t unsent = 0, most_unsent = 0, looks = 0;
  std::map<std::string, size_t> assignments;
  std::set<std::string> answered;  // outlives the loop: the waiting syncs are answered after it
  controller->SetAgentBacklog([&] {
    ++looks;
    unsent -= std::min<size_t>(unsent, 64);
    return unsent;
  });
  for (int i = 1; i <= kNodes; ++i) {
    const std::string node = fmt::format("n{}", i);
    // The first sync registers the node (a write): answered at once. The next one waits.
    controller->AgentSync(kOperator, node, R"({"gpus": 1, "tasks": []})", [](StatusOr<SyncReply> reply, bool) {
      ASSERT_TRUE(reply.ok()) << reply.status().message();
    });
    controller->AgentSync(kOperator, node, R"({"gpus": 1, "tasks": [], "wait_seconds": 30})",
                          [&, node](StatusOr<SyncReply> reply, bool) {
                            answered.insert(node);
                            ASSERT_TRUE(reply.ok()) << reply.status().message();
                            assignments[node] += reply->assignments.size();
                            most_unsent = std::max(most_unsent, ++unsent);
                          });
    ASSERT_FALSE(answered.contains(node)) << node << ": with nothing to do, its sync waits for work";
  }
  StatusOr<json> submitted = controller->Submit(
      kOperator, fmt::format(R"({{"account": "lab", "tasks": {}, "gpus_per_task": 1, "command": ["train"]}})", kNodes));
  ASSERT_TRUE(submitted.ok()) << submitted.status().message();
  controller->TickForTest();

  ASSERT_EQ(assignments.size(), static_cast<size_t>(kNodes)) << "every node of the gang is woken";
  for (const auto& [node, count] : assignments) EXPECT_EQ(count, 1u) << node;
  EXPECT_LE(most_unsent, 2u * 256) << "a slice went before the one ahead of it was mostly out";
  EXPECT_GE(looks, 2u);
  controller->SetAgentBacklog(nullptr);
}

}  // namespace
}  // namespace allot
