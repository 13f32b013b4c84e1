#include "core/model.h"

#include <algorithm>
#include <cassert>

namespace allot {

Model::Model(Cluster cluster, AccountTree accounts)
    : cluster_(std::move(cluster)),
      accounts_(std::move(accounts)),
      free_(cluster_),
      pending_requests_(cluster_.pools().size()),
      running_by_end_(cluster_.pools().size()),
      jobs_on_node_(cluster_.nodes().size()),
      pool_versions_(cluster_.pools().size(), 0) {}

const Job* Model::FindJob(JobId id) const {
  auto found = jobs_.find(id);
  return found == jobs_.end() ? nullptr : &found->second;
}

Job* Model::FindMutableJob(JobId id) {
  auto found = jobs_.find(id);
  return found == jobs_.end() ? nullptr : &found->second;
}

Status Model::AddPending(Job job) {
  JobId id = job.id;
  job.state = JobState::kPending;
  auto [it, inserted] = jobs_.emplace(id, std::move(job));
  if (!inserted) return AlreadyExistsError("job {} exists already", id);
  EnterPending(it->second);
  return OkStatus();
}

void Model::EnterPending(Job& job) {
  job.pending_since = ++pending_sequence_;
  pending_.insert(job.id);
  pending_in_order_.insert(OrderOf(job));
  SizeQueue& same_size = pending_by_size_[job.gpus()];
  same_size.in_order.insert(OrderOf(job));
  same_size.by_time_limit.emplace(job.spec.time_limit, OrderOf(job));
  for (PoolIndex pool : job.pools) pending_requests_[pool][job.gpus()]++;
}

void Model::LeavePending(const Job& job) {
  ++pending_erasures_;
  pending_.erase(job.id);
  pending_in_order_.erase(OrderOf(job));
  auto bucket = pending_by_size_.find(job.gpus());
  if (bucket != pending_by_size_.end()) {
    bucket->second.in_order.erase(OrderOf(job));
    bucket->second.by_time_limit.erase({job.spec.time_limit, OrderOf(job)});
    if (bucket->second.in_order.empty()) pending_by_size_.erase(bucket);
  }
  for (PoolIndex pool : job.pools) {
    auto& requests = pending_requests_[pool];
    auto found = requests.find(job.gpus());
    if (found != requests.end() && --found->second == 0) requests.erase(found);
  }
}

void Model::Start(JobId id, PoolIndex pool, std::vector<TaskAllocation> tasks, Time now,
                  bool keep_masks) {
  Job& job = jobs_.at(id);
  assert(job.state == JobState::kPending);
  for (TaskAllocation& task : tasks) {
    int gpus = job.spec.gpus_per_task;
    if (keep_masks) {
      free_.TakeMask(task.node, task.gpu_mask, task.cpus, task.memory_bytes);
    } else {
      task.gpu_mask = free_.Take(task.node, gpus, task.cpus, task.memory_bytes);
    }
    jobs_on_node_[task.node].push_back(id);
  }
  job.tasks = std::move(tasks);
  job.state = JobState::kRunning;
  job.pool = pool;
  job.start_time = now;
  job.epoch++;
  job.reason = {};
  LeavePending(job);
  running_by_end_[pool].emplace(job.expected_end(), id);
  running_count_++;
  pool_versions_[pool]++;
  double gpus = static_cast<double>(job.gpus());
  accounts_.Charge(job.account, pool, job.gpus(), gpus * static_cast<double>(job.expected_end()));
}

std::optional<Job> Model::Stop(JobId id, bool requeue) {
  auto found = jobs_.find(id);
  if (found == jobs_.end() || found->second.state != JobState::kRunning) return std::nullopt;
  Job& job = found->second;
  for (const TaskAllocation& task : job.tasks) {
    free_.Give(task.node, task.gpu_mask, task.cpus, task.memory_bytes);
    auto& on_node = jobs_on_node_[task.node];
    on_node.erase(std::find(on_node.begin(), on_node.end(), id));
  }
  running_by_end_[job.pool].erase({job.expected_end(), id});
  running_count_--;
  pool_versions_[job.pool]++;
  double gpus = static_cast<double>(job.gpus());
  accounts_.Charge(job.account, job.pool, -job.gpus(),
                   -gpus * static_cast<double>(job.expected_end()));
  if (requeue) {
    job.state = JobState::kPending;
    job.tasks.clear();
    job.restarts++;
    job.reason = {};
    EnterPending(job);
    return std::nullopt;
  }
  Job stopped = std::move(job);
  jobs_.erase(found);
  return stopped;
}

void Model::UndoStart(JobId id) {
  Stop(id, /*requeue=*/true);
  Job& job = jobs_.at(id);
  job.restarts--;
  job.epoch--;
}

std::optional<Job> Model::RemovePending(JobId id) {
  auto found = jobs_.find(id);
  if (found == jobs_.end() || found->second.state != JobState::kPending) return std::nullopt;
  LeavePending(found->second);
  Job removed = std::move(found->second);
  jobs_.erase(found);
  return removed;
}

void Model::SetNodeState(NodeIndex node, NodeState state) {
  cluster_.SetNodeState(node, state);
  free_.SetSchedulable(node, state == NodeState::kUp);
  pool_versions_[cluster_.node(node).pool]++;
}

std::vector<JobId> Model::JobsOnNode(NodeIndex node) const {
  std::vector<JobId> ids = jobs_on_node_[node];
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

void Model::AdvanceTo(Time now, Duration half_life) {
  if (!clock_started_) {
    clock_started_ = true;
    now_ = now;
    return;
  }
  if (now <= now_) return;
  accounts_.Accrue(now_, now, half_life);
  now_ = now;
}

size_t Model::ApproximateBytes() const {
  size_t bytes = sizeof(*this);
  bytes += cluster_.nodes().capacity() * sizeof(Node);
  for (const Node& node : cluster_.nodes()) bytes += node.name.capacity();
  bytes += cluster_.domains().capacity() * sizeof(Domain);
  for (const Domain& domain : cluster_.domains()) {
    bytes += domain.name.capacity() + domain.children.capacity() * sizeof(DomainIndex) +
             domain.nodes.capacity() * sizeof(NodeIndex);
  }
  // FreeCapacity: one record per node and one per domain.
  bytes += cluster_.nodes().size() * 24 + cluster_.domains().size() * (4 * (kMaxGpusPerNode + 2));
  for (const Account& account : accounts_.accounts()) {
    bytes += sizeof(Account) + account.path.capacity() + account.name.capacity() +
             account.quota.capacity() * sizeof(PoolQuota) +
             account.allocated.capacity() * sizeof(int64_t) * 2;
  }
  // Jobs: the map node, the record, its strings and allocations.
  constexpr size_t kMapNodeOverhead = 48;
  for (const auto& [id, job] : jobs_) {
    bytes += kMapNodeOverhead + sizeof(Job) + job.spec.name.capacity() +
             job.spec.account.capacity() + job.tasks.capacity() * sizeof(TaskAllocation) +
             job.pools.capacity() * sizeof(PoolIndex);
  }
  // Four sets hold a pending job: by id (40 bytes a node), in queue order and in its size's
  // queues (56, 56 and 64).
  bytes += pending_.size() * 216;
  bytes += jobs_on_node_.size() * sizeof(std::vector<JobId>);
  return bytes;
}

}  // namespace allot
