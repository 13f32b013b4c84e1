// TaskRunner: starts a job's task as a process on this node, and watches it until it ends, even
// across a restart of the agent.
//
// Every task runs under its own allot-shim (src/agent/shim_main.cc), as slurmstepd runs a Slurm
// step: the agent spawns the shim, the shim starts a new session, forks the task (in the task's
// cgroup, working directory and user, with exactly the given environment, stdout and stderr
// going to files), waits for it, and writes its exit status to a file in the task's state
// directory. The shim's pid is the task's process group. The shim does not depend on the agent:
// if the agent dies, the task and its shim run on, and an agent that restarts re-attaches by
// reading the state directory (Recover) instead of losing the task or starting it twice.
//
//   TaskRunner runner("/var/lib/allot-agent/tasks", "/usr/bin/allot-shim");
//   ALLOT_ASSIGN_OR_RETURN(RunningTask task, runner.Launch(launch));
//   ...
//   if (std::optional<int> status = runner.Poll(task)) { report(*status); }
//   runner.Signal(task, SIGTERM);  // the whole process group
//
// Exit status: the process's exit code, or 128 + the signal number that killed it (as a shell
// reports it). Nothing here goes through a shell: argv is exec'd as given; a script is written
// to a file and exec'd, so its shebang picks the interpreter.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/cgroups.h"
#include "core/job.h"
#include "core/status.h"

namespace allot {

struct TaskLaunch {
  JobId job = 0;
  uint64_t epoch = 0;
  int task_index = 0;
  std::vector<std::string> argv;  // or, when empty, `script`
  std::string script;
  std::vector<std::string> script_args;  // the script's arguments
  std::map<std::string, std::string> environment;  // the task's whole environment
  std::string working_directory;                   // must exist
  // Where the task runs instead when its user cannot enter working_directory (as Slurm falls
  // back when the submit directory is not there on the node); "": no fallback, the task fails.
  std::string fallback_working_directory;
  // The files the job named for its output ("": none), opened by the shim as the task's user;
  // relative to the working directory. The agent's own copies are in the task's state directory.
  std::string stdout_path;
  std::string stderr_path;
  bool stderr_to_stdout = false;  // stderr goes where stdout goes (one copy of both)
  bool stdout_optional = false;   // a stdout_path that cannot be opened is skipped, not fatal
  // Run as this unprivileged user (the agent must be root); -1: as the agent's own user.
  int uid = -1;
  int gid = -1;
  TaskLimits limits;  // applied where the node has cgroup v2 controllers
};

struct RunningTask {
  JobId job = 0;
  uint64_t epoch = 0;
  int task_index = 0;
  pid_t shim = -1;   // the shim process (our child until the agent restarts)
  pid_t group = -1;  // the task's process group: the shim's session
  std::string state_dir;
  // The shim's copies of the task's output in state_dir (mode 0600): what the agent ships. It
  // never reads a file the job named. stderr_path is "" when stderr goes to stdout.
  std::string stdout_path;
  std::string stderr_path;
  std::string cgroup;  // "" without cgroups
};

class TaskRunner {
 public:
  // `tasks_dir` holds one state directory per task: <job>.<epoch>.<task>/. `shim` is the
  // allot-shim program; `cgroups` where tasks get cgroups (off by default).
  TaskRunner(std::string tasks_dir, std::string shim, TaskCgroups cgroups = {});

  // Starts the task's shim and returns; the shim starts the task. A task that cannot start (no
  // such program) ends with 127, as a shell reports a command it cannot run, and says why in its
  // stderr. An error here means nothing was started.
  StatusOr<RunningTask> Launch(const TaskLaunch& launch);
  // The tasks whose state directories are still here: running ones, and ended ones whose end
  // was not collected yet.
  std::vector<RunningTask> Recover() const;
  // The task's exit status once it has ended.
  std::optional<int> Poll(RunningTask& task) const;
  // Sends a signal to the task's whole process group; SIGKILL also reaches processes that left
  // the group, through the task's cgroup.
  void Signal(const RunningTask& task, int signal) const;
  // Whether the task (or a process it started) was killed for going over its memory limit.
  bool OutOfMemory(const RunningTask& task) const { return TaskCgroups::OutOfMemory(task.cgroup); }
  // Forgets an ended task: kills what it left running, removes its cgroup and state directory.
  void Collect(const RunningTask& task) const;
  // A task that could not start: a state directory holding `message` as its stderr, so the
  // message is shipped like any output.
  RunningTask Failed(const TaskLaunch& launch, const std::string& message) const;

  const TaskCgroups& cgroups() const { return cgroups_; }

 private:
  std::string tasks_dir_;
  std::string shim_;
  TaskCgroups cgroups_;
};

}  // namespace allot
