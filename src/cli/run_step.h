// `allot run` (installed as `srun` too): starts a step inside a running job's allocation and
// follows it to the end, as srun does inside an sbatch script. The step's tasks run on the job's
// nodes through their agents (server/steps.h); this process prints their output as it arrives,
// labelled "RANK: " with --label, forwards SIGINT and SIGTERM as a cancel of the step, and exits
// with the step's exit status: the highest of its tasks', as srun's.
//
//   StepOptions options{.argv = {"python", "train.py"}, .ntasks = 16, .label = true};
//   int exit_code = RunStep(client, options, env);
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/commands.h"

namespace allot {

struct StepOptions {
  std::string job;  // "": ALLOT_JOB_ID, else SLURM_JOB_ID
  std::vector<std::string> argv;
  int ntasks = 0;  // 0: not given (the server applies Slurm's defaults)
  int ntasks_per_node = 0;
  int nodes = 0;
  int gpus_per_task = 0;
  bool label = false;               // prefix each line with its task's rank
  std::string export_variables = "ALL";  // ALL, NONE, or NAME[=VALUE],... (srun --export)
  std::string working_directory;    // "": this process's
  std::map<std::string, std::string> environment;  // what --export=ALL passes: this process's
  double max_poll_seconds = 1.0;
};

// Set from a signal handler: the signal the caller received (SIGINT, SIGTERM), 0 for none. The
// step is cancelled at the next poll.
extern std::atomic<int> step_interrupt;

// The process's environment as a map (what StepOptions::environment is given in `allot run`).
std::map<std::string, std::string> ProcessEnvironment();

int RunStep(ApiClient& client, const StepOptions& options, const CommandEnv& env);

}  // namespace allot
