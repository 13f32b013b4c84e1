#include "sched/queue_order.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/model.h"
#include "sched/placement.h"

namespace allot {
namespace {

using ::testing::ElementsAre;

constexpr PoolIndex kPool = 0;
constexpr Duration kHalfLife = 7 * 86400;

// 64 GPUs: eight 8-GPU nodes.
constexpr std::string_view kPoolYaml = R"(
pools:
  - name: p
    shape: {pods: 1, leaves_per_pod: 1, nvlink_per_leaf: 8, nodes_per_nvlink: 1, gpus_per_node: 8}
)";

class QueueOrderTest : public ::testing::Test {
 protected:
  void Use(std::string_view accounts_yaml) {
    std::string yaml = std::string(kPoolYaml) + std::string(accounts_yaml);
    StatusOr<Config> config = ParseConfig(yaml, "test");
    ASSERT_TRUE(config.ok()) << config.status().message();
    model_ = std::make_unique<Model>(std::move(config->cluster), std::move(config->accounts));
  }

  AccountIndex Find(std::string_view name) { return model_->accounts().Find(name).value(); }

  void Add(JobId id, std::string_view account, Time submit, int priority = 100, int gpus = 1,
           Duration time_limit = 3600, std::string user = "") {
    Job job;
    job.id = id;
    job.account = Find(account);
    job.spec.account = std::string(account);
    job.spec.tasks = 1;
    job.spec.gpus_per_task = gpus;
    job.spec.time_limit = time_limit;
    job.spec.user = std::move(user);
    job.pools = {kPool};
    job.priority = priority;
    job.submit_time = submit;
    ASSERT_TRUE(model_->AddPending(std::move(job)).ok());
  }

  // Starts a pending job in the model, as the scheduler would.
  void Start(JobId id, Time now) {
    const Job& job = *model_->FindJob(id);
    std::optional<Placement> placement =
        FindPlacement(model_->free(), kPool, PlacementRequest::ForJob(job.spec));
    ASSERT_TRUE(placement.has_value()) << "job " << id << " does not fit";
    model_->Start(id, kPool, std::move(placement->tasks), now);
  }

  // Sweeps that look at every pending job, or at these only.
  static PendingFilter Everyone() {
    return [](const Job&) { return true; };
  }
  static PendingFilter Only(std::vector<JobId> ids) {
    return [ids = std::move(ids)](const Job& job) {
      return std::find(ids.begin(), ids.end(), job.id) != ids.end();
    };
  }

  // Every job handed out, without starting any.
  std::vector<JobId> Drain(QueueOrder& order) {
    std::vector<JobId> out;
    while (std::optional<JobId> id = order.Next()) out.push_back(*id);
    return out;
  }

  std::unique_ptr<Model> model_;
};

constexpr std::string_view kTwoAccounts = R"(
accounts:
  - {name: a, weight: 1}
  - {name: b, weight: 3}
)";

TEST_F(QueueOrderTest, FifoOrdersByPriorityThenSubmitTimeThenId) {
  Use(kTwoAccounts);
  Add(1, "a", /*submit=*/30);
  Add(2, "b", /*submit=*/10);
  Add(3, "a", /*submit=*/40, /*priority=*/1000);
  Add(4, "a", /*submit=*/10);
  Add(5, "b", /*submit=*/5, /*priority=*/0);
  Add(6, "b", /*submit=*/20, /*priority=*/1000);
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("fifo", kHalfLife);
  // Hand the ids in scrambled: the order must not depend on it.
  order->Begin(*model_, Only({5, 3, 1, 6, 4, 2}), {});
  EXPECT_THAT(Drain(*order), ElementsAre(6, 3, 2, 4, 1, 5));
  EXPECT_EQ(order->Next(), std::nullopt);
}

TEST_F(QueueOrderTest, FifoIgnoresUsage) {
  Use(kTwoAccounts);
  Add(1, "a", 10, 100, 8);
  Add(2, "a", 20);
  Add(3, "b", 30);
  Start(1, 0);
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("fifo", kHalfLife);
  order->Begin(*model_, Everyone(), {});
  EXPECT_THAT(Drain(*order), ElementsAre(2, 3));
}

