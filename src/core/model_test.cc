#include "core/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr PoolIndex kPool = 0;

// One pool of three 8-GPU nodes (n0 and n1 share an NVLink domain); accounts root > lab (16
// GPUs) > {alice, bob}.
class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Cluster cluster;
    PoolIndex pool = cluster.AddPool({.name = "p"}).value();
    for (const char* name : {"n0", "n1"}) {
      cluster.AddNode({.name = name, .pool = pool, .nvlink = "r0", .gpus = 8, .cpus = 32}).value();
    }
    cluster.AddNode({.name = "n2", .pool = pool, .gpus = 8, .cpus = 32}).value();
    ASSERT_TRUE(cluster.Finalize().ok());

    AccountTree accounts(1);
    lab_ = accounts.Add(accounts.root(), "lab", 1).value();
    alice_ = accounts.Add(lab_, "alice", 1).value();
    bob_ = accounts.Add(lab_, "bob", 1).value();
    accounts.mutable_account(lab_).quota[kPool] = {.nominal = 16, .nominal_set = true};
    ASSERT_TRUE(accounts.Finalize().ok());

    model_ = std::make_unique<Model>(std::move(cluster), std::move(accounts));
  }

  static Job MakeJob(JobId id, AccountIndex account, int tasks, int gpus_per_task,
                     Duration time_limit = 3600) {
    Job job;
    job.id = id;
    job.account = account;
    job.spec.tasks = tasks;
    job.spec.gpus_per_task = gpus_per_task;
    job.spec.time_limit = time_limit;
    job.submit_time = 10;
    return job;
  }

  static std::vector<TaskAllocation> OnNodes(std::vector<NodeIndex> nodes, int cpus = 0) {
    std::vector<TaskAllocation> tasks;
    for (NodeIndex node : nodes) tasks.push_back({.node = node, .cpus = cpus});
    return tasks;
  }

  std::unique_ptr<Model> model_;
  AccountIndex lab_ = 0, alice_ = 0, bob_ = 0;
};

TEST_F(ModelTest, AddPendingFilesTheJob) {
  Job job = MakeJob(1, alice_, 1, 4);
  job.state = JobState::kRunning;  // whatever the caller says, a new job is pending
  ASSERT_TRUE(model_->AddPending(std::move(job)).ok());
  EXPECT_THAT(model_->pending(), ElementsAre(1u));
  ASSERT_NE(model_->FindJob(1), nullptr);
  EXPECT_EQ(model_->FindJob(1)->state, JobState::kPending);
  EXPECT_EQ(model_->FindJob(2), nullptr);
  EXPECT_EQ(model_->running_count(), 0u);
}

TEST_F(ModelTest, AddPendingRejectsATakenId) {
  ASSERT_TRUE(model_->AddPending(MakeJob(7, alice_, 1, 4)).ok());
  Status again = model_->AddPending(MakeJob(7, bob_, 2, 2));
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(again.message(), HasSubstr("job 7 exists already"));
  // The first job is untouched.
  EXPECT_EQ(model_->FindJob(7)->account, alice_);
  EXPECT_EQ(model_->pending().size(), 1u);
}

