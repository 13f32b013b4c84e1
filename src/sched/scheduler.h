// Scheduler: the one piece of decision-making code that the server runs for real and the
// simulator runs in virtual time.
//
// It owns the Model and changes it only through these calls. A pass looks at every pending job
// once, in queue order, and for each: checks its grants, its quota in each acceptable pool, and
// where its gang fits; starts it, or preempts for it (reclaim of lent quota, or a higher
// priority class), or reserves its future start (backfill), or records why it waits. The pass
// returns its decisions in the order they were made.
//
//   ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, Scheduler::Create(std::move(config)));
//   ALLOT_RETURN_IF_ERROR(scheduler->Submit(42, spec, now));
//   PassResult pass = scheduler->RunPass(now);
//   for (const Decision& decision : pass.decisions) { ... }
//   scheduler->Complete(42, later);
//
// Deterministic: the same calls with the same arguments give the same decisions. No I/O, no
// clock (time is an argument), no threads; not thread-safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "core/config.h"
#include "core/model.h"
#include "sched/placement.h"
#include "sched/queue_order.h"
#include "sched/quota.h"
#include "sched/reservations.h"
#include "sched/runtime_predictor.h"

namespace allot {

struct StartDecision {
  JobId job = 0;
  PoolIndex pool = 0;
  uint64_t epoch = 0;
  std::vector<TaskAllocation> tasks;
  bool backfilled = false;  // started behind a reservation of a job ahead of it
};

struct PreemptDecision {
  JobId victim = 0;
  JobId preemptor = 0;
  bool requeued = false;
  std::string reason;
  // The execution that was stopped: a requeued victim may start again later in the same pass,
  // so its record in the model may already describe the new one.
  PoolIndex pool = 0;
  Time run_start = 0;
};

struct ReserveDecision {
  JobId job = 0;
  PoolIndex pool = 0;
  Time start = 0;
  int nodes = 0;
};

using Decision = std::variant<StartDecision, PreemptDecision, ReserveDecision>;

struct PassResult {
  std::vector<Decision> decisions;
  size_t considered = 0;  // looks at pending jobs (a job looked at again counts again)
  size_t started = 0;
  size_t preempted = 0;
  size_t reserved = 0;
  size_t sweeps = 0;  // looks at the queue: 1, more when the pass's own decisions let jobs start
  // Jobs that left the model in this pass (preempted without requeue), for the caller to record.
  std::vector<Job> ended;
};

// What happened to the running jobs of a node that went down.
struct NodeFailure {
  std::vector<JobId> requeued;
  std::vector<Job> ended;
};

class Scheduler {
 public:
  // Builds the model from a loaded config and checks the policy names.
  static StatusOr<std::unique_ptr<Scheduler>> Create(Config config);

  const Model& model() const { return *model_; }
  const PolicyConfig& policy() const { return policy_; }

  // Validates and resolves a spec and queues the job. Rejects, changing nothing, a spec whose
  // account, class or pools are unknown, whose time limit is over the maximum, or that could
  // never run: no acceptable pool could ever hold its gang, or its quota could never admit it.
  Status Submit(JobId id, const JobSpec& spec, Time now);
  // Removes a pending job, or stops a running one; returns its record.
  StatusOr<Job> Cancel(JobId id, Time now);
  // A running job ended (exit, or killed at its time limit); returns its record.
  StatusOr<Job> Complete(JobId id, Time now);
  Status Hold(JobId id);
  Status Release(JobId id);
  // Up, draining or down. Down ends the node's running jobs as node failures: those that allow
  // it are requeued, the others leave the model and are returned.
  StatusOr<NodeFailure> SetNodeState(NodeIndex node, NodeState state, Time now);

  PassResult RunPass(Time now);
  // With `true`, every pass looks at every pending job: no early stop, no job passed over as
  // too big or too long for what is free. Decisions must not change; tests compare the two.
  void set_look_at_every_job(bool every_job) { look_at_every_job_ = every_job; }

  // Puts back a job that was running before a restart, on exactly the GPUs it held and with its
  // epoch. Fails, changing nothing, if its spec no longer validates (the config changed) or the
  // tasks do not fit: unknown node, another pool, wrong GPU count, or GPUs not free.
  Status RestoreRunning(JobId id, const JobSpec& spec, Time submit_time, PoolIndex pool,
                        std::vector<TaskAllocation> tasks, Time start_time, uint64_t epoch,
                        int restarts);
  // After a restart: the service a job attained in earlier runs (Job::attained_gpu_seconds,
  // requeue_time, forgiven_gpu_seconds), which the las order ranks by. Pending jobs also regain
  // their restart count. Changes nothing for a job it does not know, or with a negative value.
  void RestoreService(JobId id, double attained_gpu_seconds, Time requeue_time, double forgiven_gpu_seconds,
                      int restarts);
  // After a restart: charges usage recorded before it (GPU-seconds of the account's jobs on one
  // UTC day) to fair share, decayed from midday to `now`, and to the grants whose period holds
  // that day, along the account's path.
  void AddHistoricalUsage(AccountIndex account, Time day, double gpu_seconds, Time now);
  // Operator changes to the account tree; a rejected change leaves the tree as it was.
  Status SetQuota(AccountIndex account, PoolIndex pool, const PoolQuota& quota);
  Status SetGrant(AccountIndex account, const Grant& grant);

  // Why a pending job waits, as users should see it. A pass that stops early (nothing more can
  // start) leaves the rest of the queue untouched; their reason then says so instead of
  // repeating what an older pass found.
  PendingReason ReasonOf(const Job& job) const;

