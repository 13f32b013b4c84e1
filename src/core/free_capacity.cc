#include "core/free_capacity.h"

#include <algorithm>

#include <bit>
#include <cassert>

namespace allot {

FreeCapacity::FreeCapacity(const Cluster& cluster)
    : cluster_(&cluster), nodes_(cluster.nodes().size()), domains_(cluster.domains().size()) {
  for (NodeIndex index = 0; index < nodes_.size(); ++index) {
    const Node& node = cluster.node(index);
    NodeFree& free = nodes_[index];
    free.gpu_mask = (1u << node.gpus) - 1;
    free.free_gpus = static_cast<int16_t>(node.gpus);
    free.cpus = node.cpus;
    free.memory_bytes = node.memory_bytes;
    free.schedulable = node.state == NodeState::kUp;
    // Every node starts in bucket 0 of its domains; Reindex moves it to its visible count.
    for (DomainIndex domain = node.nvlink; domain != kNoDomain;
         domain = cluster.domain(domain).parent) {
      domains_[domain].nodes_by_free[0]++;
    }
    Reindex(index, 0, VisibleGpus(index));
  }
}

int FreeCapacity::TasksThatFit(DomainIndex domain, int gpus_per_task, int enough, int per_node) const {
  const DomainFree& free = domains_[domain];
  if (free.free_gpus < gpus_per_task) return 0;
  int tasks = 0;
  // No node of the pool has more GPUs than its largest: start there, not at kMaxGpusPerNode.
  int largest = cluster_->pool(cluster_->domain(domain).pool).max_gpus_per_node;
  for (int k = std::min(largest, kMaxGpusPerNode); k >= gpus_per_task; --k) {
    int on_node = per_node > 0 ? std::min(per_node, k / gpus_per_task) : k / gpus_per_task;
    tasks += free.nodes_by_free[k] * on_node;
    if (tasks >= enough) return tasks;
  }
  return tasks;
}

void FreeCapacity::Reindex(NodeIndex node, int before, int after) {
  if (before == after) return;
  for (DomainIndex domain = cluster_->node(node).nvlink; domain != kNoDomain;
       domain = cluster_->domain(domain).parent) {
    DomainFree& free = domains_[domain];
    free.nodes_by_free[before]--;
    free.nodes_by_free[after]++;
    free.free_gpus += after - before;
  }
}

uint32_t FreeCapacity::Take(NodeIndex node, int gpus, int cpus, int64_t memory_bytes) {
  NodeFree& free = nodes_[node];
  assert(VisibleGpus(node) >= gpus && "Take beyond the node's visible GPUs");
  int before = VisibleGpus(node);
  uint32_t taken = 0;
  uint32_t mask = free.gpu_mask;
  for (int i = 0; i < gpus; ++i) {
    uint32_t lowest = mask & (~mask + 1);
    taken |= lowest;
    mask &= ~lowest;
  }
  free.gpu_mask = mask;
  free.free_gpus = static_cast<int16_t>(free.free_gpus - gpus);
  free.cpus -= cpus;
  free.memory_bytes -= memory_bytes;
  Reindex(node, before, VisibleGpus(node));
  return taken;
}

void FreeCapacity::TakeMask(NodeIndex node, uint32_t gpu_mask, int cpus, int64_t memory_bytes) {
  NodeFree& free = nodes_[node];
  assert((free.gpu_mask & gpu_mask) == gpu_mask && "TakeMask of GPUs that are not free");
  int before = VisibleGpus(node);
  free.gpu_mask &= ~gpu_mask;
  free.free_gpus = static_cast<int16_t>(free.free_gpus - std::popcount(gpu_mask));
  free.cpus -= cpus;
  free.memory_bytes -= memory_bytes;
  Reindex(node, before, VisibleGpus(node));
}

void FreeCapacity::Give(NodeIndex node, uint32_t gpu_mask, int cpus, int64_t memory_bytes) {
  NodeFree& free = nodes_[node];
  assert((free.gpu_mask & gpu_mask) == 0 && "Give of GPUs that are already free");
  int before = VisibleGpus(node);
  free.gpu_mask |= gpu_mask;
  free.free_gpus = static_cast<int16_t>(free.free_gpus + std::popcount(gpu_mask));
  free.cpus += cpus;
  free.memory_bytes += memory_bytes;
  Reindex(node, before, VisibleGpus(node));
}

void FreeCapacity::TakeCount(NodeIndex node, int gpus, int cpus, int64_t memory_bytes) {
  int before = VisibleGpus(node);
  nodes_[node].free_gpus = static_cast<int16_t>(nodes_[node].free_gpus - gpus);
  nodes_[node].cpus -= cpus;
  nodes_[node].memory_bytes -= memory_bytes;
  assert(nodes_[node].free_gpus >= nodes_[node].held_gpus);
  Reindex(node, before, VisibleGpus(node));
}

void FreeCapacity::GiveCount(NodeIndex node, int gpus, int cpus, int64_t memory_bytes) {
  int before = VisibleGpus(node);
  nodes_[node].free_gpus = static_cast<int16_t>(nodes_[node].free_gpus + gpus);
  nodes_[node].cpus += cpus;
  nodes_[node].memory_bytes += memory_bytes;
  assert(nodes_[node].free_gpus <= cluster_->node(node).gpus);
  Reindex(node, before, VisibleGpus(node));
}

void FreeCapacity::Hold(NodeIndex node, int gpus) {
  int before = VisibleGpus(node);
  nodes_[node].held_gpus = static_cast<int16_t>(nodes_[node].held_gpus + gpus);
  assert(nodes_[node].held_gpus <= nodes_[node].free_gpus);
  Reindex(node, before, VisibleGpus(node));
}

void FreeCapacity::Unhold(NodeIndex node, int gpus) {
  int before = VisibleGpus(node);
  nodes_[node].held_gpus = static_cast<int16_t>(nodes_[node].held_gpus - gpus);
  assert(nodes_[node].held_gpus >= 0);
  Reindex(node, before, VisibleGpus(node));
}

void FreeCapacity::SetSchedulable(NodeIndex node, bool schedulable) {
  int before = VisibleGpus(node);
  nodes_[node].schedulable = schedulable;
  Reindex(node, before, VisibleGpus(node));
}

}  // namespace allot
