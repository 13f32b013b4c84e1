// Model: the whole state the scheduler reasons about, with its indexes.
//
// It owns the cluster, the account tree, the free-capacity index and the live jobs (pending and
// running; finished jobs leave the model and are the caller's to record). Every mutation keeps
// all indexes consistent: starting a job takes its GPUs from FreeCapacity, charges its account
// path and files it under its pool's running-by-end index.
//
//   auto model = std::make_unique<Model>(std::move(cluster), std::move(accounts));
//   model->AddPending(std::move(job));
//   model->Start(job_id, pool, tasks, now);
//   model->Stop(job_id, /*requeue=*/false);
//
// No I/O, no clock, no threads: time comes in as arguments. Not thread-safe. Not copyable or
// movable, because the index points into the cluster it owns.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/accounts.h"
#include "core/cluster.h"
#include "core/free_capacity.h"
#include "core/job.h"

namespace allot {

class Model {
 public:
  Model(Cluster cluster, AccountTree accounts);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const Cluster& cluster() const { return cluster_; }
  const AccountTree& accounts() const { return accounts_; }
  AccountTree& mutable_accounts() { return accounts_; }
  const FreeCapacity& free() const { return free_; }
  FreeCapacity& mutable_free() { return free_; }

  // In no particular order; lookups by id are O(1).
  const std::unordered_map<JobId, Job>& jobs() const { return jobs_; }
  const Job* FindJob(JobId id) const;
  Job* FindMutableJob(JobId id);
  const std::set<JobId>& pending() const { return pending_; }
  // Pending jobs in queue order before fair share: priority class (highest first), then submit
  // time, then id. Kept up to date, so a pass need not sort its queue.
  struct PendingOrder {
    int negative_priority;
    Time submit;
    JobId id;
    auto operator<=>(const PendingOrder&) const = default;
  };
  static PendingOrder OrderOf(const Job& job) { return {-job.priority, job.submit_time, job.id}; }
  const std::set<PendingOrder>& pending_in_order() const { return pending_in_order_; }
  // Every entry into the pending set (submit, requeue, a start taken back) takes the next number
  // and stamps it on the job (Job::pending_since): a sweep of the queue that began at number S
  // skips jobs that became pending after it, as a list copied at S would not hold them.
  uint64_t pending_sequence() const { return pending_sequence_; }
  // Counts exits from the pending set: a walk of pending_in_order() may keep its iterator while
  // this does not change.
  uint64_t pending_erasures() const { return pending_erasures_; }
  // The fewest GPUs asked for by a pending job that may run in the pool (held or not);
  // INT64_MAX when none may. A pool with fewer usable GPUs than this can start nothing.
  int64_t SmallestPendingRequest(PoolIndex pool) const {
    const auto& requests = pending_requests_[pool];
    return requests.empty() ? INT64_MAX : requests.begin()->first;
  }
  // Pending jobs by the GPUs they ask for: a sweep passes over jobs too big for the GPUs free, or
  // too long to run before a reservation starts, without walking them.
  struct SizeQueue {
    std::set<PendingOrder> in_order;
    std::set<std::pair<Duration, PendingOrder>> by_time_limit;
  };
  const std::map<int64_t, SizeQueue>& pending_by_size() const { return pending_by_size_; }
  // Running jobs of a pool by expected end (start + time limit), earliest first.
  const std::set<std::pair<Time, JobId>>& running_by_end(PoolIndex pool) const {
    return running_by_end_[pool];
  }
  size_t running_count() const { return running_count_; }
  // Grows whenever a job starts or stops in the pool or one of its nodes changes state: plans
  // made at the same version see the same pool.
  uint64_t pool_version(PoolIndex pool) const { return pool_versions_[pool]; }

  // Adds a pending job. Fails if the id is taken.
  Status AddPending(Job job);
  // Starts a pending job on the given tasks: GPUs are taken from the index (each task's
  // gpu_mask is filled in, or with keep_masks taken exactly as given, all free), its account
  // path is charged, its epoch grows.
  void Start(JobId id, PoolIndex pool, std::vector<TaskAllocation> tasks, Time now,
             bool keep_masks = false);
  // Stops a running job and returns its resources. With requeue it becomes pending again (same
  // id, same submit time); otherwise it leaves the model and is returned.
  std::optional<Job> Stop(JobId id, bool requeue);
  // Withdraws a start that was never handed out (the pass that made it takes it back): the job is
  // pending again with its epoch and restart count as before; its GPUs, accounts' usage and
  // indexes are restored (start_time and pool keep the withdrawn values, unused while pending;
  // the pool's version moves on, as for any change).
  void UndoStart(JobId id);
  // Removes a pending job; returns it.
  std::optional<Job> RemovePending(JobId id);

  // Marks a node up, draining or down and updates the index. Running jobs are the caller's to
  // stop (down) or leave alone (draining).
  void SetNodeState(NodeIndex node, NodeState state);
  // Running jobs with a task on the node.
  std::vector<JobId> JobsOnNode(NodeIndex node) const;

  // Fair-share usage and grants advance to `now` (no-op if now is not later than the last call).
  void AdvanceTo(Time now, Duration half_life);
  Time now() const { return now_; }

  // Approximate bytes held by the model and its indexes, for memory reports.
  size_t ApproximateBytes() const;

 private:
  // Files the job under the pending indexes, or takes it out of them.
  void EnterPending(Job& job);
  void LeavePending(const Job& job);

  Cluster cluster_;
  AccountTree accounts_;
  FreeCapacity free_;
  std::unordered_map<JobId, Job> jobs_;  // nodes are stable: indexes keep pointers into it
  std::set<JobId> pending_;
  std::set<PendingOrder> pending_in_order_;
  uint64_t pending_sequence_ = 0;
  uint64_t pending_erasures_ = 0;
  std::vector<std::map<int64_t, int>> pending_requests_;  // per pool: GPUs asked -> pending jobs
  std::map<int64_t, SizeQueue> pending_by_size_;
  std::vector<std::set<std::pair<Time, JobId>>> running_by_end_;
  std::vector<std::vector<JobId>> jobs_on_node_;  // running job ids per node (small lists)
  size_t running_count_ = 0;
  std::vector<uint64_t> pool_versions_;
  Time now_ = 0;
  bool clock_started_ = false;
};

}  // namespace allot
