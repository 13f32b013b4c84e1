// Scheduler benchmarks on the national pool (examples/national-pool.yaml: 264,608 GPUs on 36,880
// nodes, 185 accounts). Targets (docs/performance.md):
//   BM_PlaceSmallJobs  >= 100,000 placements/s     BM_PlaceGangs  >= 5,000 gangs/s
//   BM_FullPass        one pass over 100,000 pending jobs with EASY backfill in < 1 s
//
//   ./build/src/sched/sched_benchmark
#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <memory>

#include "core/config.h"
#include "core/generator.h"
#include "sched/placement.h"
#include "sched/scheduler.h"

namespace allot {
namespace {

const char* const kNationalPool = ALLOT_SOURCE_DIR "/examples/national-pool.yaml";

Config LoadNational() {
  StatusOr<Config> config = LoadConfigFile(kNationalPool);
  if (!config.ok()) {
    fprintf(stderr, "%s\n", config.status().message().c_str());
    std::abort();
  }
  return std::move(*config);
}

// Peak resident memory of the whole benchmark process so far.
size_t PeakResidentBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<size_t>(usage.ru_maxrss) * 1024;
}

// Placement requests for `mix`, each with its pool.
std::vector<std::pair<PoolIndex, PlacementRequest>> Requests(const Config& config, const JobMix& mix,
                                                             size_t count) {
  std::vector<JobSpec> jobs = GenerateJobs(config.cluster, config.accounts, count, mix);
  std::vector<std::pair<PoolIndex, PlacementRequest>> requests;
  for (const JobSpec& job : jobs) {
    requests.emplace_back(*config.cluster.FindPool(job.pools.front()), PlacementRequest::ForJob(job));
  }
  return requests;
}

// Places requests one after another, taking their GPUs, until a request no longer fits; then
// starts again on an empty pool. Counts placements.
void PlaceUntilFull(benchmark::State& state, const JobMix& mix) {
  Config config = LoadNational();
  auto requests = Requests(config, mix, 200000);
  auto free = std::make_unique<FreeCapacity>(config.cluster);
  size_t next = 0;
  int64_t placed = 0;
  for (auto _ : state) {
    const auto& [pool, request] = requests[next];
    next = (next + 1) % requests.size();
    std::optional<Placement> placement = FindPlacement(*free, pool, request);
    if (!placement) {
      state.PauseTiming();
      free = std::make_unique<FreeCapacity>(config.cluster);
      state.ResumeTiming();
      continue;
    }
    for (const TaskAllocation& task : placement->tasks) {
      free->Take(task.node, request.gpus_per_task, task.cpus, task.memory_bytes);
    }
    ++placed;
  }
  state.SetItemsProcessed(placed);
}

void BM_PlaceSmallJobs(benchmark::State& state) {
  PlaceUntilFull(state, {.seed = 1, .small_fraction = 1.0, .gang_fraction = 0.0});
}
BENCHMARK(BM_PlaceSmallJobs);

void BM_PlaceGangs(benchmark::State& state) {
  PlaceUntilFull(state, {.seed = 2, .small_fraction = 0.0, .gang_fraction = 1.0});
}
BENCHMARK(BM_PlaceGangs);

// One full pass: 100,000 pending jobs of the national mix on an empty pool (it fills the pool,
// makes reservations and records a reason for every job left). Arg 1: a second pass on the now
// full pool, the steady state of a busy scheduler.
void BM_FullPass(benchmark::State& state) {
  const size_t kPending = 100000;
  bool saturated = state.range(0) == 1;
  size_t model_bytes = 0;
  PassResult last;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<Scheduler> scheduler = std::move(Scheduler::Create(LoadNational()).value());
    std::vector<JobSpec> jobs = GenerateJobs(scheduler->model().cluster(),
                                             scheduler->model().accounts(), kPending, {.seed = 3});
    for (size_t i = 0; i < jobs.size(); ++i) (void)scheduler->Submit(i + 1, jobs[i], 0);
    if (saturated) scheduler->RunPass(0);
    state.ResumeTiming();
    last = scheduler->RunPass(saturated ? 60 : 0);
    state.PauseTiming();
    model_bytes = scheduler->model().ApproximateBytes();
    scheduler.reset();
    state.ResumeTiming();
  }
  state.counters["pending"] = static_cast<double>(kPending);
  state.counters["started"] = static_cast<double>(last.started);
  state.counters["reserved"] = static_cast<double>(last.reserved);
  state.counters["sweeps"] = static_cast<double>(last.sweeps);
  state.counters["model_MiB"] = static_cast<double>(model_bytes) / (1 << 20);
  state.counters["peak_rss_MiB"] = static_cast<double>(PeakResidentBytes()) / (1 << 20);
}
BENCHMARK(BM_FullPass)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace allot
