#include "sched/scheduler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <unordered_set>

namespace allot {

namespace {
// A request shape in a pool at a hold level. Placement failures are remembered per shape for the
// pass, so thousands of equal jobs behind a full pool cost one lookup each.
using ShapeKey = std::tuple<int, int, int, int64_t, int, int, bool>;
}  // namespace

// Sweeps of the queue in one pass (see RunPass); a bound keeps a pass finite whatever the config.
constexpr int kMaxSweeps = 8;

struct Scheduler::Pass {
  Pass(Time now, size_t pool_count, ReservationBook& book)
      : now(now), book(book), failed(pool_count), preempt_failed(pool_count), changes(pool_count, 0),
        reopened(pool_count, false),
        closed_by(pool_count, 0), closer_borrows(pool_count, false), saturated_reason(pool_count) {
    book.StartPass();
  }
  Time now;
  PassResult result;
  ReservationBook& book;
  // Per pool: (hold level, mode, level, gpus, cpus, memory) -> fewest tasks that did not fit.
  // Cleared when GPUs come free in the pool mid-pass (preemption) or a reservation is added.
  std::vector<std::map<ShapeKey, int>> failed;
  // Per pool: (account, priority, las queue, preemptible, shape) -> fewest tasks preemption could
  // not make room for.
  std::vector<std::map<std::tuple<AccountIndex, int, int, int, ShapeKey>, int>> preempt_failed;
  // Started in this pass: never preempted by it. An owner may take back the start of a borrower
  // (TakeBackStart), but never that of a job that preempted others to start: they would trade
  // places for ever.
  std::unordered_set<JobId> started;
  std::unordered_set<JobId> preemptors;
  // Victims requeued (or starts taken back) in this pass, with the reason they keep while they
  // wait.
  std::vector<std::pair<JobId, PendingReason>> preempted_reasons;
  // Per pool: starts, take-backs and preemptions so far (only ever grows).
  std::vector<uint64_t> changes;
  bool swept = false;        // the queue has been swept once
  // A decision of this sweep may let a job looked at earlier start: in these pools (GPUs freed
  // by preemption, room lent by a cohort), or these jobs (victims, starts taken back).
  bool sweep_again = false;
  std::vector<bool> reopened;
  std::unordered_set<JobId> look_again;
  // Accounts whose children kept idle nominal that a job was refused for in this sweep: a start
  // below one of them may free that room.
  std::set<std::pair<AccountIndex, PoolIndex>> cohorts_refused;
  // While set, a job does not start where it would borrow; it waits in `borrowers` for a second
  // turn after every other job (see RunPass).
  bool defer_borrowing = false;
  // With whether its pools were all open (backfill: none) when it was deferred: it keeps its
  // place ahead of jobs that closed them since.
  std::vector<std::pair<Job*, bool>> borrowers;
  // Jobs that found nothing to preempt (to reclaim, or by priority), to look at again once
  // something has changed; with whether their pools were all open (backfill: none) then: they
  // are ahead of any job that closed them since, and are looked at again as such.
  struct Reclaimer {
    Job* job;
    uint64_t changes_before;  // ChangesIn(its pools) when it looked
    bool saw_open;
  };
  std::vector<Reclaimer> reclaimers;
  std::unordered_set<JobId> reclaimer_ids;
  bool ahead_of_closers = false;  // while set, closed pools (backfill: none) count as open
  // backfill: none: per pool, the first job blocked for GPUs, which no job behind it passes
  // (0: the pool is open).
  std::vector<JobId> closed_by;
  std::vector<bool> closer_borrows;  // per pool: its closer would borrow there
  // Per pool: the reason given to jobs skipped because the pool is saturated ("" until needed).
  std::vector<std::string> saturated_reason;
  std::map<std::pair<PoolIndex, int64_t>, std::string> no_gpu_reason;  // by (pool, GPUs)
  std::unordered_map<AccountIndex, std::string> grant_reason;  // by account holding the grant
  // Jobs waiting in pools with reservations, whose reason is given after the pass.
  // With the look that added it: a job looked at again since has its reason from that look.
  struct Explain {
    Job* job;
    PoolIndex pool;
    uint64_t look;
  };
  std::vector<Explain> explain_later;

};

namespace {


ShapeKey MakeShapeKey(int hold_level, const PlacementRequest& request) {
  return {hold_level, static_cast<int>(request.topology.mode),
          static_cast<int>(request.topology.level), request.memory_per_task,
          request.cpus_per_task, request.gpus_per_task, request.one_task_per_node};
}

// "0-3" or "0,2,5": GPU indexes of a node mask.
std::string FormatMask(uint32_t mask) {
  std::string out;
  int i = 0;
  while (i < 32) {
    if (!(mask & (1u << i))) {
      ++i;
      continue;
    }
    int j = i;
    while (j + 1 < 32 && (mask & (1u << (j + 1)))) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? std::to_string(i) : fmt::format("{}-{}", i, j);
    i = j + 1;
  }
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(Config config) {
  const PolicyConfig& policy = config.policy;
  auto known = [](const std::vector<std::string_view>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  if (!known(PolicyConfig::QueueOrders(), policy.queue_order)) {
    return InvalidArgumentError("unknown queue order '{}'; use one of: {}", policy.queue_order,
                                fmt::join(PolicyConfig::QueueOrders(), ", "));
  }
  if (!known(PolicyConfig::BackfillModes(), policy.backfill)) {
    return InvalidArgumentError("unknown backfill mode '{}'; use easy, conservative, none or first_fit", policy.backfill);
  }
  if (policy.priority_classes.empty()) return InvalidArgumentError("no priority classes defined");
  bool default_known = std::any_of(policy.priority_classes.begin(), policy.priority_classes.end(),
                                   [&](const PriorityClass& c) { return c.name == policy.default_priority_class; });
  if (!default_known) {
    return InvalidArgumentError("default priority class '{}' is not defined", policy.default_priority_class);
  }
  auto model = std::make_unique<Model>(std::move(config.cluster), std::move(config.accounts));
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(model), std::move(config.policy)));
}

Scheduler::Scheduler(std::unique_ptr<Model> model, PolicyConfig policy)
    : model_(std::move(model)),
      policy_(std::move(policy)),
      las_(policy_.las_thresholds, policy_.las_promote),
      las_order_(policy_.queue_order == "las"),
      las_preempts_(las_order_ && policy_.priority_preemption),
      book_(model_->cluster().pools().size()) {
  reservation_depth_ = policy_.reservation_depth > 0 ? policy_.reservation_depth
                       : policy_.backfill == "conservative" ? 16
                                                            : 1;
  order_ = MakeQueueOrder(policy_.queue_order, policy_.fair_share_half_life, &predictor_, &las_);
}

std::optional<std::string> Scheduler::NeverPlaceable(PoolIndex pool,
                                                     const PlacementRequest& request) {
  int level = request.topology.mode == TopologyMode::kRequired
                  ? static_cast<int>(request.topology.level) : 0;
  auto key = std::make_tuple(pool, level, static_cast<int>(request.topology.mode),
                             request.gpus_per_task, request.cpus_per_task, request.memory_per_task,
                             request.tasks, request.one_task_per_node, request.whole_nodes);
  auto found = never_cache_.find(key);
  if (found == never_cache_.end()) {
    found = never_cache_.emplace(key, WhyNeverPlaceable(model_->cluster(), pool, request).value_or("")).first;
  }
  if (found->second.empty()) return std::nullopt;
  return found->second;
}

Status Scheduler::Submit(JobId id, const JobSpec& spec, Time now) {
  model_->AdvanceTo(now, policy_.fair_share_half_life);
  if (model_->FindJob(id)) return AlreadyExistsError("job {} exists already", id);
  if (spec.tasks < 1) return InvalidArgumentError("tasks must be at least 1, got {}", spec.tasks);
  if (spec.gpus_per_task < 1 || spec.gpus_per_task > kMaxGpusPerNode) {
    return InvalidArgumentError("gpus_per_task must be between 1 and {}, got {}", kMaxGpusPerNode,
                                spec.gpus_per_task);
  }
  if (spec.cpus_per_task < 0 || spec.memory_per_task < 0) {
    return InvalidArgumentError("cpus_per_task and memory_per_task must not be negative");
  }
  const AccountTree& tree = model_->accounts();
  ALLOT_ASSIGN_OR_RETURN(AccountIndex account, tree.Find(spec.account));
  if (!tree.account(account).is_leaf()) {
    std::vector<std::string> children;
    for (AccountIndex child : tree.account(account).children) children.push_back(tree.account(child).name);
    return InvalidArgumentError("account '{}' has sub-accounts; submit to one of them: {}",
                                spec.account, fmt::join(children, ", "));
  }
  std::string class_name = spec.priority_class.empty() ? policy_.default_priority_class
                                                       : spec.priority_class;
  const PriorityClass* priority_class = nullptr;
  for (const PriorityClass& c : policy_.priority_classes) {
    if (c.name == class_name) priority_class = &c;
  }
  if (!priority_class) {
    std::vector<std::string> names;
    for (const PriorityClass& c : policy_.priority_classes) names.push_back(c.name);
    return InvalidArgumentError("unknown priority class '{}'; use one of: {}", class_name,
                                fmt::join(names, ", "));
  }
  Duration limit = spec.time_limit > 0 ? spec.time_limit : policy_.default_time_limit;
  if (spec.time_limit < 0) return InvalidArgumentError("time_limit must be positive");
  constexpr Duration kLongestLimit = 10LL * 365 * 86400;  // keeps start + limit far from overflow
  if (limit > kLongestLimit) {
    return InvalidArgumentError("time limit {} is longer than 10 years", FormatDuration(limit));
  }
  if (policy_.max_time_limit > 0 && limit > policy_.max_time_limit) {
    return InvalidArgumentError("time limit {} is over the maximum of {}", FormatDuration(limit),
                                FormatDuration(policy_.max_time_limit));
  }

  const Cluster& cluster = model_->cluster();
  std::vector<PoolIndex> pools;
  if (!spec.pools.empty()) {
    for (const std::string& name : spec.pools) {
      ALLOT_ASSIGN_OR_RETURN(PoolIndex pool, cluster.FindPool(name));
      if (!spec.gpu_model.empty() && !SameGpuModel(cluster.pool(pool).gpu_model, spec.gpu_model)) {
        return InvalidArgumentError("pool '{}' has {} GPUs, not {}", name,
                                    cluster.pool(pool).gpu_model, spec.gpu_model);
      }
      if (std::find(pools.begin(), pools.end(), pool) == pools.end()) pools.push_back(pool);
    }
  } else {
    std::vector<std::string> models;
    for (PoolIndex pool = 0; pool < cluster.pools().size(); ++pool) {
      const std::string& model = cluster.pool(pool).gpu_model;
      if (spec.gpu_model.empty() || SameGpuModel(model, spec.gpu_model)) pools.push_back(pool);
      if (std::find(models.begin(), models.end(), model) == models.end()) models.push_back(model);
    }
    if (pools.empty()) {
      return InvalidArgumentError("no pool has GPU model '{}' (models: {})", spec.gpu_model,
                                  fmt::join(models, ", "));
    }
  }

  // Keep only the pools where the job could ever run; if none is left, say why for each.
  PlacementRequest request = PlacementRequest::ForJob(spec);
  std::vector<PoolIndex> usable;
  std::vector<std::string> reasons;
  for (PoolIndex pool : pools) {
    const Pool& shape = cluster.pool(pool);
    std::optional<std::string> why = NeverPlaceable(pool, request);
    if (!why) {
      why = WhyQuotaNever(tree, account, pool, spec.total_gpus(), shape.total_gpus,
                          spec.preemptible, shape.name);
    }
    if (why) {
      reasons.push_back(*why);
    } else {
      usable.push_back(pool);
    }
  }
  if (usable.empty()) {
    return InvalidArgumentError("the job can never run: {}", fmt::join(reasons, "; "));
  }

  Job job;
  job.id = id;
  job.spec = spec;
  job.spec.time_limit = limit;
  job.spec.priority_class = class_name;
  job.account = account;
  job.pools = std::move(usable);
  job.priority = priority_class->value;
  job.class_preempts_lower = priority_class->preempts_lower;
  job.submit_time = now;
  job.reason = {ReasonCode::kNone, "waiting for the next scheduling pass"};
  return model_->AddPending(std::move(job));
}

StatusOr<Job> Scheduler::Cancel(JobId id, Time now) {
  model_->AdvanceTo(now, policy_.fair_share_half_life);
  const Job* job = model_->FindJob(id);
  if (!job) return NotFoundError("no job {}", id);
  std::optional<Job> removed = job->state == JobState::kPending ? model_->RemovePending(id)
                                                                 : model_->Stop(id, false);
  return std::move(*removed);
}

StatusOr<Job> Scheduler::Complete(JobId id, Time now) {
  model_->AdvanceTo(now, policy_.fair_share_half_life);
  const Job* job = model_->FindJob(id);
  if (!job) return NotFoundError("no job {}", id);
  if (job->state != JobState::kRunning) return FailedPreconditionError("job {} is not running", id);
  predictor_.Observe(*job, now - job->start_time);
  return std::move(*model_->Stop(id, false));
}

Status Scheduler::RestoreRunning(JobId id, const JobSpec& spec, Time submit_time, PoolIndex pool,
                                 std::vector<TaskAllocation> tasks, Time start_time,
                                 uint64_t epoch, int restarts) {
  const Cluster& cluster = model_->cluster();
  const FreeCapacity& free = model_->free();
  if (pool >= cluster.pools().size()) return InvalidArgumentError("job {}: unknown pool", id);
  if (tasks.size() != static_cast<size_t>(spec.tasks)) {
    return InvalidArgumentError("job {}: {} tasks recorded, the spec asks for {}", id, tasks.size(), spec.tasks);
  }
  std::map<NodeIndex, uint32_t> taken;
  for (const TaskAllocation& task : tasks) {
    if (task.node >= cluster.nodes().size() || cluster.node(task.node).pool != pool) {
      return InvalidArgumentError("job {}: a task's node is not in its pool", id);
    }
    if (std::popcount(task.gpu_mask) != spec.gpus_per_task) {
      return InvalidArgumentError("job {}: a task on {} holds {} GPUs, the spec asks for {}", id,
                                  cluster.node(task.node).name, std::popcount(task.gpu_mask),
                                  spec.gpus_per_task);
    }
    uint32_t& mask = taken[task.node];
    if ((mask & task.gpu_mask) != 0 || (free.FreeGpuMask(task.node) & task.gpu_mask) != task.gpu_mask) {
      return FailedPreconditionError("job {}: GPUs on {} are already allocated", id,
                                     cluster.node(task.node).name);
    }
    mask |= task.gpu_mask;
  }
  ALLOT_RETURN_IF_ERROR(Submit(id, spec, submit_time));
  model_->Start(id, pool, std::move(tasks), start_time, /*keep_masks=*/true);
  Job* job = model_->FindMutableJob(id);
  job->epoch = epoch;
  job->restarts = restarts;
  return OkStatus();
}

void Scheduler::RestoreService(JobId id, double attained_gpu_seconds, Time requeue_time,
                               double forgiven_gpu_seconds, int restarts) {
  Job* job = model_->FindMutableJob(id);
  if (!job || !(attained_gpu_seconds >= 0) || !(forgiven_gpu_seconds >= 0) || restarts < 0) return;
  job->attained_gpu_seconds = attained_gpu_seconds;
  job->requeue_time = requeue_time;
  job->forgiven_gpu_seconds = job->state == JobState::kRunning ? forgiven_gpu_seconds : 0;
  job->restarts = restarts;
}

void Scheduler::AddHistoricalUsage(AccountIndex account, Time day, double gpu_seconds, Time now) {
  AccountTree& tree = model_->mutable_accounts();
  if (account >= tree.accounts().size()) return;
  const Duration half_life = policy_.fair_share_half_life;
  // Decay to the model's clock: it decays everything from there to `now` when time next moves.
  const Time reference = model_->now() > 0 ? std::min(now, model_->now()) : now;
  const double age = static_cast<double>(std::max<Time>(0, reference - (day + 43200)));
  const double decayed = half_life > 0 ? gpu_seconds * std::exp2(-age / static_cast<double>(half_life)) : gpu_seconds;
  for (AccountIndex at : tree.PathToRoot(account)) {
    Account& entry = tree.mutable_account(at);
    entry.decayed_usage += decayed;
    for (Grant& grant : entry.grants) {
      if (day + 86400 > grant.start && day < grant.end) grant.used_gpu_seconds += gpu_seconds;
    }
  }
}

Status Scheduler::SetQuota(AccountIndex account, PoolIndex pool, const PoolQuota& quota) {
  AccountTree& tree = model_->mutable_accounts();
  if (account >= tree.accounts().size() || account == tree.root()) {
    return InvalidArgumentError("quotas are set on accounts below the root");
  }
  if (pool >= tree.pool_count()) return InvalidArgumentError("unknown pool");
  PoolQuota before = tree.account(account).quota[pool];
  tree.mutable_account(account).quota[pool] = quota;
  if (Status finalized = tree.Finalize(); !finalized.ok()) {
    tree.mutable_account(account).quota[pool] = before;
    (void)tree.Finalize();
    return finalized;
  }
  return OkStatus();
}

Status Scheduler::SetGrant(AccountIndex account, const Grant& grant) {
  AccountTree& tree = model_->mutable_accounts();
  if (account >= tree.accounts().size()) return InvalidArgumentError("unknown account");
  if (grant.gpu_hours < 0) return InvalidArgumentError("gpu_hours must not be negative");
  if (grant.end <= grant.start) return InvalidArgumentError("a grant must end after it starts");
  std::vector<Grant>& grants = tree.mutable_account(account).grants;
  for (Grant& existing : grants) {
    if (existing.name == grant.name) {
      double used = existing.used_gpu_seconds;
      existing = grant;
      existing.used_gpu_seconds = used;
      return OkStatus();
    }
  }
  grants.push_back(grant);
  return OkStatus();
}

Status Scheduler::Hold(JobId id) {
  Job* job = model_->FindMutableJob(id);
  if (!job) return NotFoundError("no job {}", id);
  if (job->state != JobState::kPending) return FailedPreconditionError("job {} is not pending", id);
  job->held = true;
  job->reason = {ReasonCode::kHeld, "held; release it to let it run"};
  return OkStatus();
}

Status Scheduler::Release(JobId id) {
  Job* job = model_->FindMutableJob(id);
  if (!job) return NotFoundError("no job {}", id);
  if (!job->held) return FailedPreconditionError("job {} is not held", id);
  job->held = false;
  job->reason = {};
  return OkStatus();
}

StatusOr<NodeFailure> Scheduler::SetNodeState(NodeIndex node, NodeState state, Time now) {
  model_->AdvanceTo(now, policy_.fair_share_half_life);
  if (node >= model_->cluster().nodes().size()) return NotFoundError("no node {}", node);
  NodeFailure failure;
  if (state == NodeState::kDown) {
    for (JobId id : model_->JobsOnNode(node)) {
      Job& job = *model_->FindMutableJob(id);
      bool requeue = job.spec.requeue;
      if (requeue) {
        job.attained_gpu_seconds = LasLevels::Attained(job, now);
        job.requeue_time = now;
        job.forgiven_gpu_seconds = 0;
      }
      std::optional<Job> ended = model_->Stop(id, requeue);
      if (ended) {
        failure.ended.push_back(std::move(*ended));
      } else {
        failure.requeued.push_back(id);
        model_->FindMutableJob(id)->reason = {
            ReasonCode::kPreempted, fmt::format("requeued: node '{}' failed", model_->cluster().node(node).name)};
      }
    }
  }
  model_->SetNodeState(node, state);
  return failure;
}

PassResult Scheduler::RunPass(Time now) {
  model_->AdvanceTo(now, policy_.fair_share_half_life);
  Pass pass(now, model_->cluster().pools().size(), book_);
  ++passes_;
  last_pass_time_ = now;
  last_pass_skipped_jobs_ = false;
  last_pass_sequence_ = model_->pending_sequence();
  // A pass finishes its work: a second pass at this instant must find nothing to do. Some of
  // its own decisions can let a job it looked at earlier start after all: GPUs a preemption
  // freed beyond what the preemptor needed, a requeued victim that fits elsewhere, a sibling
  // that started within its nominal and so lends what it kept idle. After such a decision the
  // queue is swept again, until a sweep changes nothing of that kind.
  Sweep(pass);
  for (int sweep = 1; sweep < kMaxSweeps && pass.sweep_again; ++sweep) {
    for (auto& memo : pass.failed) memo.clear();
    for (auto& memo : pass.preempt_failed) memo.clear();
    // Pools stay closed (backfill: none) by jobs not looked at again; a closer that starts
    // reopens its pools (TryStartNow).
    pass.no_gpu_reason.clear();
    Sweep(pass);
  }
  pass.book.ClearAll(model_->mutable_free());
  ExplainBehindReservations(pass);
  // A victim that still waits says it was preempted, and by whom, until the next pass.
  for (auto& [id, reason] : pass.preempted_reasons) {
    Job* job = model_->FindMutableJob(id);
    if (job && job->state == JobState::kPending && job->reason.code != ReasonCode::kReserved) {
      job->reason = std::move(reason);
    }
  }
  return std::move(pass.result);
}

void Scheduler::Sweep(Pass& pass) {
  pass.result.sweeps++;
  bool first_sweep = !pass.swept;
  pass.swept = true;
  pass.sweep_again = false;
  std::vector<bool> reopened = std::move(pass.reopened);
  std::unordered_set<JobId> look_again = std::move(pass.look_again);
  pass.reopened.assign(model_->cluster().pools().size(), false);
  pass.look_again.clear();
  // Sweeping again looks only at jobs the last sweep's decisions could have let start. A job
  // given a reservation in this pass keeps it: looking again would plan a second one.
  uint64_t pass_number = passes_;
  PendingFilter include = [&, first_sweep, pass_number](const Job& job) {
    if (job.held) return false;
    if (first_sweep) return true;
    bool affected = look_again.count(job.id) > 0 ||
                    std::any_of(job.pools.begin(), job.pools.end(), [&](PoolIndex pool) { return reopened[pool]; });
    return affected && !(job.reason_pass == pass_number && job.reason.code == ReasonCode::kReserved);
  };
  // Once no pool can start or reserve anything, and no waiting job may preempt, the rest of the
  // queue cannot change in this pass: it keeps the reasons it was given when last looked at, as
  // Slurm's do. Where reclaim or a preempting class could act, every job is looked at.
  bool reclaims = policy_.reclaim && AnyNominalQuota();
  // Nor where an account keeps idle nominal it does not lend: a job refused for it asks for
  // another sweep once a sibling starts (cohorts_refused), which only looking at it records.
  bool may_stop_early = !look_at_every_job_ && !(policy_.reclaim && AnyAccountNominal()) && !AnyLendLimit() &&
                        !AnyPreemptorWaiting(include);
  order_->Begin(*model_, include, StarvingJobs(include, pass.now));
  // For the same reason, a job asking for more GPUs than any pool has free, once the pools'
  // reservations are made, is passed over where it stands (fifo does so without walking it).
  if (may_stop_early) order_->LimitRequests([this, &pass] { return LargestStartableRequest(pass); });
  // Where owners may reclaim, a job may start where it would borrow only after every job has
  // had its turn to start within its account's nominal quota (as Kueue admits non-borrowing
  // workloads first). Otherwise a borrower ahead in the queue takes free GPUs that an owner's
  // job behind it needs, and the next pass preempts the borrower: work started only to be thrown
  // away a moment later. (An owner that needs a borrower's GPUs later in this pass takes its
  // start back instead: see TakeBackStart.)
  pass.defer_borrowing = reclaims;
  pass.borrowers.clear();
  while (std::optional<JobId> id = order_->Next()) {
    Job* job = model_->FindMutableJob(*id);
    if (!job || job->state != JobState::kPending) continue;
    TryJob(pass, *job);
    if (may_stop_early && AllPoolsSaturated(pass)) {
      last_pass_skipped_jobs_ = true;
      break;
    }
  }
  // The borrowers' turn, in queue order.
  pass.defer_borrowing = false;
  std::vector<std::pair<Job*, bool>> borrowers = std::move(pass.borrowers);
  pass.borrowers.clear();
  for (auto [job, saw_open] : borrowers) {
    pass.ahead_of_closers = saw_open;
    TryJob(pass, *job);
    pass.ahead_of_closers = false;
  }
  // Jobs that found nothing to preempt get another look once jobs have started since: a
  // borrower can put a whole branch above its nominal and so make older jobs there victims, and
  // a start of a lower class can be taken back by a higher one looked at before it.
  for (int turn = 0; turn < kMaxSweeps && !pass.reclaimers.empty(); ++turn) {
    std::vector<Pass::Reclaimer> reclaimers = std::move(pass.reclaimers);
    pass.reclaimers.clear();
    pass.reclaimer_ids.clear();
    bool looked = false;
    for (auto& memo : pass.preempt_failed) memo.clear();  // victims may have become borrowers
    for (const Pass::Reclaimer& waiting : reclaimers) {
      Job* job = waiting.job;
      if (job->state != JobState::kPending || job->reason.code == ReasonCode::kReserved) continue;
      if (ChangesIn(pass, *job) > waiting.changes_before) {
        pass.ahead_of_closers = waiting.saw_open;
        TryJob(pass, *job);
        pass.ahead_of_closers = false;
        looked = true;
      }
    }
    if (!looked) break;
  }
  pass.reclaimers.clear();
  pass.reclaimer_ids.clear();
}

std::vector<JobId> Scheduler::StarvingJobs(const PendingFilter& include, Time now) const {
  if (policy_.starvation_after <= 0) return {};
  // The queue is in class, submit, id order: the oldest of each class come first, and once a job
  // of a class has not waited long enough, no later one of that class has. A class is left as
  // soon as every pool has its promoted jobs, so this costs the starving jobs looked at, not the
  // queue.
  const std::set<Model::PendingOrder>& queue = model_->pending_in_order();
  size_t pool_count = model_->cluster().pools().size();
  size_t pools_with_jobs = 0;
  for (PoolIndex pool = 0; pool < pool_count; ++pool) {
    pools_with_jobs += model_->SmallestPendingRequest(pool) != INT64_MAX;
  }
  std::vector<JobId> first;
  auto at = queue.begin();
  while (at != queue.end()) {
    auto next_class = queue.lower_bound({at->negative_priority + 1, std::numeric_limits<Time>::min(), 0});
    std::vector<int> promoted(pool_count, 0);
    size_t pools_done = 0;
    for (; at != next_class && pools_done < pools_with_jobs; ++at) {
      if (now - at->submit < policy_.starvation_after) break;
      const Job& job = *model_->FindJob(at->id);
      if (!include(job)) continue;
      int& count = promoted[job.pools.front()];
      if (count < reservation_depth_) {
        first.push_back(job.id);
        if (++count == reservation_depth_) ++pools_done;
      }
    }
    at = next_class;
  }
  return first;
}

bool Scheduler::MayPreemptByPriority(const Job& job) const {
  return las_preempts_ || (policy_.priority_preemption && job.class_preempts_lower);
}

bool Scheduler::AnyPreemptorWaiting(const PendingFilter& include) const {
  if (!policy_.priority_preemption) return false;
  // Under las any waiting job may preempt one that has attained more.
  if (las_preempts_) return !model_->pending().empty();
  const std::set<Model::PendingOrder>& queue = model_->pending_in_order();
  for (const PriorityClass& priority_class : policy_.priority_classes) {
    if (!priority_class.preempts_lower) continue;
    for (auto at = queue.lower_bound({-priority_class.value, std::numeric_limits<Time>::min(), 0});
         at != queue.end() && at->negative_priority == -priority_class.value; ++at) {
      const Job& job = *model_->FindJob(at->id);
      if (job.class_preempts_lower && include(job)) return true;
    }
  }
  return false;
}

bool Scheduler::GrantBlocks(Pass& pass, Job& job) const {
  const AccountTree& tree = model_->accounts();
  Time now = pass.now;
  double needed_hours = static_cast<double>(job.gpus()) * static_cast<double>(job.spec.time_limit) / 3600.0;
  for (AccountIndex at = job.account; at != tree.root(); at = tree.account(at).parent) {
    const Account& account = tree.account(at);
    if (account.grants.empty()) continue;
    const Grant* grant = tree.ActiveGrant(at, now);
    if (!grant) {
      job.reason = {ReasonCode::kGrant,
                    fmt::format("account '{}' has no grant covering t={}; ask for a new grant", account.path, now)};
      return true;
    }
    double committed = std::max(0.0, account.committed_end_sum -
                                         static_cast<double>(now) * static_cast<double>(account.allocated_total));
    double used_hours = grant->used_gpu_seconds / 3600.0;
    double committed_hours = committed / 3600.0;
    if (used_hours + committed_hours + needed_hours > grant->gpu_hours + 1e-9) {
      // Every waiting job of the account gets the same words; in a long queue that matters.
      std::string& message = pass.grant_reason[at];
      if (message.empty()) {
        message = fmt::format(
            "grant '{}' of account '{}' is used up: {:.1f} of {:.1f} GPU-hours used and {:.1f} "
            "committed to running jobs; a job may ask for at most {:.1f} GPU-hours (GPUs x time limit)",
            grant->name, account.path, used_hours, grant->gpu_hours, committed_hours,
            std::max(0.0, grant->gpu_hours - used_hours - committed_hours));
      }
      job.reason = {ReasonCode::kGrant, message};
      return true;
    }
  }
  return false;
}

QuotaCheck Scheduler::CheckJobQuota(const Job& job, PoolIndex pool) const {
  const Pool& shape = model_->cluster().pool(pool);
  return CheckQuota(model_->accounts(), job.account, pool, job.gpus(), shape.total_gpus, shape.name);
}

PendingReason Scheduler::ReasonOf(const Job& job) const {
  if (job.state != JobState::kPending || job.held || !last_pass_skipped_jobs_ ||
      job.reason_pass == passes_ || job.pending_since > last_pass_sequence_) {
    return job.reason;
  }
  std::string_view or_else =
      policy_.backfill == "none" ? ", or a job ahead of it was blocked there (backfill: none keeps the queue order)"
      : policy_.backfill == "first_fit"
          ? ""
          : ", or it would have run past the start of a reservation for a job ahead of it on GPUs "
            "held for that job (a shorter time limit may let it start sooner)";
  return {ReasonCode::kResources,
          fmt::format("not looked at in the pass at t={}, where it could not have started: no pool "
                      "it may use had as many GPUs free as it asks for{}; it keeps its place in the "
                      "queue",
                      last_pass_time_, or_else)};
}

std::vector<JobId> Scheduler::PendingOrder(Time now) const {
  // A fresh order of the same kind, so that the pass's own order keeps its state.
  std::unique_ptr<QueueOrder> order =
      MakeQueueOrder(policy_.queue_order, policy_.fair_share_half_life, &predictor_, &las_);
  PendingFilter include = [](const Job& job) { return !job.held; };
  order->Begin(*model_, include, StarvingJobs(include, now));
  std::vector<JobId> ids;
  ids.reserve(model_->pending().size());
  while (std::optional<JobId> id = order->Next()) ids.push_back(*id);
  return ids;
}

bool Scheduler::AnyAccountNominal() const {
  for (const Account& account : model_->accounts().accounts()) {
    for (const PoolQuota& quota : account.quota) {
      if (quota.nominal > 0) return true;
    }
  }
  return false;
}

bool Scheduler::AnyLendLimit() const {
  for (const Account& account : model_->accounts().accounts()) {
    for (const PoolQuota& quota : account.quota) {
      if (quota.lend_limit < quota.nominal) return true;
    }
  }
  return false;
}

bool Scheduler::AnyNominalQuota() const {
  const AccountTree& tree = model_->accounts();
  for (const PoolQuota& quota : tree.account(tree.root()).quota) {
    if (quota.nominal > 0) return true;
  }
  return false;
}

uint64_t Scheduler::ChangesIn(const Pass& pass, const Job& job) const {
  uint64_t sum = 0;
  for (PoolIndex pool : job.pools) sum += pass.changes[pool];
  return sum;
}

JobId Scheduler::ClosedBy(const Pass& pass, PoolIndex pool, const Job* job) const {
  JobId closer = pass.ahead_of_closers ? 0 : pass.closed_by[pool];
  if (closer == 0 || job == nullptr) return closer;
  if (closer == job->id) return 0;
  // A borrower waiting for GPUs does not hold back an owner's job within its nominal: the
  // owner may take them back from other borrowers whatever the queue order.
  if (pass.closer_borrows[pool] && policy_.reclaim) {
    const Account& leaf = model_->accounts().account(job->account);
    if (leaf.allocated[pool] + job->gpus() <= leaf.quota[pool].nominal) return 0;
  }
  return closer;
}

void Scheduler::Close(Pass& pass, PoolIndex pool, const Job& job) {
  pass.closed_by[pool] = job.id;
  pass.closer_borrows[pool] = CheckJobQuota(job, pool).borrows;
}

bool Scheduler::PoolSaturated(const Pass& pass, PoolIndex pool, const Job* job) const {
  if (ClosedBy(pass, pool, job) != 0) return true;
  if (model_->free().PoolGpus(pool) + pass.book.HeldIn(pool) > 0) return false;
  bool reserves = policy_.backfill == "easy" || policy_.backfill == "conservative";
  return !reserves || pass.book.CountIn(pool) >= static_cast<size_t>(reservation_depth_);
}

StartableRequests Scheduler::LargestStartableRequest(const Pass& pass) {
  bool reserves = policy_.backfill == "easy" || policy_.backfill == "conservative";
  StartableRequests largest{.gpus = 0, .gpus_past = 0, .short_limit = 0};
  const FreeCapacity& free = model_->free();
  for (PoolIndex pool = 0; pool < model_->cluster().pools().size(); ++pool) {
    if (model_->SmallestPendingRequest(pool) == INT64_MAX) continue;
    // A blocked job still to come acts on the jobs behind it: it takes a reservation, or
    // (backfill: none) closes the pool. Until then every job is looked at.
    if (reserves && pass.book.CountIn(pool) < static_cast<size_t>(reservation_depth_)) return {};
    // The next job to fail there would plan the reservations again (after a start), which moves
    // their holds for every job behind it.
    if (pass.book.MayReplan(pool)) return {};
    if (policy_.backfill == "none" && ClosedBy(pass, pool, nullptr) == 0) return {};
    int64_t gpus = free.PoolGpus(pool) + pass.book.HeldIn(pool);
    largest.gpus = std::max(largest.gpus, gpus);
    // A job running past the reservation's start sees its holds: when they are the ones laid
    // now, what is left visible is all it may use. (With one reservation only: a job that runs
    // past a later one would lay more holds when looked at, which the next job would see.)
    if (pass.book.CountIn(pool) == 1 && pass.book.HoldsExactly(pool, 1)) {
      largest.gpus_past = std::max<int64_t>(largest.gpus_past, free.PoolGpus(pool));
      largest.short_limit = std::max(largest.short_limit, pass.book.In(pool).front().start - pass.now);
    } else {
      largest.gpus_past = std::max(largest.gpus_past, gpus);
    }
  }
  const auto& by_size = model_->pending_by_size();
  if (!by_size.empty() && largest.gpus_past < by_size.rbegin()->first) last_pass_skipped_jobs_ = true;
  return largest;
}

bool Scheduler::AllPoolsSaturated(const Pass& pass) const {
  bool reserves = policy_.backfill == "easy" || policy_.backfill == "conservative";
  for (PoolIndex pool = 0; pool < model_->cluster().pools().size(); ++pool) {
    if (PoolSaturated(pass, pool)) continue;
    // Free GPUs that no waiting job could start on (every one asks for more) change nothing,
    // once the pool's reservations are made; a pool no waiting job may use, nothing at all.
    int64_t smallest = model_->SmallestPendingRequest(pool);
    if (smallest == INT64_MAX) continue;
    bool reservations_made = !reserves || pass.book.CountIn(pool) >= static_cast<size_t>(reservation_depth_);
    if (reservations_made && model_->free().PoolGpus(pool) + pass.book.HeldIn(pool) < smallest) continue;
    return false;
  }
  return true;
}

bool Scheduler::SkipSaturated(Pass& pass, Job& job) {
  if (MayPreemptByPriority(job)) return false;
  const Account& leaf = model_->accounts().account(job.account);
  for (PoolIndex pool : job.pools) {
    if (policy_.reclaim && leaf.allocated[pool] + job.gpus() <= leaf.quota[pool].nominal) return false;
    if (!PoolSaturated(pass, pool, &job)) return false;
  }
  PoolIndex pool = job.pools.front();
  const std::string& name = model_->cluster().pool(pool).name;
  if (ClosedBy(pass, pool, &job) == 0) {
    // backfill: none: the first job blocked for GPUs closes its pools, skipped or not (not one
    // blocked by quota, nor a borrower while owners have their turn).
    if (policy_.backfill == "none") {
      for (PoolIndex blocked : job.pools) {
        if (pass.closed_by[blocked] != 0) continue;
        QuotaCheck quota = CheckJobQuota(job, blocked);
        if (!quota.pool_full && !quota.fits) continue;         // a quota wait
        if (quota.borrows && !job.spec.preemptible) continue;  // never borrows: a quota wait
        Close(pass, blocked, job);
      }
    }
    std::string& message = pass.no_gpu_reason[{pool, job.gpus()}];
    if (message.empty()) message = fmt::format("needs {} GPUs, 0 free in pool '{}'", job.gpus(), name);
    job.reason = {ReasonCode::kResources, message};
    return true;
  }
  // Thousands of jobs wait behind the same one: they share its message.
  std::string& reason = pass.saturated_reason[pool];
  if (reason.empty()) {
    reason = fmt::format("waiting behind job {} in pool '{}' (backfill: none keeps the queue order "
                         "strictly)", ClosedBy(pass, pool, &job), name);
  }
  job.reason = {ReasonCode::kPriority, reason};
  return true;
}

void Scheduler::TryJob(Pass& pass, Job& job) {
  pass.result.considered++;
  job.look = ++looks_;
  job.reason_pass = passes_;
  if (GrantBlocks(pass, job)) return;
  // The long tail of a busy queue: when every pool the job accepts is closed by a blocked job
  // (backfill: none) or has no GPU free and no reservation left to give, and the job may not
  // preempt, nothing can happen to it in this pass.
  if (SkipSaturated(pass, job)) return;
  // Pools where only free GPUs are missing: the job may start there, or reserve its start.
  std::vector<PoolIndex> admitted;
  std::string quota_why;
  bool deferred = false;
  for (PoolIndex pool : job.pools) {
    QuotaCheck quota = CheckJobQuota(job, pool);
    if (pass.defer_borrowing && quota.fits && quota.borrows) {
      deferred = true;  // it may start here by borrowing, once every owner's job had its turn
      continue;
    }
    if (quota.borrows && !job.spec.preemptible) {
      if (quota_why.empty()) {
        const Account& account = model_->accounts().account(job.account);
        quota_why = fmt::format(
            "waiting for nominal quota in pool '{}': the job is not preemptible, so it never "
            "borrows; account '{}' uses {} of its {} nominal GPUs",
            model_->cluster().pool(pool).name, account.path, account.allocated[pool],
            account.quota[pool].nominal);
      }
      continue;
    }
    if (!quota.fits) {
      if (quota.cohort != kNoAccount) pass.cohorts_refused.emplace(quota.cohort, pool);
      if (quota.pool_full) {
        admitted.push_back(pool);
      } else if (quota_why.empty()) {
        quota_why = std::move(quota.why);
      }
      continue;
    }
    admitted.push_back(pool);
    if (TryStartNow(pass, job, pool)) return;
  }
  if (deferred) {
    bool saw_open = std::all_of(job.pools.begin(), job.pools.end(),
                                [&](PoolIndex at) { return ClosedBy(pass, at, &job) == 0; });
    pass.borrowers.emplace_back(&job, saw_open);
    return;
  }
  if (TryPreempt(pass, job)) return;
  if (admitted.empty()) {
    job.reason = {ReasonCode::kQuota, std::move(quota_why)};
    return;
  }
  bool strict = policy_.backfill == "none";
  bool reserves = !strict && policy_.backfill != "first_fit";
  if (reserves && TryReserve(pass, job, admitted)) return;
  if (reserves) {
    // The holds follow the plans made when the reservations were added. Jobs started since then
    // that end before a reservation's start free their GPUs in time for it, so a new plan can
    // release idle GPUs it held, which may be just what this job needs.
    for (PoolIndex pool : admitted) {
      if (!pass.book.Replan(*model_, pool, pass.now)) continue;
      pass.failed[pool].clear();
      if (TryStartNow(pass, job, pool)) return;
    }
  }

  // Say why it waits, from its first admitted pool.
  PoolIndex pool = admitted.front();
  PlacementRequest request = PlacementRequest::ForJob(job.spec);
  FreeCapacity& free = model_->mutable_free();
  if (strict) {
    JobId blocker = ClosedBy(pass, pool, &job);
    for (PoolIndex blocked : admitted) {
      if (pass.closed_by[blocked] == 0) Close(pass, blocked, job);
    }
    if (blocker != 0) {
      job.reason = {ReasonCode::kPriority,
                    fmt::format("waiting behind job {} in pool '{}' (backfill: none keeps the "
                                "queue order strictly)",
                                blocker, model_->cluster().pool(pool).name)};
      return;
    }
  }
  if (pass.book.CountIn(pool) > 0) {
    // Whether only the holds stand in its way is settled once the pass is over and the holds
    // are gone: lifting them here for every waiting job would cost more than the pass itself.
    pass.explain_later.push_back({&job, pool, job.look});
    return;
  }
  bool topology_bound = false;
  std::string why = DescribeNoFit(free, pool, request, &topology_bound);
  job.reason = {topology_bound ? ReasonCode::kTopology : ReasonCode::kResources, std::move(why)};
}

void Scheduler::ExplainBehindReservations(Pass& pass) {
  FreeCapacity& free = model_->mutable_free();
  // Jobs of one shape in one pool get the same reason: worked out and worded once.
  std::map<std::tuple<PoolIndex, ShapeKey, int>, PendingReason> reasons;
  for (auto [job, pool, look] : pass.explain_later) {
    // It started after all, or was looked at again (its reason is from that later look).
    if (job->state != JobState::kPending || job->look != look) continue;
    PlacementRequest request = PlacementRequest::ForJob(job->spec);
    auto key = std::make_tuple(pool, MakeShapeKey(0, request), request.tasks);
    auto found = reasons.find(key);
    if (found == reasons.end()) {
      PendingReason reason;
      if (FindPlacement(free, pool, request)) {
        const Reservation& first = pass.book.In(pool).front();
        reason = {ReasonCode::kBackfillBlocked,
                  fmt::format("would delay the reservation of job {} at t={} in pool '{}'; a "
                              "shorter time limit could let it start now",
                              first.job, first.start, model_->cluster().pool(pool).name)};
      } else {
        bool topology_bound = false;
        std::string why = DescribeNoFit(free, pool, request, &topology_bound);
        reason = {topology_bound ? ReasonCode::kTopology : ReasonCode::kResources, std::move(why)};
      }
      found = reasons.emplace(key, std::move(reason)).first;
    }
    job->reason = found->second;
  }
}

bool Scheduler::TryStartNow(Pass& pass, Job& job, PoolIndex pool) {
  PlacementRequest request = PlacementRequest::ForJob(job.spec);
  FreeCapacity& free = model_->mutable_free();
  if (ClosedBy(pass, pool, &job) != 0) return false;
  // Too big for every free GPU: leave the holds as they are, as for a job passed over.
  if (free.PoolGpus(pool) + pass.book.HeldIn(pool) < job.gpus()) return false;
  Time end = pass.now + job.spec.time_limit;
  auto& memo = pass.failed[pool];
  std::optional<Placement> placement;
  int level = pass.book.LevelFor(pool, end);
  if (pass.book.HoldsAtLeast(pool, level + 1) && free.PoolGpus(pool) >= job.gpus()) {
    // A job ending before some reservations start may ignore their holds, but lifting and
    // restoring holds for every such job costs more than trying under them first: whatever fits
    // there fits the job's own level too.
    placement = FindPlacement(free, pool, request);
  }
  ShapeKey key = MakeShapeKey(level, request);
  if (!placement) {
    pass.book.Prepare(free, pool, end);
    if (free.PoolGpus(pool) < job.gpus()) return false;
    auto found = memo.find(key);
    if (found != memo.end() && request.tasks >= found->second) return false;
    placement = FindPlacement(free, pool, request);
  }
  if (!placement) {
    auto found = memo.find(key);
    memo[key] = found == memo.end() ? request.tasks : std::min(found->second, request.tasks);
    return false;
  }
  bool backfilled = pass.book.CountIn(pool) > 0;
  if (backfilled && TakesReservedQuota(job, pool, end)) return false;
  // A promoted las job runs from the first queue.
  job.forgiven_gpu_seconds = las_order_ && las_.Promoted(job, pass.now) ? job.attained_gpu_seconds : 0;
  model_->Start(job.id, pool, std::move(placement->tasks), pass.now);
  pass.book.Started(pool, job.tasks, job.spec.gpus_per_task, end);
  pass.started.insert(job.id);
  pass.changes[pool]++;
  // A closer (backfill: none) that starts after all reopens its pools to the jobs behind it.
  if (policy_.backfill == "none") {
    for (PoolIndex closed : job.pools) {
      if (pass.closed_by[closed] == job.id) {
        pass.closed_by[closed] = 0;
        pass.saturated_reason[closed].clear();
        pass.reopened[closed] = true;
        pass.sweep_again = true;
      }
    }
  }
  // A job refused earlier because siblings here kept idle nominal may fit now that one started.
  if (!pass.cohorts_refused.empty()) {
    const AccountTree& tree = model_->accounts();
    for (AccountIndex at = job.account; at != tree.root(); at = tree.account(at).parent) {
      if (pass.cohorts_refused.count({tree.account(at).parent, pool})) {
        pass.sweep_again = true;
        pass.reopened[pool] = true;
      }
    }
  }
  order_->Started(job);
  pass.result.decisions.push_back(StartDecision{job.id, pool, job.epoch, job.tasks, backfilled});
  pass.result.started++;
  return true;
}

bool Scheduler::GangCouldFitWithout(const FreeCapacity& free, PoolIndex pool, const PlacementRequest& request,
                                    int64_t gpus, const std::vector<int64_t>& freed) const {
  const Cluster& cluster = model_->cluster();
  std::vector<DomainIndex> walk = {cluster.pool(pool).root};
  while (!walk.empty()) {
    DomainIndex at = walk.back();
    walk.pop_back();
    const Domain& domain = cluster.domain(at);
    if (domain.level == request.topology.level) {
      if (free.DomainGpus(at) + freed[at] >= gpus) return true;
      continue;
    }
    walk.insert(walk.end(), domain.children.begin(), domain.children.end());
  }
  return false;
}

bool Scheduler::TryPreempt(Pass& pass, Job& job) {
  bool may_priority = MayPreemptByPriority(job);
  if (!policy_.reclaim && !may_priority) return false;
  bool by_class = policy_.priority_preemption && job.class_preempts_lower;
  int job_queue = las_preempts_ ? las_.Of(job, pass.now) : 0;
  AccountTree& tree = model_->mutable_accounts();
  FreeCapacity& free = model_->mutable_free();
  PlacementRequest request = PlacementRequest::ForJob(job.spec);
  Time end = pass.now + job.spec.time_limit;
  bool tried_reclaim = false;

  for (PoolIndex pool : job.pools) {
    // backfill: none: no job passes the one blocked ahead of it, by preempting either.
    if (ClosedBy(pass, pool, &job) != 0) continue;
    QuotaCheck quota = CheckJobQuota(job, pool);
    bool may_reclaim = policy_.reclaim && quota.within_nominal;
    if (!may_reclaim && !may_priority) continue;
    tried_reclaim = tried_reclaim || may_reclaim;
    if (!job.spec.preemptible && !quota.within_nominal) continue;  // it would have to borrow
    int hold_level = pass.book.Prepare(free, pool, end);
    auto memo_key = std::make_tuple(job.account, job.priority, job_queue, static_cast<int>(job.spec.preemptible),
                                    MakeShapeKey(hold_level, request));
    auto& memo = pass.preempt_failed[pool];
    auto failed = memo.find(memo_key);
    if (failed != memo.end() && request.tasks >= failed->second) {
      continue;
    }

    // Victims: borrowers outside the job's branch (reclaim), and preemptible jobs of lower
    // classes (priority); lowest class first, then fewest GPU-hours lost, then newest.
    struct Candidate {
      int priority;
      int queue;  // las: the queue of its attained service (later queues go first)
      double gpu_seconds_lost;
      Time start;
      JobId id;
      bool reclaim;
    };
    std::vector<Candidate> candidates;
    // A gang that must stay in one domain: GPUs each domain of its level would gain were every
    // candidate gone, for the bound below.
    const Cluster& cluster = model_->cluster();
    bool bounded_gang = request.topology.mode == TopologyMode::kRequired && request.topology.level != Level::kSite;
    if (bounded_gang) freed_by_domain_.assign(cluster.domains().size(), 0);
    for (const auto& [end_time, id] : model_->running_by_end(pool)) {
      const Job& running = *model_->FindJob(id);
      // A start made earlier in this pass has not been handed out: it is taken back instead of
      // preempted at the next pass (TakeBackStart), unless that job preempted others to start.
      bool this_pass = pass.started.count(id) > 0;
      if (this_pass && pass.preemptors.count(id)) continue;
      // las: a job of the same class or a lower one in a later queue (it has attained more), and
      // only one that requeues: las takes turns, it does not end jobs of the same class.
      int running_queue = las_preempts_ ? las_.Of(running, pass.now) : 0;
      bool by_service = las_preempts_ && running.spec.requeue && running.priority <= job.priority &&
                        running_queue > job_queue;
      bool by_priority = running.spec.preemptible && ((by_class && running.priority < job.priority) || by_service);
      // A job that would borrow does not take by priority the GPUs of another account's job
      // within that account's nominal: that job would reclaim them at the next pass, and back.
      if (by_priority && quota.borrows && policy_.reclaim && running.account != job.account) {
        const Account& owner = tree.account(running.account);
        if (owner.allocated[pool] <= owner.quota[pool].nominal) by_priority = false;
      }
      bool by_reclaim = may_reclaim && IsBorrowingFrom(tree, running.account, job.account, pool);
      if (!by_priority && !by_reclaim) continue;
      double lost = this_pass ? 0.0
                              : static_cast<double>(running.gpus()) * static_cast<double>(pass.now - running.start_time);
      candidates.push_back({running.priority, running_queue, lost, running.start_time, id, by_reclaim && !by_priority});
      if (bounded_gang) {
        for (const TaskAllocation& task : running.tasks) {
          DomainIndex at = cluster.node(task.node).nvlink;
          while (cluster.domain(at).level != request.topology.level) at = cluster.domain(at).parent;
          freed_by_domain_[at] += std::popcount(task.gpu_mask);
        }
      }
    }
    if (candidates.empty()) {
      memo[memo_key] = request.tasks;
      continue;
    }
    // fits() only grows as victims go. A gang that must stay in one domain cannot fit if no
    // domain of its level would hold it even with every candidate gone: that is known from
    // counts, without removing and restoring hundreds of jobs, pass after pass.
    if (bounded_gang && !GangCouldFitWithout(free, pool, request, job.gpus(), freed_by_domain_)) {
      memo[memo_key] = failed == memo.end() ? request.tasks : std::min(failed->second, request.tasks);
      continue;
    }
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      if (a.priority != b.priority) return a.priority < b.priority;
      if (a.queue != b.queue) return a.queue > b.queue;
      if (a.gpu_seconds_lost != b.gpu_seconds_lost) return a.gpu_seconds_lost < b.gpu_seconds_lost;
      if (a.start != b.start) return a.start > b.start;
      return a.id > b.id;
    });

