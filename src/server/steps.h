// Job steps: what `allot run` (and `srun`, its Slurm name) starts inside a running job's
// allocation. A step is a set of tasks laid out over the job's nodes; the agents of those nodes
// start them like any other task, and the caller follows them through the server.
//
//   ALLOT_ASSIGN_OR_RETURN(StepRequest request, ParseStepRequest(body));
//   std::vector<JobNode> nodes = JobNodes(job);  // the nodes the job holds, in order
//   ALLOT_ASSIGN_OR_RETURN(std::vector<StepTask> tasks, LayOutStep(nodes, 8, request));
//
// Layout follows Slurm's defaults inside an allocation:
//   * nodes: --nodes when given, else every node of the job (or --ntasks of them, when fewer);
//   * tasks per node: --ntasks-per-node when given; else --ntasks spread in blocks (the first
//     nodes take one more when it does not divide); else the job's own tasks per node;
//   * GPUs: with --gpus-per-task each task gets that many of its node's job GPUs, distinct, in
//     order (so rank 0 of a node has the lowest); without it every task sees all of the job's
//     GPUs on its node, as Slurm does.
// Each step task gets a task index after the job's own tasks (and any earlier step's), so agents
// and logs tell tasks apart by (job, epoch, index) as they always have.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/job.h"
#include "core/status.h"

namespace allot {

// Bounds that keep one job's steps from costing the server unbounded memory or store writes:
// every task's assignment carries the step's environment, and the job's record carries its steps.
inline constexpr int kMaxStepTasks = 65536;         // tasks in one step
inline constexpr int kMaxStepTasksPerNode = 512;    // Slurm's default MaxTasksPerNode
inline constexpr size_t kMaxStepEnvironmentBytes = 64 << 10;
inline constexpr size_t kMaxStepArgvBytes = 16 << 10;
inline constexpr int kMaxStepsPerJob = 10000;       // started over the job's life
inline constexpr int kMaxLiveSteps = 128;           // running at once

struct StepRequest {
  std::vector<std::string> argv;  // run directly, never through a shell
  int ntasks = 0;                 // 0: not given
  int ntasks_per_node = 0;
  int nodes = 0;
  int gpus_per_task = 0;
  // The caller's environment, passed on to the tasks under the step's own variables (srun's
  // --export=ALL, its default).
  std::map<std::string, std::string> environment;
  std::string working_directory;  // the caller's; "": the job's
};

// Reads POST /v1/jobs/{id}/steps: {"argv": [...], "ntasks", "ntasks_per_node", "nodes",
// "gpus_per_task" (positive integers, optional), "environment": {name: value} (at most
// kMaxStepEnvironmentBytes in all), "working_directory"}. Errors name the field.
StatusOr<StepRequest> ParseStepRequest(std::string_view body);
nlohmann::json StepRequestToJson(const StepRequest& request);

// One node of a job's allocation, with everything the job holds there.
struct JobNode {
  NodeIndex node = 0;
  int first_task = 0;  // the job's first task on the node
  uint32_t gpu_mask = 0;
  int cpus = 0;
  int64_t memory_bytes = 0;
};
std::vector<JobNode> JobNodes(const Job& job);

struct StepTask {
  int index = 0;      // the task index agents and logs know it by
  int node = 0;       // which of the job's nodes (JobNodes order)
  int local_id = 0;   // its place among the step's tasks on that node
  uint32_t gpu_mask = 0;
  NodeIndex host = 0;  // the cluster's index of that node (not stored: it follows from `node`)
  std::optional<int> exit_code;  // once it has exited
};

// Lays out a step's tasks over the job's nodes (see the file comment). `tasks_per_node` is the
// job's own (Slurm's --ntasks-per-node of the batch job). Task indexes are left 0; the caller
// numbers them. Errors say what the job has and what was asked.
StatusOr<std::vector<StepTask>> LayOutStep(const std::vector<JobNode>& nodes, int tasks_per_node,
                                           const StepRequest& request);

struct Step {
  int id = 0;           // 0, 1, ... in the order the job started them (SLURM_STEP_ID)
  int first_index = 0;  // tasks[i].index == first_index + i
  StepRequest request;
  std::vector<StepTask> tasks;  // by rank
  int nodes = 0;                // how many of the job's nodes it uses (the first ones)
  bool cancelled = false;

  bool ended() const;
  // Slurm's rule for srun: the highest exit status of any task (once all have exited).
  int exit_code() const;
};

// The step as the job's stored record keeps it, and back. An ended step's environment is not kept:
// nothing will start from it again.
nlohmann::json StepToJson(const Step& step);
StatusOr<Step> StepFromJson(const nlohmann::json& json);

}  // namespace allot
