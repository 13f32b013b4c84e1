// Property tests of a scheduling pass over random pools, account trees, policies and
// workloads: a pass never overcommits a pool, and what it decides is complete: a second pass at
// the same instant, with no event in between, starts and preempts nothing.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "core/config.h"
#include "sched/scheduler.h"

namespace allot {
namespace {

constexpr uint32_t kSeeds = 400;
constexpr int kRounds = 6;

struct RandomCase {
  std::string yaml;
  std::vector<std::string> leaves;
  std::vector<std::string> pools;
  bool one_gpu_nodes = false;
  bool plain = false;
};

struct Choices {
  std::vector<std::string> orders = {"fifo", "fair_share", "sjf", "predicted", "las"};
  std::vector<std::string> backfills = {"easy", "conservative", "none", "first_fit"};
  bool one_gpu_nodes = false;  // pools of 8-32 one-GPU nodes, as the SWF traces have
  bool random_depth = false;   // policy.reservation_depth of 1-4 (else the backfill's default)
  // No quotas, no preemption, no critical class, starvation on: every shortcut may act.
  bool plain = false;
  // Whether backfill with reservations (easy, conservative) may meet preemption.
  bool reservations_with_preemption = true;
};

int Pick(std::mt19937& random, int low, int high) {
  return std::uniform_int_distribution<int>(low, high)(random);
}

// Up to 3 pools of 2-6 nodes (1, 2, 4 or 8 GPUs each, in NVLink domains of 2 nodes), an account
// tree of 2 organisations with 2 leaves each, quotas (mostly) with random nominal, borrow and
// lend limits, and a random queue order, backfill mode, starvation guard and preemption.
RandomCase MakeCase(std::mt19937& random, const Choices& choices) {
  RandomCase result;
  result.one_gpu_nodes = choices.one_gpu_nodes;
  result.plain = choices.plain;
  std::string yaml = "pools:\n";
  std::string nodes = "nodes:\n";
  std::vector<int> pool_gpus;
  int pool_count = Pick(random, 1, 3);
  for (int p = 0; p < pool_count; ++p) {
    std::string name = fmt::format("p{}", p);
    result.pools.push_back(name);
    yaml += fmt::format("  - name: {}\n", name);
    int node_count = choices.one_gpu_nodes ? Pick(random, 8, 32) : Pick(random, 2, 6);
    int gpus = choices.one_gpu_nodes ? 1 : std::vector<int>{1, 2, 4, 8}[static_cast<size_t>(Pick(random, 0, 3))];
    for (int n = 0; n < node_count; ++n) {
      nodes += fmt::format("  - {{name: {}n{}, pool: {}, gpus: {}, nvlink: {}nv{}}}\n", name, n, name, gpus,
                           name, n / 2);
    }
    pool_gpus.push_back(node_count * gpus);
  }
  yaml += nodes;
  yaml += "accounts:\n";
  auto quota = [&](int pool) -> std::string {
    int total = pool_gpus[static_cast<size_t>(pool)];
    std::string text = fmt::format("{{nominal: {}", Pick(random, 0, total / 2));
    if (Pick(random, 0, 2) == 0) text += fmt::format(", borrow_limit: {}", Pick(random, 0, total));
    if (Pick(random, 0, 2) == 0) text += fmt::format(", lend_limit: {}", Pick(random, 0, total / 2));
    return text + "}";
  };
  bool quotas = Pick(random, 0, 3) != 0 && !choices.plain;
  for (int org = 0; org < 2; ++org) {
    yaml += fmt::format("  - name: org{}\n    children:\n", org);
    for (int leaf = 0; leaf < 2; ++leaf) {
      std::string name = fmt::format("org{}team{}", org, leaf);
      result.leaves.push_back(name);
      yaml += fmt::format("      - name: {}\n", name);
      if (!quotas) continue;
      yaml += "        quota: {";
      for (int p = 0; p < pool_count; ++p) yaml += fmt::format("{}p{}: {}", p ? ", " : "", p, quota(p));
      yaml += "}\n";
    }
  }
  const std::string& order = choices.orders[static_cast<size_t>(Pick(random, 0, static_cast<int>(choices.orders.size()) - 1))];
  const std::string& backfill = choices.backfills[static_cast<size_t>(Pick(random, 0, static_cast<int>(choices.backfills.size()) - 1))];
  bool reclaim = Pick(random, 0, 1) == 1;
  bool priority = Pick(random, 0, 1) == 1;
  if (!choices.reservations_with_preemption && (backfill == "easy" || backfill == "conservative")) {
    reclaim = priority = false;
  }
  if (choices.plain) reclaim = priority = false;
  yaml += fmt::format(
      "policy:\n  queue_order: {}\n  backfill: {}\n  starvation_after: {}\n"
      "  preemption: {{reclaim: {}, priority: {}}}\n",
      order, backfill, Pick(random, 0, 1) || choices.plain ? "2h" : "0", reclaim, priority);
  if (choices.random_depth) yaml += fmt::format("  reservation_depth: {}\n", Pick(random, 1, 4));
  result.yaml = yaml;
  return result;
}

JobSpec RandomJob(std::mt19937& random, const RandomCase& shape) {
  JobSpec spec;
  spec.account = shape.leaves[static_cast<size_t>(Pick(random, 0, static_cast<int>(shape.leaves.size()) - 1))];
  spec.tasks = Pick(random, 0, 3) == 0 ? Pick(random, 2, 4) : 1;
  spec.gpus_per_task = std::vector<int>{1, 1, 2, 4, 8}[static_cast<size_t>(Pick(random, 0, 4))];
  spec.time_limit = Pick(random, 1, 20) * 600;
  spec.preemptible = Pick(random, 0, 3) != 0;
  spec.priority_class = std::vector<std::string>{"normal", "normal", "low", "critical"}[static_cast<size_t>(Pick(random, 0, 3))];
  if (Pick(random, 0, 4) == 0) {
    spec.pools = {shape.pools[static_cast<size_t>(Pick(random, 0, static_cast<int>(shape.pools.size()) - 1))]};
  }
  if (Pick(random, 0, 4) == 0) spec.topology = {Level::kNvlink, TopologyMode::kRequired};
  if (shape.plain) spec.priority_class = Pick(random, 0, 2) ? "normal" : "low";
  if (shape.one_gpu_nodes) {
    spec.tasks = Pick(random, 0, 1) ? 1 : Pick(random, 2, 12);
    spec.gpus_per_task = 1;
    spec.topology = {};
  }
  return spec;
}

std::string Describe(const Scheduler& scheduler, const PassResult& pass) {
  std::string out;
  for (const Decision& decision : pass.decisions) out += "  " + FormatDecision(scheduler.model(), decision) + "\n";
  return out;
}

// Every pool's running jobs hold at most its GPUs, and the free index, the accounts' usage and
// the pending index agree with the jobs (starts taken back must leave no trace).
void ExpectNoOvercommit(const Scheduler& scheduler, const std::string& context) {
  const Model& model = scheduler.model();
  const AccountTree& tree = model.accounts();
  std::map<PoolIndex, int64_t> held;
  std::map<std::pair<AccountIndex, PoolIndex>, int64_t> by_account;
  size_t pending = 0;
  for (const auto& [id, job] : model.jobs()) {
    if (job.state == JobState::kRunning) {
      held[job.pool] += job.gpus();
      for (AccountIndex at = job.account; at != tree.root(); at = tree.account(at).parent) {
        by_account[{at, job.pool}] += job.gpus();
      }
    } else {
      ++pending;
      EXPECT_EQ(model.pending().count(id), 1u) << context;
    }
  }
  EXPECT_EQ(model.pending().size(), pending) << context;
  for (PoolIndex pool = 0; pool < model.cluster().pools().size(); ++pool) {
    int64_t total = model.cluster().pool(pool).total_gpus;
    EXPECT_LE(held[pool], total) << context;
    EXPECT_EQ(held[pool] + model.free().PoolGpus(pool), total) << context;
    for (AccountIndex at = 0; at < tree.accounts().size(); ++at) {
      if (at == tree.root()) continue;
      int64_t expected = by_account[std::make_pair(at, pool)];
      EXPECT_EQ(tree.account(at).allocated[pool], expected) << context << "account " << at;
    }
  }
}

// Running jobs that end by `now`, in id order, with when: each at its limit if reached by then,
// a third of the others at `now`.
std::vector<std::pair<JobId, Time>> Ends(std::mt19937& random, const Scheduler& scheduler, Time now) {
  std::vector<JobId> running;
  for (const auto& [id, job] : scheduler.model().jobs()) {
    if (job.state == JobState::kRunning) running.push_back(id);
  }
  std::sort(running.begin(), running.end());
  std::vector<std::pair<JobId, Time>> ends;
  for (JobId id : running) {
    Time limit = scheduler.model().FindJob(id)->expected_end();
    if (limit <= now || Pick(random, 0, 2) == 0) ends.emplace_back(id, std::min(now, limit));
  }
  return ends;
}

// Runs kRounds of arrivals, two passes at the same instant, and ends (at the jobs' limits, or
// earlier), so passes meet running jobs, reservations made earlier and borrowers to reclaim.
// Checks every pass for overcommit and, with `fixed_point`, that the second pass does nothing.
void RunRandomCases(const Choices& choices, bool fixed_point) {
  int checked = 0;
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    std::mt19937 random(seed);
    RandomCase shape = MakeCase(random, choices);
    StatusOr<Config> config = ParseConfig(shape.yaml, "random");
    ASSERT_TRUE(config.ok()) << config.status().message() << "\n" << shape.yaml;
    StatusOr<std::unique_ptr<Scheduler>> created = Scheduler::Create(std::move(*config));
    ASSERT_TRUE(created.ok()) << created.status().message();
    Scheduler& scheduler = **created;
    JobId next_id = 1;
    Time now = 0;
    for (int round = 0; round < kRounds; ++round) {
      for (int i = Pick(random, 1, 12); i > 0; --i) (void)scheduler.Submit(next_id++, RandomJob(random, shape), now);
      PassResult first = scheduler.RunPass(now);
      std::string context = fmt::format("seed {} round {} t={}\n{}first pass:\n{}", seed, round, now,
                                        shape.yaml, Describe(scheduler, first));
      ExpectNoOvercommit(scheduler, context);
      PassResult second = scheduler.RunPass(now);
      ExpectNoOvercommit(scheduler, context);
      if (fixed_point) {
        EXPECT_EQ(second.started, 0u) << context << "second pass:\n" << Describe(scheduler, second);
        EXPECT_EQ(second.preempted, 0u) << context << "second pass:\n" << Describe(scheduler, second);
      }
      if (::testing::Test::HasFailure()) return;
      ++checked;
      now += Pick(random, 1, 3600);
      for (auto [id, end] : Ends(random, scheduler, now)) ASSERT_TRUE(scheduler.Complete(id, end).ok());
    }
  }
  EXPECT_EQ(checked, static_cast<int>(kSeeds) * kRounds);
}

TEST(FixedPointTest, PassesNeverOvercommitAPool) {
  RunRandomCases(Choices{}, /*fixed_point=*/false);
}

// Queue orders that a pass does not change (fair share's does, as jobs start) and every backfill
// mode, with reclaim and priority preemption, except that backfill with reservations does not
// meet preemption here: a reservation planned before a preemption in the same pass can still
// move at the next one (see docs/scheduling.md, "Passes").
TEST(FixedPointTest, ASecondPassAtTheSameInstantStartsAndPreemptsNothing) {
  Choices choices;
  choices.orders = {"fifo", "sjf", "predicted"};
  choices.reservations_with_preemption = false;
  RunRandomCases(choices, /*fixed_point=*/true);
}

TEST(FixedPointTest, LasPassesAreFixedPoints) {
  Choices choices;
  choices.orders = {"las"};
  choices.backfills = {"easy", "first_fit"};
  choices.reservations_with_preemption = false;
  RunRandomCases(choices, /*fixed_point=*/true);
}

// A pass stops early, and passes over jobs too big or too long for what is free, only where
// looking at them could change nothing. Two schedulers, one looking at every job, meet the same
// random workloads (longer queues than above) and must decide the same, pass after pass.
void ExpectSameDecisionsLookingAtEveryJob(const Choices& choices) {
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    std::mt19937 random(seed);
    RandomCase shape = MakeCase(random, choices);
    std::unique_ptr<Scheduler> schedulers[2];
    for (auto& scheduler : schedulers) {
      StatusOr<Config> config = ParseConfig(shape.yaml, "random");
      ASSERT_TRUE(config.ok()) << config.status().message();
      scheduler = std::move(Scheduler::Create(std::move(*config)).value());
    }
    Scheduler& quick = *schedulers[0];
    Scheduler& thorough = *schedulers[1];
    thorough.set_look_at_every_job(true);
    JobId next_id = 1;
    Time now = 0;
    for (int round = 0; round < 3 * kRounds; ++round) {
      for (int i = Pick(random, 1, 24); i > 0; --i) {
        JobSpec spec = RandomJob(random, shape);
        (void)quick.Submit(next_id, spec, now);
        (void)thorough.Submit(next_id, spec, now);
        ++next_id;
      }
      std::string expected = Describe(thorough, thorough.RunPass(now));
      std::string actual = Describe(quick, quick.RunPass(now));
      ASSERT_EQ(actual, expected) << "seed " << seed << " round " << round << " t=" << now << "\n" << shape.yaml;
      now += Pick(random, 1, 3600);
      for (auto [id, end] : Ends(random, quick, now)) {
        ASSERT_TRUE(quick.Complete(id, end).ok());
        ASSERT_TRUE(thorough.Complete(id, end).ok()) << "job " << id << " runs in one scheduler only";
      }
      // Now and then a node goes down (its jobs requeued or ended), drains, or comes back: pools
      // then hold GPUs that quota counts and placement cannot use.
      if (Pick(random, 0, 2) == 0) {
        auto node = static_cast<NodeIndex>(Pick(random, 0, static_cast<int>(quick.model().cluster().nodes().size()) - 1));
        auto state = std::vector<NodeState>{NodeState::kDown, NodeState::kDraining, NodeState::kUp}[static_cast<size_t>(Pick(random, 0, 2))];
        ASSERT_TRUE(quick.SetNodeState(node, state, now).ok());
        ASSERT_TRUE(thorough.SetNodeState(node, state, now).ok());
      }
    }
  }
}

TEST(FixedPointTest, PassingOverJobsChangesNoDecision) {
  ExpectSameDecisionsLookingAtEveryJob(Choices{});
}

// Where passing over matters most: fifo with reservations, which move (Replan) after starts.
TEST(FixedPointTest, PassingOverJobsChangesNoReservation) {
  Choices choices;
  choices.orders = {"fifo"};
  choices.backfills = {"easy", "conservative"};
  ExpectSameDecisionsLookingAtEveryJob(choices);
  choices.one_gpu_nodes = true;
  ExpectSameDecisionsLookingAtEveryJob(choices);
  choices.random_depth = true;
  ExpectSameDecisionsLookingAtEveryJob(choices);
  choices.one_gpu_nodes = false;
  ExpectSameDecisionsLookingAtEveryJob(choices);
  choices.plain = true;
  ExpectSameDecisionsLookingAtEveryJob(choices);
  choices.one_gpu_nodes = true;
  ExpectSameDecisionsLookingAtEveryJob(choices);
}

}  // namespace
}  // namespace allot
