#include "sim/simulator.h"

#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <sstream>

#include "sched/scheduler.h"
#include "sim/ledger.h"
#include "sim/metrics.h"

namespace allot {
namespace {

template <typename T>
using MinHeap = std::priority_queue<T, std::vector<T>, std::greater<T>>;

// A job's execution reaching its end: the run time, or the time limit when it runs longer.
// `epoch` ties it to one execution; after a requeue the old end is stale and ignored.
struct EndEvent {
  Time time;
  uint32_t job;
  uint64_t epoch;
  auto operator<=>(const EndEvent&) const = default;
};

struct CancelEvent {
  Time time;
  uint32_t job;
  auto operator<=>(const CancelEvent&) const = default;
};

constexpr size_t kMaxProblems = 100;

class Simulation {
 public:
  Simulation(std::unique_ptr<Scheduler> scheduler, const std::vector<TraceJob>& trace,
             const SimOptions& options)
      : scheduler_(std::move(scheduler)), trace_(trace), options_(options) {}

  StatusOr<SimRun> Run();

 private:
  JobId IdOf(uint32_t job) const { return static_cast<JobId>(job) + 1; }
  uint32_t IndexOf(JobId id) const { return static_cast<uint32_t>(id - 1); }

  void Setup();
  // Integrates allocation and queue length up to `to` into the totals and the time series.
  void AdvanceClock(Time to);
  // A job starts or stops waiting, for the programme ledger.
  void StartWaiting(uint32_t job, Time now);
  void StopWaiting(uint32_t job);
  // An execution of the job stopped at `now`: its GPU-time is charged to its account.
  void EndExecution(uint32_t job, Time now);
  // An execution was thrown away (preemption, node failure): its work is lost.
  void LoseExecution(uint32_t job, Time now);
  void Problem(std::string message);
  Status SubmitArrival(uint32_t job, Time now);
  void ApplyPass(const PassResult& pass, Time now);
  Status ApplyNodeEvent(const NodeEvent& event, NodeIndex node, Time now);
  void Finish();
  // Pending jobs by reason (TimeSeries::pending_by_reason) and each pool's fragmented GPUs,
  // once per bucket.
  void SampleReasons(Time now);
  std::vector<double> FragmentedGpusByPool() const;

  std::unique_ptr<Scheduler> scheduler_;
  const std::vector<TraceJob>& trace_;
  const SimOptions& options_;
  SimRun run_;

  std::vector<uint64_t> epoch_;     // per job: epoch of its current execution, 0 when not running
  std::vector<Duration> saved_;     // per job: work kept by checkpoints of earlier executions
  std::vector<double> gpu_seconds_by_account_;
  std::vector<int64_t> nominal_by_account_;
  std::map<std::string, uint32_t, std::less<>> extra_accounts_;  // names the config lacks
  std::vector<AccountIndex> tracked_;
  std::optional<size_t> last_reason_bucket_;
  // Per pool: the last sample of fragmented GPUs, and the sum over the buckets before it.
  std::vector<double> fragmented_last_;
  std::vector<double> fragmented_sum_;
  size_t fragmented_from_ = 0;  // the bucket of the last sample
  ProgrammeLedger ledger_;
  std::vector<Time> lost_at_;  // per job: when its last execution was lost; -1 none pending
  std::vector<std::pair<Time, NodeIndex>> node_event_nodes_;
  MinHeap<EndEvent> ends_;
  MinHeap<CancelEvent> cancels_;

