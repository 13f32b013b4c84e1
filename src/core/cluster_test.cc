#include "core/cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

PoolIndex MustAddPool(Cluster& cluster, const PoolOptions& options) {
  StatusOr<PoolIndex> pool = cluster.AddPool(options);
  EXPECT_TRUE(pool.ok()) << pool.status().ToString();
  return pool.ok() ? *pool : 0;
}

NodeIndex MustAddNode(Cluster& cluster, const NodeOptions& options) {
  StatusOr<NodeIndex> node = cluster.AddNode(options);
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  return node.ok() ? *node : 0;
}

std::vector<std::string> DomainNames(const Cluster& cluster,
                                     const std::vector<DomainIndex>& domains) {
  std::vector<std::string> names;
  for (DomainIndex domain : domains) names.push_back(cluster.domain(domain).name);
  return names;
}

// Two pools: "b200" with two pods (3 nodes in two NVLink racks plus one node in another pod) and
// "h100" with a single plain server.
class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    b200_ = MustAddPool(cluster_, {.name = "b200", .site = "daejeon", .gpu_model = "B200"});
    h100_ = MustAddPool(cluster_, {.name = "h100", .gpu_model = "H100"});
    n1_ = MustAddNode(
        cluster_,
        {.name = "n1", .pool = b200_, .pod = "pod1", .leaf = "leaf1", .nvlink = "r1", .gpus = 8});
    n2_ = MustAddNode(
        cluster_,
        {.name = "n2", .pool = b200_, .pod = "pod1", .leaf = "leaf1", .nvlink = "r1", .gpus = 8});
    n3_ = MustAddNode(
        cluster_,
        {.name = "n3", .pool = b200_, .pod = "pod1", .leaf = "leaf2", .nvlink = "r2", .gpus = 4});
    n4_ = MustAddNode(
        cluster_,
        {.name = "n4", .pool = b200_, .pod = "pod2", .leaf = "leaf1", .nvlink = "r1", .gpus = 2});
    h1_ = MustAddNode(cluster_, {.name = "h1", .pool = h100_, .gpus = 8});
  }

  Cluster cluster_;
  PoolIndex b200_ = 0, h100_ = 0;
  NodeIndex n1_ = 0, n2_ = 0, n3_ = 0, n4_ = 0, h1_ = 0;
};

TEST_F(ClusterTest, PoolsKeepTheirOptions) {
  ASSERT_TRUE(cluster_.Finalize().ok());
  EXPECT_THAT(cluster_.pools(), SizeIs(2));
  EXPECT_EQ(cluster_.pool(b200_).name, "b200");
  EXPECT_EQ(cluster_.pool(b200_).site, "daejeon");
  EXPECT_EQ(cluster_.pool(b200_).gpu_model, "B200");
  // A pool without a site is its own site.
  EXPECT_EQ(cluster_.pool(h100_).site, "h100");
  EXPECT_THAT(cluster_.pool(b200_).nodes, ElementsAre(n1_, n2_, n3_, n4_));
  EXPECT_THAT(cluster_.pool(h100_).nodes, ElementsAre(h1_));
}

TEST_F(ClusterTest, EachPoolHasItsOwnTree) {
  ASSERT_TRUE(cluster_.Finalize().ok());
  const Pool& b200 = cluster_.pool(b200_);
  const Domain& root = cluster_.domain(b200.root);
  EXPECT_EQ(root.level, Level::kSite);
  EXPECT_EQ(root.parent, kNoDomain);
  EXPECT_EQ(root.name, "");
  EXPECT_EQ(root.pool, b200_);

  // pod1 and pod2 under the site; pod2's "leaf1" and "r1" are distinct from pod1's.
  EXPECT_THAT(DomainNames(cluster_, root.children), UnorderedElementsAre("pod1", "pod2"));
  EXPECT_THAT(DomainNames(cluster_, b200.domains_by_level[static_cast<int>(Level::kPod)]),
              UnorderedElementsAre("pod1", "pod2"));
  EXPECT_THAT(DomainNames(cluster_, b200.domains_by_level[static_cast<int>(Level::kLeaf)]),
              UnorderedElementsAre("pod1/leaf1", "pod1/leaf2", "pod2/leaf1"));
  EXPECT_THAT(DomainNames(cluster_, b200.domains_by_level[static_cast<int>(Level::kNvlink)]),
              UnorderedElementsAre("pod1/leaf1/r1", "pod1/leaf2/r2", "pod2/leaf1/r1"));
  EXPECT_THAT(b200.domains_by_level[static_cast<int>(Level::kSite)], ElementsAre(b200.root));

  // Nodes sharing an NVLink name in one leaf share the domain.
  EXPECT_EQ(cluster_.node(n1_).nvlink, cluster_.node(n2_).nvlink);
  EXPECT_THAT(cluster_.domain(cluster_.node(n1_).nvlink).nodes, ElementsAre(n1_, n2_));
  EXPECT_NE(cluster_.node(n1_).nvlink, cluster_.node(n4_).nvlink);
  EXPECT_TRUE(cluster_.domain(cluster_.node(n1_).nvlink).children.empty());

  // Every domain of a pool's lists belongs to that pool.
  for (const Pool& pool : cluster_.pools()) {
    for (int level = 0; level < kLevelCount; ++level) {
      for (DomainIndex domain : pool.domains_by_level[level]) {
        EXPECT_EQ(cluster_.domain(domain).pool, cluster_.FindPool(pool.name).value());
        EXPECT_EQ(static_cast<int>(cluster_.domain(domain).level), level);
      }
    }
  }
}