    // Trial removals change only counts in the index and the accounts; they are undone exactly.
    auto remove = [&](JobId id) {
      const Job& victim = *model_->FindJob(id);
      for (const TaskAllocation& task : victim.tasks) free.Give(task.node, task.gpu_mask, task.cpus, task.memory_bytes);
      tree.Charge(victim.account, pool, -victim.gpus(),
                  -static_cast<double>(victim.gpus()) * static_cast<double>(victim.expected_end()));
    };
    auto restore = [&](JobId id) {
      const Job& victim = *model_->FindJob(id);
      for (const TaskAllocation& task : victim.tasks) free.TakeMask(task.node, task.gpu_mask, task.cpus, task.memory_bytes);
      tree.Charge(victim.account, pool, victim.gpus(),
                  static_cast<double>(victim.gpus()) * static_cast<double>(victim.expected_end()));
    };
    auto fits = [&]() {
      return CheckJobQuota(job, pool).fits && free.PoolGpus(pool) >= job.gpus() &&
             FindPlacement(free, pool, request).has_value() &&
             !(pass.book.CountIn(pool) > 0 && TakesReservedQuota(job, pool, end));
    };
    std::vector<JobId> victims;
    std::vector<bool> reclaimed;
    bool success = false;
    for (const Candidate& candidate : candidates) {
      remove(candidate.id);
      victims.push_back(candidate.id);
      reclaimed.push_back(candidate.reclaim);
      if (fits()) {
        success = true;
        break;
      }
    }
    if (!success) {
      for (JobId id : victims) restore(id);
      memo[memo_key] = failed == memo.end() ? request.tasks : std::min(failed->second, request.tasks);
      continue;
    }
    // Spare the victims that turned out not to be needed, latest chosen first.
    std::vector<bool> needed(victims.size(), true);
    for (size_t i = victims.size() - 1; i-- > 0;) {
      restore(victims[i]);
      if (fits()) {
        needed[i] = false;
      } else {
        remove(victims[i]);
      }
    }
    // A job that would still borrow after preempting by priority could itself be reclaimed by
    // the owners it borrows from at the next pass, and preempt again after that: it waits.
    bool by_priority = false;
    for (size_t i = 0; i < victims.size(); ++i) by_priority = by_priority || (needed[i] && !reclaimed[i]);
    bool reclaimable = by_priority && policy_.reclaim && AnyNominalQuota() && CheckJobQuota(job, pool).borrows;
    // The reservations' holds were laid before any victim was removed. Laid again now, they can
    // take GPUs the victims free (a reservation holds its GPUs wherever they are free): then the
    // job would preempt and still not start.
    pass.book.Clear(free, pool);
    pass.book.Prepare(free, pool, end);
    bool holds_allow = fits();
    pass.book.Clear(free, pool);
    for (size_t i = 0; i < victims.size(); ++i) {
      if (needed[i]) restore(victims[i]);
    }
    if (reclaimable || !holds_allow) {
      memo[memo_key] = failed == memo.end() ? request.tasks : std::min(failed->second, request.tasks);
      continue;
    }
    pass.book.Clear(free, pool);

