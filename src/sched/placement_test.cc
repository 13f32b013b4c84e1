#include "sched/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/free_capacity.h"

namespace allot {
namespace {

using ::testing::HasSubstr;

constexpr PoolIndex kPool = 0;
constexpr int64_t kGi = int64_t{1} << 30;

// One leaf with two NVLink domains of two 8-GPU nodes each: a1 a2 | b1 b2.
constexpr std::string_view kFlat = R"(
pools:
  - name: p
nodes:
  - {name: a, count: 2, pool: p, pod: pod1, leaf: leaf1, nvlink: nvA, gpus: 8}
  - {name: b, count: 2, pool: p, pod: pod1, leaf: leaf1, nvlink: nvB, gpus: 8}
)";

// Two leaves: leaf1 holds nvA (a1 a2) and nvB (b1 b2); leaf2 holds nvC (c1 c2).
constexpr std::string_view kTwoLeaves = R"(
pools:
  - name: p
nodes:
  - {name: a, count: 2, pool: p, pod: pod1, leaf: leaf1, nvlink: nvA, gpus: 8}
  - {name: b, count: 2, pool: p, pod: pod1, leaf: leaf1, nvlink: nvB, gpus: 8}
  - {name: c, count: 2, pool: p, pod: pod1, leaf: leaf2, nvlink: nvC, gpus: 8}
)";

// Nodes that declare CPUs and memory (n1 n2 in one NVLink domain), and one that declares neither.
constexpr std::string_view kResources = R"(
pools:
  - name: p
  - name: q
nodes:
  - {name: n, count: 2, pool: p, nvlink: nv, gpus: 8, cpus: 32, memory: 256Gi}
  - {name: bare, pool: q, gpus: 8}
)";

Config Load(std::string_view yaml) {
  StatusOr<Config> config = ParseConfig(yaml, "test");
  EXPECT_TRUE(config.ok()) << config.status().message();
  return std::move(config).value();
}

PlacementRequest Request(int tasks, int gpus_per_task, TopologyConstraint topology = {},
                         int cpus_per_task = 0, int64_t memory_per_task = 0) {
  PlacementRequest request;
  request.tasks = tasks;
  request.gpus_per_task = gpus_per_task;
  request.cpus_per_task = cpus_per_task;
  request.memory_per_task = memory_per_task;
  request.topology = topology;
  return request;
}

constexpr TopologyConstraint kNvlinkRequired{Level::kNvlink, TopologyMode::kRequired};
constexpr TopologyConstraint kNvlinkPreferred{Level::kNvlink, TopologyMode::kPreferred};

class PlacementTest : public ::testing::Test {
 protected:
  void Use(std::string_view yaml) {
    config_ = Load(yaml);
    free_.emplace(config_.cluster);
  }

  NodeIndex NodeNamed(std::string_view name) const { return cluster().FindNode(name).value(); }
  std::string NameOf(NodeIndex node) const { return cluster().node(node).name; }
  const Cluster& cluster() const { return config_.cluster; }
  FreeCapacity& free() { return *free_; }

  // Node name -> tasks placed there.
  std::map<std::string, int> TasksByNode(const Placement& placement) const {
    std::map<std::string, int> by_node;
    for (const TaskAllocation& task : placement.tasks) by_node[NameOf(task.node)]++;
    return by_node;
  }
  std::set<DomainIndex> NvlinkDomains(const Placement& placement) const {
    std::set<DomainIndex> domains;
    for (const TaskAllocation& task : placement.tasks) {
      domains.insert(cluster().AncestorAt(task.node, Level::kNvlink));
    }
    return domains;
  }

  Config config_;
  std::optional<FreeCapacity> free_;
};

TEST_F(PlacementTest, SingleGpuGoesToFullestNodeThatFits) {
  Use(kFlat);
  free().Take(NodeNamed("a1"), 5, 0, 0);  // a1 has 3 free, every other node 8
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(1, 1));
  ASSERT_TRUE(placement.has_value());
  ASSERT_EQ(placement->tasks.size(), 1u);
  EXPECT_EQ(NameOf(placement->tasks[0].node), "a1");
}