// fifo walks the model's queue while the scheduler acts on it: jobs start under it, and
// requeued or taken-back jobs become pending again. A sweep hands out each job pending at Begin
// once, and none that became pending after.
TEST_F(QueueOrderTest, FifoWalksTheQueueWhileItChanges) {
  Use(kTwoAccounts);
  for (JobId id = 1; id <= 5; ++id) Add(id, "a", /*submit=*/static_cast<Time>(id * 10));
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("fifo", kHalfLife);
  order->Begin(*model_, Everyone(), /*first=*/{3});
  EXPECT_EQ(order->Next(), 3);  // the starving job first
  Start(3, 0);                  // and it starts
  EXPECT_EQ(order->Next(), 1);
  Start(1, 0);
  Add(6, "a", /*submit=*/15);  // pending after Begin: not in this sweep, though ahead of job 2
  ASSERT_TRUE(model_->Stop(1, /*requeue=*/true) == std::nullopt);  // requeued: not either
  EXPECT_THAT(Drain(*order), ElementsAre(2, 4, 5));
  order->Begin(*model_, Everyone(), {});
  EXPECT_THAT(Drain(*order), ElementsAre(1, 6, 2, 4, 5));
}

TEST_F(QueueOrderTest, FifoHandsOutOnlyWhatTheFilterAdmits) {
  Use(kTwoAccounts);
  for (JobId id = 1; id <= 6; ++id) Add(id, id % 2 ? "a" : "b", static_cast<Time>(id));
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("fifo", kHalfLife);
  AccountIndex b = Find("b");
  order->Begin(*model_, [b](const Job& job) { return job.account == b; }, {});
  EXPECT_THAT(Drain(*order), ElementsAre(2, 4, 6));
}

TEST_F(QueueOrderTest, SjfOrdersByTimeLimitWithinAClassThenBySubmitTime) {
  Use(kTwoAccounts);
  Add(1, "a", /*submit=*/10, 100, 1, /*time_limit=*/7200);
  Add(2, "b", /*submit=*/20, 100, 1, /*time_limit=*/600);
  Add(3, "a", /*submit=*/5, 100, 1, /*time_limit=*/600);
  Add(4, "b", /*submit=*/30, 1000, 1, /*time_limit=*/86400);  // a higher class still goes first
  Add(5, "a", /*submit=*/1, 100, 1, /*time_limit=*/3600);
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("sjf", kHalfLife);
  order->Begin(*model_, Only({1, 2, 3, 4, 5}), {});
  EXPECT_THAT(Drain(*order), ElementsAre(4, 3, 2, 5, 1));
}

TEST_F(QueueOrderTest, SjfPutsStarvingJobsFirst) {
  Use(kTwoAccounts);
  Add(1, "a", 10, 100, 1, 86400);
  Add(2, "b", 20, 100, 1, 60);
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("sjf", kHalfLife);
  order->Begin(*model_, Only({1, 2}), /*first=*/{1});
  EXPECT_THAT(Drain(*order), ElementsAre(1, 2));
}

TEST_F(QueueOrderTest, PredictedOrdersByWhatTheUsersRecentJobsRan) {
  Use(kTwoAccounts);
  RuntimePredictor predictor;
  // Alice asks for a day and her jobs run ten minutes; Bob asks for an hour and uses it.
  Add(1, "a", /*submit=*/10, 100, 1, /*time_limit=*/86400, "alice");
  Add(2, "b", /*submit=*/20, 100, 1, /*time_limit=*/3600, "bob");
  Add(3, "b", /*submit=*/30, 100, 1, /*time_limit=*/86400, "carol");  // no history: her limit
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("predicted", kHalfLife, &predictor);
  order->Begin(*model_, Only({1, 2, 3}), {});
  EXPECT_THAT(Drain(*order), ElementsAre(2, 1, 3));  // no history yet: by limit, as sjf

  for (int i = 0; i < 3; ++i) {
    predictor.Observe(*model_->FindJob(1), 600);
    predictor.Observe(*model_->FindJob(2), 3600);
  }
  order->Begin(*model_, Only({1, 2, 3}), {});
  EXPECT_THAT(Drain(*order), ElementsAre(1, 2, 3));
}

