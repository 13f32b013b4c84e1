#include "core/free_capacity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/cluster.h"

namespace allot {
namespace {

// One pool, one pod, two leaves:
//   leaf1 / r1: a (8 GPUs), b (8 GPUs)      leaf2 / r2: c (8 GPUs)
// plus d (4 GPUs, 4 CPUs, 1000 bytes of memory) alone in leaf2.
class FreeCapacityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pool_ = cluster_.AddPool({.name = "p"}).value();
    a_ = AddNode({.name = "a",
                  .pod = "pod1",
                  .leaf = "leaf1",
                  .nvlink = "r1",
                  .gpus = 8,
                  .cpus = 64,
                  .memory_bytes = 1 << 20});
    b_ = AddNode({.name = "b", .pod = "pod1", .leaf = "leaf1", .nvlink = "r1", .gpus = 8});
    c_ = AddNode({.name = "c", .pod = "pod1", .leaf = "leaf2", .nvlink = "r2", .gpus = 8});
    d_ = AddNode(
        {.name = "d", .pod = "pod1", .leaf = "leaf2", .gpus = 4, .cpus = 4, .memory_bytes = 1000});
    ASSERT_TRUE(cluster_.Finalize().ok());
  }

  NodeIndex AddNode(NodeOptions options) {
    options.pool = pool_;
    StatusOr<NodeIndex> node = cluster_.AddNode(options);
    EXPECT_TRUE(node.ok()) << node.status().ToString();
    return node.ok() ? *node : 0;
  }

  DomainIndex Root() const { return cluster_.pool(pool_).root; }
  DomainIndex Pod() const { return cluster_.AncestorAt(a_, Level::kPod); }
  DomainIndex Leaf1() const { return cluster_.AncestorAt(a_, Level::kLeaf); }
  DomainIndex Leaf2() const { return cluster_.AncestorAt(c_, Level::kLeaf); }
  DomainIndex R1() const { return cluster_.node(a_).nvlink; }

  Cluster cluster_;
  PoolIndex pool_ = 0;
  NodeIndex a_ = 0, b_ = 0, c_ = 0, d_ = 0;
};

TEST_F(FreeCapacityTest, StartsWithEveryGpuFree) {
  FreeCapacity free(cluster_);
  EXPECT_EQ(free.PoolGpus(pool_), 28);
  EXPECT_EQ(free.DomainGpus(Root()), 28);
  EXPECT_EQ(free.DomainGpus(Pod()), 28);
  EXPECT_EQ(free.DomainGpus(Leaf1()), 16);
  EXPECT_EQ(free.DomainGpus(Leaf2()), 12);
  EXPECT_EQ(free.DomainGpus(R1()), 16);
  EXPECT_EQ(free.VisibleGpus(d_), 4);
  EXPECT_EQ(free.FreeGpuMask(a_), 0xFFu);
  EXPECT_EQ(free.FreeGpuMask(d_), 0xFu);
  EXPECT_EQ(free.FreeCpus(a_), 64);
  EXPECT_EQ(free.FreeMemory(a_), 1 << 20);
}

TEST_F(FreeCapacityTest, TasksThatFitCountsPerNodeNotPerDomain) {
  FreeCapacity free(cluster_);
  // Leave nodes with 8 (a), 4 (b), 3 (c) and 4 (d) free.
  free.Take(b_, 4, 0, 0);
  free.Take(c_, 5, 0, 0);
  // Leaf1: a fits two 4-GPU tasks, b one. Leaf2: c (3 free) none, d one.
  EXPECT_EQ(free.TasksThatFit(Leaf1(), 4, 100), 3);
  EXPECT_EQ(free.TasksThatFit(Leaf2(), 4, 100), 1);
  EXPECT_EQ(free.TasksThatFit(Root(), 4, 100), 4);
  // 19 GPUs are free in the pool but only 1 task of 8 fits: tasks do not span nodes.
  EXPECT_EQ(free.PoolGpus(pool_), 19);
  EXPECT_EQ(free.TasksThatFit(Root(), 8, 100), 1);
  EXPECT_EQ(free.TasksThatFit(Root(), 3, 100), 2 + 1 + 1 + 1);
  EXPECT_EQ(free.TasksThatFit(Root(), 1, 100), 19);
  EXPECT_EQ(free.TasksThatFit(Leaf2(), 5, 100), 0);
  EXPECT_EQ(free.TasksThatFit(Root(), kMaxGpusPerNode, 100), 0);
}