TEST_F(PlacementTest, OneTaskPerNodePutsEachTaskOnADistinctNode) {
  Use(kFlat);
  // Without the rule, two 2-GPU tasks share the fullest node.
  free().Take(NodeNamed("a1"), 4, 0, 0);
  std::optional<Placement> shared = FindPlacement(free(), kPool, Request(2, 2));
  ASSERT_TRUE(shared.has_value());
  EXPECT_EQ(TasksByNode(*shared), (std::map<std::string, int>{{"a1", 2}}));

  PlacementRequest distinct = Request(2, 2);
  distinct.one_task_per_node = true;
  std::optional<Placement> placement = FindPlacement(free(), kPool, distinct);
  ASSERT_TRUE(placement.has_value());
  std::map<std::string, int> by_node = TasksByNode(*placement);
  EXPECT_EQ(by_node.size(), 2u);
  for (const auto& [node, tasks] : by_node) EXPECT_EQ(tasks, 1) << node;

  // Four nodes hold four such tasks, never five.
  distinct.tasks = 4;
  EXPECT_TRUE(FindPlacement(free(), kPool, distinct).has_value());
  distinct.tasks = 5;
  EXPECT_FALSE(FindPlacement(free(), kPool, distinct).has_value());
  EXPECT_THAT(WhyNeverPlaceable(cluster(), kPool, distinct).value_or(""), HasSubstr("at most 4 such tasks"));
}

TEST_F(PlacementTest, AWholeNodeRequestMustAskForAllOfANodesGpus) {
  Use(kFlat);
  PlacementRequest exclusive = Request(2, 4);
  exclusive.one_task_per_node = true;
  exclusive.whole_nodes = true;
  EXPECT_THAT(WhyNeverPlaceable(cluster(), kPool, exclusive).value_or(""), HasSubstr("--gpus-per-node=8"));
  exclusive.gpus_per_task = 8;
  EXPECT_FALSE(WhyNeverPlaceable(cluster(), kPool, exclusive).has_value());
}

TEST_F(PlacementTest, BestFitKeepsAnEmptyNvlinkDomainWhole) {
  Use(kFlat);
  free().Take(NodeNamed("a1"), 8, 0, 0);  // nvA: 8 free (a2), nvB: 16 free
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(1, 4));
  ASSERT_TRUE(placement.has_value());
  ASSERT_EQ(placement->tasks.size(), 1u);
  EXPECT_EQ(NameOf(placement->tasks[0].node), "a2");

  // Same the other way round: the partly used domain is preferred whichever index it has.
  Use(kFlat);
  free().Take(NodeNamed("b2"), 2, 0, 0);  // nvB: 14 free, nvA: 16 free
  placement = FindPlacement(free(), kPool, Request(1, 1));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(NameOf(placement->tasks[0].node), "b2");
}

TEST_F(PlacementTest, RequiredNvlinkGangStaysInOneDomain) {
  Use(kFlat);
  free().Take(NodeNamed("a1"), 4, 0, 0);  // nvA cannot hold 2 x 8 any more
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(2, 8, kNvlinkRequired));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(TasksByNode(*placement), (std::map<std::string, int>{{"b1", 1}, {"b2", 1}}));
  EXPECT_EQ(placement->domain, cluster().AncestorAt(NodeNamed("b1"), Level::kNvlink));
  EXPECT_EQ(NvlinkDomains(*placement).size(), 1u);
}

TEST_F(PlacementTest, RequiredNvlinkFailsWhenNoSingleDomainHasRoom) {
  Use(kFlat);
  free().Take(NodeNamed("a1"), 8, 0, 0);
  free().Take(NodeNamed("b1"), 8, 0, 0);
  ASSERT_EQ(free().PoolGpus(kPool), 16);  // enough in total, but 8 in each domain
  EXPECT_FALSE(FindPlacement(free(), kPool, Request(2, 8, kNvlinkRequired)).has_value());

  // Unconstrained, the same gang spans the two domains.
  std::optional<Placement> spanning = FindPlacement(free(), kPool, Request(2, 8));
  ASSERT_TRUE(spanning.has_value());
  EXPECT_EQ(TasksByNode(*spanning), (std::map<std::string, int>{{"a2", 1}, {"b2", 1}}));
  EXPECT_EQ(NvlinkDomains(*spanning).size(), 2u);
}

