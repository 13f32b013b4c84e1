// `allot sim` as a library call: load the pool and the trace, run each policy, write the reports.
// The CLI only parses flags into SimCommand; tests call RunSimCommand directly.
//
//   SimCommand command;
//   command.cluster = "256x1";
//   command.trace = "lublin_256.swf";
//   command.policies = {"fcfs", "easy"};
//   command.json_path = "out.json";
//   StatusOr<std::vector<SimRun>> runs = RunSimCommand(command);
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "sim/result.h"
#include "sim/trace.h"

namespace allot {

struct SimCommand {
  std::string config;   // pool config file; or
  std::string cluster;  // "NxG": a flat cluster
  std::string trace;    // trace file; for national, the workload file (default: the config)
  std::optional<TraceFormat> format;  // default: guessed from the trace's name
  std::vector<std::string> policies = {"config"};
  std::string json_path;
  std::string jobs_csv_path;
  std::string report_dir;
  std::string failures_path;  // node schedule CSV; national generates failures from its model
  uint64_t seed = 1;
  // > 0: the national generator makes this many jobs instead of the model's count; of a trace,
  // only the first this many (after skip_jobs) are replayed.
  size_t national_jobs = 0;
  size_t skip_jobs = 0;  // of a trace: leave out this many jobs at its start
  bool strict = false;
  Duration pass_interval = -1;  // < 0: the config's policy.pass_interval
  Time horizon = kForever;
  int gpus_per_node = 8;        // for traces that give only a GPU count
  // > 0: a trace's jobs (those without an interval of their own) save their progress this often,
  // so a requeued one resumes from its last checkpoint. 0: they start over.
  Duration checkpoint_interval = 0;
  // The las order's queues and promotion (policy.las_thresholds, policy.las_promote) for every
  // policy run; empty / < 0: the config's.
  std::vector<double> las_thresholds;
  double las_promote = -1;
  // progress(policy, fraction of the trace that has arrived)
  std::function<void(const std::string&, double)> progress;
};

// Runs every policy in order. Bad input (files, flags, a rejected job under --strict) gives an
// InvalidArgument or NotFound error and writes no report.
StatusOr<std::vector<SimRun>> RunSimCommand(const SimCommand& command);

// Writes the JSON, CSV and HTML outputs the command asked for.
Status WriteSimOutputs(const SimCommand& command, const std::vector<SimRun>& runs);

}  // namespace allot
