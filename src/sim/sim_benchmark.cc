// Simulator throughput on the public traces and on the two workloads the issue sets targets for:
//   BM_Lublin256        ../shared/traces/lublin_256.swf on 256x1 (10,000 jobs), per policy
//   BM_Philly           ../shared/traces/philly.csv on 64x8
//   BM_Swf450k          lublin_256 tiled 45 times in time, sizes x4 and arrivals stretched by
//                       1.2: 450,000 jobs on 1024x1, EASY; target < 30 s. The stretch brings the
//                       offered load from 1.06 (Lublin's own: work / (256 x arrival span)) to 0.88;
//                       tiled as it is, the backlog would grow copy after copy without bound.
//   BM_Lublin450k       lublin_256 repeated 45 times back to back as it is: 450,000 jobs on
//                       256x1, EASY; target < 30 s. The backlog grows copy after copy (offered
//                       load 1.06): the test of passes that do not cost the queue's length.
//   BM_National1M       examples/national-pool.yaml's workload scaled to 1,000,000 jobs over 30
//                       days on 264,608 GPUs; target < 60 s and < 2 GB
// Each runs once (a simulation is long and deterministic); wall time is the figure, and the
// counters give jobs per second and the process's peak RSS.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "sim/command.h"
#include "sim/simulator.h"
#include "sim/workload.h"

namespace allot {
namespace {

std::string SharedTrace(const std::string& name) {
  return std::string(ALLOT_SOURCE_DIR) + "/../shared/traces/" + name;
}

void Report(benchmark::State& state, const SimRun& run) {
  state.counters["jobs"] = static_cast<double>(run.summary.trace_jobs);
  state.counters["jobs_per_s"] = static_cast<double>(run.summary.trace_jobs) / run.summary.sim_wall_s;
  state.counters["passes"] = static_cast<double>(run.summary.passes);
  state.counters["utilization"] = run.summary.utilization;
  state.counters["avg_wait_s"] = run.summary.avg_wait_s;
  state.counters["peak_rss_MiB"] = static_cast<double>(run.summary.peak_rss_bytes) / (1 << 20);
}

void RunCommand(benchmark::State& state, SimCommand command) {
  for (auto _ : state) {
    StatusOr<std::vector<SimRun>> runs = RunSimCommand(command);
    if (!runs.ok()) {
      state.SkipWithError(runs.status().ToString().c_str());
      return;
    }
    Report(state, runs->front());
  }
}

void BM_Lublin256(benchmark::State& state) {
  static const char* kPolicies[] = {"fcfs", "easy", "conservative", "fair-share"};
  std::string path = SharedTrace("lublin_256.swf");
  if (!std::filesystem::exists(path)) return state.SkipWithError("no ../shared/traces/lublin_256.swf");
  SimCommand command;
  command.cluster = "256x1";
  command.trace = path;
  command.policies = {kPolicies[state.range(0)]};
  state.SetLabel(kPolicies[state.range(0)]);
  RunCommand(state, command);
}
BENCHMARK(BM_Lublin256)->DenseRange(0, 3)->Iterations(1)->Unit(benchmark::kSecond);

void BM_Philly(benchmark::State& state) {
  std::string path = SharedTrace("philly.csv");
  if (!std::filesystem::exists(path)) return state.SkipWithError("no ../shared/traces/philly.csv");
  SimCommand command;
  command.cluster = "64x8";
  command.trace = path;
  command.policies = {state.range(0) == 0 ? "easy" : "fair-share"};
  state.SetLabel(command.policies.front());
  RunCommand(state, command);
}
BENCHMARK(BM_Philly)->DenseRange(0, 1)->Iterations(1)->Unit(benchmark::kSecond);

// lublin_256 repeated 45 times, copy after copy, each `width` times as wide and `stretch_tenths`
// tenths as spread out, replayed under EASY on `cluster`.
void RepeatLublin(benchmark::State& state, int width, int stretch_tenths, const char* cluster) {
  std::string path = SharedTrace("lublin_256.swf");
  if (!std::filesystem::exists(path)) return state.SkipWithError("no ../shared/traces/lublin_256.swf");
  StatusOr<Trace> trace = ReadTrace(path, TraceFormat::kSwf, {});
  if (!trace.ok()) return state.SkipWithError(trace.status().ToString().c_str());
  Time span = (trace->jobs.back().submit + 1) * stretch_tenths / 10;
  std::vector<TraceJob> jobs;
  jobs.reserve(45 * trace->jobs.size());
  for (int copy = 0; copy < 45; ++copy) {
    for (const TraceJob& job : trace->jobs) {
      TraceJob repeated = job;
      repeated.id = jobs.size() + 1;
      repeated.submit = repeated.submit * stretch_tenths / 10 + copy * span;
      repeated.tasks *= width;
      jobs.push_back(std::move(repeated));
    }
  }
  for (auto _ : state) {
    StatusOr<Config> config = FlatClusterConfig(cluster, {"default"});
    if (!config.ok()) return state.SkipWithError(config.status().ToString().c_str());
    (void)ApplyPolicyPreset("easy", config->policy);
    SimOptions options;
    options.policy_name = "easy";
    StatusOr<SimRun> run = Simulate(std::move(*config), jobs, options);
    if (!run.ok()) return state.SkipWithError(run.status().ToString().c_str());
    Report(state, *run);
  }
}

void BM_Lublin450k(benchmark::State& state) { RepeatLublin(state, 1, 10, "256x1"); }
BENCHMARK(BM_Lublin450k)->Unit(benchmark::kSecond)->Iterations(1);

void BM_Swf450k(benchmark::State& state) { RepeatLublin(state, 4, 12, "1024x1"); }
BENCHMARK(BM_Swf450k)->Iterations(1)->Unit(benchmark::kSecond);

void BM_National1M(benchmark::State& state) {
  SimCommand command;
  command.config = std::string(ALLOT_SOURCE_DIR) + "/examples/national-pool.yaml";
  command.format = TraceFormat::kNational;
  command.policies = {"config"};
  RunCommand(state, command);
}
BENCHMARK(BM_National1M)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace
}  // namespace allot