  Duration interval_ = 0;
  Time clock_ = 0;
  double gpu_seconds_ = 0;
};

void Simulation::Setup() {
  const Model& model = scheduler_->model();
  const AccountTree& accounts = model.accounts();
  const Cluster& cluster = model.cluster();
  run_.summary.policy = options_.policy_name;
  run_.summary.total_gpus = cluster.total_gpus();
  run_.summary.trace_jobs = trace_.size();
  run_.summary.skipped_lines = options_.skipped_lines;
  run_.problems = options_.problems;
  if (run_.problems.size() > kMaxProblems) run_.problems.resize(kMaxProblems);
  for (const Pool& pool : cluster.pools()) run_.pool_names.push_back(pool.name);

  for (AccountIndex a = 0; a < accounts.accounts().size(); ++a) {
    const Account& account = accounts.account(a);
    run_.account_names.push_back(a == accounts.root() ? std::string("(root)") : account.name);
    int64_t nominal = 0;
    for (const PoolQuota& quota : account.quota) {
      if (quota.nominal < kUnlimited) nominal += quota.nominal;
    }
    nominal_by_account_.push_back(nominal);
  }
  gpu_seconds_by_account_.assign(run_.account_names.size(), 0);

  Time first = trace_.empty() ? 0 : trace_.front().submit;
  Time last = trace_.empty() ? 0 : trace_.back().submit;
  run_.series.origin = first;
  run_.series.step = options_.sample_step > 0 ? options_.sample_step
                                              : std::max<Duration>(60, (last - first + 999) / 1000);
  clock_ = first;

  interval_ = options_.pass_interval >= 0 ? options_.pass_interval : scheduler_->policy().pass_interval;
  epoch_.assign(trace_.size(), 0);
  saved_.assign(trace_.size(), 0);
  lost_at_.assign(trace_.size(), -1);
  ledger_.Setup(model, interval_, trace_.size(), run_);
  // The programmes followed over time in plots: at most 16, the largest by nominal first.
  for (const ProgrammeSummary& programme : run_.summary.per_programme) {
    tracked_.push_back(*accounts.Find(programme.name));
  }
  std::stable_sort(tracked_.begin(), tracked_.end(), [&](AccountIndex a, AccountIndex b) {
    return nominal_by_account_[a] > nominal_by_account_[b];
  });
  if (tracked_.size() > 16) tracked_.resize(16);
  std::sort(tracked_.begin(), tracked_.end());
  for (AccountIndex a : tracked_) {
    run_.tracked.push_back({accounts.account(a).name, nominal_by_account_[a]});
  }
  run_.series.tracked_gpus.assign(tracked_.size(), {});
  run_.jobs.resize(trace_.size());
  for (uint32_t i = 0; i < trace_.size(); ++i) {
    JobRecord& record = run_.jobs[i];
    record.id = trace_[i].id;
    record.gpus = trace_[i].gpus();
    record.submit = trace_[i].submit;
  }
}

void Simulation::StartWaiting(uint32_t job, Time now) {
  if (const Job* live = scheduler_->model().FindJob(IdOf(job))) ledger_.StartWaiting(job, *live, run_.jobs[job].account, now);
}

void Simulation::StopWaiting(uint32_t job) {
  if (const Job* live = scheduler_->model().FindJob(IdOf(job))) ledger_.StopWaiting(job, *live);
}

void Simulation::AdvanceClock(Time to) {
  if (to <= clock_) return;
  ledger_.AdvanceTo(scheduler_->model(), to, run_);
  const Model& model = scheduler_->model();
  const AccountTree& accounts = model.accounts();
  double allocated = static_cast<double>(accounts.account(accounts.root()).allocated_total);
  double pending = static_cast<double>(model.pending().size());
  gpu_seconds_ += allocated * static_cast<double>(to - clock_);
  TimeSeries& series = run_.series;
  Time at = clock_;
  while (at < to) {
    size_t bucket = static_cast<size_t>((at - series.origin) / series.step);
    Time bucket_end = series.origin + static_cast<Time>(bucket + 1) * series.step;
    double span = static_cast<double>(std::min(to, bucket_end) - at);
    if (series.allocated_gpus.size() <= bucket) {
      series.allocated_gpus.resize(bucket + 1, 0);
      series.pending_jobs.resize(bucket + 1, 0);
      for (auto& tracked : series.tracked_gpus) tracked.resize(bucket + 1, 0);
    }
    series.allocated_gpus[bucket] += allocated * span;
    series.pending_jobs[bucket] += pending * span;
    for (size_t t = 0; t < tracked_.size(); ++t) {
      series.tracked_gpus[t][bucket] +=
          static_cast<double>(accounts.account(tracked_[t]).allocated_total) * span;
    }
    at = std::min(to, bucket_end);
  }
  clock_ = to;
}

void Simulation::SampleReasons(Time now) {
  TimeSeries& series = run_.series;
  const size_t bucket = static_cast<size_t>((now - series.origin) / series.step);
  if (last_reason_bucket_ && bucket <= *last_reason_bucket_) return;
  last_reason_bucket_ = bucket;
  // About a thousand samples a run, each a walk of the queue: cheap next to the passes.
  constexpr size_t kReasons = static_cast<size_t>(ReasonCode::kPreempted) + 1;
  std::vector<double> counts(kReasons, 0);
  const Model& model = scheduler_->model();
  for (JobId id : model.pending()) {
    if (const Job* job = model.FindJob(id)) counts[static_cast<size_t>(scheduler_->ReasonOf(*job).code)] += 1;
  }
  series.pending_by_reason.resize(kReasons);
  for (size_t reason = 0; reason < kReasons; ++reason) {
    std::vector<double>& line = series.pending_by_reason[reason];
    line.resize(bucket, line.empty() ? 0 : line.back());  // buckets without a pass: as last seen
    line.push_back(counts[reason]);
  }
  // Buckets since the last sample held the last sample's fragmentation.
  std::vector<double> fragmented = FragmentedGpusByPool();
  fragmented_sum_.resize(fragmented.size(), 0);
  fragmented_last_.resize(fragmented.size(), 0);
  for (size_t pool = 0; pool < fragmented.size(); ++pool) {
    fragmented_sum_[pool] += fragmented_last_[pool] * static_cast<double>(bucket - fragmented_from_);
    fragmented_last_[pool] = fragmented[pool];
  }
  fragmented_from_ = bucket;
}

std::vector<double> Simulation::FragmentedGpusByPool() const {
  const Model& model = scheduler_->model();
  const Cluster& cluster = model.cluster();
  std::vector<double> fragmented(cluster.pools().size(), 0);
  for (PoolIndex pool = 0; pool < cluster.pools().size(); ++pool) {
    for (DomainIndex domain : cluster.pool(pool).domains_by_level[static_cast<size_t>(Level::kNvlink)]) {
      int busy = 0, idle = 0;
      for (NodeIndex node : cluster.domain(domain).nodes) {
        if (cluster.node(node).state != NodeState::kUp) continue;
        const int unallocated = model.free().UnallocatedGpus(node);
        busy += cluster.node(node).gpus - unallocated;
        idle += unallocated;
      }
      if (busy > 0 && idle > 0) fragmented[pool] += idle;
    }
  }
  return fragmented;
}

void Simulation::EndExecution(uint32_t job, Time now) {
  JobRecord& record = run_.jobs[job];
  gpu_seconds_by_account_[record.account] +=
      static_cast<double>(record.gpus) * static_cast<double>(now - record.start);
  epoch_[job] = 0;
}

void Simulation::LoseExecution(uint32_t job, Time now) {
  JobRecord& record = run_.jobs[job];
  Duration ran = now - record.start;
  Duration interval = trace_[job].checkpoint_interval;
  Duration kept = interval > 0 ? ran / interval * interval : 0;
  saved_[job] += kept;
  record.lost_gpu_seconds += static_cast<double>(record.gpus) * static_cast<double>(ran - kept);
  record.restarts++;
  lost_at_[job] = now;
  EndExecution(job, now);
}

void Simulation::Problem(std::string message) {
  if (run_.problems.size() < kMaxProblems) run_.problems.push_back(std::move(message));
}

Status Simulation::SubmitArrival(uint32_t job, Time now) {
  const TraceJob& arrival = trace_[job];
  JobRecord& record = run_.jobs[job];
  JobSpec spec;
  spec.account = arrival.account;
  spec.tasks = arrival.tasks;
  spec.gpus_per_task = arrival.gpus_per_task;
  spec.gpu_model = arrival.gpu_model;
  if (!arrival.pool.empty()) spec.pools = {arrival.pool};
  spec.topology = arrival.topology;
  spec.time_limit = arrival.time_limit;
  spec.priority_class = arrival.priority_class;
  spec.preemptible = arrival.preemptible;
  spec.kind = arrival.kind;

  StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(arrival.account);
  if (account.ok()) {
    record.account = *account;
  } else {
    auto [it, added] = extra_accounts_.emplace(arrival.account, static_cast<uint32_t>(run_.account_names.size()));
    if (added) {
      run_.account_names.push_back(arrival.account);
      gpu_seconds_by_account_.push_back(0);
      nominal_by_account_.push_back(0);
      ledger_.AddUnknownAccount();
    }
    record.account = it->second;
  }
  Status submitted = scheduler_->Submit(IdOf(job), spec, now);
  if (!submitted.ok()) {
    record.outcome = Outcome::kRejected;
    std::string where = arrival.line > 0 ? fmt::format("{}:{}: ", options_.source, arrival.line)
                                         : std::string();
    std::string message = fmt::format("{}job {} rejected: {}", where, arrival.id, submitted.message());
    if (options_.strict) return InvalidArgumentError("{}", message);
    Problem(std::move(message));
    return OkStatus();
  }
  StartWaiting(job, now);
  if (arrival.cancel_after >= 0) cancels_.push({now + arrival.cancel_after, job});
  return OkStatus();
}

void Simulation::ApplyPass(const PassResult& pass, Time now) {
  for (const Decision& decision : pass.decisions) {
    if (const auto* start = std::get_if<StartDecision>(&decision)) {
      uint32_t job = IndexOf(start->job);
      JobRecord& record = run_.jobs[job];
      StopWaiting(job);
      if (record.first_start < 0) record.first_start = now;
      if (lost_at_[job] >= 0) {
        record.recovering += now - lost_at_[job];
        record.recovered++;
        lost_at_[job] = -1;
      }
      record.start = now;
      record.pool = static_cast<int32_t>(start->pool);
      epoch_[job] = start->epoch;
      const TraceJob& arrival = trace_[job];
      Duration limit = scheduler_->model().FindJob(start->job)->spec.time_limit;
      ends_.push({now + std::min(arrival.runtime - saved_[job], limit), job, start->epoch});
    } else if (const auto* preempt = std::get_if<PreemptDecision>(&decision)) {
      uint32_t job = IndexOf(preempt->victim);
      LoseExecution(job, now);
      run_.summary.preemptions++;
      if (preempt->requeued) StartWaiting(job, now);
      if (!preempt->requeued) {
        run_.jobs[job].outcome = Outcome::kFailed;
        run_.jobs[job].end = now;
      }
    }
  }
}

Status Simulation::ApplyNodeEvent(const NodeEvent& event, NodeIndex node, Time now) {
  ALLOT_ASSIGN_OR_RETURN(NodeFailure failure, scheduler_->SetNodeState(node, event.state, now));
  if (event.state == NodeState::kDown) run_.summary.node_failures++;
  for (JobId id : failure.requeued) {
    LoseExecution(IndexOf(id), now);
    StartWaiting(IndexOf(id), now);
  }
  for (const Job& ended : failure.ended) {
    uint32_t job = IndexOf(ended.id);
    LoseExecution(job, now);
    run_.jobs[job].outcome = Outcome::kFailed;
    run_.jobs[job].end = now;
  }
  return OkStatus();
}

StatusOr<SimRun> Simulation::Run() {
  auto wall_start = std::chrono::steady_clock::now();
  Setup();
  const Cluster& cluster = scheduler_->model().cluster();
  for (const NodeEvent& event : options_.node_events) {
    StatusOr<NodeIndex> node = cluster.FindNode(event.node);
    if (!node.ok()) return InvalidArgumentError("node schedule: {}", node.status().message());
    node_event_nodes_.emplace_back(event.time, *node);
  }
  std::vector<size_t> node_order(options_.node_events.size());
  for (size_t i = 0; i < node_order.size(); ++i) node_order[i] = i;
  std::stable_sort(node_order.begin(), node_order.end(), [&](size_t a, size_t b) {
    return options_.node_events[a].time < options_.node_events[b].time;
  });

  size_t next_arrival = 0;
  size_t next_node_event = 0;
  bool dirty = false;
  Time pass_not_before = clock_;
  size_t progress_every = std::max<size_t>(1, trace_.size() / 200);

  while (true) {
    Time now = kForever;
    if (next_arrival < trace_.size()) now = std::min(now, trace_[next_arrival].submit);
    if (!ends_.empty()) now = std::min(now, ends_.top().time);
    if (!cancels_.empty()) now = std::min(now, cancels_.top().time);
    if (next_node_event < node_order.size()) {
      now = std::min(now, options_.node_events[node_order[next_node_event]].time);
    }
    if (dirty) now = std::min(now, std::max(pass_not_before, clock_));
    if (now == kForever) break;
    if (now > options_.horizon) {
      AdvanceClock(options_.horizon);
      break;
    }
    AdvanceClock(now);

    // Ends first: GPUs they free are there for everything else that happens at this moment.
    while (!ends_.empty() && ends_.top().time == now) {
      EndEvent end = ends_.top();
      ends_.pop();
      if (epoch_[end.job] != end.epoch) continue;  // the execution was preempted or failed
      StatusOr<Job> done = scheduler_->Complete(IdOf(end.job), now);
      if (!done.ok()) return InternalError("ending job {}: {}", trace_[end.job].id, done.status().message());
      EndExecution(end.job, now);
      JobRecord& record = run_.jobs[end.job];
      record.end = now;
      record.outcome = trace_[end.job].runtime - saved_[end.job] > done->spec.time_limit ? Outcome::kTimedOut
                                                                       : Outcome::kCompleted;
      dirty = true;
    }
    while (next_node_event < node_order.size() &&
           options_.node_events[node_order[next_node_event]].time == now) {
      size_t index = node_order[next_node_event++];
      ALLOT_RETURN_IF_ERROR(ApplyNodeEvent(options_.node_events[index], node_event_nodes_[index].second, now));
      dirty = true;
    }
    while (!cancels_.empty() && cancels_.top().time == now) {
      uint32_t job = cancels_.top().job;
      cancels_.pop();
      const Job* live = scheduler_->model().FindJob(IdOf(job));
      if (!live) continue;  // it ended before its owner gave up on it
      bool running = live->state == JobState::kRunning;
      if (!running) StopWaiting(job);
      StatusOr<Job> cancelled = scheduler_->Cancel(IdOf(job), now);
      if (!cancelled.ok()) return InternalError("cancelling job {}: {}", trace_[job].id, cancelled.status().message());
      if (running) {
        EndExecution(job, now);
        run_.jobs[job].end = now;
      }
      run_.jobs[job].outcome = Outcome::kCancelled;
      dirty = true;
    }
    while (next_arrival < trace_.size() && trace_[next_arrival].submit == now) {
      ALLOT_RETURN_IF_ERROR(SubmitArrival(static_cast<uint32_t>(next_arrival), now));
      ++next_arrival;
      dirty = true;
      if (options_.progress && next_arrival % progress_every == 0) {
        options_.progress(static_cast<double>(next_arrival) / static_cast<double>(trace_.size()));
      }
    }

    if (dirty && now >= pass_not_before) {
      PassResult pass = scheduler_->RunPass(now);
      run_.summary.passes++;
      ApplyPass(pass, now);
      SampleReasons(now);
      // Requeued victims get another look, but not in the same instant, so a pass that only
      // preempts cannot repeat forever at one moment.
      dirty = pass.preempted > 0;
      pass_not_before = now + (dirty ? std::max<Duration>(interval_, 1) : interval_);
    }
  }
  Finish();
  run_.summary.sim_wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  if (options_.progress) options_.progress(1.0);
  return std::move(run_);
}

void Simulation::Finish() {
  // Jobs still running at the horizon are charged up to it.
  for (uint32_t job = 0; job < epoch_.size(); ++job) {
    if (epoch_[job] != 0) EndExecution(job, clock_);
  }
  SimSummary& summary = run_.summary;
  summary.makespan_s = clock_ - run_.series.origin;
  summary.gpu_hours = gpu_seconds_ / 3600.0;
  double lost = 0;
  for (const JobRecord& record : run_.jobs) lost += record.lost_gpu_seconds;
  summary.gpu_hours_lost = lost / 3600.0;
  double capacity = static_cast<double>(summary.total_gpus) * static_cast<double>(summary.makespan_s);
  summary.utilization = capacity > 0 ? gpu_seconds_ / capacity : 0;

  // Bucket integrals become averages; the last bucket may be partial.
  TimeSeries& series = run_.series;
  for (size_t bucket = 0; bucket < series.allocated_gpus.size(); ++bucket) {
    Time start = series.origin + static_cast<Time>(bucket) * series.step;
    double width = static_cast<double>(std::min<Time>(series.step, clock_ - start));
    if (width <= 0) continue;
    series.allocated_gpus[bucket] /= width;
    series.pending_jobs[bucket] /= width;
    for (auto& tracked : series.tracked_gpus) tracked[bucket] /= width;
  }
  for (std::vector<double>& line : series.pending_by_reason) {
    line.resize(std::max(line.size(), series.allocated_gpus.size()), line.empty() ? 0 : line.back());
  }
  SummarizeJobs(run_, gpu_seconds_by_account_, nominal_by_account_, ledger_.programme_of_account());
  ledger_.Finish(scheduler_->model(), clock_, run_);
  const size_t buckets = series.allocated_gpus.size();
  for (size_t pool = 0; pool < fragmented_sum_.size() && pool < run_.summary.per_pool.size(); ++pool) {
    double sum = fragmented_sum_[pool] + fragmented_last_[pool] * static_cast<double>(buckets - std::min(buckets, fragmented_from_));
    run_.summary.per_pool[pool].fragmented_gpus = buckets > 0 ? sum / static_cast<double>(buckets) : 0;
  }

  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    summary.peak_rss_bytes = static_cast<size_t>(usage.ru_maxrss) * 1024;
  }
}

}  // namespace

