#include "server/steps.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/auth.h"

namespace allot {
namespace {

using ::testing::HasSubstr;

// Two nodes of four job GPUs each.
std::vector<JobNode> TwoNodes() { return {{10, 0, 0b1111, 0, 0}, {11, 1, 0b1111'0000, 0, 0}}; }

std::vector<int> NodesOf(const std::vector<StepTask>& tasks) {
  std::vector<int> nodes;
  for (const StepTask& task : tasks) nodes.push_back(task.node);
  return nodes;
}

TEST(LayOutStepTest, ByDefaultEveryNodeRunsTheJobsTasksPerNode) {
  StatusOr<std::vector<StepTask>> tasks = LayOutStep(TwoNodes(), 2, {.argv = {"hostname"}});
  ASSERT_TRUE(tasks.ok()) << tasks.status().message();
  EXPECT_EQ(NodesOf(*tasks), (std::vector<int>{0, 0, 1, 1}));
  EXPECT_EQ((*tasks)[1].local_id, 1);
  EXPECT_EQ((*tasks)[2].local_id, 0);
  // Without --gpus-per-task each task sees all of the job's GPUs on its node, as under Slurm.
  EXPECT_EQ((*tasks)[0].gpu_mask, 0b1111u);
  EXPECT_EQ((*tasks)[3].gpu_mask, 0b1111'0000u);
}

TEST(LayOutStepTest, NtasksSpreadsInBlocksAndGpusPerTaskGivesDistinctGpus) {
  StatusOr<std::vector<StepTask>> tasks = LayOutStep(TwoNodes(), 1, {.argv = {"x"}, .ntasks = 3, .gpus_per_task = 2});
  ASSERT_TRUE(tasks.ok()) << tasks.status().message();
  EXPECT_EQ(NodesOf(*tasks), (std::vector<int>{0, 0, 1}));  // the first node takes the extra one
  EXPECT_EQ((*tasks)[0].gpu_mask, 0b0011u);
  EXPECT_EQ((*tasks)[1].gpu_mask, 0b1100u);
  EXPECT_EQ((*tasks)[2].gpu_mask, 0b0011'0000u);

  // One task uses one node; --nodes and --ntasks-per-node as srun reads them.
  tasks = LayOutStep(TwoNodes(), 4, {.argv = {"x"}, .ntasks = 1});
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(NodesOf(*tasks), (std::vector<int>{0}));
  tasks = LayOutStep(TwoNodes(), 4, {.argv = {"x"}, .ntasks_per_node = 1});
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(NodesOf(*tasks), (std::vector<int>{0, 1}));
  tasks = LayOutStep(TwoNodes(), 4, {.argv = {"x"}, .nodes = 1});
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(NodesOf(*tasks), (std::vector<int>{0, 0, 0, 0}));
}

TEST(LayOutStepTest, AStepBeyondTheAllocationIsRefusedWithWhatTheJobHas) {
  EXPECT_THAT(LayOutStep(TwoNodes(), 1, {.argv = {"x"}, .nodes = 3}).status().message(),
              HasSubstr("asks for 3 nodes, but the job has 2"));
  EXPECT_THAT(LayOutStep(TwoNodes(), 1, {.argv = {"x"}, .ntasks = 4, .gpus_per_task = 4}).status().message(),
              HasSubstr("2 tasks x 4 GPUs on a node, but the job has 4 GPUs there"));
  EXPECT_THAT(LayOutStep(TwoNodes(), 1, {.argv = {"x"}, .ntasks = 1, .nodes = 2}).status().message(),
              HasSubstr("every node needs a task"));
  EXPECT_THAT(LayOutStep(TwoNodes(), 1, {.argv = {"x"}, .ntasks = 9, .ntasks_per_node = 4}).status().message(),
              HasSubstr("more than 2 nodes x 4 tasks per node"));
}

TEST(StepRequestTest, MalformedStepsAreRefusedWithTheField) {
  EXPECT_THAT(ParseStepRequest(R"({"argv": []})").status().message(), HasSubstr("step.argv"));
  EXPECT_THAT(ParseStepRequest(R"({"argv": ["x"], "ntasks": 0})").status().message(), HasSubstr("step.ntasks"));
  EXPECT_THAT(ParseStepRequest(R"({"argv": ["x"], "environment": {"A": 1}})").status().message(),
              HasSubstr("step.environment.A"));
  EXPECT_THAT(ParseStepRequest(R"({"argv": ["x"], "shell": true})").status().message(), HasSubstr("unknown field 'shell'"));
  EXPECT_THAT(ParseStepRequest("[1]").status().message(), HasSubstr("JSON object"));
  // Every task's assignment carries the environment: it is bounded, as are tasks per node.
  nlohmann::json big = {{"argv", {"x"}}, {"environment", {{"BLOB", std::string(70 << 10, 'x')}}}};
  EXPECT_THAT(ParseStepRequest(big.dump()).status().message(), HasSubstr("at most 64 KiB"));
  EXPECT_THAT(LayOutStep(TwoNodes(), 1, {.argv = {"x"}, .ntasks = 2000}).status().message(),
              HasSubstr("1000 tasks on a node; at most 512"));
}

TEST(StepRequestTest, AStepSurvivesItsStoredForm) {
  Step step;
  step.id = 2;
  step.first_index = 7;
  step.request = {.argv = {"python", "train.py"}, .ntasks = 2, .gpus_per_task = 1,
                  .environment = {{"WANDB_PROJECT", "x"}}, .working_directory = "/scratch"};
  step.tasks = {{7, 0, 0, 0b1, 10, 0}, {8, 1, 0, 0b10, 11, std::nullopt}};
  step.nodes = 2;
  StatusOr<Step> back = StepFromJson(StepToJson(step));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(StepToJson(*back), StepToJson(step));
  EXPECT_EQ(back->tasks[1].index, 8);
  EXPECT_FALSE(back->ended());
  back->tasks[1].exit_code = 4;
  EXPECT_TRUE(back->ended());
  EXPECT_EQ(back->exit_code(), 4);  // the highest, as srun
}

TEST(JobCredentialTest, OnlyTheServersKeyMakesAJobCredential) {
  const std::string key = NewSecretKey();
  std::string credential = JobCredential(key, 42, 3);
  EXPECT_THAT(credential, ::testing::StartsWith("allotjob_42_3_"));
  EXPECT_EQ(CheckJobCredential(key, credential), std::make_pair(uint64_t{42}, uint64_t{3}));
  EXPECT_FALSE(CheckJobCredential(NewSecretKey(), credential));            // another server's key
  EXPECT_FALSE(CheckJobCredential(key, "allotjob_43_3_" + credential.substr(14)));  // another job
  EXPECT_FALSE(CheckJobCredential(key, credential.substr(0, credential.size() - 1)));
  EXPECT_FALSE(CheckJobCredential(key, "allotjob_x"));
}

}  // namespace
}  // namespace allot
