// Scheduler benchmarks on the national pool (examples/national-pool.yaml: 264,608 GPUs on 36,880
// nodes, 185 accounts). Targets (docs/performance.md):
//   BM_PlaceSmallJobs  >= 100,000 placements/s     BM_PlaceGangs  >= 5,000 gangs/s
//   BM_FullPass        one pass over 100,000 pending jobs with EASY backfill in < 1 s
//   BM_PassUnusableFree  100,000 pending, GPUs free that no pending job can use: < 1 ms a pass
//   BM_PassAfterOneEnd   the pass after one job ends, against queue length: flat, not O(queue)
//
//   ./build/src/sched/sched_benchmark
#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <fmt/format.h>

#include <memory>
#include <string>

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

// A site of two pools: "a", 64 nodes of 8 GPUs, and "b", 8 nodes of 8 GPUs; one account.
std::unique_ptr<Scheduler> TwoPoolSite(std::string_view backfill) {
  std::string yaml = "pools:\n  - name: a\n  - name: b\nnodes:\n";
  for (int n = 0; n < 64; ++n) yaml += fmt::format("  - {{name: a{}, pool: a, gpus: 8}}\n", n);
  for (int n = 0; n < 8; ++n) yaml += fmt::format("  - {{name: b{}, pool: b, gpus: 8}}\n", n);
  yaml += fmt::format("accounts:\n  - name: lab\npolicy:\n  queue_order: fifo\n  backfill: {}\n", backfill);
  StatusOr<Config> config = ParseConfig(yaml, "two-pool site");
  if (!config.ok()) {
    fprintf(stderr, "%s\n", config.status().message().c_str());
    std::abort();
  }
  return std::move(Scheduler::Create(std::move(*config)).value());
}

JobSpec PoolAJob(int gpus, Duration time_limit) {
  JobSpec spec;
  spec.account = "lab";
  spec.tasks = 1;
  spec.gpus_per_task = gpus;
  spec.time_limit = time_limit;
  spec.pools = {"a"};
  return spec;
}

// 100,000 jobs of 8 GPUs wait for pool a, which is full but for 4 GPUs; pool b, which none of
// them may use, is empty. The head holds its reservation. Nothing can start: a pass should cost
// what it takes to see that, not a walk of the queue. Arg: 0 easy, 1 none (FCFS), 2 first_fit.
void BM_PassUnusableFree(benchmark::State& state) {
  const char* const kBackfill[] = {"easy", "none", "first_fit"};
  std::unique_ptr<Scheduler> scheduler = TwoPoolSite(kBackfill[state.range(0)]);
  JobId id = 0;
  (void)scheduler->Submit(++id, PoolAJob(4, 3600), 0);
  (void)scheduler->Submit(++id, PoolAJob(4, 3600), 0);
  for (int i = 0; i < 63; ++i) (void)scheduler->Submit(++id, PoolAJob(8, 7200), 0);
  scheduler->RunPass(0);  // pool a is full
  for (int i = 0; i < 100000; ++i) (void)scheduler->Submit(++id, PoolAJob(8, 3600), 1);
  (void)scheduler->Complete(1, 10);  // 4 GPUs free in pool a
  Time now = 10;
  PassResult last;
  for (auto _ : state) last = scheduler->RunPass(now++);
  state.counters["pending"] = static_cast<double>(scheduler->model().pending().size());
  state.counters["started"] = static_cast<double>(last.started);
}
BENCHMARK(BM_PassUnusableFree)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);

// Pool a full of 8-GPU jobs, Arg(0) jobs waiting behind them (EASY): sizes 1, 2, 4 and 8 GPUs
// with limits of 1-4 h. Each iteration ends the running job that ends first, then times the
// pass that follows. Its cost should follow what the freed GPUs allow, not the queue's length.
void BM_PassAfterOneEnd(benchmark::State& state) {
  std::unique_ptr<Scheduler> scheduler = TwoPoolSite("easy");
  JobId id = 0;
  for (int i = 0; i < 64; ++i) (void)scheduler->Submit(++id, PoolAJob(8, 3600 + 60 * i), 0);
  scheduler->RunPass(0);
  const int kSizes[] = {8, 4, 8, 2, 8, 1, 8, 4};
  for (int64_t i = 0; i < state.range(0); ++i) {
    (void)scheduler->Submit(++id, PoolAJob(kSizes[i % 8], 3600 * (1 + i % 4)), 1);
  }
  Time now = 1;
  int64_t started = 0;
  int64_t considered = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const Model& model = scheduler->model();
    const auto& running = model.running_by_end(0);
    auto [end, first] = *running.begin();
    now = std::max(now, end);
    (void)scheduler->Complete(first, now);
    // Keep the queue at its length: a new job for each that started.
    while (static_cast<int64_t>(model.pending().size()) < state.range(0)) {
      ++id;
      (void)scheduler->Submit(id, PoolAJob(kSizes[id % 8], 3600 * static_cast<Duration>(1 + id % 4)), now);
    }
    state.ResumeTiming();
    PassResult pass = scheduler->RunPass(now);
    started += static_cast<int64_t>(pass.started);
    considered += static_cast<int64_t>(pass.considered);
  }
  state.counters["started"] = benchmark::Counter(static_cast<double>(started), benchmark::Counter::kAvgIterations);
  state.counters["looked_at"] = benchmark::Counter(static_cast<double>(considered), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_PassAfterOneEnd)->RangeMultiplier(10)->Range(100, 100000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace allot