TEST_F(ModelTest, StartTakesGpusChargesAccountsAndIndexesTheJob) {
  ASSERT_TRUE(model_->AddPending(MakeJob(1, alice_, 2, 4, /*time_limit=*/500)).ok());
  model_->Start(1, kPool, OnNodes({0, 1}, /*cpus=*/8), /*now=*/100);

  const Job& job = *model_->FindJob(1);
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.start_time, 100);
  EXPECT_EQ(job.epoch, 1u);
  EXPECT_EQ(job.pool, kPool);
  ASSERT_EQ(job.tasks.size(), 2u);
  EXPECT_EQ(job.tasks[0].gpu_mask, 0xFu);
  EXPECT_EQ(job.tasks[1].gpu_mask, 0xFu);
  EXPECT_THAT(model_->pending(), IsEmpty());
  EXPECT_EQ(model_->running_count(), 1u);
  EXPECT_THAT(model_->running_by_end(kPool), ElementsAre(std::pair<Time, JobId>{600, 1}));

  EXPECT_EQ(model_->free().VisibleGpus(0), 4);
  EXPECT_EQ(model_->free().VisibleGpus(1), 4);
  EXPECT_EQ(model_->free().FreeCpus(0), 24);
  EXPECT_EQ(model_->free().PoolGpus(kPool), 16);

  const AccountTree& accounts = model_->accounts();
  EXPECT_EQ(accounts.account(alice_).allocated[kPool], 8);
  EXPECT_EQ(accounts.account(lab_).allocated[kPool], 8);
  EXPECT_EQ(accounts.account(accounts.root()).allocated_total, 8);
  EXPECT_EQ(accounts.account(bob_).allocated[kPool], 0);
  EXPECT_DOUBLE_EQ(accounts.account(lab_).committed_end_sum, 8.0 * 600);
}

TEST_F(ModelTest, RunningByEndIsOrderedByExpectedEnd) {
  ASSERT_TRUE(model_->AddPending(MakeJob(1, alice_, 1, 1, 1000)).ok());
  ASSERT_TRUE(model_->AddPending(MakeJob(2, bob_, 1, 1, 100)).ok());
  ASSERT_TRUE(model_->AddPending(MakeJob(3, bob_, 1, 1, 500)).ok());
  model_->Start(1, kPool, OnNodes({0}), 0);
  model_->Start(2, kPool, OnNodes({0}), 50);
  model_->Start(3, kPool, OnNodes({2}), 0);
  EXPECT_THAT(model_->running_by_end(kPool),
              ElementsAre(std::pair<Time, JobId>{150, 2}, std::pair<Time, JobId>{500, 3},
                          std::pair<Time, JobId>{1000, 1}));
  // Two jobs on one node get different GPUs.
  EXPECT_EQ(model_->FindJob(1)->tasks[0].gpu_mask, 0b01u);
  EXPECT_EQ(model_->FindJob(2)->tasks[0].gpu_mask, 0b10u);
}

TEST_F(ModelTest, StopWithRequeueReturnsTheJobToPending) {
  ASSERT_TRUE(model_->AddPending(MakeJob(1, alice_, 2, 8)).ok());
  model_->Start(1, kPool, OnNodes({0, 2}, 16), 100);
  std::optional<Job> stopped = model_->Stop(1, /*requeue=*/true);
  EXPECT_FALSE(stopped.has_value());

  const Job* job = model_->FindJob(1);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->state, JobState::kPending);
  EXPECT_EQ(job->restarts, 1);
  EXPECT_EQ(job->submit_time, 10);
  EXPECT_THAT(model_->pending(), ElementsAre(1u));
  EXPECT_EQ(model_->running_count(), 0u);
  EXPECT_THAT(model_->running_by_end(kPool), IsEmpty());
  EXPECT_EQ(model_->free().PoolGpus(kPool), 24);
  EXPECT_EQ(model_->free().FreeCpus(0), 32);
  EXPECT_EQ(model_->accounts().account(alice_).allocated[kPool], 0);
  EXPECT_EQ(model_->accounts().account(model_->accounts().root()).allocated_total, 0);
  EXPECT_DOUBLE_EQ(model_->accounts().account(lab_).committed_end_sum, 0);
  EXPECT_THAT(model_->JobsOnNode(0), IsEmpty());

  // Starting it again grows the epoch, so the earlier execution can be told apart.
  model_->Start(1, kPool, OnNodes({1, 2}), 200);
  EXPECT_EQ(model_->FindJob(1)->epoch, 2u);
  EXPECT_EQ(model_->FindJob(1)->start_time, 200);
  EXPECT_THAT(model_->JobsOnNode(1), ElementsAre(1u));
}