TEST_F(PlacementTest, PreferredFallsBackToWiderLevel) {
  Use(kTwoLeaves);
  // 3 x 8 fits in no NVLink domain (2 nodes each), but in leaf1 (4 nodes).
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(3, 8, kNvlinkPreferred));
  ASSERT_TRUE(placement.has_value());
  ASSERT_EQ(placement->tasks.size(), 3u);
  EXPECT_EQ(cluster().domain(placement->domain).level, Level::kLeaf);
  for (const TaskAllocation& task : placement->tasks) {
    EXPECT_EQ(cluster().AncestorAt(task.node, Level::kLeaf), placement->domain);
  }
  EXPECT_EQ(TasksByNode(*placement).size(), 3u);  // one 8-GPU task per node

  // Required: no fallback.
  EXPECT_FALSE(FindPlacement(free(), kPool, Request(3, 8, kNvlinkRequired)).has_value());

  // A preferred gang that fits its own level stays there.
  placement = FindPlacement(free(), kPool, Request(2, 8, kNvlinkPreferred));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(cluster().domain(placement->domain).level, Level::kNvlink);

  // 5 x 8 fits in no leaf (4 and 2 nodes): preferred leaf falls back to the pod.
  placement = FindPlacement(free(), kPool,
                            Request(5, 8, {Level::kLeaf, TopologyMode::kPreferred}));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(cluster().domain(placement->domain).level, Level::kPod);
  EXPECT_EQ(placement->tasks.size(), 5u);
}

TEST_F(PlacementTest, UnconstrainedGangSpansDomainsAndLeaves) {
  Use(kTwoLeaves);
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(6, 8));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(TasksByNode(*placement).size(), 6u);
  EXPECT_EQ(NvlinkDomains(*placement).size(), 3u);
  // One more task than the pool holds never fits.
  EXPECT_FALSE(FindPlacement(free(), kPool, Request(7, 8)).has_value());
}

TEST_F(PlacementTest, SmallTasksShareANode) {
  Use(kFlat);
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(4, 2));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(TasksByNode(*placement).size(), 1u);  // 4 x 2 GPUs fit on one 8-GPU node
}

TEST_F(PlacementTest, CpusPerTaskAreRespected) {
  Use(kResources);
  NodeIndex n1 = NodeNamed("n1");
  free().Take(n1, 1, 16, 0);  // n1: 7 GPUs, 16 CPUs free; n2: 8 GPUs, 32 CPUs

  // n1 is the fuller node, but lacks the CPUs.
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(1, 1, {}, 24));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(NameOf(placement->tasks[0].node), "n2");
  EXPECT_EQ(placement->tasks[0].cpus, 24);

  // Exactly the CPUs left on n1: it goes there.
  placement = FindPlacement(free(), kPool, Request(1, 1, {}, 16));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(NameOf(placement->tasks[0].node), "n1");
}

TEST_F(PlacementTest, CpusLimitTasksPerNode) {
  Use(kResources);
  // 16 CPUs per task on 32-CPU nodes: two tasks per node although each node has 8 GPUs.
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(4, 1, {}, 16));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(TasksByNode(*placement), (std::map<std::string, int>{{"n1", 2}, {"n2", 2}}));
  EXPECT_FALSE(FindPlacement(free(), kPool, Request(5, 1, {}, 16)).has_value());
}

TEST_F(PlacementTest, MemoryPerTaskIsRespected) {
  Use(kResources);
  free().Take(NodeNamed("n1"), 1, 0, 200 * kGi);  // n1: 56Gi left
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(1, 1, {}, 0, 100 * kGi));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(NameOf(placement->tasks[0].node), "n2");
  EXPECT_EQ(placement->tasks[0].memory_bytes, 100 * kGi);
  // 3 x 100Gi: n2 holds two, n1 none.
  EXPECT_FALSE(FindPlacement(free(), kPool, Request(3, 1, {}, 0, 100 * kGi)).has_value());
}

TEST_F(PlacementTest, NodesThatDeclareNoCpusDoNotLimitThem) {
  Use(kResources);
  PoolIndex q = cluster().FindPool("q").value();
  std::optional<Placement> placement = FindPlacement(free(), q, Request(1, 1, {}, 1000, 1000 * kGi));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(NameOf(placement->tasks[0].node), "bare");
}

TEST_F(PlacementTest, UnschedulableAndHeldGpusAreNotUsed) {
  Use(kFlat);
  free().SetSchedulable(NodeNamed("a1"), false);
  free().Hold(NodeNamed("a2"), 8);
  std::optional<Placement> placement = FindPlacement(free(), kPool, Request(2, 8));
  ASSERT_TRUE(placement.has_value());
  EXPECT_EQ(TasksByNode(*placement), (std::map<std::string, int>{{"b1", 1}, {"b2", 1}}));
  EXPECT_FALSE(FindPlacement(free(), kPool, Request(3, 8)).has_value());
}