    const AccountTree& accounts = model_->accounts();
    for (size_t i = 0; i < victims.size(); ++i) {
      if (!needed[i]) continue;
      const Job& victim = *model_->FindJob(victims[i]);
      if (pass.started.count(victim.id)) {
        TakeBackStart(pass, victims[i], job, pool, reclaimed[i]);
        continue;
      }
      std::string reason =
          reclaimed[i]
              ? fmt::format("reclaim: account '{}' needs its nominal quota in pool '{}' back from "
                            "borrowing account '{}'",
                            accounts.account(job.account).path, model_->cluster().pool(pool).name,
                            accounts.account(victim.account).path)
          : by_class && victim.priority < job.priority
              ? fmt::format("priority: class '{}' of job {} preempts class '{}'",
                            job.spec.priority_class, job.id, victim.spec.priority_class)
              : fmt::format("least attained service: job {} ({:.2f} GPU-hours so far, queue {}) goes "
                            "before this job ({:.2f} GPU-hours, queue {})",
                            job.id, LasLevels::Attained(job, pass.now) / 3600.0, job_queue,
                            LasLevels::Attained(victim, pass.now) / 3600.0, las_.Of(victim, pass.now));
      bool requeue = victim.spec.requeue;
      if (requeue) {
        Job& requeued = *model_->FindMutableJob(victim.id);
        requeued.attained_gpu_seconds = LasLevels::Attained(requeued, pass.now);
        requeued.requeue_time = pass.now;
        requeued.forgiven_gpu_seconds = 0;
      }
      JobId victim_id = victim.id;
      PoolIndex victim_pool = victim.pool;
      Time victim_start = victim.start_time;
      std::optional<Job> ended = model_->Stop(victim_id, requeue);
      if (ended) {
        pass.result.ended.push_back(std::move(*ended));
      } else {
        PendingReason preempted{ReasonCode::kPreempted,
                                fmt::format("preempted by job {} and requeued ({})", job.id, reason)};
        model_->FindMutableJob(victim_id)->reason = preempted;
        pass.preempted_reasons.emplace_back(victim_id, std::move(preempted));
      }
      pass.result.decisions.push_back(
          PreemptDecision{victim_id, job.id, requeue, std::move(reason), victim_pool, victim_start});
      pass.changes[victim_pool]++;
      pass.result.preempted++;
    }
    pass.failed[pool].clear();
    pass.preempt_failed[pool].clear();
    pass.sweep_again = true;  // GPUs freed beyond the job's need, victims pending again
    pass.reopened[pool] = true;
    for (size_t i = 0; i < victims.size(); ++i) {
      if (needed[i]) pass.look_again.insert(victims[i]);
    }
    pass.preemptors.insert(job.id);
    if (TryStartNow(pass, job, pool)) return true;
    // The trial said it fits; if holds changed that, the job still waits with its victims gone.
    job.reason = {ReasonCode::kResources, "preempted jobs to make room; starts when the GPUs are free"};
    return true;
  }
  if ((tried_reclaim || may_priority) && pass.reclaimer_ids.insert(job.id).second) {
    bool saw_open = std::all_of(job.pools.begin(), job.pools.end(),
                                [&](PoolIndex pool) { return ClosedBy(pass, pool, &job) == 0; });
    pass.reclaimers.push_back({&job, ChangesIn(pass, job), saw_open});
  }
  return false;
}

