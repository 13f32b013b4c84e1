#include "sim/metrics.h"

#include <algorithm>
#include <cmath>

namespace allot {
namespace {

double BoundedSlowdown(const JobRecord& job) {
  double run = static_cast<double>(job.run());
  double response = static_cast<double>(job.end - job.submit);
  return std::max(response / std::max(run, 10.0), 1.0);
}

double Mean(const std::vector<double>& values) {
  if (values.empty()) return 0;
  double sum = 0;
  for (double value : values) sum += value;
  return sum / static_cast<double>(values.size());
}

}  // namespace

double Percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  // Nearest rank: the smallest value with at least q of the values at or below it.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  size_t index = rank == 0 ? 0 : std::min(rank - 1, values.size() - 1);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index), values.end());
  return values[index];
}

double JainIndex(const std::vector<double>& values) {
  if (values.empty()) return 0;
  double sum = 0;
  double squares = 0;
  for (double value : values) {
    sum += value;
    squares += value * value;
  }
  if (squares == 0) return 1;
  return sum * sum / (static_cast<double>(values.size()) * squares);
}

void SummarizeJobs(SimRun& run, const std::vector<double>& gpu_seconds_by_account,
                   const std::vector<int64_t>& nominal_by_account,
                   const std::vector<int>& programme_of_account) {
  SimSummary& summary = run.summary;
  size_t accounts = run.account_names.size();
  size_t programmes = summary.per_programme.size();
  auto programme_of = [&](size_t account) {
    return account < programme_of_account.size() ? programme_of_account[account] : -1;
  };
  std::vector<std::vector<double>> waits_by_account(accounts);
  std::vector<double> bsld_sum(accounts, 0);
  // Restarts count over every job, whether or not it ran to its end.
  std::vector<size_t> restarts(accounts, 0);
  std::vector<size_t> recovered(accounts, 0);
  std::vector<double> lost_gpu_seconds(accounts, 0);
  std::vector<double> recovering_s(accounts, 0);
  std::vector<std::vector<double>> waits_by_programme(programmes);
  std::vector<double> programme_bsld_sum(programmes, 0);
  std::vector<double> waits;
  double jct_sum = 0;
  double bsld_total = 0;
  for (const JobRecord& job : run.jobs) {
    switch (job.outcome) {
      case Outcome::kCompleted: summary.completed++; break;
      case Outcome::kTimedOut: summary.timed_out++; break;
      case Outcome::kCancelled: summary.cancelled++; break;
      case Outcome::kFailed: summary.failed++; break;
      case Outcome::kRejected: summary.rejected++; break;
      case Outcome::kUnfinished: summary.unfinished++; break;
    }
    restarts[job.account] += static_cast<size_t>(job.restarts);
    recovered[job.account] += static_cast<size_t>(job.recovered);
    lost_gpu_seconds[job.account] += job.lost_gpu_seconds;
    recovering_s[job.account] += static_cast<double>(job.recovering);
    if (job.outcome != Outcome::kCompleted && job.outcome != Outcome::kTimedOut) continue;
    double wait = static_cast<double>(job.wait());
    double bsld = BoundedSlowdown(job);
    waits.push_back(wait);
    jct_sum += static_cast<double>(job.end - job.submit);
    bsld_total += bsld;
    waits_by_account[job.account].push_back(wait);
    bsld_sum[job.account] += bsld;
    if (int p = programme_of(job.account); p >= 0 && static_cast<size_t>(p) < programmes) {
      waits_by_programme[static_cast<size_t>(p)].push_back(wait);
      programme_bsld_sum[static_cast<size_t>(p)] += bsld;
    }
  }
  summary.jobs = summary.completed + summary.timed_out;
  double finished = static_cast<double>(summary.jobs);
  if (summary.jobs > 0) {
    summary.avg_wait_s = Mean(waits);
    summary.avg_jct_s = jct_sum / finished;
    summary.avg_bsld = bsld_total / finished;
    summary.p50_wait_s = Percentile(waits, 0.50);
    summary.p95_wait_s = Percentile(waits, 0.95);
    summary.p99_wait_s = Percentile(waits, 0.99);
    summary.max_wait_s = *std::max_element(waits.begin(), waits.end());
  }

  double makespan_hours = static_cast<double>(summary.makespan_s) / 3600.0;
  std::vector<double> account_bsld;
  summary.per_account.clear();
  for (size_t a = 0; a < accounts; ++a) {
    std::vector<double>& account_waits = waits_by_account[a];
    double gpu_seconds = a < gpu_seconds_by_account.size() ? gpu_seconds_by_account[a] : 0;
    if (account_waits.empty() && gpu_seconds == 0 && restarts[a] == 0) continue;
    AccountSummary row;
    row.name = run.account_names[a];
    int p = programme_of(a);
    bool in_programme = p >= 0 && static_cast<size_t>(p) < programmes;
    if (in_programme) row.programme = summary.per_programme[static_cast<size_t>(p)].name;
    row.restarts = restarts[a];
    row.lost_gpu_hours = lost_gpu_seconds[a] / 3600.0;
    row.avg_recover_s = recovered[a] > 0 ? recovering_s[a] / static_cast<double>(recovered[a]) : 0;
    if (in_programme) {
      ProgrammeSummary& programme = summary.per_programme[static_cast<size_t>(p)];
      programme.accounts++;
      programme.gpu_hours += gpu_seconds / 3600.0;
      programme.restarts += restarts[a];
      programme.lost_gpu_hours += row.lost_gpu_hours;
    }
    row.jobs = account_waits.size();
    row.gpu_hours = gpu_seconds / 3600.0;
    row.nominal_gpus = a < nominal_by_account.size() ? nominal_by_account[a] : 0;
    if (!account_waits.empty()) {
      row.avg_wait_s = Mean(account_waits);
      row.avg_bsld = bsld_sum[a] / static_cast<double>(account_waits.size());
      row.p50_wait_s = Percentile(account_waits, 0.50);
      row.p95_wait_s = Percentile(account_waits, 0.95);
      row.p99_wait_s = Percentile(account_waits, 0.99);
      account_bsld.push_back(row.avg_bsld);
    }
    row.avg_gpus = makespan_hours > 0 ? row.gpu_hours / makespan_hours : 0;
    row.share_of_nominal = row.nominal_gpus > 0 ? row.avg_gpus / static_cast<double>(row.nominal_gpus) : 0;
    summary.per_account.push_back(std::move(row));
  }
  std::sort(summary.per_account.begin(), summary.per_account.end(),
            [](const AccountSummary& a, const AccountSummary& b) { return a.name < b.name; });

  std::vector<double> programme_recovering(programmes, 0);
  std::vector<size_t> programme_recovered(programmes, 0);
  for (size_t a = 0; a < accounts; ++a) {
    int p = programme_of(a);
    if (p < 0 || static_cast<size_t>(p) >= programmes) continue;
    programme_recovering[static_cast<size_t>(p)] += recovering_s[a];
    programme_recovered[static_cast<size_t>(p)] += recovered[a];
  }
  for (size_t p = 0; p < programmes; ++p) {
    ProgrammeSummary& programme = summary.per_programme[p];
    std::vector<double>& waits_of = waits_by_programme[p];
    programme.jobs = waits_of.size();
    if (!waits_of.empty()) {
      programme.avg_wait_s = Mean(waits_of);
      programme.avg_bsld = programme_bsld_sum[p] / static_cast<double>(waits_of.size());
      programme.p95_wait_s = Percentile(waits_of, 0.95);
    }
    programme.avg_recover_s = programme_recovered[p] > 0
                                  ? programme_recovering[p] / static_cast<double>(programme_recovered[p])
                                  : 0;
  }
  summary.jain_fairness = JainIndex(account_bsld);
}

}  // namespace allot
