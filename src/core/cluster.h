// The static shape of the pool: nodes, pools and the topology tree they sit in.
//
// Topology is a tree of domains, site > pod > leaf > nvlink > node. Each pool (one GPU model at
// one site) gets its own tree rooted at a site-level domain, so every domain belongs to exactly one
// pool and placement inside a pool never has to filter foreign nodes. A node that names no NVLink
// domain is its own one (a plain 8-GPU server is its own NVLink island).
//
//   Cluster cluster;
//   PoolIndex pool = cluster.AddPool({.name = "nacc-b200", .site = "daejeon", .gpu_model = "B200"});
//   cluster.AddNode({.name = "n1", .pool = pool, .pod = "p1", .leaf = "l1", .nvlink = "r1",
//                    .gpus = 8});
//   ALLOT_RETURN_IF_ERROR(cluster.Finalize());
//
// Not thread-safe; immutable after Finalize() except for node states.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace allot {

using NodeIndex = uint32_t;
using DomainIndex = uint32_t;
using PoolIndex = uint32_t;
inline constexpr DomainIndex kNoDomain = UINT32_MAX;

// GPUs are tracked per node in a bitmask and a histogram of this width.
inline constexpr int kMaxGpusPerNode = 16;

enum class Level : uint8_t { kSite = 0, kPod = 1, kLeaf = 2, kNvlink = 3 };
inline constexpr int kLevelCount = 4;

std::string_view LevelName(Level level);
StatusOr<Level> ParseLevel(std::string_view name);

enum class NodeState : uint8_t { kUp, kDraining, kDown };
std::string_view NodeStateName(NodeState state);

// GPU model names compare without regard to case: "h200" in a Slurm --gres means the pool's "H200".
bool SameGpuModel(std::string_view a, std::string_view b);
StatusOr<NodeState> ParseNodeState(std::string_view name);

struct Domain {
  std::string name;  // path below the pool, e.g. "pod1/leaf3/nvl2"; "" for the pool's root
  Level level = Level::kSite;
  PoolIndex pool = 0;
  DomainIndex parent = kNoDomain;
  std::vector<DomainIndex> children;  // empty at the nvlink level
  std::vector<NodeIndex> nodes;       // only at the nvlink level
  int total_gpus = 0;
};

struct Node {
  std::string name;
  PoolIndex pool = 0;
  DomainIndex nvlink = kNoDomain;  // the innermost domain; its ancestors give the rest of the path
  uint32_t pool_position = 0;      // index of the node in its pool's `nodes`
  int gpus = 0;
  int cpus = 0;
  int64_t memory_bytes = 0;
  NodeState state = NodeState::kUp;
};

struct Pool {
  std::string name;
  std::string site;
  std::string gpu_model;
  DomainIndex root = kNoDomain;
  std::vector<NodeIndex> nodes;
  std::array<std::vector<DomainIndex>, kLevelCount> domains_by_level;
  int total_gpus = 0;
  int max_gpus_per_node = 0;
};

struct PoolOptions {
  std::string name;
  std::string site;
  std::string gpu_model;
};

struct NodeOptions {
  std::string name;
  PoolIndex pool = 0;
  std::string pod;     // "" puts the node in the pool's default pod
  std::string leaf;    // "" puts the node in its pod's default leaf
  std::string nvlink;  // "" makes the node its own NVLink domain
  int gpus = 8;
  int cpus = 0;
  int64_t memory_bytes = 0;
  NodeState state = NodeState::kUp;
};

class Cluster {
 public:
  StatusOr<PoolIndex> AddPool(const PoolOptions& options);
  StatusOr<NodeIndex> AddNode(const NodeOptions& options);
  // Checks the whole shape and fills per-level domain lists and GPU totals. Call once, after the
  // last AddNode; no AddPool/AddNode afterwards.
  Status Finalize();

  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Pool>& pools() const { return pools_; }
  const std::vector<Domain>& domains() const { return domains_; }
  const Node& node(NodeIndex index) const { return nodes_[index]; }
  const Pool& pool(PoolIndex index) const { return pools_[index]; }
  const Domain& domain(DomainIndex index) const { return domains_[index]; }

  StatusOr<PoolIndex> FindPool(std::string_view name) const;
  StatusOr<NodeIndex> FindNode(std::string_view name) const;
  // The domain of `level` that contains `node`.
  DomainIndex AncestorAt(NodeIndex node, Level level) const;
  // "daejeon/pod1/leaf3/nvl2": a domain's full name for messages and logs.
  std::string DomainPath(DomainIndex domain) const;

  void SetNodeState(NodeIndex node, NodeState state) { nodes_[node].state = state; }
  int total_gpus() const { return total_gpus_; }

 private:
  DomainIndex FindOrAddDomain(PoolIndex pool, DomainIndex parent, Level level,
                              std::string_view local_name);

  std::vector<Node> nodes_;
  std::vector<Pool> pools_;
  std::vector<Domain> domains_;
  std::unordered_map<std::string, PoolIndex> pool_by_name_;
  std::unordered_map<std::string, NodeIndex> node_by_name_;
  std::unordered_map<std::string, DomainIndex> domain_by_key_;  // "<pool>|<level>|<path>"
  int total_gpus_ = 0;
  bool finalized_ = false;
};

}  // namespace allot