bool Scheduler::TakesReservedQuota(const Job& job, PoolIndex pool, Time end) {
  // A job within its nominal at every level takes only what is its own, which is also the own of
  // a reserved job of the same account: that one it must leave room for.
  bool borrows = CheckJobQuota(job, pool).borrows;
  AccountTree& tree = model_->mutable_accounts();
  // As a pass admits a job: a job that is not preemptible never borrows.
  auto admitted = [&](const Job& reserved) {
    QuotaCheck quota = CheckJobQuota(reserved, pool);
    if (quota.borrows && !reserved.spec.preemptible) return false;
    return quota.fits || quota.pool_full;
  };
  bool takes = false;
  for (const Reservation& reservation : book_.In(pool)) {
    const Job* reserved = model_->FindJob(reservation.job);
    if (!borrows) {
      // Quota admits a reserved job by what its account holds now, so a job of the same account
      // takes its room even if it ends before the reservation starts: at the next pass the
      // reserved job would wait for quota and lose its place.
      if (reserved && reserved->account == job.account && admitted(*reserved)) {
        tree.Charge(job.account, pool, job.gpus(), 0.0);
        takes = !admitted(*reserved);
        tree.Charge(job.account, pool, -job.gpus(), 0.0);
        if (takes) break;
      }
      continue;
    }
    // Sorted by start: the job ends before this one and the rest start, and gives the room back.
    if (reservation.start >= end) break;
    if (!reserved || !admitted(*reserved)) continue;
    tree.Charge(job.account, pool, job.gpus(), 0.0);
    takes = !admitted(*reserved);
    tree.Charge(job.account, pool, -job.gpus(), 0.0);
    if (takes) break;
  }
  return takes;
}

