// Workload traces for the simulator: what jobs arrive when, how long they really run, and how
// long their owners said they would.
//
// Readers (one job per line; every problem names the file and line):
//   swf      Standard Workload Format (Parallel Workloads Archive). Field 2 submit, 4 run time,
//            5 allocated processors (8 requested when 5 is -1), 9 requested time (-1: the run
//            time), 12 user (account "user<N>"). Processors count as 1-GPU tasks.
//   philly   The Philly-derived CSV `timestamp,duration,num_gpus,gpu_time,cluster`; times are
//            relative to the earliest timestamp; the VC hash in `cluster` is the account.
//   csv      Generic: header with submit_time,duration,gpus,account and optionally time_limit,
//            priority (a class name), gpus_per_task, pool, cancel_after. Times in seconds or
//            durations ("90m").
// A bad line is skipped and counted (TraceReadOptions::strict turns it into an error).
//
//   StatusOr<Trace> trace = ReadTrace("lublin_256.swf", TraceFormat::kSwf, {});
//   for (const TraceJob& job : trace->jobs) ...   // sorted by submit time, then file order
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/job.h"
#include "core/status.h"
#include "core/units.h"

namespace allot {

enum class TraceFormat : uint8_t { kSwf, kPhilly, kCsv, kNational };
std::string_view TraceFormatName(TraceFormat format);
StatusOr<TraceFormat> ParseTraceFormat(std::string_view name);
// From the file name: *.swf is swf; a *.csv whose header starts "timestamp,duration,num_gpus" is
// philly, any other *.csv is csv; *.yaml/*.yml is national.
StatusOr<TraceFormat> GuessTraceFormat(const std::string& path);

struct TraceJob {
  JobId id = 0;        // the trace's job number (swf) or its 1-based row (csv, philly)
  Time submit = 0;
  Duration runtime = 0;     // what the job really runs for, if nothing stops it
  Duration time_limit = 0;  // what its owner asked for (>= 1); the job is killed there
  int tasks = 1;
  int gpus_per_task = 1;
  std::string account;
  std::string priority_class;  // "": the policy's default
  std::string pool;            // "": any pool
  std::string gpu_model;       // "": any model
  TopologyConstraint topology;
  bool preemptible = true;
  JobKind kind = JobKind::kBatch;
  Duration cancel_after = -1;  // >= 0: the owner cancels it this long after submit
  // > 0: the job saves its progress this often, so a requeued execution resumes from its last
  // checkpoint instead of from the start. 0: it starts over.
  Duration checkpoint_interval = 0;
  int line = 0;                // where it came from, for messages (0: generated)

  int64_t gpus() const { return static_cast<int64_t>(tasks) * gpus_per_task; }
};

struct TraceReadOptions {
  bool strict = false;  // a bad line is an error instead of being skipped
  // GPUs per node assumed when a trace gives only a GPU count (philly, csv without
  // gpus_per_task): a job of up to this many GPUs is one task; a larger one is split into tasks
  // of this size when it divides evenly, else into 1-GPU tasks.
  int gpus_per_node = 8;
};

struct Trace {
  std::string source;          // the file
  std::vector<TraceJob> jobs;  // sorted by (submit, file order)
  size_t skipped = 0;          // bad lines skipped
  std::vector<std::string> problems;  // "file:line: what is wrong"; at most the first 100
};

StatusOr<Trace> ReadTrace(const std::string& path, TraceFormat format,
                          const TraceReadOptions& options);
// The same from text already in memory; `source` names it in messages.
StatusOr<Trace> ParseTrace(std::string_view text, std::string_view source, TraceFormat format,
                           const TraceReadOptions& options);

// Jobs of `tasks` x `gpus_per_task` for a trace that gives only a GPU count (see
// TraceReadOptions::gpus_per_node).
void SplitGpus(int64_t gpus, int gpus_per_node, int& tasks, int& gpus_per_task);

}  // namespace allot
