// The Controller's job steps (`allot run`, srun): started inside a running job's allocation,
// laid out over its nodes (server/steps.h), run by those nodes' agents, followed by the caller.
// Kept apart from controller.cc, which holds the job lifecycle they build on.
#include <spdlog/spdlog.h>

#include <bit>

#include "server/controller.h"

#include "api/agent_protocol.h"
#include "core/hostlist.h"

namespace allot {

using nlohmann::json;

std::string Controller::JobToken(JobId id, uint64_t epoch) const { return JobCredential(job_key_, id, epoch); }

StatusOr<std::pair<const Job*, Controller::JobRecord*>> Controller::StepJob(const Principal& who, JobId id) const {
  if (who.role == Role::kAgent || who.role == Role::kBootstrap) {
    return Status(StatusCode::kPermissionDenied, "agents do not start steps");
  }
  const Job* job = scheduler_->model().FindJob(id);
  if (who.role == Role::kJob && who.job != id) return NotFoundError("no job {}", id);
  if (!job || !Sees(who, job->account)) {
    return NotFoundError("no running job {}: steps run inside a running job's allocation", id);
  }
  // Another tenant's job in the caller's subtree is visible, but its allocation is its user's.
  if (who.role == Role::kTenant && job->spec.user != who.user) {
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("job {} is {}'s: only its user or an operator may start steps in it", id, job->spec.user));
  }
  if (job->state != JobState::kRunning) {
    return FailedPreconditionError("job {} is not running yet: steps run inside its allocation once it starts", id);
  }
  if (who.role == Role::kJob && who.job_epoch != job->epoch) {
    return Status(StatusCode::kUnauthenticated, "this job credential is for an allocation that has ended");
  }
  return std::make_pair(job, const_cast<JobRecord*>(&records_.at(id)));
}

json Controller::StepJson(const Job& job, const Step& step) const {
  const Cluster& cluster = scheduler_->model().cluster();
  const std::vector<JobNode> nodes = JobNodes(job);
  json tasks = json::array();
  for (size_t rank = 0; rank < step.tasks.size(); ++rank) {
    const StepTask& task = step.tasks[rank];
    json doc = {{"rank", rank}, {"task", task.index}, {"node", cluster.node(nodes[static_cast<size_t>(task.node)].node).name},
                {"local_id", task.local_id}, {"exit_code", task.exit_code ? json(*task.exit_code) : json(nullptr)}};
    tasks.push_back(std::move(doc));
  }
  std::string state = step.ended() ? (step.exit_code() == 0 ? "completed" : "failed")
                                   : step.cancelled ? "cancelled" : "running";
  return {{"job", job.id}, {"step", step.id}, {"state", state}, {"argv", step.request.argv}, {"nodes", step.nodes},
          {"ntasks", step.tasks.size()}, {"tasks", tasks},
          {"exit_code", step.ended() ? json(step.exit_code()) : json(nullptr)}};
}