void Scheduler::TakeBackStart(Pass& pass, JobId id, const Job& taker, PoolIndex pool, bool reclaim) {
  const Job& started = *model_->FindJob(id);
  pass.book.StartTakenBack(started.pool, started.tasks, started.spec.gpus_per_task, started.expected_end());
  model_->UndoStart(id);
  model_->FindMutableJob(id)->forgiven_gpu_seconds = 0;  // it runs no promoted run now
  order_->Started(*model_->FindJob(id));  // fair share: the account's key drops again
  pass.changes[pool]++;
  pass.started.erase(id);
  pass.result.started--;
  auto& decisions = pass.result.decisions;
  decisions.erase(std::find_if(decisions.begin(), decisions.end(), [id](const Decision& decision) {
    const auto* start = std::get_if<StartDecision>(&decision);
    return start && start->job == id;
  }));
  const AccountTree& accounts = model_->accounts();
  const std::string& pool_name = model_->cluster().pool(pool).name;
  PendingReason reason =
      reclaim ? PendingReason{ReasonCode::kQuota,
                              fmt::format("the GPUs it would borrow in pool '{}' went to job {}: account "
                                          "'{}' needs its nominal quota back",
                                          pool_name, taker.id, accounts.account(taker.account).path)}
      : taker.priority > started.priority
          ? PendingReason{ReasonCode::kPriority,
                          fmt::format("the GPUs it would use in pool '{}' went to job {} of the "
                                      "higher class '{}'",
                                      pool_name, taker.id, taker.spec.priority_class)}
          : PendingReason{ReasonCode::kPriority,
                          fmt::format("the GPUs it would use in pool '{}' went to job {}, which has "
                                      "attained less service (las)",
                                      pool_name, taker.id)};
  model_->FindMutableJob(id)->reason = reason;
  pass.preempted_reasons.emplace_back(id, std::move(reason));
}

