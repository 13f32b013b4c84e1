#include "sim/ledger.h"

#include <algorithm>

namespace allot {
namespace {

int64_t Nominal(const PoolQuota& quota) {
  return quota.nominal > 0 && quota.nominal < kUnlimited ? quota.nominal : 0;
}

int64_t NominalTotal(const Account& account) {
  int64_t total = 0;
  for (const PoolQuota& quota : account.quota) total += Nominal(quota);
  return total;
}

}  // namespace

void ProgrammeLedger::Setup(const Model& model, Duration pass_interval, size_t jobs, SimRun& run) {
  const AccountTree& accounts = model.accounts();
  const Cluster& cluster = model.cluster();
  interval_ = pass_interval;
  clock_ = run.series.origin;
  waiting_.assign(jobs, {});
  size_t count = accounts.accounts().size();

  // Programmes: accounts two levels down (one, in a flat tree), and leaves above that level.
  bool two_levels = std::any_of(accounts.accounts().begin(), accounts.accounts().end(),
                                [](const Account& account) { return account.depth == 2; });
  int level = two_levels ? 2 : 1;
  programme_of_account_.assign(count, -1);
  for (AccountIndex a = 0; a < count; ++a) {
    const Account& account = accounts.account(a);
    if (a == accounts.root()) continue;
    if (account.depth != level && !(account.depth < level && account.is_leaf())) continue;
    programme_of_account_[a] = static_cast<int>(programmes_.size());
    ProgrammeState programme;
    programme.account = a;
    for (PoolIndex pool = 0; pool < account.quota.size(); ++pool) {
      if (int64_t nominal = Nominal(account.quota[pool]); nominal > 0) programme.nominal.emplace_back(pool, nominal);
    }
    programmes_.push_back(std::move(programme));
    ProgrammeSummary summary;
    summary.name = account.name;
    summary.nominal_gpus = NominalTotal(account);
    run.summary.per_programme.push_back(std::move(summary));
  }

  // Quota holders: accounts with a nominal and no descendant with one. Jobs are charged to the
  // nearest holder on their path.
  std::vector<bool> quota_below(count, false);
  for (AccountIndex a = 0; a < count; ++a) {
    if (NominalTotal(accounts.account(a)) == 0) continue;
    for (AccountIndex ancestor : accounts.PathToRoot(a)) {
      if (ancestor != a) quota_below[ancestor] = true;
    }
  }
  holder_of_account_.assign(count, -1);
  for (AccountIndex a = 0; a < count; ++a) {
    const Account& account = accounts.account(a);
    if (a == accounts.root() || quota_below[a] || NominalTotal(account) == 0) continue;
    holder_of_account_[a] = static_cast<int>(holders_.size());
    QuotaHolder holder;
    holder.account = a;
    holder.nominal_total = NominalTotal(account);
    for (PoolIndex pool = 0; pool < account.quota.size(); ++pool) {
      if (int64_t nominal = Nominal(account.quota[pool]); nominal > 0) holder.pools.push_back({.pool = pool, .nominal = nominal});
    }
    holders_.push_back(std::move(holder));
  }
  for (AccountIndex a = 0; a < count; ++a) {
    for (AccountIndex ancestor : accounts.PathToRoot(a)) {
      if (programme_of_account_[a] < 0) programme_of_account_[a] = programme_of_account_[ancestor];
      if (holder_of_account_[a] < 0) holder_of_account_[a] = holder_of_account_[ancestor];
    }
  }
  for (QuotaHolder& holder : holders_) holder.programme = programme_of_account_[holder.account];

  for (AccountIndex a = 0; a < count; ++a) {
    const Account& account = accounts.account(a);
    if (account.grants.empty()) continue;
    GrantHolder holder{.account = a, .programme = programme_of_account_[a]};
    for (const Grant& grant : account.grants) holder.gpu_hours += grant.gpu_hours;
    grant_holders_.push_back(holder);
    if (holder.programme >= 0) run.summary.per_programme[static_cast<size_t>(holder.programme)].grant_gpu_hours += holder.gpu_hours;
  }
  run.series.programme_grant_used.assign(programmes_.size(), {});

  size_t pools = cluster.pools().size();
  pool_gpu_seconds_.assign(pools, 0);
  pool_borrowed_.assign(pools, 0);
  pool_idle_nominal_.assign(pools, 0);
  for (PoolIndex pool = 0; pool < pools; ++pool) {
    PoolSummary summary;
    summary.name = cluster.pool(pool).name;
    summary.gpu_model = cluster.pool(pool).gpu_model;
    summary.gpus = cluster.pool(pool).total_gpus;
    for (const ProgrammeState& programme : programmes_) {
      for (auto [owned_pool, nominal] : programme.nominal) {
        if (owned_pool == pool) summary.nominal_gpus += nominal;
      }
    }
    run.summary.per_pool.push_back(std::move(summary));
  }
}

void ProgrammeLedger::AddUnknownAccount() {
  programme_of_account_.push_back(-1);
  holder_of_account_.push_back(-1);
}

template <typename Change>
void ProgrammeLedger::ForEachPool(int holder, const std::vector<PoolIndex>& pools, Change change) {
  if (holder < 0) return;
  for (HolderPool& owned : holders_[static_cast<size_t>(holder)].pools) {
    if (std::find(pools.begin(), pools.end(), owned.pool) != pools.end()) change(owned);
  }
}

void ProgrammeLedger::SetState(uint32_t job, const Job& live, uint8_t state) {
  WaitingJob& waiting = waiting_[job];
  uint8_t before = waiting.state;
  waiting.state = state;
  if (before == state) return;
  int64_t gpus = live.gpus();
  int holder = waiting.account < holder_of_account_.size() ? holder_of_account_[waiting.account] : -1;
  // Waiting and overdue jobs are demand; overdue ones may make a shortfall; excused ones neither.
  auto counted = [](uint8_t s) { return s == kWaiting || s == kOverdue; };
  int64_t demand = (counted(state) ? gpus : 0) - (counted(before) ? gpus : 0);
  ForEachPool(holder, live.pools, [&](HolderPool& owned) {
    owned.waiting_gpus += demand;
    if (before == kOverdue) {
      auto it = owned.overdue_sizes.find(gpus);
      if (it != owned.overdue_sizes.end() && --it->second <= 0) owned.overdue_sizes.erase(it);
    }
    if (state == kOverdue) owned.overdue_sizes[gpus]++;
  });
}

void ProgrammeLedger::StartWaiting(uint32_t job, const Job& live, uint32_t account, Time now) {
  WaitingJob& waiting = waiting_[job];
  waiting.id = live.id;
  waiting.account = account;
  SetState(job, live, kWaiting);
  overdue_.push({now + interval_, job, ++waiting.token, 0});
}

void ProgrammeLedger::StopWaiting(uint32_t job, const Job& live) { SetState(job, live, kNotWaiting); }

void ProgrammeLedger::Recheck(const Model& model, const OverdueEvent& event) {
  WaitingJob& waiting = waiting_[event.job];
  if (waiting.token != event.token || waiting.state == kNotWaiting) return;
  const Job* live = model.FindJob(waiting.id);
  if (live == nullptr) return;
  // A job held, or left waiting because its grant is spent, waits by policy: it is not demand
  // the guarantee owes. Reasons change (a grant's commitments end), so the job is looked at
  // again at doubling intervals: a handful of looks over a month of waiting.
  bool excused = live->reason.code == ReasonCode::kGrant || live->reason.code == ReasonCode::kHeld;
  SetState(event.job, *live, excused ? kExcused : kOverdue);
  int looks = std::min(event.looks + 1, 20);
  // At least a second apart: with passes at every event (interval 0) the looks must still move on.
  overdue_.push({event.time + std::max<Duration>(interval_, 1) * (Duration{1} << looks), event.job, event.token, looks});
}

void ProgrammeLedger::AdvanceTo(const Model& model, Time to, SimRun& run) {
  if (to <= clock_) return;
  // Jobs become overdue between events: integrate in spans split there.
  Time from = clock_;
  while (!overdue_.empty() && overdue_.top().time < to) {
    OverdueEvent event = overdue_.top();
    overdue_.pop();
    if (event.time > from) {
      Integrate(model, from, event.time);
      from = event.time;
    }
    Recheck(model, event);
  }
  Integrate(model, from, to);
  SampleGrants(model, to, run);
  clock_ = to;
}

void ProgrammeLedger::Integrate(const Model& model, Time from, Time to) {
  if (to <= from) return;
  const AccountTree& accounts = model.accounts();
  const Account& root = accounts.account(accounts.root());
  double span = static_cast<double>(to - from);
  for (PoolIndex pool = 0; pool < pool_gpu_seconds_.size(); ++pool) {
    double allocated = static_cast<double>(root.allocated[pool]);
    pool_gpu_seconds_[pool] += allocated * span;
    pool_borrowed_[pool] = allocated;  // less what runs within nominal, below
    pool_idle_nominal_[pool] = 0;
  }
  for (ProgrammeState& programme : programmes_) {
    const Account& account = accounts.account(programme.account);
    int64_t own = 0;
    for (auto [pool, nominal] : programme.nominal) {
      int64_t used = account.allocated[pool];
      own += std::min(used, nominal);
      pool_borrowed_[pool] -= static_cast<double>(std::min(used, nominal));
      pool_idle_nominal_[pool] += static_cast<double>(std::max<int64_t>(0, nominal - used));
    }
    programme.own_gpu_seconds += static_cast<double>(own) * span;
    programme.borrowed_gpu_seconds += static_cast<double>(account.allocated_total - own) * span;
  }
  // A pool's borrowed GPUs are charged to its owners' idle nominal, in proportion; beyond that
  // idle nominal they ran on GPUs under no quota.
  for (ProgrammeState& programme : programmes_) {
    const Account& account = accounts.account(programme.account);
    for (auto [pool, nominal] : programme.nominal) {
      double idle = static_cast<double>(std::max<int64_t>(0, nominal - account.allocated[pool]));
      double pool_idle = pool_idle_nominal_[pool];
      if (idle <= 0 || pool_idle <= 0 || pool_borrowed_[pool] <= 0) continue;
      programme.lent_gpu_seconds += idle * std::min(1.0, pool_borrowed_[pool] / pool_idle) * span;
    }
  }
  for (QuotaHolder& holder : holders_) {
    const Account& account = accounts.account(holder.account);
    bool demanded = false;
    bool short_of_nominal = false;
    double held = 0;
    double nominal = 0;
    for (const HolderPool& owned : holder.pools) {
      int64_t used = account.allocated[owned.pool];
      if (used + owned.waiting_gpus < owned.nominal) continue;
      demanded = true;
      held += static_cast<double>(std::min(used, owned.nominal));
      nominal += static_cast<double>(owned.nominal);
      if (used < owned.nominal && !owned.overdue_sizes.empty() &&
          owned.overdue_sizes.begin()->first <= owned.nominal - used) {
        short_of_nominal = true;
      }
    }
    if (!demanded) continue;
    holder.demanded_s += span;
    holder.held_seconds_when_demanded += held * span;
    holder.nominal_seconds_when_demanded += nominal * span;
    if (short_of_nominal) holder.shortfall_s += span;
  }
}

void ProgrammeLedger::SampleGrants(const Model& model, Time to, SimRun& run) {
  if (grant_holders_.empty()) return;
  const TimeSeries& series = run.series;
  // Buckets that end at or before `to` are sampled with the use known now.
  size_t closed = to <= series.origin ? 0 : static_cast<size_t>((to - series.origin) / series.step);
  if (closed <= grant_buckets_sampled_) return;
  const AccountTree& accounts = model.accounts();
  std::vector<double> used_by_programme(programmes_.size(), 0);
  for (GrantHolder& holder : grant_holders_) {
    double used_hours = 0;
    bool exhausted = false;
    for (const Grant& grant : accounts.account(holder.account).grants) {
      double grant_used = grant.used_gpu_seconds / 3600.0;
      used_hours += grant_used;
      if (grant.gpu_hours > 0 && grant_used >= grant.gpu_hours - 1e-9) exhausted = true;
    }
    if (exhausted && holder.exhausted_at < 0) holder.exhausted_at = clock_;
    if (holder.programme >= 0) used_by_programme[static_cast<size_t>(holder.programme)] += used_hours;
  }
  for (size_t p = 0; p < programmes_.size(); ++p) {
    if (run.summary.per_programme[p].grant_gpu_hours <= 0) continue;
    run.series.programme_grant_used[p].resize(closed, used_by_programme[p]);
  }
  grant_buckets_sampled_ = closed;
}

void ProgrammeLedger::Finish(const Model& model, Time end, SimRun& run) {
  SimSummary& summary = run.summary;
  double makespan = static_cast<double>(summary.makespan_s);
  for (PoolIndex pool = 0; pool < summary.per_pool.size(); ++pool) {
    PoolSummary& row = summary.per_pool[pool];
    row.gpu_hours = pool_gpu_seconds_[pool] / 3600.0;
    double capacity = static_cast<double>(row.gpus) * makespan;
    row.utilization = capacity > 0 ? pool_gpu_seconds_[pool] / capacity : 0;
  }
  // The last bucket, even if partial, gets its sample; no more samples than the series has.
  SampleGrants(model, end + run.series.step, run);
  for (std::vector<double>& used : run.series.programme_grant_used) {
    if (used.size() > run.series.allocated_gpus.size()) used.resize(run.series.allocated_gpus.size());
  }

  // Quota and grant holders get a row even without jobs of their own (`startups` holds the
  // quota its grantees run under; a holder starved outright ran nothing).
  auto account_row = [&summary, &run, this](AccountIndex account) -> AccountSummary* {
    auto it = std::find_if(summary.per_account.begin(), summary.per_account.end(),
                           [&](const AccountSummary& row) { return row.name == run.account_names[account]; });
    if (it != summary.per_account.end()) return &*it;
    AccountSummary row;
    row.name = run.account_names[account];
    int programme = ProgrammeOf(account);
    if (programme >= 0) row.programme = summary.per_programme[static_cast<size_t>(programme)].name;
    summary.per_account.push_back(std::move(row));
    return &summary.per_account.back();
  };
  const AccountTree& accounts = model.accounts();
  for (const GrantHolder& holder : grant_holders_) {
    double used_hours = 0;
    for (const Grant& grant : accounts.account(holder.account).grants) used_hours += grant.used_gpu_seconds / 3600.0;
    if (AccountSummary* row = account_row(holder.account)) {
      row->grant_gpu_hours = holder.gpu_hours;
      row->grant_used_gpu_hours = used_hours;
      row->grant_exhausted_at = holder.exhausted_at;
    }
    if (holder.programme < 0) continue;
    ProgrammeSummary& programme = summary.per_programme[static_cast<size_t>(holder.programme)];
    programme.grant_used_gpu_hours += used_hours;
    if (holder.exhausted_at >= 0) programme.grants_exhausted++;
  }

  // Holders' guarantees, and their programmes', weighted by nominal.
  std::vector<double> weights(programmes_.size(), 0);
  std::vector<double> weighted_demanded(programmes_.size(), 0);
  std::vector<double> weighted_shortfall(programmes_.size(), 0);
  std::vector<double> held_when_demanded(programmes_.size(), 0);
  std::vector<double> nominal_when_demanded(programmes_.size(), 0);
  for (const QuotaHolder& holder : holders_) {
    if (AccountSummary* row = account_row(holder.account)) {
      row->quota_holder = true;
      row->nominal_gpus = holder.nominal_total;
      row->demanded_s = holder.demanded_s;
      row->shortfall_s = holder.shortfall_s;
      row->guarantee = holder.demanded_s > 0 ? 1.0 - holder.shortfall_s / holder.demanded_s : 1.0;
    }
    if (holder.programme < 0) continue;
    size_t p = static_cast<size_t>(holder.programme);
    double weight = static_cast<double>(holder.nominal_total);
    weights[p] += weight;
    weighted_demanded[p] += weight * holder.demanded_s;
    weighted_shortfall[p] += weight * holder.shortfall_s;
    held_when_demanded[p] += holder.held_seconds_when_demanded;
    nominal_when_demanded[p] += holder.nominal_seconds_when_demanded;
  }
  std::sort(summary.per_account.begin(), summary.per_account.end(),
            [](const AccountSummary& a, const AccountSummary& b) { return a.name < b.name; });
  for (size_t p = 0; p < programmes_.size(); ++p) {
    const ProgrammeState& state = programmes_[p];
    ProgrammeSummary& row = summary.per_programme[p];
    row.own_gpu_hours = state.own_gpu_seconds / 3600.0;
    row.borrowed_gpu_hours = state.borrowed_gpu_seconds / 3600.0;
    row.lent_gpu_hours = state.lent_gpu_seconds / 3600.0;
    row.demanded_s = weights[p] > 0 ? weighted_demanded[p] / weights[p] : 0;
    row.shortfall_s = weights[p] > 0 ? weighted_shortfall[p] / weights[p] : 0;
    row.guarantee = weighted_demanded[p] > 0 ? 1.0 - weighted_shortfall[p] / weighted_demanded[p] : 1.0;
    row.share_when_demanded = nominal_when_demanded[p] > 0 ? held_when_demanded[p] / nominal_when_demanded[p] : 0;
  }
}

}  // namespace allot
