// store_benchmark: a job history over many ended jobs, on both engines. The store holds
// ALLOT_HISTORY_ROWS ended jobs (default 1,000,000) of 200 accounts, submitted over a year; the
// benchmark asks for what `allot history -A ACCOUNT --since MONTH --until NEXT-MONTH` asks the
// store for: one account's ended jobs of one month, newest first, a page of 100.
//
//   scripts/with-postgresql.sh ./build/src/store/store_benchmark
//
// The PostgreSQL case needs ALLOT_TEST_POSTGRESQL (scripts/with-postgresql.sh) and says so when
// it is missing. Filling the stores takes a while (about a minute for PostgreSQL).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>

#include "store/postgres_testing.h"
#include "store/store.h"

namespace allot {
namespace {

constexpr int kAccounts = 200;
constexpr Time kYearStart = 1767225600;  // 2026-01-01
constexpr Time kMonth = 30 * 86400;

size_t Rows() {
  const char* text = std::getenv("ALLOT_HISTORY_ROWS");
  return text ? static_cast<size_t>(std::strtoull(text, nullptr, 10)) : 1000000;
}

const std::vector<std::string>& EndedStates() {
  static const std::vector<std::string> states = {"completed", "failed", "cancelled", "timeout", "node_fail", "preempted"};
  return states;
}

Status Fill(Store& store, size_t rows) {
  std::mt19937_64 random(7);
  std::uniform_int_distribution<int> account(0, kAccounts - 1);
  constexpr size_t kPerBatch = 20000;
  for (size_t first = 1; first <= rows; first += kPerBatch) {
    WriteBatch batch;
    for (size_t id = first; id < first + kPerBatch && id <= rows; ++id) {
      // Submit times grow with ids, as they do on a server, over one year.
      Time submit = kYearStart + static_cast<Time>(id * (365 * 86400) / rows);
      std::string name = fmt::format("acct{:03}", account(random));
      const std::string& state = EndedStates()[id % 3];
      batch.PutJob({.id = id, .state = state, .account = name, .user = "user" + name.substr(4),
                    .submit_time = submit, .end_time = submit + 3600,
                    .doc = fmt::format(R"({{"id":{},"name":"train-{}","account":"{}","state":"{}","gpus":8,)"
                                       R"("submit_time":{},"end_time":{},"exit_code":0,"nodes":["n{}"]}})",
                                       id, id, name, state, submit, submit + 3600, id % 36880)});
    }
    ALLOT_RETURN_IF_ERROR(store.Commit(std::move(batch)));
  }
  return OkStatus();
}

// One store per engine, filled once for all iterations.
Store* Filled(const std::string& engine, benchmark::State& state) {
  static std::map<std::string, std::unique_ptr<Store>> stores;
  static std::unique_ptr<ScratchPostgresDatabase> database;
  if (auto found = stores.find(engine); found != stores.end()) return found->second.get();
  std::string location;
  if (engine == "postgresql") {
    database = std::make_unique<ScratchPostgresDatabase>();
    if (!database->available()) {
      state.SkipWithError(ScratchPostgresDatabase::kSkipReason);
      return nullptr;
    }
    location = database->uri();
  } else {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / fmt::format("allot-history-{}", getpid());
    std::filesystem::remove_all(dir);
    location = "sqlite:" + dir.string();
  }
  StatusOr<std::unique_ptr<Store>> store = Store::Open(location);
  if (!store.ok()) {
    state.SkipWithError(store.status().message().c_str());
    return nullptr;
  }
  if (Status filled = Fill(**store, Rows()); !filled.ok()) {
    state.SkipWithError(filled.message().c_str());
    return nullptr;
  }
  return (stores[engine] = std::move(*store)).get();
}

void BM_HistoryOfOneAccountAndMonth(benchmark::State& state, const std::string& engine) {
  Store* store = Filled(engine, state);
  if (store == nullptr) return;
  size_t found = 0;
  int month = 0;
  for (auto _ : state) {
    // A different account and month each time, so no answer comes from a warm page alone.
    JobQuery query{.states = EndedStates(), .accounts = {fmt::format("acct{:03}", (month * 37) % kAccounts)},
                   .submitted_since = kYearStart + (month % 12) * kMonth,
                   .submitted_until = kYearStart + (month % 12 + 1) * kMonth, .limit = 100};
    ++month;
    StatusOr<std::vector<JobRow>> rows = store->ListJobs(query);
    if (!rows.ok()) {
      state.SkipWithError(rows.status().message().c_str());
      return;
    }
    found += rows->size();
    benchmark::DoNotOptimize(rows->data());
  }
  state.counters["rows_in_store"] = static_cast<double>(Rows());
  state.counters["jobs_per_page"] = static_cast<double>(found) / static_cast<double>(state.iterations());
}

BENCHMARK_CAPTURE(BM_HistoryOfOneAccountAndMonth, sqlite, std::string("sqlite"))->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_HistoryOfOneAccountAndMonth, postgresql, std::string("postgresql"))->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace allot
