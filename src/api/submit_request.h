// What a tenant submits with `allot submit FILE`: a Slurm batch script or a YAML job spec, read on
// the client into one SubmitRequest that the server will take.
//
//   StatusOr<SubmitRequest> request = ParseSubmitFile(text, "train.sh");
//   if (!request.ok()) { std::cerr << request.status().message(); return 2; }
//   // request->spec: 4 tasks x 8 GPUs; request->script: the text to run; request->array: ...
//
// A batch script is read as sbatch reads it: the first line is the shebang ("#!/bin/bash"), and
// `#SBATCH` lines count only until the first line that is neither blank nor a comment; later ones
// are ignored, as sbatch ignores them. Options take `--opt=value`, `--opt value`, `-J name` and
// `-Jname`; several may share a line; an unquoted `#` at the start of a word begins a comment; when
// an option repeats, the last one wins. An option allot does not know is an error naming it and
// its line, so a typo never silently means a default.
//
// Mapping Slurm's request to allot's model. An allot job is `tasks` x `gpus_per_task` whole GPUs;
// each task sits on one node (tasks may share a node); the gang starts all at once or not at all.
// One allot task is what Slurm puts on one node, so a job keeps the per-node shape it asked for:
// "4 nodes of 8 GPUs" stays 4 tasks of 8 GPUs and is never scattered as 32 single GPUs.
//   * Nodes. With --nodes N or --ntasks-per-node k, the job is N tasks (N = --ntasks / k when
//     --nodes is absent, else 1) and each task holds k Slurm tasks (k = --ntasks / N when
//     --ntasks-per-node is absent, else 1). --ntasks must then equal N x k; ranges (--nodes=2-4)
//     are rejected, because a gang has one size. `processes_per_task` keeps k: the script (srun,
//     torchrun) starts those processes itself; the agent exports it as SLURM_NTASKS_PER_NODE.
//   * Without either, the job is --ntasks tasks (default 1), one Slurm task each; with more than
//     one task the node count is open, so per-node options (--gres, --gpus-per-node, --mem) are
//     errors that say to add --nodes or use a per-task or per-GPU option.
//   * GPUs per task: per node from --gpus-per-node or --gres=gpu[:TYPE][:COUNT] (COUNT defaults
//     to 1); --gpus-per-task g times the Slurm tasks per allot task; --gpus G divided evenly over
//     the tasks. Every source given must agree, and --gpus must divide: "--gpus=10 --nodes=3" is
//     an error, not a guess. No GPU option means 1 GPU per task, as in a YAML spec. At most
//     kMaxGpusPerNode GPUs fit one task.
//   * GPU model: TYPE from --gres, --gpus, --gpus-per-node or --gpus-per-task ("h100:8"), kept
//     as written; the scheduler compares models without regard to case, so "h200" finds the
//     pools of model "H200". Two different types are an error.
//   * CPUs: cpus_per_task = --cpus-per-task x Slurm tasks per allot task; 0 (unchecked) when
//     absent.
//   * Memory (a bare number is MiB, as in Slurm; K/M/G/T suffixes are binary): --mem is per node,
//     so it is memory_per_task as is (--mem=0, Slurm's "the whole node", asks for nothing);
//     --mem-per-cpu is multiplied by the task's CPUs (1 per Slurm task when --cpus-per-task is
//     absent); --mem-per-gpu by its GPUs. The three exclude each other.
//   * --time: Slurm's forms; a bare number is minutes ("30", "30:00", "2-00:00:00"). UNLIMITED
//     and 0 are rejected: an allot job needs a limit (omit --time for the scheduler's default).
//   * --partition → pools (comma-separated), --qos → priority class, --job-name, --account (empty
//     when the script names none: the server fills in the token's account), --requeue/--no-requeue,
//     --hold (-H: submitted held). --mail-type, --mail-user, --comment and --open-mode are
//     accepted and ignored: they never change where or how a job runs.
//   * --array, --dependency: see ParseArraySpec and ParseDependencies. --output, --error, --chdir
//     are kept as written, Slurm's %j/%A/%a patterns included; the agent expands them.
// The job's command is the script itself: spec.command stays empty and `script` holds the text;
// the agent writes it to a file and runs it with the interpreter its shebang names, once, on the
// first node (`batch`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/job.h"
#include "core/status.h"

