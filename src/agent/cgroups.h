// TaskCgroups: one cgroup v2 per task, where the machine has cgroup v2 and lets the agent write
// to its part of it. Each task's cgroup holds everything the task starts, so
//   * memory.max and cpu.max bound the task by what its job asked for (memory_per_task,
//     cpus_per_task), where the memory and cpu controllers are available to the agent;
//   * cgroup.kill ends every process of the task, also those that left its process group;
//   * memory.events tells an out-of-memory kill from any other SIGKILL.
//
// Layout, under the agent's own cgroup (from /proc/self/cgroup):
//   <agent's cgroup>/allot-<node>-<hash>/<job>.<epoch>.<task>/
// The hash is of the agent's state directory, so two agents on one machine (tests, or several
// nodes emulated on one host) never share a task cgroup, and a restarted agent finds its own.
// Controllers can only be handed to child cgroups of a cgroup with no processes of its own
// (cgroup v2's "no internal processes" rule). When the agent is alone in its cgroup (a systemd
// service with Delegate=yes), it moves itself into a leaf, allot-agent, first, as slurmd does;
// when it shares its cgroup with other processes, tasks still get cgroups (for cgroup.kill) but
// no limits, and Describe() says why.
//
//   TaskCgroups cgroups = TaskCgroups::Detect("a1-3f2c9d1e");
//   spdlog::info("{}", cgroups.Describe());
//   ALLOT_ASSIGN_OR_RETURN(std::string dir, cgroups.Create("7.1.0", {.cpus = 4, .memory_bytes = 8 << 30}));
//   ... the shim moves the task into dir ...
//   TaskCgroups::Kill(dir); TaskCgroups::Remove(dir);
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace allot {

struct TaskLimits {
  int cpus = 0;              // 0: no CPU limit
  int64_t memory_bytes = 0;  // 0: no memory limit
};

class TaskCgroups {
 public:
  // Cgroups off: Create returns "" and nothing is limited.
  TaskCgroups() = default;
  // Finds the cgroup v2 hierarchy and prepares the agent's part of it. Never fails: without
  // cgroup v2, or without the right to write to it, tasks run without cgroups.
  static TaskCgroups Detect(const std::string& agent_name);

  bool available() const { return !parent_.empty(); }
  bool limits_memory() const { return memory_; }
  bool limits_cpu() const { return cpu_; }
  const std::string& parent() const { return parent_; }
  // One line for the agent's log: where task cgroups go and what they limit, or why not.
  const std::string& Describe() const { return description_; }

  // Creates the task's cgroup with its limits; "" when cgroups are off. An error means a limit
  // could not be set, and the task must not run without it.
  StatusOr<std::string> Create(const std::string& task_name, const TaskLimits& limits) const;

  // Kills every process in a task's cgroup (cgroup.kill); false where the kernel lacks it.
  static bool Kill(const std::string& cgroup);
  // Whether the kernel killed a process of the cgroup for lack of memory.
  static bool OutOfMemory(const std::string& cgroup);
  // Removes an empty task cgroup.
  static void Remove(const std::string& cgroup);

 private:
  std::string parent_;  // where task cgroups are made; "" when off
  bool memory_ = false;
  bool cpu_ = false;
  std::string description_ = "task cgroups are off";
};

}  // namespace allot