TEST_F(ClusterTest, ParentLinksMatchChildren) {
  ASSERT_TRUE(cluster_.Finalize().ok());
  for (DomainIndex index = 0; index < cluster_.domains().size(); ++index) {
    const Domain& domain = cluster_.domain(index);
    for (DomainIndex child : domain.children) {
      EXPECT_EQ(cluster_.domain(child).parent, index);
      EXPECT_EQ(static_cast<int>(cluster_.domain(child).level), static_cast<int>(domain.level) + 1);
    }
  }
}

TEST_F(ClusterTest, FinalizeSumsGpusAtEveryLevel) {
  ASSERT_TRUE(cluster_.Finalize().ok());
  EXPECT_EQ(cluster_.total_gpus(), 8 + 8 + 4 + 2 + 8);
  EXPECT_EQ(cluster_.pool(b200_).total_gpus, 22);
  EXPECT_EQ(cluster_.pool(h100_).total_gpus, 8);
  EXPECT_EQ(cluster_.pool(b200_).max_gpus_per_node, 8);
  EXPECT_EQ(cluster_.domain(cluster_.pool(b200_).root).total_gpus, 22);
  EXPECT_EQ(cluster_.domain(cluster_.AncestorAt(n1_, Level::kPod)).total_gpus, 20);
  EXPECT_EQ(cluster_.domain(cluster_.AncestorAt(n4_, Level::kPod)).total_gpus, 2);
  EXPECT_EQ(cluster_.domain(cluster_.AncestorAt(n1_, Level::kLeaf)).total_gpus, 16);
  EXPECT_EQ(cluster_.domain(cluster_.AncestorAt(n3_, Level::kLeaf)).total_gpus, 4);
  EXPECT_EQ(cluster_.domain(cluster_.node(n2_).nvlink).total_gpus, 16);
}

TEST_F(ClusterTest, FinalizeTwiceDoesNotDoubleCount) {
  ASSERT_TRUE(cluster_.Finalize().ok());
  ASSERT_TRUE(cluster_.Finalize().ok());
  EXPECT_EQ(cluster_.total_gpus(), 30);
  EXPECT_EQ(cluster_.domain(cluster_.pool(b200_).root).total_gpus, 22);
}

TEST_F(ClusterTest, NodeWithoutNvlinkIsItsOwnDomain) {
  ASSERT_TRUE(cluster_.Finalize().ok());
  const Domain& island = cluster_.domain(cluster_.node(h1_).nvlink);
  EXPECT_EQ(island.level, Level::kNvlink);
  EXPECT_THAT(island.nodes, ElementsAre(h1_));
  EXPECT_EQ(island.total_gpus, 8);
  // Without pod and leaf, the node lands in the pool's default pod and leaf.
  EXPECT_EQ(island.name, "pod/leaf/h1");
  EXPECT_EQ(cluster_.domain(cluster_.AncestorAt(h1_, Level::kPod)).name, "pod");
}

TEST_F(ClusterTest, AncestorAtWalksUpFromTheNode) {
  ASSERT_TRUE(cluster_.Finalize().ok());
  EXPECT_EQ(cluster_.AncestorAt(n3_, Level::kNvlink), cluster_.node(n3_).nvlink);
  EXPECT_EQ(cluster_.domain(cluster_.AncestorAt(n3_, Level::kLeaf)).name, "pod1/leaf2");
  EXPECT_EQ(cluster_.domain(cluster_.AncestorAt(n3_, Level::kPod)).name, "pod1");
  EXPECT_EQ(cluster_.AncestorAt(n3_, Level::kSite), cluster_.pool(b200_).root);
  EXPECT_EQ(cluster_.AncestorAt(n1_, Level::kLeaf), cluster_.AncestorAt(n2_, Level::kLeaf));
  EXPECT_NE(cluster_.AncestorAt(n1_, Level::kLeaf), cluster_.AncestorAt(n3_, Level::kLeaf));
  EXPECT_EQ(cluster_.AncestorAt(n1_, Level::kPod), cluster_.AncestorAt(n3_, Level::kPod));
}

TEST_F(ClusterTest, DomainPathNamesPoolAndPath) {
  ASSERT_TRUE(cluster_.Finalize().ok());
  EXPECT_EQ(cluster_.DomainPath(cluster_.node(n3_).nvlink), "b200:pod1/leaf2/r2");
  EXPECT_EQ(cluster_.DomainPath(cluster_.AncestorAt(n4_, Level::kPod)), "b200:pod2");
  EXPECT_EQ(cluster_.DomainPath(cluster_.pool(h100_).root), "h100");
}