// The scheduler stops a pass early when no pool has as many GPUs free as a waiting job asks
// for: the smallest request must follow every way in and out of the pending set.
TEST_F(ModelTest, SmallestPendingRequestFollowsThePendingSet) {
  EXPECT_EQ(model_->SmallestPendingRequest(kPool), INT64_MAX);
  Job gang = MakeJob(1, alice_, 2, 8);
  gang.pools = {kPool};
  Job small = MakeJob(2, bob_, 1, 2);
  small.pools = {kPool};
  ASSERT_TRUE(model_->AddPending(gang).ok());
  EXPECT_EQ(model_->SmallestPendingRequest(kPool), 16);
  ASSERT_TRUE(model_->AddPending(small).ok());
  EXPECT_EQ(model_->SmallestPendingRequest(kPool), 2);
  uint64_t before = model_->pending_sequence();
  model_->Start(2, kPool, OnNodes({2}), 100);
  EXPECT_EQ(model_->SmallestPendingRequest(kPool), 16);
  model_->UndoStart(2);  // pending again, under a new number
  EXPECT_EQ(model_->SmallestPendingRequest(kPool), 2);
  EXPECT_GT(model_->FindJob(2)->pending_since, before);
  ASSERT_TRUE(model_->RemovePending(2).has_value());
  model_->Start(1, kPool, OnNodes({0, 1}), 100);
  EXPECT_EQ(model_->SmallestPendingRequest(kPool), INT64_MAX);
  ASSERT_FALSE(model_->Stop(1, /*requeue=*/true).has_value());
  EXPECT_EQ(model_->SmallestPendingRequest(kPool), 16);
}

TEST_F(ModelTest, StopWithoutRequeueRemovesAndReturnsTheJob) {
  ASSERT_TRUE(model_->AddPending(MakeJob(1, bob_, 1, 8)).ok());
  model_->Start(1, kPool, OnNodes({2}), 100);
  std::optional<Job> stopped = model_->Stop(1, /*requeue=*/false);
  ASSERT_TRUE(stopped.has_value());
  EXPECT_EQ(stopped->id, 1u);
  EXPECT_EQ(stopped->start_time, 100);
  EXPECT_EQ(stopped->epoch, 1u);
  ASSERT_EQ(stopped->tasks.size(), 1u);
  EXPECT_EQ(stopped->tasks[0].gpu_mask, 0xFFu);

  EXPECT_EQ(model_->FindJob(1), nullptr);
  EXPECT_THAT(model_->jobs(), IsEmpty());
  EXPECT_THAT(model_->pending(), IsEmpty());
  EXPECT_EQ(model_->running_count(), 0u);
  EXPECT_EQ(model_->free().VisibleGpus(2), 8);
  EXPECT_EQ(model_->accounts().account(bob_).allocated[kPool], 0);
}

TEST_F(ModelTest, StopOfAPendingOrUnknownJobDoesNothing) {
  ASSERT_TRUE(model_->AddPending(MakeJob(1, bob_, 1, 8)).ok());
  EXPECT_FALSE(model_->Stop(1, false).has_value());
  EXPECT_FALSE(model_->Stop(99, false).has_value());
  EXPECT_THAT(model_->pending(), ElementsAre(1u));
  EXPECT_EQ(model_->FindJob(1)->restarts, 0);
}

TEST_F(ModelTest, RemovePendingOnlyRemovesPendingJobs) {
  ASSERT_TRUE(model_->AddPending(MakeJob(1, alice_, 1, 2)).ok());
  ASSERT_TRUE(model_->AddPending(MakeJob(2, alice_, 1, 2)).ok());
  model_->Start(2, kPool, OnNodes({0}), 0);

  EXPECT_FALSE(model_->RemovePending(2).has_value());  // running
  EXPECT_FALSE(model_->RemovePending(3).has_value());  // unknown
  EXPECT_NE(model_->FindJob(2), nullptr);

  std::optional<Job> removed = model_->RemovePending(1);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->id, 1u);
  EXPECT_EQ(model_->FindJob(1), nullptr);
  EXPECT_THAT(model_->pending(), IsEmpty());
  EXPECT_EQ(model_->running_count(), 1u);
}

