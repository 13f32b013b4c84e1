// The Controller's agents side: each node's agent syncs (POST /v1/agents/{node}/sync) to report
// its tasks and output and to get what to run and kill; a sync with nothing to say waits (a long
// poll) until work for its node appears. Also the tasks' environment, the output logs, and
// marking down nodes whose agents stopped syncing. Kept apart from controller.cc, which holds
// the job lifecycle the agents carry out.
#include "server/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <unordered_set>

#include "api/agent_protocol.h"
#include "core/hostlist.h"
#include "server/controller_internal.h"

namespace allot {
namespace {

using nlohmann::json;
using namespace controller_internal;

}  // namespace

// ---- Agents -----------------------------------------------------------------------------------

bool Controller::TaskIsCurrent(JobId id, uint64_t epoch, int index, NodeIndex node) const {
  const Job* job = scheduler_->model().FindJob(id);
  if (!job || job->state != JobState::kRunning || job->epoch != epoch || index < 0) return false;
  if (index < static_cast<int>(job->tasks.size())) return job->tasks[static_cast<size_t>(index)].node == node;
  auto [step, task] = FindStepTask(records_.at(id), index);
  return task != nullptr && !step->cancelled && task->host == node;
}

Status Controller::CheckSteps(const Job& job, const JobRecord& record) {
  const size_t nodes = JobNodes(job).size();
  int next = static_cast<int>(job.tasks.size());
  for (const Step& step : record.steps) {
    bool fits = step.first_index >= next && !step.tasks.empty() && step.nodes >= 1 &&
                static_cast<size_t>(step.nodes) <= nodes;
    for (const StepTask& task : step.tasks) fits &= task.node >= 0 && task.node < step.nodes;
    if (!fits) return InvalidArgumentError("its step {} does not fit its allocation (a damaged record)", step.id);
    next = step.first_index + static_cast<int>(step.tasks.size());
  }
  if (!record.steps.empty() && record.next_task_index < next) {
    return InvalidArgumentError("its step records overlap (a damaged record)");
  }
  return OkStatus();
}

std::pair<Step*, StepTask*> Controller::FindStepTask(JobRecord& record, int index) {
  auto [step, task] = FindStepTask(static_cast<const JobRecord&>(record), index);
  return {const_cast<Step*>(step), const_cast<StepTask*>(task)};
}

std::pair<const Step*, const StepTask*> Controller::FindStepTask(const JobRecord& record, int index) {
  // Steps hold consecutive ranges of indexes, in order: the last one starting at or before it.
  auto after = std::upper_bound(record.steps.begin(), record.steps.end(), index,
                                [](int i, const Step& step) { return i < step.first_index; });
  if (after == record.steps.begin()) return {nullptr, nullptr};
  const Step& step = *std::prev(after);
  size_t offset = static_cast<size_t>(index - step.first_index);
  if (offset >= step.tasks.size()) return {nullptr, nullptr};
  return {&step, &step.tasks[offset]};
}

std::vector<TaskKill> Controller::KillsFor(NodeIndex node, const std::set<std::tuple<JobId, uint64_t, int>>& known) const {
  std::vector<TaskKill> kills;
  for (const auto& [id, epoch, index] : known) {
    if (!TaskIsCurrent(id, epoch, index, node)) kills.push_back({id, epoch, index, options_.kill_grace_seconds});
  }
  return kills;
}

void Controller::CompleteLongPoll(NodeIndex node, bool superseded) {
  auto found = long_polls_.find(node);
  if (found == long_polls_.end()) return;
  LongPoll poll = std::move(found->second);
  long_polls_.erase(found);
  for (const auto& [id, epoch, index] : poll.known) {
    if (auto watchers = long_polls_by_job_.find(id); watchers != long_polls_by_job_.end()) {
      watchers->second.erase(node);
      if (watchers->second.empty()) long_polls_by_job_.erase(watchers);
    }
  }
  // A superseded poll hands out nothing: its agent gets all of it from the sync that replaced it.
  SyncReply reply{.protocol = poll.protocol, .node = scheduler_->model().cluster().node(node).name,
                  .heartbeat_seconds = HeartbeatSeconds()};
  // Several servers sharing the store hand out work only by a sync whose reply waits for a
  // fenced commit, never from here (this may run under the state lock). The empty reply makes
  // the agent sync again at once, and that sync delivers it.
  if (!superseded && options_.fencing_epoch == 0) {
    reply.assignments = AssignmentsFor(node, poll.known);
    reply.kills = KillsFor(node, poll.known);
  }
  // The callback only hands the reply on (its JSON is made outside the lock): cheap, and it
  // takes no lock of ours.
  poll.done(std::move(reply), /*under_lock=*/true);
}

void Controller::WakeNode(NodeIndex node) {
  if (!long_polls_.contains(node)) return;
  // A pass's starts are not durable until its batch commits: its nodes are answered after that.
  if (wakes_wait_for_commit_) {
    wake_after_commit_.push_back(node);
    return;
  }
  CompleteLongPoll(node);
}

void Controller::WakeJob(JobId id) {
  if (auto watchers = long_polls_by_job_.find(id); watchers != long_polls_by_job_.end()) {
    std::set<NodeIndex> nodes = watchers->second;
    for (NodeIndex node : nodes) WakeNode(node);
  }
  if (const Job* job = scheduler_->model().FindJob(id); job && job->state == JobState::kRunning) {
    for (const TaskAllocation& task : job->tasks) WakeNode(task.node);
  }
}

void Controller::WakeAfterCommit() {
  // Small enough that a submit waits for one slice at most (tens of milliseconds: a node's
  // assignments take about 0.2 ms to write), large enough that the lock is not taken per node.
  constexpr size_t kNodesPerSlice = 256;
  std::vector<NodeIndex> nodes;
  {
    std::lock_guard lock(mutex_);
    nodes.swap(wake_after_commit_);
    wakes_wait_for_commit_ = false;
  }
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  // A slice goes once the front end has sent all but a slice of the replies before it. A pass
  // that starts 1,500 jobs wakes 10,000 nodes; woken all at once, their replies and the syncs
  // that answer them fill the network threads' one queue, and a submit that arrives meanwhile
  // waits behind all of them (submit p99 0.1-0.5 s at 18,000 hollow nodes). Paced, it waits
  // behind a slice. Bounded, so a front end that stops sending never holds the loop for long.
  const auto pace_until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (size_t begin = 0; begin < nodes.size(); begin += kNodesPerSlice) {
    while (begin > 0 && std::chrono::steady_clock::now() < pace_until) {
      {
        std::lock_guard backlog_lock(agent_backlog_mutex_);
        if (!agent_backlog_ || agent_backlog_() <= kNodesPerSlice) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::lock_guard lock(mutex_);
    for (size_t i = begin; i < std::min(nodes.size(), begin + kNodesPerSlice); ++i) WakeNode(nodes[i]);
  }
}

void Controller::SetAgentBacklog(std::function<size_t()> backlog) {
  std::lock_guard lock(agent_backlog_mutex_);
  agent_backlog_ = std::move(backlog);
}

double Controller::HeartbeatSeconds() const {
  const double nodes = static_cast<double>(scheduler_->model().cluster().nodes().size());
  return std::max(options_.heartbeat_seconds, nodes / options_.agent_syncs_per_second);
}

void Controller::LongPollTimerMain() {
  std::unique_lock lock(mutex_);
  while (!long_poll_timer_stopping_) {
    // Requests waiting on the change feed whose time is over get the number they had.
    auto now = std::chrono::steady_clock::now();
    while (!change_wait_deadlines_.empty() && change_wait_deadlines_.begin()->first <= now) {
      uint64_t serial = change_wait_deadlines_.begin()->second;
      change_wait_deadlines_.erase(change_wait_deadlines_.begin());
      if (auto wait = change_waits_.find(serial); wait != change_waits_.end()) {
        ChangeDone done = std::move(wait->second);
        change_waits_.erase(wait);
        done(change_sequence_);
      }
    }
    std::optional<std::chrono::steady_clock::time_point> next_change_deadline;
    if (!change_wait_deadlines_.empty()) next_change_deadline = change_wait_deadlines_.begin()->first;
    if (long_poll_deadlines_.empty()) {
      if (next_change_deadline) {
        long_poll_timer_wakeup_.wait_until(lock, *next_change_deadline);
      } else {
        long_poll_timer_wakeup_.wait(lock);
      }
      continue;
    }
    auto next = long_poll_deadlines_.begin();
    if (std::chrono::steady_clock::now() < next->first) {
      // A copy: the wait reads its deadline again as it wakes, and StopLoop may have cleared the
      // map (and freed the entry) by then.
      const std::chrono::steady_clock::time_point until =
          next_change_deadline ? std::min(*next_change_deadline, next->first) : next->first;
      long_poll_timer_wakeup_.wait_until(lock, until);
      continue;
    }
    auto [node, serial] = next->second;
    long_poll_deadlines_.erase(next);
    // A poll that was answered (or superseded) since has left its entry behind: skip it.
    if (auto poll = long_polls_.find(node); poll != long_polls_.end() && poll->second.serial == serial) {
      WakeNode(node);  // at once, or after the pass that is committing (it may have placed work here)
    }
  }
}

std::string Controller::LogPath(JobId id, int task, std::string_view stream) const {
  return (std::filesystem::path(options_.data_dir) / "logs" / std::to_string(id) /
          fmt::format("{}.{}", task, stream)).string();
}

const Controller::JobRecord::StartCache& Controller::StartCacheOf(const Job& job, const JobRecord& record) const {
  if (record.start_cache && record.start_cache->epoch == job.epoch) return *record.start_cache;
  const Cluster& cluster = scheduler_->model().cluster();
  std::vector<std::string> nodes;
  std::unordered_set<NodeIndex> seen;
  for (const TaskAllocation& allocation : job.tasks) {
    if (seen.insert(allocation.node).second) nodes.push_back(cluster.node(allocation.node).name);
  }
  JobRecord::StartCache cache{.epoch = job.epoch, .hostlist = CompressHostList(nodes)};
  const int processes = record.request->processes_per_task;
  EnvironmentVariables environment = {
      {"ALLOT_JOB_ID", std::to_string(job.id)},
      {"ALLOT_JOB_NAME", job.spec.name},
      {"ALLOT_ACCOUNT", job.spec.account},
      {"ALLOT_EPOCH", std::to_string(job.epoch)},
      {"ALLOT_NUM_TASKS", std::to_string(job.spec.tasks)},
      {"ALLOT_PROCESSES_PER_TASK", std::to_string(processes)},
      // What `allot run` and srun inside the job present to start its steps.
      {"ALLOT_JOB_TOKEN", JobToken(job.id, job.epoch)},
      // torch.distributed and friends: one rendezvous per job, on the first task's node.
      {"MASTER_PORT", std::to_string(20000 + job.id % 40000)},
      {"WORLD_SIZE", std::to_string(job.spec.tasks * processes)},
      {"LOCAL_WORLD_SIZE", std::to_string(processes)},
  };
  if (record.array_index >= 0) {
    environment["ALLOT_ARRAY_JOB_ID"] = std::to_string(record.array_job_id);
    environment["ALLOT_ARRAY_TASK_ID"] = std::to_string(record.array_index);
  }
  // What Slurm sets for a batch script (and a step's tasks), so existing scripts find what they
  // read. A Slurm "node" is an allot task; a Slurm task is one of its processes.
  const std::string slurm_tasks = std::to_string(job.spec.tasks * processes);
  const SubmitRequest& request = *record.request;
  std::map<std::string, std::string> slurm = {
      {"SLURM_JOB_ID", std::to_string(job.id)}, {"SLURM_JOBID", std::to_string(job.id)},
      {"SLURM_JOB_NAME", job.spec.name}, {"SLURM_JOB_ACCOUNT", job.spec.account},
      {"SLURM_JOB_USER", job.spec.user}, {"SLURM_JOB_PARTITION", cluster.pool(job.pool).name},
      {"SLURM_CLUSTER_NAME", "allot"},
      {"SLURM_JOB_NUM_NODES", std::to_string(job.spec.tasks)}, {"SLURM_NNODES", std::to_string(job.spec.tasks)},
      {"SLURM_JOB_NODELIST", cache.hostlist}, {"SLURM_NODELIST", cache.hostlist},
      {"SLURM_NTASKS", slurm_tasks}, {"SLURM_NPROCS", slurm_tasks},
      {"SLURM_NTASKS_PER_NODE", std::to_string(processes)},
      {"SLURM_TASKS_PER_NODE", job.spec.tasks > 1 ? fmt::format("{}(x{})", processes, job.spec.tasks) : std::to_string(processes)},
      {"SLURM_LOCALID", "0"},
  };
  if (job.spec.cpus_per_task > 0) {
    slurm["SLURM_CPUS_PER_TASK"] = std::to_string(std::max<int64_t>(1, job.spec.cpus_per_task / processes));
    slurm["SLURM_CPUS_ON_NODE"] = std::to_string(job.spec.cpus_per_task);
  }
  if (!request.submit_dir.empty()) slurm["SLURM_SUBMIT_DIR"] = request.submit_dir;
  if (record.array_index >= 0) {
    slurm["SLURM_ARRAY_JOB_ID"] = std::to_string(record.array_job_id);
    slurm["SLURM_ARRAY_TASK_ID"] = std::to_string(record.array_index);
  }
  for (auto& [name, value] : slurm) environment[name] = std::move(value);
  cache.environment = std::make_shared<const EnvironmentVariables>(std::move(environment));
  record.start_cache = std::move(cache);
  return *record.start_cache;
}

EnvironmentVariables Controller::TaskEnvironment(const Job& job, const JobRecord& record, int task) const {
  const Cluster& cluster = scheduler_->model().cluster();
  EnvironmentVariables environment;
  std::string gpus;
  for (int gpu = 0; gpu < kMaxGpusPerNode; ++gpu) {
    if (job.tasks[task].gpu_mask & (uint32_t{1} << gpu)) gpus += (gpus.empty() ? "" : ",") + std::to_string(gpu);
  }
  // The first task's agent's address, as it last said (it can change when the agent restarts).
  NodeIndex master = job.tasks[0].node;
  auto agent = agents_.find(master);
  const int processes = record.request->processes_per_task;
  environment["MASTER_ADDR"] = agent != agents_.end() && !agent->second.address.empty() ? agent->second.address
                                                                                       : cluster.node(master).name;
  environment["ALLOT_TASK_INDEX"] = std::to_string(task);
  environment["CUDA_VISIBLE_DEVICES"] = gpus;
  environment["NVIDIA_VISIBLE_DEVICES"] = gpus;
  environment["RANK"] = std::to_string(task * processes);
  environment["NODE_RANK"] = std::to_string(task);
  environment["SLURM_NODEID"] = std::to_string(task);
  environment["SLURM_PROCID"] = std::to_string(task * processes);
  environment["SLURM_GPUS_ON_NODE"] = std::to_string(std::popcount(job.tasks[task].gpu_mask));
  environment["SLURM_JOB_GPUS"] = gpus;
  environment["SLURM_STEP_GPUS"] = gpus;
  return environment;
}

// Slurm's filename patterns: %j job id, %A array job id, %a array index, %x name, %u user,
// %t task index, %% a percent sign.
static std::string ExpandOutputPattern(std::string_view pattern, const Job& job, int array_job, int array_index, int task) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%' || i + 1 == pattern.size()) {
      out += pattern[i];
      continue;
    }
    char code = pattern[++i];
    switch (code) {
      case 'j': out += std::to_string(job.id); break;
      case 'A': out += std::to_string(array_job > 0 ? array_job : static_cast<int>(job.id)); break;
      case 'a': out += array_index >= 0 ? std::to_string(array_index) : "0"; break;
      case 'x': out += job.spec.name; break;
      case 'u': out += job.spec.user; break;
      case 't': out += std::to_string(task); break;
      case '%': out += '%'; break;
      default: out += '%'; out += code;
    }
  }
  return out;
}