StatusOr<SimRun> Simulate(Config config, const std::vector<TraceJob>& jobs,
                          const SimOptions& options) {
  for (size_t i = 1; i < jobs.size(); ++i) {
    if (jobs[i].submit < jobs[i - 1].submit) {
      return InvalidArgumentError("trace jobs must be sorted by submit time (job {} comes after a later one)",
                                  jobs[i].id);
    }
  }
  ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, Scheduler::Create(std::move(config)));
  Simulation simulation(std::move(scheduler), jobs, options);
  return simulation.Run();
}

StatusOr<Config> FlatClusterConfig(std::string_view spec, const std::vector<std::string>& accounts) {
  auto parse = [](std::string_view text, auto& value) {
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    return error == std::errc() && end == text.data() + text.size();
  };
  // Groups of NODESxGPUS, comma-separated: "812x8,1x4" is 812 8-GPU nodes and one with 4.
  std::vector<std::pair<int64_t, int>> groups;
  int64_t total_nodes = 0;
  for (size_t begin = 0; begin <= spec.size();) {
    size_t comma = std::min(spec.find(',', begin), spec.size());
    std::string_view group = spec.substr(begin, comma - begin);
    size_t x = group.find('x');
    int64_t nodes = 0;
    int gpus = 0;
    if (x == std::string_view::npos || !parse(group.substr(0, x), nodes) || !parse(group.substr(x + 1), gpus) ||
        nodes < 1 || nodes > 1000000 || gpus < 1 || gpus > kMaxGpusPerNode) {
      return InvalidArgumentError(
          "cluster '{}' is not NODESxGPUS with 1-1000000 nodes of 1-{} GPUs, e.g. 256x1 or 128x8, or "
          "several such groups separated by commas, e.g. 812x8,1x4",
          spec, kMaxGpusPerNode);
    }
    total_nodes += nodes;
    if (total_nodes > 1000000) return InvalidArgumentError("cluster '{}' has more than 1000000 nodes", spec);
    groups.emplace_back(nodes, gpus);
    begin = comma + 1;
  }
  Config config;
  ALLOT_ASSIGN_OR_RETURN(PoolIndex pool, config.cluster.AddPool({.name = "flat", .site = "flat", .gpu_model = "GPU"}));
  constexpr int kNodesPerLeaf = 32;  // keeps best-fit placement looking at few domains per level
  int64_t i = 0;
  for (auto [nodes, gpus] : groups) {
    for (int64_t end = i + nodes; i < end; ++i) {
      NodeOptions node;
      node.name = fmt::format("n{}", i + 1);
      node.pool = pool;
      node.pod = "pod1";
      node.leaf = fmt::format("leaf{}", i / kNodesPerLeaf + 1);
      node.gpus = gpus;
      ALLOT_RETURN_IF_ERROR(config.cluster.AddNode(node).status());
    }
  }
  ALLOT_RETURN_IF_ERROR(config.cluster.Finalize());
  config.accounts = AccountTree(1);
  std::vector<std::string> names = accounts;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const std::string& name : names) {
    ALLOT_RETURN_IF_ERROR(config.accounts.Add(config.accounts.root(), name, 1).status());
  }
  ALLOT_RETURN_IF_ERROR(config.accounts.Finalize());
  config.policy.reclaim = false;  // no account has a nominal quota to reclaim
  return config;
}