bool Scheduler::TryReserve(Pass& pass, Job& job, const std::vector<PoolIndex>& pools) {
  PlacementRequest request = PlacementRequest::ForJob(job.spec);
  std::optional<Reservation> best;
  for (PoolIndex pool : pools) {
    if (pass.book.CountIn(pool) >= static_cast<size_t>(reservation_depth_)) continue;
    auto& memo = pass.failed[pool];
    ShapeKey key = MakeShapeKey(-1, request);
    auto found = memo.find(key);
    if (found != memo.end() && request.tasks >= found->second) continue;
    std::optional<Reservation> planned =
        pass.book.Plan(*model_, pool, request, job.spec.time_limit, pass.now);
    if (!planned) {
      memo[key] = found == memo.end() ? request.tasks : std::min(found->second, request.tasks);
      continue;
    }
    if (!best || planned->start < best->start) best = std::move(planned);
  }
  if (!best) return false;
  best->job = job.id;
  PoolIndex pool = best->pool;
  job.reserved_start = best->start;
  job.reason = {ReasonCode::kReserved,
                fmt::format("reserved to start at t={} (in {}) in pool '{}' on {} nodes", best->start,
                            FormatDuration(best->start - pass.now), model_->cluster().pool(pool).name,
                            best->gpus.size())};
  pass.result.decisions.push_back(
      ReserveDecision{job.id, pool, best->start, static_cast<int>(best->gpus.size())});
  pass.result.reserved++;
  pass.book.Add(std::move(*best));
  pass.failed[pool].clear();
  return true;
}