namespace allot {

// A job array: one job per index, all with the same spec.
struct ArraySpec {
  std::vector<int> indexes;  // sorted, distinct
  int max_concurrent = 0;    // at most this many elements run at once; 0: no limit

  bool operator==(const ArraySpec&) const = default;
};

inline constexpr int kMaxArrayElements = 100000;

// Slurm's --array syntax: a comma-separated list of indexes ("7") and ranges ("0-15", with a step
// "0-15:4"), then optionally "%N" to run at most N elements at once: "1,3,5-7", "0-99%10".
// Errors: malformed text, a range that runs backwards, a step below 1, an index above 2^31-1, or
// more than kMaxArrayElements distinct indexes.
StatusOr<ArraySpec> ParseArraySpec(std::string_view text);

enum class DependencyType : uint8_t {
  kAfter,       // the job has started (or was cancelled)
  kAfterAny,    // the job has ended, however
  kAfterOk,     // the job has ended successfully
  kAfterNotOk,  // the job has failed, timed out or been cancelled
  kSingleton,   // no other job of the same name and user is running
};
std::string_view DependencyTypeName(DependencyType type);

struct Dependency {
  DependencyType type = DependencyType::kAfterOk;
  JobId job = 0;  // 0 for kSingleton, which names no job

  bool operator==(const Dependency&) const = default;
};

// Slurm's --dependency syntax, every condition required: "afterok:123:124,afterany:99",
// "singleton". One Dependency per job id, in the order written. Rejected with a message: '?'
// (any of), delays ("after:123+10"), array elements ("123_4") and the types allot lacks
// (aftercorr, afterburstbuffer, expand).
StatusOr<std::vector<Dependency>> ParseDependencies(std::string_view text);

struct SubmitRequest {
  JobSpec spec;
  std::string script;          // the whole batch script; empty for a YAML spec
  std::vector<std::string> script_args;  // its arguments (sbatch script.sh ARGS...)
  int processes_per_task = 1;  // Slurm tasks per allot task (per node); the script starts them
  std::optional<ArraySpec> array;
  std::vector<Dependency> dependencies;
  std::string output;      // stdout path pattern; "": the agent's default
  std::string error;       // stderr path pattern; "": with stdout
  std::string chdir;       // working directory; "": the submit directory
  bool exclusive = false;  // no other job may share the job's nodes
  bool hold = false;       // submitted held (sbatch --hold): it waits for `allot release`
  // Slurm's batch semantics (a script read from #SBATCH syntax): the script runs once, as the
  // batch step on the allocation's first node, in the submit directory, with the SLURM_*
  // environment, and writes slurm-%j.out there by default. A YAML spec runs its command or
  // script as every task.
  bool batch = false;
  std::string submit_dir;  // where `allot submit` ran (SLURM_SUBMIT_DIR); the default working directory
};

// Reads a Slurm batch script; `source` names it in messages ("train.sh:4: ..."). Errors are
// InvalidArgument: no shebang, Windows line endings, an unknown option, a malformed value, or
// options that contradict each other or cannot map to allot's model (see the file comment).
// `command_line`: sbatch's options (the same ones, as separate words), which override the
// script's; errors in them say "sbatch:".
StatusOr<SubmitRequest> ParseBatchScript(std::string_view text, std::string_view source,
                                         const std::vector<std::string>& command_line = {});

// Whether an #SBATCH option (its long name, or its letter) takes a value; nullopt when allot does
// not know it. For sbatch's command line, where "-J name" must be told from "-H script.sh".
std::optional<bool> BatchOptionTakesValue(std::string_view option);

// Reads either kind of submit file: a batch script when the text starts with "#!" or has an
// "#SBATCH" line, else a YAML job spec (docs/configuration.md, "Job spec").
StatusOr<SubmitRequest> ParseSubmitFile(std::string_view text, std::string_view source);

}  // namespace allot