TEST_F(ModelTest, SetNodeStateUpdatesClusterAndIndex) {
  model_->SetNodeState(1, NodeState::kDraining);
  EXPECT_EQ(model_->cluster().node(1).state, NodeState::kDraining);
  EXPECT_EQ(model_->free().VisibleGpus(1), 0);
  EXPECT_EQ(model_->free().PoolGpus(kPool), 16);

  model_->SetNodeState(1, NodeState::kDown);
  EXPECT_EQ(model_->cluster().node(1).state, NodeState::kDown);
  EXPECT_EQ(model_->free().PoolGpus(kPool), 16);

  model_->SetNodeState(1, NodeState::kUp);
  EXPECT_EQ(model_->cluster().node(1).state, NodeState::kUp);
  EXPECT_EQ(model_->free().PoolGpus(kPool), 24);
}

TEST_F(ModelTest, StoppingAJobOnADownNodeReturnsGpusOnlyWhenItComesBack) {
  ASSERT_TRUE(model_->AddPending(MakeJob(1, alice_, 1, 8)).ok());
  model_->Start(1, kPool, OnNodes({0}), 0);
  model_->SetNodeState(0, NodeState::kDown);
  ASSERT_TRUE(model_->Stop(1, false).has_value());
  EXPECT_EQ(model_->free().UnallocatedGpus(0), 8);
  EXPECT_EQ(model_->free().PoolGpus(kPool), 16);
  model_->SetNodeState(0, NodeState::kUp);
  EXPECT_EQ(model_->free().PoolGpus(kPool), 24);
}

TEST_F(ModelTest, JobsOnNodeListsEachRunningJobOnce) {
  ASSERT_TRUE(model_->AddPending(MakeJob(5, alice_, 2, 2)).ok());
  ASSERT_TRUE(model_->AddPending(MakeJob(3, bob_, 1, 4)).ok());
  // Job 5 puts both of its tasks on node 0.
  model_->Start(5, kPool, OnNodes({0, 0}), 0);
  model_->Start(3, kPool, OnNodes({0}), 0);
  EXPECT_THAT(model_->JobsOnNode(0), ElementsAre(3u, 5u));
  EXPECT_THAT(model_->JobsOnNode(1), IsEmpty());
  EXPECT_EQ(model_->free().VisibleGpus(0), 0);
  EXPECT_EQ(model_->FindJob(5)->tasks[0].gpu_mask, 0b0011u);
  EXPECT_EQ(model_->FindJob(5)->tasks[1].gpu_mask, 0b1100u);

  ASSERT_TRUE(model_->Stop(5, false).has_value());
  EXPECT_THAT(model_->JobsOnNode(0), ElementsAre(3u));
  EXPECT_EQ(model_->free().FreeGpuMask(0), 0b1111u);
}

TEST_F(ModelTest, AdvanceToAccruesUsageFromTheFirstCall) {
  ASSERT_TRUE(model_->AddPending(MakeJob(1, alice_, 1, 2)).ok());
  model_->Start(1, kPool, OnNodes({0}), 1000);
  model_->AdvanceTo(1000, /*half_life=*/0);  // the first call only sets the clock
  EXPECT_EQ(model_->now(), 1000);
  EXPECT_EQ(model_->accounts().account(alice_).decayed_usage, 0);
  model_->AdvanceTo(1100, 0);
  EXPECT_DOUBLE_EQ(model_->accounts().account(alice_).decayed_usage, 200);
  model_->AdvanceTo(1050, 0);  // going back is ignored
  EXPECT_EQ(model_->now(), 1100);
  EXPECT_DOUBLE_EQ(model_->accounts().account(alice_).decayed_usage, 200);
}

TEST_F(ModelTest, ApproximateBytesGrowsWithJobs) {
  size_t empty = model_->ApproximateBytes();
  for (JobId id = 1; id <= 100; ++id) ASSERT_TRUE(model_->AddPending(MakeJob(id, bob_, 1, 1)).ok());
  EXPECT_GT(model_->ApproximateBytes(), empty + 100 * sizeof(Job));
}

}  // namespace
}  // namespace allot