std::string FormatDecision(const Model& model, const Decision& decision) {
  const Cluster& cluster = model.cluster();
  if (const auto* start = std::get_if<StartDecision>(&decision)) {
    // Tasks on the same node are shown together: node[gpus].
    std::vector<std::pair<NodeIndex, uint32_t>> nodes;
    for (const TaskAllocation& task : start->tasks) {
      if (!nodes.empty() && nodes.back().first == task.node) {
        nodes.back().second |= task.gpu_mask;
      } else {
        nodes.emplace_back(task.node, task.gpu_mask);
      }
    }
    std::sort(nodes.begin(), nodes.end());
    std::string placed;
    for (auto [node, mask] : nodes) {
      if (!placed.empty()) placed += ',';
      placed += fmt::format("{}[{}]", cluster.node(node).name, FormatMask(mask));
    }
    return fmt::format("start job={} pool={} nodes={}{}", start->job, cluster.pool(start->pool).name,
                       placed, start->backfilled ? " backfill" : "");
  }
  if (const auto* preempt = std::get_if<PreemptDecision>(&decision)) {
    return fmt::format("preempt job={} for={} {} reason=\"{}\"", preempt->victim, preempt->preemptor,
                       preempt->requeued ? "requeue" : "end", preempt->reason);
  }
  const auto& reserve = std::get<ReserveDecision>(decision);
  return fmt::format("reserve job={} pool={} start={} nodes={}", reserve.job,
                     cluster.pool(reserve.pool).name, reserve.start, reserve.nodes);
}

}  // namespace allot