std::vector<TaskAssignment> Controller::AssignmentsFor(NodeIndex node,
                                                      const std::set<std::tuple<JobId, uint64_t, int>>& known) const {
  std::vector<TaskAssignment> assignments;
  const Model& model = scheduler_->model();
  for (JobId id : model.JobsOnNode(node)) {
    const Job& job = *model.FindJob(id);
    const JobRecord& record = records_.at(id);
    const SubmitRequest& request = *record.request;
    // A batch script runs once, as the batch step on the allocation's first node; its other
    // nodes are the job's, for the steps the script starts.
    const int runs = request.batch ? 1 : static_cast<int>(job.tasks.size());
    for (int task = 0; task < runs; ++task) {
      if (job.tasks[task].node != node || record.task_exits.contains(task)) continue;
      if (known.contains({id, job.epoch, task})) continue;
      int array_job = static_cast<int>(record.array_job_id);
      // The working directory: --chdir (relative to the submit directory), else the submit
      // directory for a batch script, else the agent's own directory for the job.
      std::string working_directory = request.chdir;
      if (!request.submit_dir.empty() && (working_directory.empty() || working_directory[0] != '/')) {
        working_directory = working_directory.empty() ? request.submit_dir : request.submit_dir + "/" + working_directory;
      }
      // Slurm's default output for a batch script, in its working directory: written when the
      // node may write there, and shipped to `allot logs` either way.
      std::string output = request.output;
      bool default_output = request.batch && output.empty();
      if (default_output) output = record.array_index >= 0 ? "slurm-%A_%a.out" : "slurm-%j.out";
      assignments.push_back({
          .job = id, .epoch = job.epoch, .task = task, .name = job.spec.name, .user = job.spec.user,
          .account = job.spec.account, .argv = job.spec.command, .script = request.script,
          .script_args = request.script_args, .shared_environment = StartCacheOf(job, record).environment,
          .environment = TaskEnvironment(job, record, task), .nodelist = StartCacheOf(job, record).hostlist,
          .working_directory = working_directory,
          .fallback_to_own_directory = !request.submit_dir.empty(),
          .stdout_path = ExpandOutputPattern(output, job, array_job, record.array_index, task),
          .stderr_path = ExpandOutputPattern(request.error, job, array_job, record.array_index, task),
          .stdout_optional = default_output, .start_time = job.start_time, .time_limit = job.spec.time_limit,
          .cpus = job.spec.cpus_per_task, .memory_bytes = job.spec.memory_per_task,
          .grace_seconds = options_.kill_grace_seconds});
    }
    if (record.steps.empty()) continue;
    for (const Step& step : record.steps) {
      if (step.cancelled || step.ended()) continue;
      for (const StepTask& task : step.tasks) {
        if (task.exit_code || task.host != node) continue;
        if (known.contains({id, job.epoch, task.index})) continue;
        assignments.push_back(StepAssignment(job, record, step, task));
      }
    }
  }
  return assignments;
}

