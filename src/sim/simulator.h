// The simulator: the real scheduler (sched/scheduler.h) driven in virtual time by a trace.
//
// Events are job arrivals, completions at the job's actual run time (or its time limit, when it
// runs longer: it is killed there), cancellations, and node failures and repairs from a schedule.
// Like the server, each event marks the scheduler dirty, and a pass runs at the event's time
// unless one ran less than `pass_interval` ago, in which case it runs when the interval is up.
// Preempted and failed jobs that requeue start over; the work they lose is counted.
//
//   StatusOr<Config> config = FlatClusterConfig("256x1", {"user1", "user2"});
//   ALLOT_RETURN_IF_ERROR(ApplyPolicyPreset("easy", config->policy));
//   SimOptions options;
//   StatusOr<SimRun> run = Simulate(std::move(*config), trace, options);
//
// Deterministic: the same config, trace and options give the same run, byte for byte.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "sim/result.h"
#include "sim/trace.h"

namespace allot {

// A node going down, up or draining at a moment of the simulation.
struct NodeEvent {
  Time time = 0;
  std::string node;
  NodeState state = NodeState::kDown;
};

struct SimOptions {
  std::string policy_name = "config";
  // Minimum virtual time between two passes; < 0: the config's policy.pass_interval.
  Duration pass_interval = -1;
  // Stop here (jobs still pending or running are unfinished); kForever: when all jobs are done.
  Time horizon = kForever;
  std::vector<NodeEvent> node_events;
  // Trace lines skipped and problems found by the reader, carried into the run's summary.
  size_t skipped_lines = 0;
  std::vector<std::string> problems;
  // Where trace jobs came from, for messages about jobs the scheduler refuses.
  std::string source;
  // A rejected job (it could never run) fails the simulation instead of being counted.
  bool strict = false;
  // Width of a time-series bucket; 0: about 1/1000 of the trace's arrival span, at least 60 s.
  Duration sample_step = 0;
  // Called now and then with the fraction of trace jobs that have arrived.
  std::function<void(double)> progress;
};

StatusOr<SimRun> Simulate(Config config, const std::vector<TraceJob>& jobs,
                          const SimOptions& options);

// A flat cluster "NxG": N nodes of G GPUs in one pool "flat", in leaves of 32 nodes, with one
// account per name (no quotas: every account may use the whole pool). Policy defaults.
StatusOr<Config> FlatClusterConfig(std::string_view spec, const std::vector<std::string>& accounts);

// Named policies for --policy: fcfs (fifo, no backfill), easy (fifo, EASY backfill),
// conservative (fifo, conservative backfill), fair-share (fair share, EASY), first-fit (fifo,
// any job that fits starts), config (the config file's policy as written).
Status ApplyPolicyPreset(std::string_view name, PolicyConfig& policy);
const std::vector<std::string_view>& PolicyPresetNames();

// Reads a node schedule: CSV `time,node,state` (state: down, up, draining; time in seconds or
// a duration), with a header line.
StatusOr<std::vector<NodeEvent>> ReadNodeEvents(const std::string& path);

}  // namespace allot
