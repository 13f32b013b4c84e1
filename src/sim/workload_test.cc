#include "sim/workload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace allot {
namespace {

using ::testing::HasSubstr;

std::string SmallPool() { return std::string(ALLOT_SOURCE_DIR) + "/tests/traces/small-pool.yaml"; }

TEST(WorkloadTest, ReadsTheModel) {
  StatusOr<WorkloadModel> model = LoadWorkloadFile(SmallPool());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(model->jobs, 3000u);
  EXPECT_DOUBLE_EQ(model->days, 2);
  ASSERT_EQ(model->classes.size(), 3u);
  const JobClass& gang = model->classes[1];
  EXPECT_EQ(gang.gpus_per_task, 8);
  EXPECT_EQ(gang.gpus.first, 16);
  EXPECT_EQ(gang.runtime.second, 8 * 3600);
  EXPECT_EQ(gang.topology.level, Level::kLeaf);
  EXPECT_EQ(gang.topology.mode, TopologyMode::kPreferred);
  EXPECT_FALSE(model->classes[2].preemptible);
  EXPECT_EQ(model->failure_mtbf, 30 * 86400);
}

TEST(WorkloadTest, GeneratesJobsThatFollowTheModel) {
  StatusOr<Config> config = LoadConfigFile(SmallPool());
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  StatusOr<WorkloadModel> model = LoadWorkloadFile(SmallPool());
  ASSERT_TRUE(model.ok());
  StatusOr<std::vector<TraceJob>> jobs = GenerateWorkload(*model, *config, 3);
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 3000u);
  std::map<std::string, size_t> by_account;
  for (size_t i = 0; i < jobs->size(); ++i) {
    const TraceJob& job = (*jobs)[i];
    if (i > 0) {
      EXPECT_GE(job.submit, (*jobs)[i - 1].submit);
    }
    EXPECT_LT(job.submit, 2 * 86400 + 3600);  // Poisson arrivals over the two days
    EXPECT_GE(job.time_limit, job.runtime);  // limit factors are at least 1 here
    EXPECT_LE(job.time_limit, 7 * 86400);    // capped at the policy's maximum
    int64_t gpus = job.gpus();
    EXPECT_EQ(gpus & (gpus - 1), 0) << "sizes are powers of two: " << gpus;
    by_account[job.account]++;
    if (job.priority_class == "critical") {
      EXPECT_EQ(job.account, "owner-train");
      EXPECT_EQ(job.pool, "owner-b200");
      EXPECT_FALSE(job.preemptible);
      EXPECT_GE(gpus, 64);
    }
  }
  // Small jobs go to research and startup in proportion to nominal (192:64), so research has
  // about three times as many.
  EXPECT_GT(by_account["research"], 2 * by_account["startup"]);
  EXPECT_GT(by_account["owner-train"], 0u);

  // Seeded: the same seed gives the same jobs, another seed others.
  StatusOr<std::vector<TraceJob>> again = GenerateWorkload(*model, *config, 3);
  StatusOr<std::vector<TraceJob>> other = GenerateWorkload(*model, *config, 4);
  ASSERT_TRUE(again.ok() && other.ok());
  EXPECT_EQ((*again)[1234].submit, (*jobs)[1234].submit);
  EXPECT_EQ((*again)[1234].account, (*jobs)[1234].account);
  EXPECT_NE((*other)[1234].submit, (*jobs)[1234].submit);
}

TEST(WorkloadTest, FailuresComeInDownUpPairs) {
  StatusOr<Config> config = LoadConfigFile(SmallPool());
  StatusOr<WorkloadModel> model = LoadWorkloadFile(SmallPool());
  ASSERT_TRUE(config.ok() && model.ok());
  model->days = 365;
  std::vector<NodeEvent> events = GenerateFailures(*model, config->cluster, 1);
  // 64 nodes failing every 30 days on average for a year: about 780 failures.
  size_t downs = std::count_if(events.begin(), events.end(), [](const NodeEvent& e) { return e.state == NodeState::kDown; });
  EXPECT_GT(downs, 500u);
  EXPECT_LT(downs, 1100u);
  EXPECT_EQ(events.size(), 2 * downs);
  EXPECT_TRUE(std::is_sorted(events.begin(), events.end(),
                             [](const NodeEvent& a, const NodeEvent& b) { return a.time < b.time; }));
}

TEST(WorkloadTest, BadModelsSayWhatToFix) {
  EXPECT_THAT(ParseWorkload("workload: {jobs: 10}", "w.yaml").status().message(),
              HasSubstr("workload.classes: needs a list of job classes"));
  EXPECT_THAT(ParseWorkload("workload:\n  classes:\n    - {name: x, gpu: 4}\n", "w.yaml").status().message(),
              HasSubstr("w.yaml:3:17: workload.classes[0]: unknown field 'gpu'"));
  EXPECT_THAT(ParseWorkload("workload:\n  classes:\n    - {name: x, runtime: [2h, 1h]}\n", "w.yaml").status().message(),
              HasSubstr("min 7200 is above max 3600"));
  EXPECT_THAT(ParseWorkload("pools: []\n", "w.yaml").status().message(), HasSubstr("no workload section"));

  StatusOr<Config> config = LoadConfigFile(SmallPool());
  ASSERT_TRUE(config.ok());
  StatusOr<WorkloadModel> model = ParseWorkload("workload:\n  classes:\n    - {name: x, accounts: [nobody]}\n", "w.yaml");
  ASSERT_TRUE(model.ok());
  EXPECT_THAT(GenerateWorkload(*model, *config, 1).status().message(), HasSubstr("workload class 'x'"));
}

}  // namespace
}  // namespace allot