void Controller::AgentSync(const Principal& who, std::string_view node_name, std::string_view body, SyncDone done) {
  // Output to append to the jobs' logs, written after the state lock is released.
  struct LogWrite {
    JobId job = 0;
    std::filesystem::path path;
    int64_t offset = 0;
    std::string data;
  };
  std::vector<LogWrite> log_writes;
  Store::Ticket ticket;
  bool parked = false;
  StatusOr<SyncReply> reply = [&]() -> StatusOr<SyncReply> {
  if (who.role != Role::kAgent && !who.is_operator()) {
    return Status(StatusCode::kPermissionDenied, "only agents sync nodes");
  }
  // An agent's credential is its node's: it syncs, reports and writes output for that node only.
  if (who.role == Role::kAgent && who.node != node_name) {
    return Status(StatusCode::kPermissionDenied,
                  who.node.empty() ? fmt::format("this agent token is bound to no node; give node '{}' its own: allot token "
                                                 "create --role agent --node {}", node_name, node_name)
                                   : fmt::format("this agent token is node '{}''s, not '{}''s", who.node, node_name));
  }
  ALLOT_ASSIGN_OR_RETURN(AgentReport report, ParseAgentReport(body));
  // The cluster's nodes, their names, GPUs and pools never change while the server runs: no lock
  // to look them up. A sync refused for them is no sign of life.
  ALLOT_ASSIGN_OR_RETURN(const NodeIndex node, FindNode(node_name));
  {
    const Cluster& cluster = scheduler_->model().cluster();
    const Node& shape = cluster.node(node);
    if (report.gpus && *report.gpus != static_cast<uint64_t>(shape.gpus)) {
      return InvalidArgumentError("node '{}' has {} GPUs in the config, but its agent found {}; fix the config or "
                                  "the agent's --gpus", node_name, shape.gpus, *report.gpus);
    }
    const std::string& pool_model = cluster.pool(shape.pool).gpu_model;
    if (report.gpu_model && !SameGpuModel(*report.gpu_model, pool_model)) {
      return InvalidArgumentError("node '{}' is in a pool of {} GPUs, but its agent found {}", node_name, pool_model,
                                  json(*report.gpu_model).dump(-1, ' ', false, json::error_handler_t::replace));
    }
  }
  last_seen_[node].store(Now());
  {
    std::unique_lock lock(mutex_);
    const Time now = Now();
    const Cluster& cluster = scheduler_->model().cluster();
    const Node& shape = cluster.node(node);
    WriteBatch batch;
    AgentState& agent = agents_[node];
    // This sync supersedes any long poll of the same agent still waiting (the agent gave up on
    // it to report a task's exit): that one is answered at once, into a closed connection.
    const uint64_t serial = ++agent.sync_serial;
    CompleteLongPoll(node, /*superseded=*/true);
    const bool first_sync = !agent.synced;
    agent.synced = true;
    if (report.hostname) agent.hostname = *report.hostname;
    if (report.address) agent.address = *report.address;
    if (first_sync) {
      batch.PutSetting({"agent", std::string(node_name), json{{"hostname", agent.hostname}, {"address", agent.address}}.dump()});
    }
    if (agent.marked_down && shape.state == NodeState::kDown) {
      (void)scheduler_->SetNodeState(node, NodeState::kUp, now);
      drain_reasons_.erase(node);
      batch.DeleteSetting("node", std::string(node_name));
      spdlog::info("node {}: its agent is back; the node is up again", node_name);
      MarkDirty();
    }
    agent.marked_down = false;

    // Output the tasks wrote since the last sync, appended where it belongs (a resent chunk is
    // skipped: the offset says where it starts).
    // The data is moved, not copied: a report's output can be hundreds of KiB, and this runs
    // under the state lock.
    for (OutputChunk& chunk : report.logs) {
      // Only output of a task this node runs (or ran, for a job that has just ended): an agent
      // cannot write into another node's jobs' logs.
      if (!TaskRanOn(chunk.job, chunk.task, node)) continue;
      log_writes.push_back({chunk.job, LogPath(chunk.job, chunk.task, chunk.stream), chunk.offset, std::move(chunk.data)});
    }
    // Counted before the state lock is released, so a reader who sees an exit this sync reports
    // waits for the output that came with it (JobLogs). Only the count is under log_mutex_,
    // never the writing, so the state lock never waits for a disk.
    if (!log_writes.empty()) {
      std::lock_guard logs(log_mutex_);
      for (const LogWrite& write : log_writes) ++log_writes_in_flight_[write.job];
    }

    SyncReply reply{.protocol = report.protocol, .node = std::string(node_name), .heartbeat_seconds = HeartbeatSeconds()};
    std::set<std::tuple<JobId, uint64_t, int>> known;
    for (const ReportedTask& task : report.tasks) {
      const JobId id = task.job;
      const uint64_t epoch = task.epoch;
      const int index = task.task;
      known.insert({id, epoch, index});
      const Job* job = scheduler_->model().FindJob(id);
      bool current = TaskIsCurrent(id, epoch, index, node);
      // A step's task: its exit is the step's, not the job's.
      auto [step, step_task] = current && index >= static_cast<int>(job->tasks.size())
                                   ? FindStepTask(records_.at(id), index)
                                   : std::pair<Step*, StepTask*>{nullptr, nullptr};
      if (step_task != nullptr) {
        if (task.exited) {
          reply.acks.push_back({id, epoch, index});
          step_task->exit_code = task.exit_code.value_or(1);
          if (step->ended()) step->request.environment.clear();  // nothing starts from it any more
          PersistLive(id, batch);
        }
        continue;
      }
      if (current) {
        JobRecord& record = records_.at(id);
        if (record.placed_at) {
          start_delay_seconds_.Observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - *record.placed_at).count());
          record.placed_at.reset();
        }
      }
      if (task.exited) {
        reply.acks.push_back({id, epoch, index});
        if (!current) continue;  // an older allocation's task, or the job ended meanwhile
        JobRecord& record = records_.at(id);
        record.task_exits[index] = task.exit_code.value_or(1);
        if (task.timed_out) record.timed_out = true;
        if (task.out_of_memory) record.out_of_memory = true;
        // A batch job ends with its batch step (its script); any other job with its last task.
        const size_t needed = record.request->batch ? 1 : job->tasks.size();
        if (record.task_exits.size() < needed) {
          PersistLive(id, batch);
          continue;
        }
        int exit_code = 0;
        for (const auto& [i, code] : record.task_exits) {
          if (code != 0) {
            exit_code = code;
            break;
          }
        }
        // Killed at its time limit (by the agent, or the server's clock says the limit has
        // passed): a timeout, whatever status the kill left.
        bool timed_out = record.timed_out || now >= job->expected_end();
        StatusOr<Job> stopped = scheduler_->Complete(id, now);
        if (stopped.ok()) {
          EndInfo end{exit_code == 0 ? "completed" : "failed", exit_code,
                      exit_code == 0 ? "all tasks exited with status 0"
                                     : fmt::format("a task exited with status {}", exit_code)};
          if (timed_out && exit_code != 0) {
            end = {"timeout", exit_code, fmt::format("ended at its time limit of {}", FormatDuration(stopped->spec.time_limit))};
          } else if (record.out_of_memory && exit_code != 0) {
            end.message = fmt::format("a task ran out of memory: it was killed at its limit of {} MiB per task",
                                      stopped->spec.memory_per_task >> 20);
          }
          RecordEnded(*stopped, end, now, batch);
          MarkDirty();
        }
      } else if (!current) {
        // Not this node's to run (any more): cancelled, ended, preempted, or a stale epoch.
        reply.kills.push_back({id, epoch, index, options_.kill_grace_seconds});
      }
    }
    reply.assignments = AssignmentsFor(node, known);
    // A long poll never outlasts half the time after which its node is taken for lost, so a
    // waiting agent is never marked down; each is spread by up to 10% so that polls that began
    // together do not all come back together.
    double wait = std::min({report.wait_seconds, options_.agent_wait_max_seconds,
                            HeartbeatSeconds() * options_.missed_heartbeats / 2});
    if (wait > 1) wait *= std::uniform_real_distribution<double>(0.9, 1.0)(jitter_);
    if (reply.assignments.empty() && reply.kills.empty() && reply.acks.empty() && batch.empty() && wait > 0) {
      // Nothing to say: the sync waits here, holding no thread, until work for this node
      // appears (WakeNode) or its wait is over (the timer), whichever is first.
      LongPoll& poll = long_polls_[node];
      poll = LongPoll{.serial = serial, .known = std::move(known), .protocol = report.protocol, .done = std::move(done)};
      for (const auto& [id, epoch, index] : poll.known) long_polls_by_job_[id].insert(node);
      long_poll_deadlines_.emplace(std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                                         std::chrono::duration<double>(wait)),
                                   std::make_pair(node, serial));
      long_poll_timer_wakeup_.notify_one();
      parked = true;
      return SyncReply();
    }
    // A sync that changed nothing and delivers nothing writes nothing; one that delivers work
    // waits for what is queued before it (the starts it reports) to be durable. A server of
    // several sharing a store (fencing) also commits, if only the fence, before it kills a task,
    // acknowledges an exit or takes output: a deposed leader must not act on a node at all.
    const bool acts = !reply.kills.empty() || !reply.acks.empty() || !log_writes.empty();
    if (!batch.empty() || !reply.assignments.empty() || (options_.fencing_epoch > 0 && acts)) {
      ticket = Queue(std::move(batch));
    }
    return reply;
  }
  }();
  // The output, appended outside the state lock; a resent chunk is skipped (its offset says where
  // it starts). Write errors are logged: the task goes on, and the agent sends the chunk again.
  if (!log_writes.empty()) {
    std::lock_guard files(log_file_mutex_);
    for (LogWrite& write : log_writes) {
      std::error_code error;
      std::filesystem::create_directories(write.path.parent_path(), error);
      int64_t size = std::filesystem::exists(write.path, error) ? static_cast<int64_t>(std::filesystem::file_size(write.path, error)) : 0;
      if (write.offset > size || write.offset + static_cast<int64_t>(write.data.size()) <= size) continue;
      std::ofstream file(write.path, std::ios::app | std::ios::binary);
      file << write.data.substr(static_cast<size_t>(size - write.offset));
      if (!file) spdlog::error("cannot write {}: {}", write.path.string(), std::strerror(errno));
    }
  }
  if (!log_writes.empty()) {
    {
      std::lock_guard logs(log_mutex_);
      for (const LogWrite& write : log_writes) {
        if (--log_writes_in_flight_[write.job] == 0) log_writes_in_flight_.erase(write.job);
      }
    }
    logs_written_.notify_all();
  }
  if (parked) return;
  if (reply.ok() && ticket) WaitDurable(ticket);
  done(std::move(reply), /*under_lock=*/false);
}