  // The pending jobs in the order the next pass starts its sweep in: the queue order of the
  // policy, starving jobs first in their class; held jobs are not in it. Within a pass fair share
  // re-ranks accounts as jobs start, borrowers may wait for the owners' turn (reclaim), and a
  // later job may start first where an earlier one does not fit (backfill). Costs a sort of the
  // queue: callers cache it.
  std::vector<JobId> PendingOrder(Time now) const;

 private:
  Scheduler(std::unique_ptr<Model> model, PolicyConfig policy);

  // One pass's working state.
  struct Pass;

  // One look at every pending job in queue order (the borrowers' turn last).
  void Sweep(Pass& pass);
  void TryJob(Pass& pass, Job& job);
  bool SkipSaturated(Pass& pass, Job& job);
  // Closed by a blocked job (backfill: none), or no GPU free and no reservation left to give.
  bool PoolSaturated(const Pass& pass, PoolIndex pool, const Job* job = nullptr) const;
  // The job that closed the pool (backfill: none) to `job` (any job, when null), or 0.
  JobId ClosedBy(const Pass& pass, PoolIndex pool, const Job* job = nullptr) const;
  // Starts, take-backs and preemptions so far in the pools the job accepts.
  uint64_t ChangesIn(const Pass& pass, const Job& job) const;
  // backfill: none: `job`, blocked for GPUs, closes the pool to the jobs behind it.
  void Close(Pass& pass, PoolIndex pool, const Job& job);
  bool AllPoolsSaturated(const Pass& pass) const;
  // What a waiting job may ask for and still start (or reserve) in this pass, now: no bound
  // while a pool a job may use has reservations left to make.
  StartableRequests LargestStartableRequest(const Pass& pass);
  bool AnyNominalQuota() const;
  void ExplainBehindReservations(Pass& pass);
  bool TryStartNow(Pass& pass, Job& job, PoolIndex pool);
  bool TryPreempt(Pass& pass, Job& job);
  // Whether a gang that must stay in one domain of its level could fit in `pool` if each domain
  // gained `freed[domain]` GPUs: a bound (holds may take some back) that spares a reclaim search
  // which cannot succeed.
  bool GangCouldFitWithout(const FreeCapacity& free, PoolIndex pool, const PlacementRequest& request, int64_t gpus,
                           const std::vector<int64_t>& freed) const;
  bool TryReserve(Pass& pass, Job& job, const std::vector<PoolIndex>& pools);
  // A job started earlier in this pass gives its GPUs in `pool` to `taker`, which reclaims them
  // (or preempts by priority): its start is withdrawn before anyone sees it, and it waits again.
  void TakeBackStart(Pass& pass, JobId id, const Job& taker, PoolIndex pool, bool reclaim);
  // Whether starting the job now, by borrowing, would leave a job holding a reservation in the
  // pool without the quota it was admitted with: a backfilled job may not delay a reservation by
  // quota either. A job within its nominal may: owners come before reservations of borrowers.
  bool TakesReservedQuota(const Job& job, PoolIndex pool, Time end);
  // Whether a grant of the job's account path is used up (or none covers now); if so, sets the
  // job's reason.
  bool GrantBlocks(Pass& pass, Job& job) const;
  // Pending jobs that waited past policy.starvation_after and go first in their class.
  std::vector<JobId> StarvingJobs(const PendingFilter& include, Time now) const;
  // Whether a job of a class that preempts lower ones waits, among those the sweep looks at.
  bool AnyPreemptorWaiting(const PendingFilter& include) const;
  // Whether `job` may preempt by priority: its class preempts lower ones, or the order is las.
  bool MayPreemptByPriority(const Job& job) const;
  // Whether some account, at any depth, has a nominal quota (a job of it may reclaim), where
  // AnyNominalQuota reads the root's.
  bool AnyAccountNominal() const;
  // Whether some account lends less of its idle nominal than all of it (lend_limit).
  bool AnyLendLimit() const;
  QuotaCheck CheckJobQuota(const Job& job, PoolIndex pool) const;
  std::optional<std::string> NeverPlaceable(PoolIndex pool, const PlacementRequest& request);

  std::unique_ptr<Model> model_;
  PolicyConfig policy_;
  int reservation_depth_ = 1;
  RuntimePredictor predictor_;  // learns from every job that ends; read by the "predicted" order
  LasLevels las_;                // the "las" order's queues; its jobs preempt by them
  bool las_order_ = false;       // queue_order las
  bool las_preempts_ = false;    // queue_order las with priority preemption on
  std::unique_ptr<QueueOrder> order_;
  ReservationBook book_;  // reused by every pass; keeps plans that are still right
  std::vector<int64_t> freed_by_domain_;  // scratch of TryPreempt, per domain
  uint64_t passes_ = 0;
  uint64_t looks_ = 0;  // TryJob calls, over all passes (Job::look)
  // Whether the last pass left jobs pending before it unlooked at (it stopped early, or passed
  // over jobs too big for any pool): ReasonOf says so for them.
  bool last_pass_skipped_jobs_ = false;
  bool look_at_every_job_ = false;
  uint64_t last_pass_sequence_ = 0;  // Model::pending_sequence() when it began
  Time last_pass_time_ = 0;
  // (pool, level, mode, gpus, cpus, memory, tasks, one per node, whole nodes) -> why it can never
  // be placed ("" if it can).
  std::map<std::tuple<PoolIndex, int, int, int, int, int64_t, int, bool, bool>, std::string> never_cache_;
};

// "start job=3 pool=p nodes=n1[0-3],n2[0-3]": one line per decision, for logs and golden tests.
std::string FormatDecision(const Model& model, const Decision& decision);

}  // namespace allot
