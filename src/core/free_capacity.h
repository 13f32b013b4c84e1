// FreeCapacity: which GPUs are free, indexed by topology domain, updated incrementally.
//
// Placement must never scan every node per job. Each domain keeps its free GPU count and a
// histogram of its nodes by free GPUs, so "how many tasks of g GPUs fit in this domain" is a
// sum over at most kMaxGpusPerNode buckets, and taking or giving GPUs on a node updates the node's
// ancestors only (four domains).
//
// Nodes that are draining or down count as having no free GPUs. Holds are GPUs kept idle on
// purpose (for a backfill reservation): they stay free but are invisible to placement.
//
//   FreeCapacity free(cluster);
//   int fits = free.TasksThatFit(domain, /*gpus_per_task=*/8, /*enough=*/16);
//   uint32_t gpus = free.Take(node, 8, /*cpus=*/64, /*memory=*/0);
//   free.Give(node, gpus, 64, 0);
//
// The object is a plain value: copying it gives a scratch copy to try "what if" on (the
// reservation planner does). Not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/cluster.h"

namespace allot {

class FreeCapacity {
 public:
  explicit FreeCapacity(const Cluster& cluster);

  // GPUs free for placement on a node: 0 unless the node is up; holds excluded.
  int VisibleGpus(NodeIndex node) const {
    const NodeFree& free = nodes_[node];
    return free.schedulable ? free.free_gpus - free.held_gpus : 0;
  }
  // GPUs not allocated to any job, whatever the node's state and holds.
  int UnallocatedGpus(NodeIndex node) const { return nodes_[node].free_gpus; }
  int HeldGpus(NodeIndex node) const { return nodes_[node].held_gpus; }
  bool Schedulable(NodeIndex node) const { return nodes_[node].schedulable; }
  uint32_t FreeGpuMask(NodeIndex node) const { return nodes_[node].gpu_mask; }
  int FreeCpus(NodeIndex node) const { return nodes_[node].cpus; }
  int64_t FreeMemory(NodeIndex node) const { return nodes_[node].memory_bytes; }

  // Free GPUs visible in a domain (sum over its up nodes).
  int DomainGpus(DomainIndex domain) const { return domains_[domain].free_gpus; }
  int PoolGpus(PoolIndex pool) const { return DomainGpus(cluster_->pool(pool).root); }
  // How many tasks of `gpus_per_task` GPUs fit in the domain, counting each node's visible GPUs
  // (tasks do not span nodes), at most `per_node` on one node when it is positive (a job that
  // wants distinct nodes passes 1); stops counting at `enough`.
  int TasksThatFit(DomainIndex domain, int gpus_per_task, int enough, int per_node = 0) const;

  // Allocates `gpus` GPUs (lowest free indexes first) plus CPUs and memory on an up node with that
  // many visible GPUs; returns the GPU bitmask taken. The caller checks fit first.
  uint32_t Take(NodeIndex node, int gpus, int cpus, int64_t memory_bytes);
  // Takes exactly the GPUs of `gpu_mask` (all free): undoes a Give, as when a trial is rolled back.
  void TakeMask(NodeIndex node, uint32_t gpu_mask, int cpus, int64_t memory_bytes);
  // Returns what Take gave out.
  void Give(NodeIndex node, uint32_t gpu_mask, int cpus, int64_t memory_bytes);
  // Takes or gives GPU counts without choosing GPU indexes: for scratch copies that plan ahead.
  void TakeCount(NodeIndex node, int gpus, int cpus, int64_t memory_bytes);
  void GiveCount(NodeIndex node, int gpus, int cpus, int64_t memory_bytes);

  // Keeps `gpus` of the node's free GPUs away from placement; Unhold returns them.
  void Hold(NodeIndex node, int gpus);
  void Unhold(NodeIndex node, int gpus);

  // Called when a node changes state: draining and down nodes leave the index.
  void SetSchedulable(NodeIndex node, bool schedulable);

  const Cluster& cluster() const { return *cluster_; }

 private:
  struct NodeFree {
    uint32_t gpu_mask = 0;  // bit i set: GPU i is not allocated
    int16_t free_gpus = 0;  // popcount(gpu_mask), kept for speed
    int16_t held_gpus = 0;
    int32_t cpus = 0;
    int64_t memory_bytes = 0;
    bool schedulable = true;
  };
  struct DomainFree {
    int32_t free_gpus = 0;
    std::array<int32_t, kMaxGpusPerNode + 1> nodes_by_free{};
  };

  // Moves the node's visible count from `before` to `after` in every ancestor domain.
  void Reindex(NodeIndex node, int before, int after);

  const Cluster* cluster_;
  std::vector<NodeFree> nodes_;
  std::vector<DomainFree> domains_;
};

}  // namespace allot