void Controller::CheckAgents(Time now, WriteBatch& batch) {
  const double timeout = HeartbeatSeconds() * options_.missed_heartbeats;
  const Cluster& cluster = scheduler_->model().cluster();
  for (auto& [node, agent] : agents_) {
    const Time last_seen = last_seen_[node].load();
    if (agent.marked_down || static_cast<double>(now - last_seen) <= timeout) continue;
    agent.marked_down = true;
    std::string reason = fmt::format("its agent missed {} syncs (none since {}s ago)", options_.missed_heartbeats,
                                     now - last_seen);
    spdlog::warn("node {} is down: {}", cluster.node(node).name, reason);
    StatusOr<NodeFailure> failure = scheduler_->SetNodeState(node, NodeState::kDown, now);
    if (!failure.ok()) continue;
    drain_reasons_[node] = reason;
    batch.PutSetting({"node", cluster.node(node).name, json{{"state", "down"}, {"reason", reason}}.dump()});
    for (JobId id : failure->requeued) {
      const Job* job = scheduler_->model().FindJob(id);
      if (job) ChargeRun(*job, now, batch);
      ForgetRun(id);
      PersistLive(id, batch);
    }
    for (const Job& ended : failure->ended) {
      RecordEnded(ended, {"node_fail", -1, fmt::format("node {} failed: {}", cluster.node(node).name, reason)}, now, batch);
    }
    MarkDirty();
  }
}

