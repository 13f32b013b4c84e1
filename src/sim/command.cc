#include "sim/command.h"

#include <filesystem>

#include "core/config.h"
#include "sim/report.h"
#include "sim/simulator.h"
#include "sim/workload.h"

namespace allot {

StatusOr<std::vector<SimRun>> RunSimCommand(const SimCommand& command) {
  if (command.config.empty() == command.cluster.empty()) {
    return InvalidArgumentError("give exactly one of --config FILE or --cluster NODESxGPUS");
  }
  if (command.policies.empty()) return InvalidArgumentError("--policy needs at least one name");
  for (const std::string& name : command.policies) {
    PolicyConfig scratch;
    ALLOT_RETURN_IF_ERROR(ApplyPolicyPreset(name, scratch));
  }

  TraceFormat format = TraceFormat::kNational;
  if (command.format) {
    format = *command.format;
  } else if (command.trace.empty()) {
    return InvalidArgumentError("--trace FILE is needed (or --format national with --config)");
  } else {
    ALLOT_ASSIGN_OR_RETURN(format, GuessTraceFormat(command.trace));
  }

  Config config;
  std::vector<TraceJob> jobs;
  SimOptions options;
  std::string note;
  options.strict = command.strict;
  options.pass_interval = command.pass_interval;
  options.horizon = command.horizon;
  if (format == TraceFormat::kNational) {
    if (command.config.empty()) {
      return InvalidArgumentError("the national workload needs a pool: pass --config FILE, not --cluster");
    }
    if (command.skip_jobs > 0) {
      return InvalidArgumentError("--skip selects a window of a trace; the national workload is generated");
    }
    if (command.checkpoint_interval > 0) {
      return InvalidArgumentError("--checkpoint applies to a trace; the national workload sets `checkpoint` per class");
    }
    ALLOT_ASSIGN_OR_RETURN(config, LoadConfigFile(command.config));
    std::string workload_path = command.trace.empty() ? command.config : command.trace;
    ALLOT_ASSIGN_OR_RETURN(WorkloadModel model, LoadWorkloadFile(workload_path));
    if (command.national_jobs > 0 && command.national_jobs != model.jobs) {
      // Fewer jobs over the same days is a lighter load, not a shorter month: say so, or a
      // planner reads low utilisation as a finding.
      note = fmt::format(
          "--jobs {}: the model's {} jobs over {} days became {} over the same days, {:.0f}% of its load",
          command.national_jobs, model.jobs, model.days, command.national_jobs,
          100.0 * static_cast<double>(command.national_jobs) / static_cast<double>(std::max<size_t>(1, model.jobs)));
      model.jobs = command.national_jobs;
    }
    ALLOT_ASSIGN_OR_RETURN(jobs, GenerateWorkload(model, config, command.seed));
    options.source = workload_path;
    if (command.failures_path.empty()) options.node_events = GenerateFailures(model, config.cluster, command.seed);
  } else {
    if (command.trace.empty()) return InvalidArgumentError("--trace FILE is needed");
    TraceReadOptions read_options;
    read_options.strict = command.strict;
    read_options.gpus_per_node = command.gpus_per_node;
    ALLOT_ASSIGN_OR_RETURN(Trace trace, ReadTrace(command.trace, format, read_options));
    if (command.cluster.empty()) {
      ALLOT_ASSIGN_OR_RETURN(config, LoadConfigFile(command.config));
    } else {
      std::vector<std::string> accounts;
      for (const TraceJob& job : trace.jobs) accounts.push_back(job.account);
      ALLOT_ASSIGN_OR_RETURN(config, FlatClusterConfig(command.cluster, accounts));
    }
    jobs = std::move(trace.jobs);
    // A window of the trace: the RLScheduler protocol replays slices of consecutive jobs.
    if (command.skip_jobs >= jobs.size() && command.skip_jobs > 0) {
      return InvalidArgumentError("--skip {}: the trace has only {} jobs", command.skip_jobs, jobs.size());
    }
    jobs.erase(jobs.begin(), jobs.begin() + static_cast<std::ptrdiff_t>(command.skip_jobs));
    if (command.national_jobs > 0 && command.national_jobs < jobs.size()) jobs.resize(command.national_jobs);
    for (TraceJob& job : jobs) {
      if (job.checkpoint_interval == 0) job.checkpoint_interval = command.checkpoint_interval;
    }
    options.skipped_lines = trace.skipped;
    options.problems = std::move(trace.problems);
    options.source = command.trace;
  }
  if (!command.failures_path.empty()) {
    ALLOT_ASSIGN_OR_RETURN(options.node_events, ReadNodeEvents(command.failures_path));
  }
  // Output paths are checked before hours of simulation, not after.
  if (!command.report_dir.empty() && std::filesystem::exists(command.report_dir) &&
      !std::filesystem::is_directory(command.report_dir)) {
    return InvalidArgumentError("--report {}: exists and is not a directory", command.report_dir);
  }

  for (size_t i = 0; i < command.las_thresholds.size(); ++i) {
    double gpu_hours = command.las_thresholds[i];
    if (!(gpu_hours > 0) || gpu_hours > 1e9 || (i > 0 && gpu_hours <= command.las_thresholds[i - 1])) {
      return InvalidArgumentError("--las-thresholds: expected positive GPU-hours, ascending, e.g. 0.25,1,4,16");
    }
  }
  if (command.las_thresholds.size() > 16) return InvalidArgumentError("--las-thresholds: at most 16 thresholds");
  if (command.las_promote > 1e6) return InvalidArgumentError("--las-promote: expected a factor from 0 to 1e6");

  std::vector<SimRun> runs;
  for (const std::string& name : command.policies) {
    Config copy = config;
    ALLOT_RETURN_IF_ERROR(ApplyPolicyPreset(name, copy.policy));
    if (!command.las_thresholds.empty()) copy.policy.las_thresholds = command.las_thresholds;
    if (command.las_promote >= 0) copy.policy.las_promote = command.las_promote;
    options.policy_name = name;
    if (command.progress) {
      options.progress = [&command, &name](double fraction) { command.progress(name, fraction); };
    }
    ALLOT_ASSIGN_OR_RETURN(SimRun run, Simulate(std::move(copy), jobs, options));
    if (!note.empty()) run.notes.push_back(note);
    runs.push_back(std::move(run));
  }
  return runs;
}

Status WriteSimOutputs(const SimCommand& command, const std::vector<SimRun>& runs) {
  if (!command.json_path.empty()) ALLOT_RETURN_IF_ERROR(WriteSummaryJson(command.json_path, runs));
  if (!command.jobs_csv_path.empty()) ALLOT_RETURN_IF_ERROR(WriteJobsCsv(command.jobs_csv_path, runs));
  if (!command.report_dir.empty()) {
    std::string pool = command.cluster.empty() ? command.config : command.cluster;
    std::string title = command.trace.empty() || command.trace == command.config
                            ? fmt::format("allot sim: the workload of {}", pool)
                            : fmt::format("allot sim: {} on {}", command.trace, pool);
    ALLOT_RETURN_IF_ERROR(WriteHtmlReport(command.report_dir, runs, title));
  }
  return OkStatus();
}

}  // namespace allot
