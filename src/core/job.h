// Jobs: what a tenant asks for (JobSpec) and what the model tracks while it lives (Job).
//
// A job is `tasks` x `gpus_per_task` whole GPUs; each task sits on one node; a multi-task job
// is a gang that starts all at once or not at all. It may name a GPU model or a list of pools,
// a topology constraint, a time limit, a priority class and whether it may be preempted.
//
//   JobSpec spec;
//   spec.account = "sovereign-fm";
//   spec.tasks = 128;
//   spec.gpus_per_task = 8;
//   spec.topology = {Level::kPod, TopologyMode::kRequired};
//   spec.time_limit = 14 * 86400;
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/accounts.h"
#include "core/cluster.h"
#include "core/units.h"

namespace allot {

using JobId = uint64_t;

enum class TopologyMode : uint8_t { kNone, kPreferred, kRequired };
std::string_view TopologyModeName(TopologyMode mode);

struct TopologyConstraint {
  Level level = Level::kSite;
  TopologyMode mode = TopologyMode::kNone;
};

enum class JobKind : uint8_t { kBatch, kService, kInteractive };
std::string_view JobKindName(JobKind kind);
StatusOr<JobKind> ParseJobKind(std::string_view name);

struct JobSpec {
  std::string name;
  std::string account;
  std::string user;
  int tasks = 1;
  int gpus_per_task = 1;
  bool one_task_per_node = false;  // each task on a node of its own: Slurm's --nodes=N
  bool exclusive = false;  // whole nodes: each task asks for all of its node's GPUs (--exclusive)
  int cpus_per_task = 0;
  int64_t memory_per_task = 0;  // bytes
  std::string gpu_model;           // "" accepts any model
  std::vector<std::string> pools;  // empty: every pool (of gpu_model, when given)
  TopologyConstraint topology;
  Duration time_limit = 0;  // 0: the scheduler's default
  std::string priority_class;  // "": the scheduler's default class
  bool preemptible = true;
  bool requeue = true;
  JobKind kind = JobKind::kBatch;
  std::vector<std::string> command;  // argv; never passed through a shell

  int64_t total_gpus() const { return static_cast<int64_t>(tasks) * gpus_per_task; }
};

// A named priority level. Higher values go first; a class that preempts_lower may take GPUs from
// running preemptible jobs of lower classes.
struct PriorityClass {
  std::string name;
  int value = 0;
  bool preempts_lower = false;
};

enum class JobState : uint8_t { kPending, kRunning };

// Why a pending job has not started, in words a user understands.
enum class ReasonCode : uint8_t {
  kNone,        // not looked at yet
  kHeld,        // held by its user or an operator
  kPriority,    // not reached in this pass
  kQuota,       // its account (or an ancestor) has no quota room in any acceptable pool
  kGrant,       // a grant of its account subtree is used up
  kResources,   // not enough free GPUs
  kTopology,    // free GPUs exist but no domain of the required level holds the gang
  kReserved,    // has a reservation: starts at a known time
  kBackfillBlocked,  // would delay a reservation of a job ahead of it
  kPreempted,   // preempted (or its node failed) and requeued; looked at again at once
};
std::string_view ReasonCodeName(ReasonCode code);

struct PendingReason {
  ReasonCode code = ReasonCode::kNone;
  std::string message;
};

struct TaskAllocation {
  NodeIndex node = 0;
  uint32_t gpu_mask = 0;  // bit i: GPU i of the node
  int cpus = 0;
  int64_t memory_bytes = 0;
};

struct Job {
  JobId id = 0;
  JobSpec spec;
  // Resolved at submit.
  AccountIndex account = kNoAccount;
  std::vector<PoolIndex> pools;
  int priority = 0;
  bool class_preempts_lower = false;
  Time submit_time = 0;

  JobState state = JobState::kPending;
  bool held = false;
  PendingReason reason;
  uint64_t reason_pass = 0;  // the scheduling pass that set `reason` (0: none yet)
  Time reserved_start = 0;   // when reason.code is kReserved: when its reservation starts
  uint64_t look = 0;         // the scheduler's latest look at it (counts looks over all passes)
  uint64_t pending_since = 0;  // Model::pending_sequence() when it last became pending
  // While running.
  PoolIndex pool = 0;
  Time start_time = 0;
  uint64_t epoch = 0;  // allocation epoch: grows at every start, fences stale executions
  std::vector<TaskAllocation> tasks;
  int restarts = 0;  // times requeued after preemption or node failure
  // GPU-seconds of its earlier runs (those that ended in a requeue): with the current run's, the
  // service it has attained, which the `las` order ranks by.
  double attained_gpu_seconds = 0;
  Time requeue_time = 0;  // when it was last requeued (las promotes by how long it has waited since)
  // las: service a promotion forgave for the current run (its queue counts only what is past it).
  double forgiven_gpu_seconds = 0;

  int64_t gpus() const { return spec.total_gpus(); }
  Time expected_end() const { return start_time + spec.time_limit; }
};

}  // namespace allot
