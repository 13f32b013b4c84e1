// Placement: where a gang of tasks fits in a pool's topology, without scanning every node.
//
// A request is `tasks` x `gpus_per_task` GPUs (plus CPUs and memory per task), one task per
// node slot, optionally constrained to one domain of a topology level. The search:
//   1. Candidate domains are the pool's domains at the constraint level (the pool's root when
//      there is none). Their free-GPU histograms say how many tasks each holds; the fullest one
//      that holds the whole gang wins (best fit), so big domains stay whole for big jobs.
//   2. Inside the chosen domain the same rule repeats level by level: the fullest child that
//      holds what is left, else the child that holds the most and then the rest.
//   3. A "preferred" constraint tries its level, then each wider level up to the pool.
// Cost is proportional to the domains looked at (their histograms), not to the nodes.
//
//   PlacementRequest request{.tasks = 16, .gpus_per_task = 8,
//                            .topology = {Level::kNvlink, TopologyMode::kRequired}};
//   std::optional<Placement> placement = FindPlacement(free, pool, request);
//
// Pure functions over a FreeCapacity: they never change it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/free_capacity.h"
#include "core/job.h"

namespace allot {

struct PlacementRequest {
  int tasks = 1;
  int gpus_per_task = 1;
  int cpus_per_task = 0;
  int64_t memory_per_task = 0;
  TopologyConstraint topology;
  bool one_task_per_node = false;  // each task on a node of its own (Slurm's --nodes=N)
  bool whole_nodes = false;        // each task must ask for all of its node's GPUs (--exclusive)

  static PlacementRequest ForJob(const JobSpec& spec) {
    return {spec.tasks, spec.gpus_per_task, spec.cpus_per_task, spec.memory_per_task,
            spec.topology, spec.one_task_per_node || spec.exclusive, spec.exclusive};
  }
  // The most tasks of the request one node may hold (0: no limit).
  int PerNodeLimit() const { return one_task_per_node ? 1 : 0; }
};

struct Placement {
  DomainIndex domain = kNoDomain;  // the domain the gang was kept in
  std::vector<TaskAllocation> tasks;  // node, cpus and memory per task; GPUs chosen at Take
};

std::optional<Placement> FindPlacement(const FreeCapacity& free, PoolIndex pool,
                                       const PlacementRequest& request);

// Tasks of the request that fit on one node as it is now (GPUs, and CPUs and memory where the
// node declares them).
int TasksOnNode(const FreeCapacity& free, NodeIndex node, const PlacementRequest& request);

// Whether the request could ever fit in the pool with every node up and idle; if not, why not in
// words a user can act on ("needs 2 tasks of 16 GPUs, but the pool's nodes have at most 8").
std::optional<std::string> WhyNeverPlaceable(const Cluster& cluster, PoolIndex pool,
                                             const PlacementRequest& request);

// Why the request does not fit now, for a pending reason: distinguishes "not enough free GPUs"
// from "free GPUs exist but not inside one <level> domain".
std::string DescribeNoFit(const FreeCapacity& free, PoolIndex pool,
                          const PlacementRequest& request, bool* topology_bound);

}  // namespace allot