TEST_F(FreeCapacityTest, TasksThatFitStopsAtEnough) {
  FreeCapacity free(cluster_);
  int tasks = free.TasksThatFit(Root(), 1, 5);
  EXPECT_GE(tasks, 5);
  EXPECT_LT(tasks, 28);
  EXPECT_EQ(free.TasksThatFit(Root(), 1, 1000), 28);
}

TEST_F(FreeCapacityTest, TakePicksLowestGpuIndexes) {
  FreeCapacity free(cluster_);
  EXPECT_EQ(free.Take(a_, 3, 8, 1000), 0b111u);
  EXPECT_EQ(free.Take(a_, 2, 8, 1000), 0b11000u);
  EXPECT_EQ(free.FreeGpuMask(a_), 0b11100000u);
  EXPECT_EQ(free.VisibleGpus(a_), 3);
  EXPECT_EQ(free.UnallocatedGpus(a_), 3);
  EXPECT_EQ(free.FreeCpus(a_), 64 - 16);
  EXPECT_EQ(free.FreeMemory(a_), (1 << 20) - 2000);
}

TEST_F(FreeCapacityTest, GiveRestoresTheExactGpus) {
  FreeCapacity free(cluster_);
  uint32_t first = free.Take(a_, 2, 4, 100);
  uint32_t second = free.Take(a_, 2, 4, 100);
  ASSERT_EQ(second, 0b1100u);
  free.Give(a_, first, 4, 100);
  EXPECT_EQ(free.FreeGpuMask(a_), 0xFFu & ~0b1100u);
  EXPECT_EQ(free.VisibleGpus(a_), 6);
  // The freed low GPUs are handed out again first.
  EXPECT_EQ(free.Take(a_, 3, 0, 0), 0b10011u);
  free.Give(a_, 0b10011u, 0, 0);
  free.Give(a_, second, 4, 100);
  EXPECT_EQ(free.FreeGpuMask(a_), 0xFFu);
  EXPECT_EQ(free.FreeCpus(a_), 64);
  EXPECT_EQ(free.FreeMemory(a_), 1 << 20);
  EXPECT_EQ(free.PoolGpus(pool_), 28);
}

TEST_F(FreeCapacityTest, DomainCountsUpdateAtEveryLevel) {
  FreeCapacity free(cluster_);
  uint32_t mask = free.Take(b_, 6, 0, 0);
  EXPECT_EQ(free.DomainGpus(R1()), 10);
  EXPECT_EQ(free.DomainGpus(Leaf1()), 10);
  EXPECT_EQ(free.DomainGpus(Leaf2()), 12);
  EXPECT_EQ(free.DomainGpus(Pod()), 22);
  EXPECT_EQ(free.DomainGpus(Root()), 22);
  EXPECT_EQ(free.TasksThatFit(R1(), 2, 100), 4 + 1);

  free.Take(d_, 4, 0, 0);
  EXPECT_EQ(free.DomainGpus(cluster_.node(d_).nvlink), 0);
  EXPECT_EQ(free.DomainGpus(Leaf2()), 8);
  EXPECT_EQ(free.DomainGpus(Root()), 18);

  free.Give(b_, mask, 0, 0);
  EXPECT_EQ(free.DomainGpus(R1()), 16);
  EXPECT_EQ(free.DomainGpus(Root()), 24);
  EXPECT_EQ(free.TasksThatFit(R1(), 2, 100), 8);
}

TEST_F(FreeCapacityTest, TakeCountAndGiveCountMoveCountsOnly) {
  FreeCapacity free(cluster_);
  free.TakeCount(c_, 5, 2, 10);
  EXPECT_EQ(free.VisibleGpus(c_), 3);
  EXPECT_EQ(free.DomainGpus(Leaf2()), 7);
  EXPECT_EQ(free.TasksThatFit(Leaf2(), 4, 100), 1);
  free.GiveCount(c_, 5, 2, 10);
  EXPECT_EQ(free.VisibleGpus(c_), 8);
  EXPECT_EQ(free.DomainGpus(Leaf2()), 12);
  EXPECT_EQ(free.TasksThatFit(Leaf2(), 4, 100), 3);
}

TEST_F(FreeCapacityTest, UnschedulableNodesVanishFromCounts) {
  FreeCapacity free(cluster_);
  free.Take(a_, 2, 0, 0);
  free.SetSchedulable(a_, false);
  EXPECT_EQ(free.VisibleGpus(a_), 0);
  EXPECT_EQ(free.UnallocatedGpus(a_), 6);  // still not allocated to anyone
  EXPECT_EQ(free.DomainGpus(R1()), 8);
  EXPECT_EQ(free.DomainGpus(Root()), 20);
  EXPECT_EQ(free.TasksThatFit(Leaf1(), 4, 100), 2);

  // Setting the same state again changes nothing.
  free.SetSchedulable(a_, false);
  EXPECT_EQ(free.DomainGpus(Root()), 20);

  free.SetSchedulable(a_, true);
  EXPECT_EQ(free.VisibleGpus(a_), 6);
  EXPECT_EQ(free.DomainGpus(Root()), 26);
  EXPECT_EQ(free.TasksThatFit(Leaf1(), 4, 100), 3);
}