TaskAssignment Controller::StepAssignment(const Job& job, const JobRecord& record, const Step& step,
                                         const StepTask& task) const {
  const Cluster& cluster = scheduler_->model().cluster();
  const std::vector<JobNode> nodes = JobNodes(job);
  const JobNode& node = nodes[static_cast<size_t>(task.node)];
  // The job's environment on that node, then the caller's (srun's --export=ALL), then what is
  // the step's own: ranks, counts and GPUs, which must win over what the caller inherited.
  const EnvironmentVariables node_environment = TaskAssignment{
      .shared_environment = StartCacheOf(job, record).environment,
      .environment = TaskEnvironment(job, record, node.first_task),
      .nodelist = StartCacheOf(job, record).hostlist}.MergedEnvironment();
  EnvironmentVariables environment = node_environment;
  for (const auto& [name, value] : step.request.environment) environment[name] = value;
  // What differs from node to node stays this node's, whatever the caller's node had.
  for (const char* name : {"SLURM_JOB_GPUS", "SLURM_CPUS_ON_NODE"}) {
    if (auto found = node_environment.find(name); found != node_environment.end()) environment[name] = found->second;
  }
  std::vector<std::string> step_nodes;
  std::vector<int> per_node(static_cast<size_t>(step.nodes), 0);
  for (const StepTask& other : step.tasks) per_node[static_cast<size_t>(other.node)]++;
  for (int i = 0; i < step.nodes; ++i) step_nodes.push_back(cluster.node(nodes[static_cast<size_t>(i)].node).name);
  std::string tasks_per_node;  // Slurm's compressed form: "2(x3),1"
  for (size_t i = 0; i < per_node.size();) {
    size_t run = i;
    while (run + 1 < per_node.size() && per_node[run + 1] == per_node[i]) ++run;
    if (!tasks_per_node.empty()) tasks_per_node += ',';
    tasks_per_node += run > i ? fmt::format("{}(x{})", per_node[i], run - i + 1) : std::to_string(per_node[i]);
    i = run + 1;
  }
  std::string gpus;
  for (int gpu = 0; gpu < kMaxGpusPerNode; ++gpu) {
    if (task.gpu_mask & (uint32_t{1} << gpu)) gpus += (gpus.empty() ? "" : ",") + std::to_string(gpu);
  }
  const int rank = task.index - step.first_index;
  const int on_node = per_node[static_cast<size_t>(task.node)];
  const std::string ntasks = std::to_string(step.tasks.size());
  const std::string node_list = CompressHostList(step_nodes);  // Slurm's form, as SLURM_JOB_NODELIST
  std::map<std::string, std::string> own = {
      {"SLURM_STEP_ID", std::to_string(step.id)}, {"SLURM_STEPID", std::to_string(step.id)},
      {"SLURM_PROCID", std::to_string(rank)}, {"SLURM_LOCALID", std::to_string(task.local_id)},
      {"SLURM_NODEID", std::to_string(task.node)},
      {"SLURM_NTASKS", ntasks}, {"SLURM_NPROCS", ntasks}, {"SLURM_STEP_NUM_TASKS", ntasks},
      {"SLURM_STEP_NUM_NODES", std::to_string(step.nodes)}, {"SLURM_STEP_NODELIST", node_list},
      {"SLURM_STEP_TASKS_PER_NODE", tasks_per_node}, {"SLURM_TASKS_PER_NODE", tasks_per_node},
      {"SLURM_NTASKS_PER_NODE", std::to_string(per_node[static_cast<size_t>(task.node)])},
      {"SLURM_STEP_GPUS", gpus}, {"SLURM_GPUS_ON_NODE", std::to_string(std::popcount(task.gpu_mask))},
      {"CUDA_VISIBLE_DEVICES", gpus}, {"NVIDIA_VISIBLE_DEVICES", gpus},
      {"ALLOT_STEP_ID", std::to_string(step.id)}, {"ALLOT_TASK_INDEX", std::to_string(task.index)},
      // torch.distributed's names for the same things, for scripts that read them.
      {"RANK", std::to_string(rank)}, {"LOCAL_RANK", std::to_string(task.local_id)},
      {"WORLD_SIZE", ntasks}, {"LOCAL_WORLD_SIZE", std::to_string(per_node[static_cast<size_t>(task.node)])},
      {"NODE_RANK", std::to_string(task.node)}, {"GROUP_RANK", std::to_string(task.node)},
  };
  if (step.request.gpus_per_task > 0) own["SLURM_GPUS_PER_TASK"] = std::to_string(step.request.gpus_per_task);
  for (auto& [name, value] : own) environment[name] = std::move(value);
  return {
      .job = job.id, .epoch = job.epoch, .task = task.index, .step = step.id,
      .name = job.spec.name, .user = job.spec.user, .account = job.spec.account,
      .argv = step.request.argv, .environment = std::move(environment),
      .working_directory = step.request.working_directory,
      // The caller's directory may not exist on another node: the task then runs in the job's own.
      .fallback_to_own_directory = !step.request.working_directory.empty(),
      .start_time = job.start_time, .time_limit = job.spec.time_limit,
      // The step's tasks on a node share what the job holds there (each gets its part; Slurm
      // puts a step in the job's cgroup instead).
      .cpus = node.cpus > 0 ? std::max(1, node.cpus / on_node) : 0,
      .memory_bytes = node.memory_bytes / on_node,
      .grace_seconds = options_.kill_grace_seconds};
}

