// Simulator throughput on the public traces and on the two workloads the issue sets targets for:
//   BM_Lublin256        ../shared/traces/lublin_256.swf on 256x1 (10,000 jobs), per policy
//   BM_Philly           ../shared/traces/philly.csv on 64x8
//   BM_Swf450k          lublin_256 tiled 45 times in time, sizes x4 and arrivals stretched by
//                       1.2: 450,000 jobs on 1024x1, EASY; target < 30 s. The stretch brings the
//                       offered load from 1.06 (Lublin's own: work / (256 x arrival span)) to 0.88;
//                       tiled as it is, the backlog would grow copy after copy without bound.
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

void BM_Swf450k(benchmark::State& state) {
  std::string path = SharedTrace("lublin_256.swf");
  if (!std::filesystem::exists(path)) return state.SkipWithError("no ../shared/traces/lublin_256.swf");
  StatusOr<Trace> trace = ReadTrace(path, TraceFormat::kSwf, {});
  if (!trace.ok()) return state.SkipWithError(trace.status().ToString().c_str());
  // 45 copies one after another, each 4x as wide and 1.2x as spread out.
  Time span = (trace->jobs.back().submit + 1) * 12 / 10;
  std::vector<TraceJob> jobs;
  jobs.reserve(45 * trace->jobs.size());
  for (int copy = 0; copy < 45; ++copy) {
    for (const TraceJob& job : trace->jobs) {
      TraceJob tiled = job;
      tiled.id = jobs.size() + 1;
      tiled.submit = tiled.submit * 12 / 10 + copy * span;
      tiled.tasks *= 4;
      jobs.push_back(std::move(tiled));
    }
  }
  for (auto _ : state) {
    StatusOr<Config> config = FlatClusterConfig("1024x1", {"default"});
    if (!config.ok()) return state.SkipWithError(config.status().ToString().c_str());
    (void)ApplyPolicyPreset("easy", config->policy);
    SimOptions options;
    options.policy_name = "easy";
    StatusOr<SimRun> run = Simulate(std::move(*config), jobs, options);
    if (!run.ok()) return state.SkipWithError(run.status().ToString().c_str());
    Report(state, *run);
  }
}
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