TEST_F(QueueOrderTest, FairShareSplitsByWeightWhenStartsAreReported) {
  Use(kTwoAccounts);
  for (JobId i = 0; i < 40; ++i) {
    Add(1 + i, "a", static_cast<Time>(i));
    Add(101 + i, "b", static_cast<Time>(i));
  }
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("fair_share", kHalfLife);
  order->Begin(*model_, Everyone(), {});
  int from_a = 0;
  int from_b = 0;
  JobId last_a = 0;
  JobId last_b = 100;
  for (int n = 0; n < 40; ++n) {
    std::optional<JobId> id = order->Next();
    ASSERT_TRUE(id.has_value());
    const Job& job = *model_->FindJob(*id);
    // Inside an account, submit order.
    if (job.account == Find("a")) {
      EXPECT_GT(*id, last_a);
      last_a = *id;
      ++from_a;
    } else {
      EXPECT_GT(*id, last_b);
      last_b = *id;
      ++from_b;
    }
    Start(*id, 0);
    order->Started(*model_->FindJob(*id));
  }
  // Weights 1:3 -> 10 and 30 of 40.
  EXPECT_NEAR(from_a, 10, 1);
  EXPECT_NEAR(from_b, 30, 1);
  // The rest still comes out, each job once.
  std::vector<JobId> rest = Drain(*order);
  EXPECT_EQ(rest.size(), 40u);
}

TEST_F(QueueOrderTest, FairShareAlternatesEqualWeights) {
  Use(R"(
accounts:
  - {name: a, weight: 2}
  - {name: b, weight: 2}
)");
  for (JobId i = 0; i < 10; ++i) Add(1 + i, "a", static_cast<Time>(i));
  for (JobId i = 0; i < 10; ++i) Add(101 + i, "b", static_cast<Time>(100 + i));  // b later
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("fair_share", kHalfLife);
  order->Begin(*model_, Everyone(), {});
  std::vector<AccountIndex> accounts;
  for (int n = 0; n < 8; ++n) {
    std::optional<JobId> id = order->Next();
    ASSERT_TRUE(id.has_value());
    accounts.push_back(model_->FindJob(*id)->account);
    Start(*id, 0);
    order->Started(*model_->FindJob(*id));
  }
  int from_a = 0;
  for (AccountIndex account : accounts) from_a += account == Find("a");
  EXPECT_EQ(from_a, 4);
}

TEST_F(QueueOrderTest, FairShareHigherPriorityClassAlwaysFirst) {
  Use(kTwoAccounts);
  // a already holds GPUs and would come last by share, but its critical jobs go first.
  Add(1, "a", 0, 100, 8);
  Start(1, 0);
  Add(2, "b", 10);
  Add(3, "b", 11);
  Add(4, "a", 20, /*priority=*/1000);
  Add(5, "a", 30, /*priority=*/1000);
  Add(6, "a", 5, /*priority=*/0);
  Add(7, "a", 12);
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("fair_share", kHalfLife);
  order->Begin(*model_, Everyone(), {});
  std::vector<JobId> seen;
  while (std::optional<JobId> id = order->Next()) {
    seen.push_back(*id);
    if (*id == 4 || *id == 5) {  // started critical jobs make a even heavier
      Start(*id, 0);
      order->Started(*model_->FindJob(*id));
    }
  }
  ASSERT_EQ(seen.size(), 5u + 1u);
  EXPECT_THAT(std::vector<JobId>(seen.begin(), seen.begin() + 2), ElementsAre(4, 5));
  EXPECT_THAT(std::vector<JobId>(seen.begin() + 2, seen.end()), ElementsAre(2, 3, 7, 6));
}