TEST_F(FreeCapacityTest, GiveOnAnUnschedulableNodeStaysInvisible) {
  FreeCapacity free(cluster_);
  uint32_t mask = free.Take(c_, 8, 0, 0);
  free.SetSchedulable(c_, false);
  free.Give(c_, mask, 0, 0);
  EXPECT_EQ(free.VisibleGpus(c_), 0);
  EXPECT_EQ(free.UnallocatedGpus(c_), 8);
  EXPECT_EQ(free.DomainGpus(Leaf2()), 4);
  free.SetSchedulable(c_, true);
  EXPECT_EQ(free.DomainGpus(Leaf2()), 12);
}

TEST(FreeCapacityStateTest, NodesThatStartDrainingOrDownAreNotCounted) {
  Cluster cluster;
  PoolIndex pool = cluster.AddPool({.name = "p"}).value();
  NodeIndex up = cluster.AddNode({.name = "up", .pool = pool, .gpus = 8}).value();
  NodeIndex draining =
      cluster.AddNode({.name = "dr", .pool = pool, .gpus = 8, .state = NodeState::kDraining})
          .value();
  NodeIndex down =
      cluster.AddNode({.name = "dn", .pool = pool, .gpus = 8, .state = NodeState::kDown}).value();
  ASSERT_TRUE(cluster.Finalize().ok());
  FreeCapacity free(cluster);
  EXPECT_EQ(free.VisibleGpus(up), 8);
  EXPECT_EQ(free.VisibleGpus(draining), 0);
  EXPECT_EQ(free.VisibleGpus(down), 0);
  EXPECT_EQ(free.PoolGpus(pool), 8);
  EXPECT_EQ(free.TasksThatFit(cluster.pool(pool).root, 8, 100), 1);
}

TEST_F(FreeCapacityTest, HoldHidesGpusAndUnholdReturnsThem) {
  FreeCapacity free(cluster_);
  free.Hold(a_, 5);
  EXPECT_EQ(free.HeldGpus(a_), 5);
  EXPECT_EQ(free.VisibleGpus(a_), 3);
  EXPECT_EQ(free.UnallocatedGpus(a_), 8);
  EXPECT_EQ(free.DomainGpus(R1()), 11);
  EXPECT_EQ(free.DomainGpus(Root()), 23);
  EXPECT_EQ(free.TasksThatFit(R1(), 4, 100), 2);  // b only; a shows 3

  free.Unhold(a_, 2);
  EXPECT_EQ(free.VisibleGpus(a_), 5);
  EXPECT_EQ(free.TasksThatFit(R1(), 4, 100), 3);
  free.Unhold(a_, 3);
  EXPECT_EQ(free.HeldGpus(a_), 0);
  EXPECT_EQ(free.DomainGpus(Root()), 28);
}

TEST_F(FreeCapacityTest, HeldGpusOnADrainedNodeComeBackWithTheNode) {
  FreeCapacity free(cluster_);
  free.Hold(a_, 2);
  free.SetSchedulable(a_, false);
  EXPECT_EQ(free.DomainGpus(R1()), 8);
  free.SetSchedulable(a_, true);
  EXPECT_EQ(free.VisibleGpus(a_), 6);
  EXPECT_EQ(free.DomainGpus(R1()), 14);
}

TEST_F(FreeCapacityTest, CopyIsAnIndependentScratchCopy) {
  FreeCapacity free(cluster_);
  free.Take(a_, 4, 0, 0);

  FreeCapacity scratch = free;
  scratch.Take(b_, 8, 0, 0);
  scratch.Hold(c_, 8);
  scratch.SetSchedulable(d_, false);
  EXPECT_EQ(scratch.PoolGpus(pool_), 4);

  EXPECT_EQ(free.PoolGpus(pool_), 24);
  EXPECT_EQ(free.VisibleGpus(b_), 8);
  EXPECT_EQ(free.HeldGpus(c_), 0);
  EXPECT_EQ(free.VisibleGpus(d_), 4);
  EXPECT_EQ(free.TasksThatFit(Root(), 8, 100), 2);
  EXPECT_EQ(&scratch.cluster(), &free.cluster());
}

}  // namespace
}  // namespace allot