StatusOr<json> Controller::JobLogs(const Principal& who, JobId id, int task, std::string_view stream, int64_t offset) {
  if (stream != "out" && stream != "err") return InvalidArgumentError("stream must be out or err");
  if (offset < 0) return InvalidArgumentError("offset must not be negative");
  ALLOT_ASSIGN_OR_RETURN(json job, GetJob(who, id));  // visibility, and whether it has ended
  bool complete = job["state"] != "pending" && job["state"] != "running";
  // Output a sync has taken in but not yet written is waited for: whoever saw a task's exit
  // reads all the output shipped with it.
  {
    std::unique_lock logs(log_mutex_);
    logs_written_.wait_for(logs, std::chrono::seconds(10), [&] { return !log_writes_in_flight_.contains(id); });
  }
  std::ifstream file(LogPath(id, task, stream), std::ios::binary);
  std::string data;
  if (file) {
    file.seekg(offset);
    constexpr size_t kMaxChunk = 1 << 20;
    data.resize(kMaxChunk);
    file.read(data.data(), static_cast<std::streamsize>(kMaxChunk));
    data.resize(static_cast<size_t>(file.gcount()));
  }
  // The reply is JSON text, so it carries whole UTF-8 characters: an offset inside one starts at
  // the next, and a character cut at the end of the chunk waits for the next read (unless the
  // job has ended and nothing more will come). Bytes that are not UTF-8 at all arrive as U+FFFD.
  size_t skip = 0;
  while (skip < data.size() && skip < 3 && (static_cast<unsigned char>(data[skip]) & 0xC0) == 0x80) ++skip;
  size_t keep = complete && data.size() < (1 << 20) ? data.size() : std::max(skip, CompleteUtf8Prefix(data));
  return json{{"data", ReplaceInvalidUtf8(data.substr(skip, keep - skip))},
              {"next_offset", offset + static_cast<int64_t>(keep)}, {"complete", complete}};
}

}  // namespace allot
