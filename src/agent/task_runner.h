// TaskRunner: starts a job's task as a process on this node, and watches it until it ends, even
// across a restart of the agent.
//
// Every task runs under a shim, as containerd runs a container under its shim: the agent forks
// the shim, the shim starts a new session, forks the task (in its own process group, in the
// task's working directory, with exactly the given environment, stdout and stderr going to
// files), waits for it, and writes its exit status to a file in the task's state directory.
// The shim does not depend on the agent: if the agent dies, the task and its shim run on, and an
// agent that restarts re-attaches by reading the state directory (Recover) instead of losing the
// task or starting it twice.
//
//   TaskRunner runner("/var/lib/allot-agent/tasks");
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

#include "core/job.h"
#include "core/status.h"

namespace allot {

struct TaskLaunch {
  JobId job = 0;
  uint64_t epoch = 0;
  int task_index = 0;
  std::vector<std::string> argv;  // or, when empty, `script`
  std::string script;
  std::map<std::string, std::string> environment;  // the task's whole environment
  std::string working_directory;                   // must exist
  std::string stdout_path;
  std::string stderr_path;  // "": with stdout
  // Run as this unprivileged user (the agent must be root); -1: as the agent's own user.
  int uid = -1;
  int gid = -1;
};

struct RunningTask {
  JobId job = 0;
  uint64_t epoch = 0;
  int task_index = 0;
  pid_t shim = -1;   // the shim process (our child until the agent restarts)
  pid_t group = -1;  // the task's process id and process group id
  std::string state_dir;
  std::string stdout_path;
  std::string stderr_path;
};

class TaskRunner {
 public:
  // `tasks_dir` holds one state directory per task: <job>.<epoch>.<task>/.
  explicit TaskRunner(std::string tasks_dir);

  // Starts the task; returns once the task's process exists (or failed to start, which is
  // reported as an exit status of 127, as a shell does for a command it cannot run).
  StatusOr<RunningTask> Launch(const TaskLaunch& launch);
  // The tasks whose state directories are still here: running ones, and ended ones whose end
  // was not collected yet.
  std::vector<RunningTask> Recover() const;
  // The task's exit status once it has ended.
  std::optional<int> Poll(RunningTask& task) const;
  // Sends a signal to the task's whole process group.
  void Signal(const RunningTask& task, int signal) const;
  // Forgets an ended task: removes its state directory.
  void Collect(const RunningTask& task) const;

 private:
  std::string tasks_dir_;
};

}  // namespace allot