StatusOr<json> Controller::CreateStep(const Principal& who, JobId id, std::string_view body) {
  ALLOT_ASSIGN_OR_RETURN(StepRequest request, ParseStepRequest(body));
  Store::Ticket ticket;
  json reply;
  std::vector<NodeIndex> wake;
  {
    std::lock_guard lock(mutex_);
    ALLOT_ASSIGN_OR_RETURN(auto found, StepJob(who, id));
    auto [job, record] = found;
    const std::vector<JobNode> nodes = JobNodes(*job);
    ALLOT_ASSIGN_OR_RETURN(std::vector<StepTask> tasks, LayOutStep(nodes, record->request->processes_per_task, request));
    const auto live = std::count_if(record->steps.begin(), record->steps.end(),
                                    [](const Step& step) { return !step.ended() && !step.cancelled; });
    if (live >= kMaxLiveSteps) {
      return FailedPreconditionError("job {} runs {} steps at once, as many as one job may; wait for one to end", id,
                                     live);
    }
    if (record->steps.size() >= static_cast<size_t>(kMaxStepsPerJob)) {
      return FailedPreconditionError("job {} has started {} steps, as many as one job may", id, record->steps.size());
    }
    if (record->next_task_index == 0) record->next_task_index = static_cast<int>(job->tasks.size());
    if (static_cast<uint64_t>(record->next_task_index) + tasks.size() > kMaxTaskIndex) {
      return FailedPreconditionError("job {} has started {} step tasks, as many as one job may", id,
                                     record->next_task_index);
    }
    Step step;
    step.id = static_cast<int>(record->steps.size());
    step.first_index = record->next_task_index;
    step.request = std::move(request);
    step.nodes = 0;
    for (size_t rank = 0; rank < tasks.size(); ++rank) {
      tasks[rank].index = step.first_index + static_cast<int>(rank);
      tasks[rank].host = nodes[static_cast<size_t>(tasks[rank].node)].node;
      step.nodes = std::max(step.nodes, tasks[rank].node + 1);
    }
    step.tasks = std::move(tasks);
    record->next_task_index += static_cast<int>(step.tasks.size());
    record->steps.push_back(std::move(step));
    const Step& added = record->steps.back();
    WriteBatch batch;
    PersistLive(id, batch);
    ticket = Queue(std::move(batch));
    reply = StepJson(*job, added);
    for (int node = 0; node < added.nodes; ++node) wake.push_back(nodes[static_cast<size_t>(node)].node);
    spdlog::debug("job {}: step {} of {} tasks on {} nodes", id, added.id, added.tasks.size(), added.nodes);
  }
  WaitDurable(ticket);
  // Only a stored step is handed to agents: after a crash its task indexes are never reused.
  {
    std::lock_guard lock(mutex_);
    for (NodeIndex node : wake) WakeNode(node);
  }
  return reply;
}

StatusOr<json> Controller::GetStep(const Principal& who, JobId id, int step) {
  {
    std::lock_guard lock(mutex_);
    const Job* job = scheduler_->model().FindJob(id);
    if (job && job->state == JobState::kRunning) {
      ALLOT_ASSIGN_OR_RETURN(auto found, StepJob(who, id));
      const JobRecord& record = *found.second;
      if (step < 0 || step >= static_cast<int>(record.steps.size())) return NotFoundError("job {} has no step {}", id, step);
      return StepJson(*job, record.steps[static_cast<size_t>(step)]);
    }
  }
  // An ended job's steps are in its document, as they were when it ended.
  ALLOT_ASSIGN_OR_RETURN(json doc, GetJob(who, id));
  const json steps = doc.value("steps", json::array());
  if (step < 0 || step >= static_cast<int>(steps.size())) return NotFoundError("job {} has no step {}", id, step);
  return steps[static_cast<size_t>(step)];
}

StatusOr<json> Controller::CancelStep(const Principal& who, JobId id, int step) {
  Store::Ticket ticket;
  json reply;
  {
    std::lock_guard lock(mutex_);
    ALLOT_ASSIGN_OR_RETURN(auto found, StepJob(who, id));
    auto [job, record] = found;
    if (step < 0 || step >= static_cast<int>(record->steps.size())) return NotFoundError("job {} has no step {}", id, step);
    Step& cancelled = record->steps[static_cast<size_t>(step)];
    if (!cancelled.ended() && !cancelled.cancelled) {
      cancelled.cancelled = true;
      cancelled.request.environment.clear();  // nothing starts from it any more
      // Its tasks that have not reported an exit are killed (SIGTERM, then SIGKILL after the
      // grace period) at their agents' next syncs, which this wakes.
      WriteBatch batch;
      PersistLive(id, batch);
      ticket = Queue(std::move(batch));
      const std::vector<JobNode> nodes = JobNodes(*job);
      for (int node = 0; node < cancelled.nodes; ++node) WakeNode(nodes[static_cast<size_t>(node)].node);
    }
    reply = StepJson(*job, cancelled);
  }
  if (ticket) WaitDurable(ticket);
  return reply;
}

}  // namespace allot