TEST_F(ClusterTest, FindPoolAndNode) {
  EXPECT_EQ(cluster_.FindPool("h100").value(), h100_);
  EXPECT_EQ(cluster_.FindNode("n3").value(), n3_);

  StatusOr<PoolIndex> missing = cluster_.FindPool("a100");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("unknown pool 'a100'"));
  EXPECT_THAT(missing.status().message(), HasSubstr("b200, h100"));

  StatusOr<NodeIndex> missing_node = cluster_.FindNode("n9");
  ASSERT_FALSE(missing_node.ok());
  EXPECT_EQ(missing_node.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing_node.status().message(), HasSubstr("unknown node 'n9'"));
}

TEST_F(ClusterTest, DuplicatePoolIsAnError) {
  StatusOr<PoolIndex> again = cluster_.AddPool({.name = "b200"});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(), HasSubstr("pool 'b200' is defined twice"));
}

TEST_F(ClusterTest, DuplicateNodeIsAnErrorEvenAcrossPools) {
  StatusOr<NodeIndex> again = cluster_.AddNode({.name = "n1", .pool = h100_});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(), HasSubstr("node 'n1' is defined twice"));
  EXPECT_THAT(cluster_.nodes(), SizeIs(5));
}

TEST_F(ClusterTest, GpusOutOfRangeIsAnError) {
  for (int gpus : {0, -1, kMaxGpusPerNode + 1}) {
    StatusOr<NodeIndex> node = cluster_.AddNode({.name = "bad", .pool = b200_, .gpus = gpus});
    ASSERT_FALSE(node.ok()) << gpus;
    EXPECT_EQ(node.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(node.status().message(), HasSubstr("gpus must be between 1 and 16"));
  }
  EXPECT_TRUE(cluster_.AddNode({.name = "wide", .pool = b200_, .gpus = kMaxGpusPerNode}).ok());
}

TEST_F(ClusterTest, NodeInUnknownPoolIsAnError) {
  StatusOr<NodeIndex> node = cluster_.AddNode({.name = "lost", .pool = 7});
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), StatusCode::kNotFound);
}

TEST_F(ClusterTest, NegativeCpusOrMemoryIsAnError) {
  StatusOr<NodeIndex> node = cluster_.AddNode({.name = "x", .pool = b200_, .cpus = -1});
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), StatusCode::kInvalidArgument);
  node = cluster_.AddNode({.name = "y", .pool = b200_, .memory_bytes = -1});
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ClusterTest, NothingCanBeAddedAfterFinalize) {
  ASSERT_TRUE(cluster_.Finalize().ok());
  StatusOr<PoolIndex> pool = cluster_.AddPool({.name = "late"});
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), StatusCode::kFailedPrecondition);
  StatusOr<NodeIndex> node = cluster_.AddNode({.name = "late", .pool = b200_});
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), StatusCode::kFailedPrecondition);
}

TEST(ClusterValidationTest, PoolWithoutNodesFailsFinalize) {
  Cluster cluster;
  MustAddPool(cluster, {.name = "empty"});
  Status status = cluster.Finalize();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("pool 'empty' has no nodes"));
}

TEST(ClusterValidationTest, NamesAreRequired) {
  Cluster cluster;
  EXPECT_EQ(cluster.AddPool({}).status().code(), StatusCode::kInvalidArgument);
  PoolIndex pool = MustAddPool(cluster, {.name = "p"});
  EXPECT_EQ(cluster.AddNode({.pool = pool}).status().code(), StatusCode::kInvalidArgument);
}

TEST(ClusterValidationTest, NodeNamesThatNodeListsCannotHoldAreRefused) {
  Cluster cluster;
  PoolIndex pool = MustAddPool(cluster, {.name = "p"});
  for (const char* name : {"gpu[1]", "a,b", "gpu 1", "rack/n1", "gpu%41", "gpu\t1"}) {
    StatusOr<NodeIndex> added = cluster.AddNode({.name = name, .pool = pool});
    ASSERT_FALSE(added.ok()) << name;
    EXPECT_THAT(added.status().message(), HasSubstr("a node name cannot contain")) << name;
  }
  EXPECT_TRUE(cluster.AddNode({.name = "gpu-001.rack_2", .pool = pool}).ok());
}

TEST(LevelTest, NamesRoundTrip) {
  for (Level level : {Level::kSite, Level::kPod, Level::kLeaf, Level::kNvlink}) {
    EXPECT_EQ(ParseLevel(LevelName(level)).value(), level);
  }
  StatusOr<Level> bad = ParseLevel("rack");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("unknown topology level 'rack'"));
}

TEST(NodeStateTest, NamesRoundTripAndDrainIsAnAlias) {
  for (NodeState state : {NodeState::kUp, NodeState::kDraining, NodeState::kDown}) {
    EXPECT_EQ(ParseNodeState(NodeStateName(state)).value(), state);
  }
  EXPECT_EQ(ParseNodeState("drain").value(), NodeState::kDraining);
  EXPECT_EQ(ParseNodeState("sideways").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace allot
