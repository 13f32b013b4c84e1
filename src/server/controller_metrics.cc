// The Controller's Prometheus metrics (GET /metrics): jobs by state, GPUs, accounts' shares,
// passes, placement-to-running delays, agents' long polls, the store's commits.
#include "server/controller.h"

#include <fmt/format.h>

#include "server/controller_internal.h"

namespace allot {
namespace {

using nlohmann::json;
using namespace controller_internal;

}  // namespace

void Controller::Histogram::Observe(double value) {
  size_t bucket = 0;
  while (bucket < bounds.size() && value > bounds[bucket]) ++bucket;
  counts[bucket]++;
  sum += value;
  count++;
}

// ---- Metrics ----------------------------------------------------------------------------------

StatusOr<std::string> Controller::Metrics(const Principal& who) {
  if (!who.is_operator()) return Status(StatusCode::kPermissionDenied, "only operators read /metrics");
  std::string out;
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  std::lock_guard lock(mutex_);
  const Model& model = scheduler_->model();
  const Cluster& cluster = model.cluster();
  const AccountTree& tree = model.accounts();
  family("allot_gpus_total", "gauge", "GPUs in the pool.");
  for (const Pool& pool : cluster.pools()) out += fmt::format("allot_gpus_total{{pool=\"{}\"}} {}\n", pool.name, pool.total_gpus);
  family("allot_gpus_allocated", "gauge", "GPUs allocated to running jobs.");
  for (PoolIndex pool = 0; pool < cluster.pools().size(); ++pool) {
    out += fmt::format("allot_gpus_allocated{{pool=\"{}\"}} {}\n", cluster.pool(pool).name,
                       tree.account(tree.root()).allocated[pool]);
  }
  family("allot_jobs", "gauge", "Live jobs by state.");
  out += fmt::format("allot_jobs{{state=\"pending\"}} {}\nallot_jobs{{state=\"running\"}} {}\n",
                     model.pending().size(), model.running_count());
  family("allot_pending_jobs", "gauge", "Pending jobs by the reason they wait.");
  std::map<std::string, size_t> reasons;
  for (JobId id : model.pending()) {
    const JobRecord& record = records_.at(id);
    reasons[ReasonCodeFor(record, ReasonFor(*model.FindJob(id), record))]++;
  }
  for (const auto& [reason, count] : reasons) out += fmt::format("allot_pending_jobs{{reason=\"{}\"}} {}\n", reason, count);
  family("allot_account_gpus_allocated", "gauge", "GPUs an account's subtree holds, per pool.");
  std::string nominal_lines, borrowed_lines;
  for (AccountIndex index = 1; index < tree.accounts().size(); ++index) {
    const Account& account = tree.account(index);
    for (PoolIndex pool = 0; pool < cluster.pools().size(); ++pool) {
      if (account.quota[pool].nominal == 0 && account.allocated[pool] == 0) continue;
      std::string labels = fmt::format("account=\"{}\",pool=\"{}\"", account.name, cluster.pool(pool).name);
      out += fmt::format("allot_account_gpus_allocated{{{}}} {}\n", labels, account.allocated[pool]);
      nominal_lines += fmt::format("allot_account_gpus_nominal{{{}}} {}\n", labels, account.quota[pool].nominal);
      borrowed_lines += fmt::format("allot_account_gpus_borrowed{{{}}} {}\n", labels,
                                    std::max<int64_t>(0, account.allocated[pool] - account.quota[pool].nominal));
    }
  }
  family("allot_account_gpus_nominal", "gauge", "An account's nominal quota, per pool.");
  out += nominal_lines;
  family("allot_account_gpus_borrowed", "gauge", "GPUs an account's subtree holds above its nominal quota.");
  out += borrowed_lines;
  auto histogram = [&](std::string_view name, std::string_view help, const Histogram& values) {
    family(name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < values.bounds.size(); ++i) {
      cumulative += values.counts[i];
      out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, values.bounds[i], cumulative);
    }
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, values.count, name, values.sum,
                       name, values.count);
  };
  histogram("allot_scheduling_pass_seconds", "Duration of scheduling passes.", pass_seconds_);
  histogram("allot_task_start_delay_seconds",
            "From a job's placement to an agent reporting its first task (running or ended).", start_delay_seconds_);
  family("allot_submits_total", "counter", "Jobs accepted.");
  out += fmt::format("allot_submits_total {}\n", submits_.load());
  family("allot_submit_errors_total", "counter", "Submissions refused.");
  out += fmt::format("allot_submit_errors_total {}\n", submit_errors_.load());
  family("allot_jobs_finished_total", "counter", "Jobs that ended, by final state, since the server started.");
  for (const std::string& state : kEndedStates) {
    auto found = finished_by_state_.find(state);
    out += fmt::format("allot_jobs_finished_total{{state=\"{}\"}} {}\n", state,
                       found == finished_by_state_.end() ? 0 : found->second);
  }
  family("allot_store_commits_total", "counter", "Store transactions (each may carry many requests).");
  out += fmt::format("allot_store_commits_total {}\n", store_->transactions());
  family("allot_agent_long_polls", "gauge", "Agent syncs waiting for work now (each holds a socket, not a thread).");
  out += fmt::format("allot_agent_long_polls {}\n", long_polls_.size());
  return out;
}

}  // namespace allot
