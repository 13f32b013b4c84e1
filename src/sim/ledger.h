// The programme ledger of a simulation: whose GPUs each programme ran on, whether quota holders
// got their nominal when they asked for it, and how grants burn down. The simulator tells it
// when jobs start and stop waiting and lets it integrate the model's allocation over time.
//
// Programmes are the accounts two levels below the root (public/startups, industry/samsung), or
// one level in a tree without a second level (result.h, ProgrammeSummary).
//
// The guarantee is judged where quota is enforced: at each quota holder, an account with a
// nominal and no descendant with one (a project with its own quota, or `startups` whose
// grantees share one), pool by pool; jobs below no holder are not judged. A holder is *demanded* in a pool while what it runs there plus what it
// waits for that may run there reaches its nominal there; it is *short* while it runs less than
// that nominal and a job of it that has waited longer than one pass interval (the scheduler has
// looked and left it waiting) would fit in what is missing. Jobs held, or left waiting because
// their grant is spent, wait by policy and count for neither; a waiting job is looked at one
// pass interval after it began to wait, then at doubling intervals. A programme's guarantee
// weighs its holders by nominal.
//
//   ProgrammeLedger ledger;
//   ledger.Setup(model, pass_interval, run);                 // adds per_programme and per_pool
//   ledger.AdvanceTo(model, now, run);                       // before changing the model
//   ledger.StartWaiting(job, *model.FindJob(id), account, now);  // at submit and requeue
//   ledger.StopWaiting(job, *model.FindJob(id));                 // at start and cancel
//   ledger.Finish(model, run);
#pragma once

#include <cstdint>
#include <map>
#include <queue>
#include <vector>

#include "core/model.h"
#include "sim/result.h"

namespace allot {

class ProgrammeLedger {
 public:
  // Finds programmes, quota holders and grant holders; adds run.summary.per_programme and
  // per_pool rows, and run.series.programme_grant_used. `jobs` is the trace length.
  void Setup(const Model& model, Duration pass_interval, size_t jobs, SimRun& run);

  // An account the config lacks (a trace name): it belongs to no programme.
  void AddUnknownAccount();

  // The programme (index into per_programme) of an account; -1 above or outside them.
  int ProgrammeOf(uint32_t account) const {
    return account < programme_of_account_.size() ? programme_of_account_[account] : -1;
  }
  const std::vector<int>& programme_of_account() const { return programme_of_account_; }

  // Job `job` (trace index) starts or stops waiting: the model's `live` job, charged to
  // `account` (an index into run.account_names).
  void StartWaiting(uint32_t job, const Job& live, uint32_t account, Time now);
  void StopWaiting(uint32_t job, const Job& live);

  // Integrates the model's allocation from the last call up to `to`; the model must not have
  // changed since then. Also samples grants at the end of each series bucket before `to`.
  void AdvanceTo(const Model& model, Time to, SimRun& run);

  // Fills the time-integrated figures of per_programme, per_pool and per_account (grants).
  void Finish(const Model& model, Time end, SimRun& run);

 private:
  struct HolderPool {
    PoolIndex pool = 0;
    int64_t nominal = 0;
    int64_t waiting_gpus = 0;             // of its waiting jobs that may run in this pool
    std::map<int64_t, int> overdue_sizes;  // sizes (with counts) of those waiting overdue
  };
  struct QuotaHolder {
    AccountIndex account = 0;
    int programme = -1;
    int64_t nominal_total = 0;
    std::vector<HolderPool> pools;
    double demanded_s = 0;
    double shortfall_s = 0;
    double held_seconds_when_demanded = 0;     // GPU-seconds it held in demanded pools
    double nominal_seconds_when_demanded = 0;  // nominal GPU-seconds of those pools
  };
  struct ProgrammeState {
    AccountIndex account = 0;
    std::vector<std::pair<PoolIndex, int64_t>> nominal;  // pools where it has a nominal
    double own_gpu_seconds = 0;
    double borrowed_gpu_seconds = 0;
    double lent_gpu_seconds = 0;
  };
  struct GrantHolder {
    AccountIndex account = 0;
    int programme = -1;
    double gpu_hours = 0;
    Time exhausted_at = -1;
  };
  // A waiting job is looked at: one pass interval after it began to wait, then at doubling
  // intervals. `token` ties the event to one spell of waiting; `looks` counts the looks.
  struct OverdueEvent {
    Time time;
    uint32_t job;
    uint32_t token;
    int looks;
    auto operator<=>(const OverdueEvent&) const = default;
  };
  static constexpr uint8_t kNotWaiting = 0;
  static constexpr uint8_t kWaiting = 1;  // demand, not overdue yet
  static constexpr uint8_t kOverdue = 2;  // demand, and may make a shortfall
  static constexpr uint8_t kExcused = 3;  // held, or its grant is spent: neither
  struct WaitingJob {
    JobId id = 0;
    uint32_t token = 0;  // counts its spells of waiting
    uint8_t state = 0;   // kNotWaiting, kWaiting, kOverdue or kExcused
    uint32_t account = 0;
  };

  void Integrate(const Model& model, Time from, Time to);
  // Moves a job between those states, keeping the holders' counts.
  void SetState(uint32_t job, const Job& live, uint8_t state);
  void Recheck(const Model& model, const OverdueEvent& event);
  // The holder's pools that `pools` contains, with `change` applied to each.
  template <typename Change>
  void ForEachPool(int holder, const std::vector<PoolIndex>& pools, Change change);
  void SampleGrants(const Model& model, Time to, SimRun& run);

  Duration interval_ = 0;
  Time clock_ = 0;
  std::vector<int> programme_of_account_;
  std::vector<int> holder_of_account_;
  std::vector<ProgrammeState> programmes_;
  std::vector<QuotaHolder> holders_;
  std::vector<GrantHolder> grant_holders_;
  size_t grant_buckets_sampled_ = 0;
  std::vector<double> pool_gpu_seconds_;
  std::vector<double> pool_borrowed_;  // scratch of Integrate, per pool
  std::vector<double> pool_idle_nominal_;
  std::vector<WaitingJob> waiting_;  // by trace index
  std::priority_queue<OverdueEvent, std::vector<OverdueEvent>, std::greater<OverdueEvent>> overdue_;
};

}  // namespace allot