TEST_F(QueueOrderTest, FairShareRecentUsagePushesAnAccountBack) {
  Use(R"(
accounts:
  - {name: a, weight: 1}
  - {name: b, weight: 1}
)");
  // a ran 8 GPUs for a day, then its job ended: it holds nothing now, but has recent usage.
  model_->AdvanceTo(0, kHalfLife);
  Add(1, "a", 0, 100, 8);
  Start(1, 0);
  model_->AdvanceTo(86400, kHalfLife);
  ASSERT_TRUE(model_->Stop(1, /*requeue=*/false).has_value());
  ASSERT_GT(model_->accounts().account(Find("a")).decayed_usage, 0.0);
  ASSERT_EQ(model_->accounts().account(Find("a")).allocated_total, 0);
  EXPECT_EQ(model_->accounts().account(Find("b")).decayed_usage, 0.0);

  Add(2, "a", 100);  // submitted first
  Add(3, "b", 200);
  std::unique_ptr<QueueOrder> fair = MakeQueueOrder("fair_share", kHalfLife);
  fair->Begin(*model_, Everyone(), {});
  EXPECT_THAT(Drain(*fair), ElementsAre(3, 2));

  std::unique_ptr<QueueOrder> fifo = MakeQueueOrder("fifo", kHalfLife);
  fifo->Begin(*model_, Everyone(), {});
  EXPECT_THAT(Drain(*fifo), ElementsAre(2, 3));
}

TEST_F(QueueOrderTest, FairShareIsHierarchical) {
  Use(R"(
accounts:
  - name: lab
    weight: 1
    children:
      - {name: alice, weight: 1}
      - {name: bob, weight: 1}
  - {name: other, weight: 1}
)");
  // other holds 8 GPUs; alice holds 4. At the top level lab (4) goes before other (8); inside
  // lab, bob (0) before alice (4).
  Add(1, "other", 0, 100, 8);
  Start(1, 0);
  Add(2, "alice", 0, 100, 4);
  Start(2, 0);
  Add(3, "other", 10);
  Add(4, "alice", 11);
  Add(5, "bob", 12);
  std::unique_ptr<QueueOrder> order = MakeQueueOrder("fair_share", kHalfLife);
  order->Begin(*model_, Everyone(), {});
  EXPECT_THAT(Drain(*order), ElementsAre(5, 4, 3));
}

TEST_F(QueueOrderTest, EachJobOncePerPass) {
  Use(kTwoAccounts);
  for (JobId i = 1; i <= 6; ++i) Add(i, i % 2 ? "a" : "b", static_cast<Time>(i), i <= 2 ? 1000 : 100);
  for (std::string_view name : {"fifo", "fair_share"}) {
    std::unique_ptr<QueueOrder> order = MakeQueueOrder(name, kHalfLife);
    order->Begin(*model_, Everyone(), {});
    std::vector<JobId> seen = Drain(*order);
    std::sort(seen.begin(), seen.end());
    EXPECT_THAT(seen, ElementsAre(1, 2, 3, 4, 5, 6)) << name;
    // A new pass hands them out again.
    order->Begin(*model_, Everyone(), {});
    EXPECT_EQ(Drain(*order).size(), 6u) << name;
  }
}

TEST_F(QueueOrderTest, FirstJobsGoAheadOfTheirClassInTheOrderGiven) {
  Use(kTwoAccounts);
  Add(1, "a", 10);
  Add(2, "b", 20);
  Add(3, "a", 30);
  Add(4, "b", 40);
  Add(5, "b", 50, /*priority=*/1000);
  for (std::string_view name : {"fifo", "fair_share"}) {
    std::unique_ptr<QueueOrder> order = MakeQueueOrder(name, kHalfLife);
    order->Begin(*model_, Everyone(), /*first=*/{4, 3});
    std::vector<JobId> seen = Drain(*order);
    // The higher class still comes first; inside the normal class, 4 then 3, then the rest.
    ASSERT_EQ(seen.size(), 5u) << name;
    EXPECT_EQ(seen[0], 5u) << name;
    EXPECT_EQ(seen[1], 4u) << name;
    EXPECT_EQ(seen[2], 3u) << name;
    std::vector<JobId> rest(seen.begin() + 3, seen.end());
    std::sort(rest.begin(), rest.end());
    EXPECT_THAT(rest, ElementsAre(1, 2)) << name;
  }
}

}  // namespace
}  // namespace allot