TEST_F(PlacementTest, WhyNeverPlaceableExplainsTooLargeForAnyNvlinkDomain) {
  Use(kFlat);
  std::optional<std::string> why = WhyNeverPlaceable(cluster(), kPool, Request(3, 8, kNvlinkRequired));
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("nvlink"));
  EXPECT_THAT(*why, HasSubstr("24 GPUs"));  // what it needs
  EXPECT_THAT(*why, HasSubstr("16 GPUs"));  // the largest domain
  EXPECT_THAT(*why, HasSubstr("at most 2"));

  // A GPU count per task larger than any node.
  why = WhyNeverPlaceable(cluster(), kPool, Request(1, 16));
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("at most 8"));

  // More than the whole pool.
  why = WhyNeverPlaceable(cluster(), kPool, Request(5, 8));
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("'p'"));
  EXPECT_THAT(*why, HasSubstr("at most 4"));
}

TEST_F(PlacementTest, WhyNeverPlaceableIsNulloptForPlaceableRequests) {
  Use(kFlat);
  // Busy right now does not matter: the question is about an idle pool.
  free().Take(NodeNamed("a1"), 8, 0, 0);
  free().Take(NodeNamed("b1"), 8, 0, 0);
  EXPECT_EQ(WhyNeverPlaceable(cluster(), kPool, Request(2, 8, kNvlinkRequired)), std::nullopt);
  EXPECT_EQ(WhyNeverPlaceable(cluster(), kPool, Request(3, 8, kNvlinkPreferred)), std::nullopt);
  EXPECT_EQ(WhyNeverPlaceable(cluster(), kPool, Request(4, 8)), std::nullopt);
  EXPECT_EQ(WhyNeverPlaceable(cluster(), kPool, Request(32, 1)), std::nullopt);
}

TEST_F(PlacementTest, WhyNeverPlaceableCountsCpus) {
  Use(kResources);
  std::optional<std::string> why = WhyNeverPlaceable(cluster(), kPool, Request(5, 1, {}, 16));
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("CPUs"));
  EXPECT_EQ(WhyNeverPlaceable(cluster(), kPool, Request(4, 1, {}, 16)), std::nullopt);
}

TEST_F(PlacementTest, DescribeNoFitTellsTopologyFromResources) {
  Use(kFlat);
  free().Take(NodeNamed("a1"), 8, 0, 0);
  free().Take(NodeNamed("b1"), 8, 0, 0);
  bool topology_bound = false;
  std::string why = DescribeNoFit(free(), kPool, Request(2, 8, kNvlinkRequired), &topology_bound);
  EXPECT_TRUE(topology_bound);
  EXPECT_THAT(why, HasSubstr("nvlink"));
  why = DescribeNoFit(free(), kPool, Request(3, 8), &topology_bound);
  EXPECT_FALSE(topology_bound);
  EXPECT_THAT(why, HasSubstr("16 free"));
}

TEST_F(PlacementTest, FindPlacementNeverChangesTheFreeCapacity) {
  Use(kTwoLeaves);
  free().Take(NodeNamed("a1"), 3, 0, 0);
  free().Take(NodeNamed("c2"), 8, 0, 0);
  free().Hold(NodeNamed("b1"), 2);
  free().SetSchedulable(NodeNamed("b2"), false);

  auto snapshot = [&] {
    std::vector<std::vector<int64_t>> state;
    for (NodeIndex node = 0; node < cluster().nodes().size(); ++node) {
      state.push_back({free().VisibleGpus(node), free().UnallocatedGpus(node), free().HeldGpus(node),
                       static_cast<int64_t>(free().FreeGpuMask(node)), free().FreeCpus(node),
                       free().FreeMemory(node)});
    }
    for (DomainIndex domain = 0; domain < cluster().domains().size(); ++domain) {
      std::vector<int64_t> row = {free().DomainGpus(domain)};
      for (int g = 1; g <= 8; ++g) row.push_back(free().TasksThatFit(domain, g, 1000));
      state.push_back(row);
    }
    return state;
  };
  auto before = snapshot();
  const std::vector<PlacementRequest> requests = {
      Request(1, 1),
      Request(2, 8, kNvlinkRequired),
      Request(3, 8, kNvlinkPreferred),
      Request(4, 4),
      Request(9, 8),  // does not fit
      Request(2, 8, {Level::kLeaf, TopologyMode::kRequired}),
  };
  for (const PlacementRequest& request : requests) {
    (void)FindPlacement(free(), kPool, request);
    bool topology_bound = false;
    (void)DescribeNoFit(free(), kPool, request, &topology_bound);
  }
  EXPECT_EQ(snapshot(), before);
}

}  // namespace
}  // namespace allot