const std::vector<std::string_view>& PolicyPresetNames() {
  static const std::vector<std::string_view> names = {
      "fcfs", "easy", "conservative", "fair-share", "first-fit", "sjf", "sjf-first-fit",
      "predicted", "predicted-first-fit", "las", "las-first-fit", "config"};
  return names;
}

Status ApplyPolicyPreset(std::string_view name, PolicyConfig& policy) {
  auto set = [&](const char* order, const char* backfill) {
    policy.queue_order = order;
    policy.backfill = backfill;
    policy.reservation_depth = 0;
  };
  if (name == "fcfs") {
    set("fifo", "none");
  } else if (name == "easy") {
    set("fifo", "easy");
  } else if (name == "conservative") {
    set("fifo", "conservative");
  } else if (name == "fair-share") {
    set("fair_share", "easy");
  } else if (name == "first-fit") {
    set("fifo", "first_fit");
  } else if (name == "sjf" || name == "sjf-first-fit" || name == "predicted" ||
             name == "predicted-first-fit") {
    // Shortest-first as published: no starvation guard, which would turn the order back into
    // FIFO for every job that waited past it.
    bool easy = name == "sjf" || name == "predicted";
    set(name.substr(0, 3) == "sjf" ? "sjf" : "predicted", easy ? "easy" : "first_fit");
    policy.starvation_after = 0;
  } else if (name == "las" || name == "las-first-fit") {
    // Tiresias' discretised LAS as published: no starvation guard, preemption by attained service
    // on (preempted jobs resume from their checkpoints: give a trace's jobs one with --checkpoint).
    set("las", name == "las" ? "easy" : "first_fit");
    policy.starvation_after = 0;
    policy.priority_preemption = true;
  } else if (name != "config") {
    return InvalidArgumentError("unknown policy '{}'; use one of: {}", name, fmt::join(PolicyPresetNames(), ", "));
  }
  return OkStatus();
}

StatusOr<std::vector<NodeEvent>> ReadNodeEvents(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open node schedule '{}'", path);
  std::vector<NodeEvent> events;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (number == 1 && line.rfind("time,", 0) == 0) continue;  // the header
    std::vector<std::string> fields;
    std::stringstream stream(line);
    std::string field;
    while (std::getline(stream, field, ',')) fields.push_back(field);
    if (fields.size() != 3) {
      return InvalidArgumentError("{}:{}: expected time,node,state; got '{}'", path, number, line);
    }
    StatusOr<Duration> time = ParseDuration(fields[0]);
    if (!time.ok() || *time < 0) {
      return InvalidArgumentError("{}:{}: time '{}' is not seconds or a duration like 6h", path, number, fields[0]);
    }
    StatusOr<NodeState> state = ParseNodeState(fields[2]);
    if (!state.ok()) return InvalidArgumentError("{}:{}: {}", path, number, state.status().message());
    events.push_back({*time, fields[1], *state});
  }
  return events;
}

}  // namespace allot
