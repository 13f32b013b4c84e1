#include "sim/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

#include "sim/report_kit.h"

namespace allot {
namespace {

using report::CodeForErrno;
using report::OutputFile;
using report::WriteWholeFile;
using report::FormatApproxSeconds;
using report::FormatNumber;
using report::FormatCount;
using report::FormatPercent;
using report::FormatBytes;
using report::Table;
using report::RenderText;
using report::EscapeHtml;
using report::RenderHtml;
using report::CsvField;
using report::Point;
using report::LinePlot;
using report::LinearAxis;
using report::LogDurationAxis;
using report::MaxY;
using report::RunColor;
using report::kNominalColor;
using report::kCdfQuantiles;
using report::TimeFrame;
using report::MakeTimeFrame;
using report::TimeAxisTitle;
using report::BucketsToPoints;
using report::kPageStyle;
using report::Caption;
using report::Smooth;
using report::kMaxPointsPerLine;
using report::MakeDirectory;

// The summary rows, shared by the terminal table and the HTML page.
struct MetricRow {
  std::string_view label;
  std::string (*format)(const SimSummary&);
};

constexpr MetricRow kMetricRows[] = {
    {"GPUs", [](const SimSummary& s) { return FormatNumber(static_cast<double>(s.total_gpus)); }},
    {"trace jobs", [](const SimSummary& s) { return FormatCount(s.trace_jobs); }},
    {"jobs (ran to end)", [](const SimSummary& s) { return FormatCount(s.jobs); }},
    {"completed", [](const SimSummary& s) { return FormatCount(s.completed); }},
    {"timed out", [](const SimSummary& s) { return FormatCount(s.timed_out); }},
    {"cancelled", [](const SimSummary& s) { return FormatCount(s.cancelled); }},
    {"failed", [](const SimSummary& s) { return FormatCount(s.failed); }},
    {"rejected (never placeable)", [](const SimSummary& s) { return FormatCount(s.rejected); }},
    {"unfinished", [](const SimSummary& s) { return FormatCount(s.unfinished); }},
    {"skipped trace lines", [](const SimSummary& s) { return FormatCount(s.skipped_lines); }},
    {"avg wait", [](const SimSummary& s) { return FormatApproxSeconds(s.avg_wait_s); }},
    {"p50 wait", [](const SimSummary& s) { return FormatApproxSeconds(s.p50_wait_s); }},
    {"p95 wait", [](const SimSummary& s) { return FormatApproxSeconds(s.p95_wait_s); }},
    {"p99 wait", [](const SimSummary& s) { return FormatApproxSeconds(s.p99_wait_s); }},
    {"max wait", [](const SimSummary& s) { return FormatApproxSeconds(s.max_wait_s); }},
    {"avg JCT", [](const SimSummary& s) { return FormatApproxSeconds(s.avg_jct_s); }},
    {"avg bounded slowdown", [](const SimSummary& s) { return FormatNumber(s.avg_bsld, 2); }},
    {"utilisation", [](const SimSummary& s) { return FormatPercent(s.utilization); }},
    {"makespan",
     [](const SimSummary& s) { return FormatApproxSeconds(static_cast<double>(s.makespan_s)); }},
    {"GPU-hours", [](const SimSummary& s) { return FormatNumber(s.gpu_hours, 1); }},
    {"GPU-hours lost", [](const SimSummary& s) { return FormatNumber(s.gpu_hours_lost, 1); }},
    {"preemptions", [](const SimSummary& s) { return FormatCount(s.preemptions); }},
    {"node failures", [](const SimSummary& s) { return FormatCount(s.node_failures); }},
    {"scheduling passes", [](const SimSummary& s) { return FormatCount(s.passes); }},
    {"Jain fairness", [](const SimSummary& s) { return FormatNumber(s.jain_fairness, 3); }},
    {"sim wall time", [](const SimSummary& s) { return FormatApproxSeconds(s.sim_wall_s); }},
    {"peak memory", [](const SimSummary& s) { return FormatBytes(s.peak_rss_bytes); }},
};

Table SummaryTable(const std::vector<SimRun>& runs) {
  Table table;
  table.header.emplace_back();
  for (const SimRun& run : runs) table.header.push_back(run.summary.policy);
  bool several_accounts = std::any_of(runs.begin(), runs.end(), [](const SimRun& run) {
    return run.summary.per_account.size() > 1;
  });
  for (const MetricRow& metric : kMetricRows) {
    // A fairness index over one account says nothing.
    if (metric.label == "Jain fairness" && !several_accounts) continue;
    std::vector<std::string> row{std::string(metric.label)};
    for (const SimRun& run : runs) row.push_back(metric.format(run.summary));
    table.rows.push_back(std::move(row));
  }
  return table;
}

// A national run has hundreds of accounts; a table people read stops at the biggest users.
constexpr size_t kMaxAccountRows = 20;

// The accounts of one run, most GPU-hours first (ties by name, so output is stable), at most
// kMaxAccountRows of them; `hidden` receives how many were left out.
Table AccountTable(const SimSummary& summary, size_t& hidden) {
  std::vector<const AccountSummary*> accounts;
  accounts.reserve(summary.per_account.size());
  for (const AccountSummary& account : summary.per_account) accounts.push_back(&account);
  std::sort(accounts.begin(), accounts.end(), [](const AccountSummary* a, const AccountSummary* b) {
    if (a->gpu_hours != b->gpu_hours) return a->gpu_hours > b->gpu_hours;
    return a->name < b->name;
  });
  hidden = accounts.size() > kMaxAccountRows ? accounts.size() - kMaxAccountRows : 0;
  accounts.resize(accounts.size() - hidden);

  Table table;
  table.header = {"account",  "jobs",     "GPU-hours",    "avg wait",
                  "p95 wait", "avg bsld", "nominal GPUs", "share of nominal"};
  for (const AccountSummary* account : accounts) {
    bool has_nominal = account->nominal_gpus > 0;
    table.rows.push_back({
        account->name,
        FormatCount(account->jobs),
        FormatNumber(account->gpu_hours, 1),
        FormatApproxSeconds(account->avg_wait_s),
        FormatApproxSeconds(account->p95_wait_s),
        FormatNumber(account->avg_bsld, 2),
        has_nominal ? FormatNumber(static_cast<double>(account->nominal_gpus)) : "-",
        has_nominal ? fmt::format("{:.0f}%", account->share_of_nominal * 100) : "-",
    });
  }
  return table;
}

std::string HiddenAccountsNote(size_t hidden) {
  return fmt::format("... and {} more accounts (see --json)", hidden);
}

}  // namespace

std::string FormatGuarantee(const ProgrammeSummary& programme) {
  if (programme.nominal_gpus <= 0 || programme.demanded_s <= 0) return "-";
  return fmt::format("{:.1f}%", programme.guarantee * 100);
}

Table ProgrammeTable(const SimSummary& summary) {
  Table table;
  table.header = {"programme", "nominal GPUs", "jobs",     "GPU-hours", "own",
                  "borrowed",  "lent",         "avg wait", "p95 wait",  "avg bsld",
                  "guarantee", "share of nominal when demanded", "restarts", "GPU-hours lost",
                  "avg recovery", "grant GPU-hours used"};
  for (const ProgrammeSummary& programme : summary.per_programme) {
    bool has_nominal = programme.nominal_gpus > 0;
    std::string grants = "-";
    if (programme.grant_gpu_hours > 0) {
      grants = fmt::format("{} of {}", FormatNumber(programme.grant_used_gpu_hours),
                           FormatNumber(programme.grant_gpu_hours));
      if (programme.grants_exhausted > 0) grants += fmt::format(" ({} used up)", programme.grants_exhausted);
    }
    table.rows.push_back({
        programme.name,
        has_nominal ? FormatNumber(static_cast<double>(programme.nominal_gpus)) : "-",
        FormatCount(programme.jobs),
        FormatNumber(programme.gpu_hours),
        has_nominal ? FormatNumber(programme.own_gpu_hours) : "-",
        FormatNumber(programme.borrowed_gpu_hours),
        has_nominal ? FormatNumber(programme.lent_gpu_hours) : "-",
        FormatApproxSeconds(programme.avg_wait_s),
        FormatApproxSeconds(programme.p95_wait_s),
        FormatNumber(programme.avg_bsld, 2),
        FormatGuarantee(programme),
        has_nominal && programme.demanded_s > 0 ? FormatPercent(programme.share_when_demanded) : "-",
        FormatCount(programme.restarts),
        FormatNumber(programme.lost_gpu_hours),
        programme.restarts > 0 ? FormatApproxSeconds(programme.avg_recover_s) : "-",
        grants,
    });
  }
  return table;
}

Table PoolTable(const SimSummary& summary) {
  Table table;
  table.header = {"pool", "GPU model", "GPUs", "under quota", "unowned", "GPU-hours", "utilisation", "fragmented"};
  table.name_columns = 2;
  for (const PoolSummary& pool : summary.per_pool) {
    table.rows.push_back({
        pool.name,
        pool.gpu_model,
        FormatNumber(static_cast<double>(pool.gpus)),
        FormatNumber(static_cast<double>(pool.nominal_gpus)),
        FormatNumber(static_cast<double>(std::max<int64_t>(0, pool.gpus - pool.nominal_gpus))),
        FormatNumber(pool.gpu_hours),
        FormatPercent(pool.utilization),
        FormatPercent(pool.gpus > 0 ? pool.fragmented_gpus / static_cast<double>(pool.gpus) : 0),
    });
  }
  return table;
}

Table GpuModelTable(const SimSummary& summary) {
  struct ModelTotals {
    int64_t gpus = 0;
    double gpu_hours = 0;
    double fragmented_gpus = 0;
  };
  std::vector<std::pair<std::string, ModelTotals>> models;  // in order of first appearance
  for (const PoolSummary& pool : summary.per_pool) {
    auto it = std::find_if(models.begin(), models.end(), [&](const auto& m) { return m.first == pool.gpu_model; });
    if (it == models.end()) it = models.insert(models.end(), {pool.gpu_model, {}});
    it->second.gpus += pool.gpus;
    it->second.gpu_hours += pool.gpu_hours;
    it->second.fragmented_gpus += pool.fragmented_gpus;
  }
  Table table;
  table.header = {"GPU model", "GPUs", "GPU-hours", "utilisation", "fragmented"};
  double hours = static_cast<double>(summary.makespan_s) / 3600.0;
  for (const auto& [model, totals] : models) {
    double capacity = static_cast<double>(totals.gpus) * hours;
    table.rows.push_back({model, FormatNumber(static_cast<double>(totals.gpus)), FormatNumber(totals.gpu_hours),
                          FormatPercent(capacity > 0 ? totals.gpu_hours / capacity : 0),
                          FormatPercent(totals.gpus > 0 ? totals.fragmented_gpus / static_cast<double>(totals.gpus) : 0)});
  }
  return table;
}

Table AllAccountsTable(const SimSummary& summary, Time origin) {
  std::vector<const AccountSummary*> accounts;
  for (const AccountSummary& account : summary.per_account) accounts.push_back(&account);
  // By programme, then most GPU-hours first.
  std::stable_sort(accounts.begin(), accounts.end(), [](const AccountSummary* a, const AccountSummary* b) {
    if (a->programme != b->programme) return a->programme < b->programme;
    return a->gpu_hours > b->gpu_hours;
  });
  Table table;
  table.header = {"account",  "programme",    "jobs",     "GPU-hours", "avg wait", "p95 wait",
                  "avg bsld", "nominal GPUs", "share of nominal", "guarantee", "restarts",
                  "GPU-hours lost", "grant GPU-hours used", "grant used up at"};
  table.name_columns = 2;
  for (const AccountSummary* account : accounts) {
    bool has_nominal = account->nominal_gpus > 0;
    bool has_grant = account->grant_gpu_hours > 0;
    table.rows.push_back({
        account->name,
        account->programme,
        FormatCount(account->jobs),
        FormatNumber(account->gpu_hours, 1),
        FormatApproxSeconds(account->avg_wait_s),
        FormatApproxSeconds(account->p95_wait_s),
        FormatNumber(account->avg_bsld, 2),
        has_nominal ? FormatNumber(static_cast<double>(account->nominal_gpus)) : "-",
        has_nominal ? FormatPercent(account->share_of_nominal) : "-",
        account->demanded_s > 0 ? FormatPercent(account->guarantee) : "-",
        FormatCount(account->restarts),
        FormatNumber(account->lost_gpu_hours, 1),
        has_grant ? fmt::format("{} of {}", FormatNumber(account->grant_used_gpu_hours),
                                FormatNumber(account->grant_gpu_hours))
                  : "-",
        account->grant_exhausted_at >= 0
            ? "day " + FormatNumber(static_cast<double>(account->grant_exhausted_at - origin) / 86400.0, 1)
            : "-",
    });
  }
  return table;
}

nlohmann::ordered_json ProgrammeJson(const ProgrammeSummary& programme) {
  return {
      {"programme", programme.name},
      {"nominal_gpus", programme.nominal_gpus},
      {"accounts", programme.accounts},
      {"jobs", programme.jobs},
      {"gpu_hours", programme.gpu_hours},
      {"own_gpu_hours", programme.own_gpu_hours},
      {"borrowed_gpu_hours", programme.borrowed_gpu_hours},
      {"lent_gpu_hours", programme.lent_gpu_hours},
      {"avg_wait_s", programme.avg_wait_s},
      {"p95_wait_s", programme.p95_wait_s},
      {"avg_bsld", programme.avg_bsld},
      {"restarts", programme.restarts},
      {"lost_gpu_hours", programme.lost_gpu_hours},
      {"avg_recover_s", programme.avg_recover_s},
      {"demanded_s", programme.demanded_s},
      {"shortfall_s", programme.shortfall_s},
      {"guarantee", programme.guarantee},
      {"share_when_demanded", programme.share_when_demanded},
      {"grant_gpu_hours", programme.grant_gpu_hours},
      {"grant_used_gpu_hours", programme.grant_used_gpu_hours},
      {"grants_exhausted", programme.grants_exhausted},
  };
}

nlohmann::ordered_json PoolJson(const PoolSummary& pool) {
  return {
      {"pool", pool.name},
      {"gpu_model", pool.gpu_model},
      {"gpus", pool.gpus},
      {"nominal_gpus", pool.nominal_gpus},
      {"gpu_hours", pool.gpu_hours},
      {"utilization", pool.utilization},
      {"fragmented_gpus", pool.fragmented_gpus},
  };
}

nlohmann::ordered_json AccountJson(const AccountSummary& account) {
  return {
      {"account", account.name},
      {"programme", account.programme},
      {"jobs", account.jobs},
      {"gpu_hours", account.gpu_hours},
      {"avg_wait_s", account.avg_wait_s},
      {"p50_wait_s", account.p50_wait_s},
      {"p95_wait_s", account.p95_wait_s},
      {"p99_wait_s", account.p99_wait_s},
      {"avg_bsld", account.avg_bsld},
      {"nominal_gpus", account.nominal_gpus},
      {"avg_gpus", account.avg_gpus},
      {"share_of_nominal", account.share_of_nominal},
      {"restarts", account.restarts},
      {"lost_gpu_hours", account.lost_gpu_hours},
      {"avg_recover_s", account.avg_recover_s},
      {"grant_gpu_hours", account.grant_gpu_hours},
      {"grant_used_gpu_hours", account.grant_used_gpu_hours},
      {"grant_exhausted_at", account.grant_exhausted_at},
      {"quota_holder", account.quota_holder},
      // Judged only at quota holders: null elsewhere, not a perfect score.
      {"demanded_s", account.quota_holder ? nlohmann::ordered_json(account.demanded_s) : nlohmann::ordered_json()},
      {"shortfall_s", account.quota_holder ? nlohmann::ordered_json(account.shortfall_s) : nlohmann::ordered_json()},
      {"guarantee", account.quota_holder ? nlohmann::ordered_json(account.guarantee) : nlohmann::ordered_json()},
  };
}

Status WriteRowsCsv(const std::string& path, const std::vector<std::string>& lead_columns,
                    const std::vector<CsvRow>& rows) {
  std::string text;
  for (size_t i = 0; i < lead_columns.size(); ++i) text += (i > 0 ? "," : "") + CsvField(lead_columns[i]);
  if (!rows.empty()) {
    for (const auto& [key, value] : rows.front().fields.items()) {
      text += (text.empty() ? "" : ",") + CsvField(key);
    }
  }
  text += '\n';
  for (const CsvRow& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.lead.size(); ++i) line += (i > 0 ? "," : "") + CsvField(row.lead[i]);
    bool first = row.lead.empty();
    for (const auto& [key, value] : row.fields.items()) {
      if (!first) line += ',';
      first = false;
      if (value.is_string()) {
        line += CsvField(value.get<std::string>());
      } else if (value.is_number_float()) {
        line += fmt::format("{}", value.get<double>());
      } else {
        line += value.dump();
      }
    }
    text += line + '\n';
  }
  return WriteWholeFile(path, text);
}

namespace {


constexpr size_t kUtilisationSmoothing = 21;  // points of at most kMaxPointsPerLine

bool AnyPending(const std::vector<SimRun>& runs) {
  return std::any_of(runs.begin(), runs.end(), [](const SimRun& run) {
    return std::any_of(run.series.pending_jobs.begin(), run.series.pending_jobs.end(),
                       [](double pending) { return pending > 0; });
  });
}

// One plot per programme whose accounts hold grants: GPU-hours of grants used by the end of each
// sample under each run, against what the grants give (dashed).
std::vector<LinePlot> GrantBurnDownPlots(const std::vector<SimRun>& runs, const TimeFrame& frame) {
  std::vector<std::string> names;
  for (const SimRun& run : runs) {
    for (const ProgrammeSummary& programme : run.summary.per_programme) {
      if (programme.grant_gpu_hours > 0 && std::find(names.begin(), names.end(), programme.name) == names.end()) {
        names.push_back(programme.name);
      }
    }
  }
  std::vector<LinePlot> plots;
  for (const std::string& name : names) {
    LinePlot plot;
    plot.title = fmt::format("Grants of {}: GPU-hours used", name);
    double granted = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      const SimRun& run = runs[i];
      for (size_t p = 0; p < run.summary.per_programme.size(); ++p) {
        if (run.summary.per_programme[p].name != name) continue;
        granted = std::max(granted, run.summary.per_programme[p].grant_gpu_hours);
        std::vector<Point> points;
        if (p < run.series.programme_grant_used.size()) {
          // Samples are taken at bucket ends.
          const std::vector<double>& used = run.series.programme_grant_used[p];
          double start = frame.BucketStart(run.series);
          double width = frame.BucketWidth(run.series);
          size_t merge = std::max<size_t>(1, (used.size() + kMaxPointsPerLine - 1) / kMaxPointsPerLine);
          for (size_t b = 0; b < used.size(); b += merge) {
            points.push_back({start + static_cast<double>(b + 1) * width, used[b]});
          }
        }
        plot.lines.push_back({run.summary.policy, RunColor(i), false, std::move(points)});
      }
    }
    plot.lines.push_back({fmt::format("granted ({})", FormatNumber(granted)), std::string(kNominalColor), true,
                          {{0, granted}, {frame.span, granted}}});
    plot.x = LinearAxis(TimeAxisTitle(frame), 0, frame.span);
    plot.y = LinearAxis("GPU-hours", 0, MaxY(plot.lines));
    plots.push_back(std::move(plot));
  }
  return plots;
}

LinePlot UtilisationPlot(const std::vector<SimRun>& runs, const TimeFrame& frame) {
  LinePlot plot;
  plot.title = "GPU utilisation";
  for (size_t i = 0; i < runs.size(); ++i) {
    const SimRun& run = runs[i];
    double scale =
        run.summary.total_gpus > 0 ? 100.0 / static_cast<double>(run.summary.total_gpus) : 0.0;
    // Smoothed over 1/50 of the run: the trend, not every arrival.
    plot.lines.push_back({run.summary.policy, RunColor(i), false,
                          Smooth(BucketsToPoints(run.series.allocated_gpus, frame.BucketStart(run.series),
                                                 frame.BucketWidth(run.series), scale),
                                 kUtilisationSmoothing)});
  }
  plot.x = LinearAxis(TimeAxisTitle(frame), 0, frame.span);
  plot.y = LinearAxis("allocated GPUs (% of pool)", 0, std::max(100.0, MaxY(plot.lines)));
  return plot;
}

LinePlot QueuePlot(const std::vector<SimRun>& runs, const TimeFrame& frame) {
  LinePlot plot;
  plot.title = "Queue length";
  for (size_t i = 0; i < runs.size(); ++i) {
    const SimRun& run = runs[i];
    plot.lines.push_back({run.summary.policy, RunColor(i), false,
                          BucketsToPoints(run.series.pending_jobs, frame.BucketStart(run.series),
                                          frame.BucketWidth(run.series), 1.0)});
  }
  plot.x = LinearAxis(TimeAxisTitle(frame), 0, frame.span);
  plot.y = LinearAxis("pending jobs", 0, MaxY(plot.lines));
  return plot;
}

// One plot per run: its pending jobs by why they wait, a line per reason that ever held a job.
std::vector<LinePlot> PendingReasonPlots(const std::vector<SimRun>& runs, const TimeFrame& frame) {
  std::vector<LinePlot> plots;
  for (const SimRun& run : runs) {
    const auto& by_reason = run.series.pending_by_reason;
    LinePlot plot;
    plot.title = runs.size() > 1 ? fmt::format("Why jobs waited: {}", run.summary.policy) : "Why jobs waited";
    for (size_t reason = 0; reason < by_reason.size(); ++reason) {
      if (std::none_of(by_reason[reason].begin(), by_reason[reason].end(), [](double n) { return n > 0; })) continue;
      plot.lines.push_back({std::string(ReasonCodeName(static_cast<ReasonCode>(reason))), RunColor(plot.lines.size()),
                            false,
                            BucketsToPoints(by_reason[reason], frame.BucketStart(run.series),
                                            frame.BucketWidth(run.series), 1.0)});
    }
    if (plot.lines.empty()) continue;
    if (runs.size() > 1) {
      plot.width = 372;
      plot.height = 240;
    }
    plot.x = LinearAxis(TimeAxisTitle(frame), 0, frame.span);
    plot.y = LinearAxis("pending jobs", 0, MaxY(plot.lines));
    plots.push_back(std::move(plot));
  }
  return plots;
}

// One small plot per tracked account (matched by name across runs, in order of first
// appearance): its GPUs under each run, and its nominal as a dashed line.
std::vector<LinePlot> TrackedAccountPlots(const std::vector<SimRun>& runs, const TimeFrame& frame) {
  std::vector<std::string> names;
  for (const SimRun& run : runs) {
    for (const TrackedAccount& tracked : run.tracked) {
      if (std::find(names.begin(), names.end(), tracked.name) == names.end()) {
        names.push_back(tracked.name);
      }
    }
  }
  std::vector<LinePlot> plots;
  for (const std::string& name : names) {
    LinePlot plot;
    plot.title = name;
    plot.width = 372;
    plot.height = 240;
    int64_t nominal_gpus = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      const SimRun& run = runs[i];
      for (size_t t = 0; t < run.tracked.size(); ++t) {
        if (run.tracked[t].name != name) continue;
        if (nominal_gpus == 0) nominal_gpus = run.tracked[t].nominal_gpus;
        std::vector<Point> points;
        if (t < run.series.tracked_gpus.size()) {
          points = BucketsToPoints(run.series.tracked_gpus[t], frame.BucketStart(run.series),
                                   frame.BucketWidth(run.series), 1.0);
        }
        plot.lines.push_back({run.summary.policy, RunColor(i), false, std::move(points)});
      }
    }
    if (nominal_gpus > 0) {
      double nominal = static_cast<double>(nominal_gpus);
      plot.lines.push_back({fmt::format("nominal ({})", nominal_gpus),
                            std::string(kNominalColor),
                            true,
                            {{0, nominal}, {frame.span, nominal}}});
    }
    plot.x = LinearAxis(TimeAxisTitle(frame), 0, frame.span);
    plot.y = LinearAxis("GPUs", 0, MaxY(plot.lines));
    plots.push_back(std::move(plot));
  }
  return plots;
}

// Job completion time (submit to end) of jobs that ran to their end, as a cumulative
// distribution sampled at kCdfQuantiles ranks from the fastest to the slowest job.
LinePlot JctCdfPlot(const std::vector<SimRun>& runs) {
  LinePlot plot;
  plot.title = "Job completion time (CDF)";
  double min_jct = 0;
  double max_jct = 0;
  bool any = false;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::vector<Duration> jcts;
    for (const JobRecord& job : runs[i].jobs) {
      bool ran_to_end = job.outcome == Outcome::kCompleted || job.outcome == Outcome::kTimedOut;
      if (ran_to_end && job.end >= job.submit) jcts.push_back(job.end - job.submit);
    }
    std::sort(jcts.begin(), jcts.end());
    std::vector<Point> points;
    size_t samples = std::min(jcts.size(), kCdfQuantiles);
    for (size_t s = 0; s < samples; ++s) {
      size_t rank = samples == 1 ? jcts.size() - 1 : s * (jcts.size() - 1) / (samples - 1);
      // The log axis starts at one second; a zero-length job sits on its left edge.
      double jct = std::max<double>(1.0, static_cast<double>(jcts[rank]));
      points.push_back(
          {jct, 100.0 * static_cast<double>(rank + 1) / static_cast<double>(jcts.size())});
    }
    if (!points.empty()) {
      min_jct = any ? std::min(min_jct, points.front().x) : points.front().x;
      max_jct = any ? std::max(max_jct, points.back().x) : points.back().x;
      any = true;
    }
    plot.lines.push_back({runs[i].summary.policy, RunColor(i), false, std::move(points)});
  }
  plot.x =
      LogDurationAxis("job completion time (log scale)", any ? min_jct : 1, any ? max_jct : 3600);
  plot.y = LinearAxis("jobs completed within (%)", 0, 100);
  return plot;
}


// Headings name the run only when there are several.
std::string RunHeading(const std::vector<SimRun>& runs, const SimRun& run) {
  return runs.size() > 1 ? fmt::format("<h3>{}</h3>\n", EscapeHtml(run.summary.policy)) : std::string();
}

bool HasProgrammes(const std::vector<SimRun>& runs) {
  return std::any_of(runs.begin(), runs.end(), [](const SimRun& run) {
    return std::any_of(run.summary.per_programme.begin(), run.summary.per_programme.end(),
                       [](const ProgrammeSummary& programme) { return programme.nominal_gpus > 0; });
  });
}


}  // namespace

// ---------------------------------------------------------------------------------------------

std::string FormatSummaryTable(const std::vector<SimRun>& runs) {
  if (runs.empty()) return "no simulation runs\n";
  std::string text = RenderText(SummaryTable(runs));
  if (HasProgrammes(runs)) {
    for (const SimRun& run : runs) {
      text += fmt::format("\nProgrammes under {} (GPU-hours own, borrowed and lent; the guarantee)\n",
                          run.summary.policy);
      text += RenderText(ProgrammeTable(run.summary));
    }
  }
  for (const SimRun& run : runs) {
    if (run.summary.per_account.empty()) continue;
    size_t hidden = 0;
    Table accounts = AccountTable(run.summary, hidden);
    text += fmt::format("\nAccounts under {}, most GPU-hours first\n", run.summary.policy);
    text += RenderText(accounts);
    if (hidden > 0) text += HiddenAccountsNote(hidden) + "\n";
  }
  return text;
}

nlohmann::json SummaryJson(const SimSummary& summary) {
  nlohmann::json per_account = nlohmann::json::object();
  for (const AccountSummary& account : summary.per_account) {
    nlohmann::ordered_json fields = AccountJson(account);
    fields.erase("account");
    per_account[account.name] = nlohmann::json(fields);
  }
  nlohmann::json per_programme = nlohmann::json::array();
  for (const ProgrammeSummary& programme : summary.per_programme) {
    per_programme.push_back(nlohmann::json(ProgrammeJson(programme)));
  }
  nlohmann::json per_pool = nlohmann::json::array();
  for (const PoolSummary& pool : summary.per_pool) per_pool.push_back(nlohmann::json(PoolJson(pool)));
  return {
      {"policy", summary.policy},
      {"total_gpus", summary.total_gpus},
      {"trace_jobs", summary.trace_jobs},
      {"skipped_lines", summary.skipped_lines},
      {"jobs", summary.jobs},
      {"completed", summary.completed},
      {"timed_out", summary.timed_out},
      {"cancelled", summary.cancelled},
      {"failed", summary.failed},
      {"rejected", summary.rejected},
      {"unfinished", summary.unfinished},
      {"avg_wait_s", summary.avg_wait_s},
      {"p50_wait_s", summary.p50_wait_s},
      {"p95_wait_s", summary.p95_wait_s},
      {"p99_wait_s", summary.p99_wait_s},
      {"max_wait_s", summary.max_wait_s},
      {"avg_jct_s", summary.avg_jct_s},
      {"avg_bsld", summary.avg_bsld},
      {"utilization", summary.utilization},
      {"makespan_s", summary.makespan_s},
      {"gpu_hours", summary.gpu_hours},
      {"gpu_hours_lost", summary.gpu_hours_lost},
      {"preemptions", summary.preemptions},
      {"node_failures", summary.node_failures},
      {"passes", summary.passes},
      {"jain_fairness", summary.jain_fairness},
      {"sim_wall_s", summary.sim_wall_s},
      {"peak_rss_bytes", summary.peak_rss_bytes},
      {"per_account", std::move(per_account)},
      {"per_programme", std::move(per_programme)},
      {"per_pool", std::move(per_pool)},
  };
}

nlohmann::json RunsJson(const std::vector<SimRun>& runs) {
  if (runs.size() == 1) return SummaryJson(runs.front().summary);
  nlohmann::json keyed = nlohmann::json::object();
  for (const SimRun& run : runs) {
    // Two runs of one policy (different options) must not overwrite each other.
    std::string key = run.summary.policy;
    for (int copy = 2; keyed.contains(key); ++copy) {
      key = fmt::format("{}#{}", run.summary.policy, copy);
    }
    keyed[key] = SummaryJson(run.summary);
  }
  return keyed;
}

Status WriteSummaryJson(const std::string& path, const std::vector<SimRun>& runs) {
  return WriteWholeFile(path, RunsJson(runs).dump(2) + "\n");
}

namespace {


std::vector<std::string> CsvFields(const std::vector<std::string>& names) {
  std::vector<std::string> fields;
  fields.reserve(names.size());
  for (const std::string& name : names) fields.push_back(CsvField(name));
  return fields;
}

// Indexes come from the simulator and are always valid; an empty cell beats a crash if not.
std::string_view NameAt(const std::vector<std::string>& names, int64_t index) {
  if (index < 0 || static_cast<size_t>(index) >= names.size()) return "";
  return names[static_cast<size_t>(index)];
}

constexpr size_t kCsvFlushBytes = 1 << 20;

}  // namespace

Status WriteJobsCsv(const std::string& path, const std::vector<SimRun>& runs) {
  OutputFile file;
  ALLOT_RETURN_IF_ERROR(file.Open(path));
  fmt::memory_buffer buffer;
  auto out = std::back_inserter(buffer);
  fmt::format_to(out,
                 "policy,job,account,pool,gpus,submit,start,end,wait_s,run_s,bsld,outcome,"
                 "restarts,lost_gpu_s,first_start,recover_s\n");
  for (const SimRun& run : runs) {
    std::string policy = CsvField(run.summary.policy);
    std::vector<std::string> accounts = CsvFields(run.account_names);
    std::vector<std::string> pools = CsvFields(run.pool_names);
    for (const JobRecord& job : run.jobs) {
      fmt::format_to(out, "{},{},{},{},{},{},", policy, job.id, NameAt(accounts, job.account),
                     NameAt(pools, job.pool), job.gpus, job.submit);
      bool started = job.start >= 0;
      bool ended = started && job.end >= 0;
      bool ran_to_end = job.outcome == Outcome::kCompleted || job.outcome == Outcome::kTimedOut;
      // `start` and `run_s` are of the last execution; `wait_s` runs to the first.
      if (!started) {
        fmt::format_to(out, ",,,,,");
      } else if (!ended) {
        fmt::format_to(out, "{},,{},,,", job.start, job.wait());
      } else if (!ran_to_end) {
        fmt::format_to(out, "{},{},{},{},,", job.start, job.end, job.wait(), job.run());
      } else {
        // Bounded slowdown: runs under ten seconds count as ten, so tiny jobs do not dominate.
        double response = static_cast<double>(job.end - job.submit);
        double run_time = static_cast<double>(job.run());
        double bounded_slowdown = std::max(response / std::max(run_time, 10.0), 1.0);
        fmt::format_to(out, "{},{},{},{},{:.3f},", job.start, job.end, job.wait(), job.run(),
                       bounded_slowdown);
      }
      fmt::format_to(out, "{},{},{},", OutcomeName(job.outcome), job.restarts, job.lost_gpu_seconds);
      if (started) {
        fmt::format_to(out, "{},{}\n", job.first_start, job.recovering);
      } else {
        fmt::format_to(out, ",\n");
      }
      if (buffer.size() >= kCsvFlushBytes) {
        ALLOT_RETURN_IF_ERROR(file.Append(std::string_view(buffer.data(), buffer.size())));
        buffer.clear();
      }
    }
  }
  ALLOT_RETURN_IF_ERROR(file.Append(std::string_view(buffer.data(), buffer.size())));
  return file.Close();
}

std::string PlotSectionsHtml(const std::vector<SimRun>& runs, bool with_tables) {
  std::string html;
  TimeFrame frame = MakeTimeFrame(runs);
  html += "<h2>Utilisation</h2>\n";
  html += UtilisationPlot(runs, frame).ToSvg();
  html += Caption("Allocated GPUs as a share of the pool, smoothed over 1/50 of the run: how much "
                  "of what was bought did work.");
  if (with_tables) {
    for (const SimRun& run : runs) {
      html += RunHeading(runs, run) + RenderHtml(GpuModelTable(run.summary)) + RenderHtml(PoolTable(run.summary));
    }
    html += Caption("Fragmented: GPUs idle in partly used NVLink domains (some of a domain's GPUs busy, some "
                    "idle), averaged over the run, as a share of the pool. A gang that needs whole domains "
                    "cannot use them: fragmentation high where jobs wait for topology means placement, not "
                    "capacity, is short.");
  }
  if (AnyPending(runs)) {
    html += QueuePlot(runs, frame).ToSvg();
    html += Caption("Jobs waiting, averaged per sample: a queue that keeps growing means demand "
                    "above capacity for the policy.");
    std::vector<LinePlot> reasons = PendingReasonPlots(runs, frame);
    if (!reasons.empty()) {
      html += reasons.size() > 1 ? "<div class=\"multiples\">\n" : "";
      for (const LinePlot& plot : reasons) html += plot.ToSvg();
      html += reasons.size() > 1 ? "</div>\n" : "";
      html += Caption("Pending jobs by why they wait, counted at the first scheduling pass of each sample: "
                      "resources (no pool had the GPUs free), quota or grant (the account's limits), "
                      "topology (GPUs free but no domain holds the gang), reserved (a start is booked), "
                      "backfill (it would delay a booked start), priority (not reached in that pass), "
                      "preempted, held. Quota and grant waits are the ones a split or a budget changes; "
                      "resources waits only capacity does.");
    }
  }

  std::vector<LinePlot> tracked = TrackedAccountPlots(runs, frame);
  if (!tracked.empty()) {
    html += "<h2>Programmes: GPUs against nominal</h2>\n<div class=\"multiples\">\n";
    for (const LinePlot& plot : tracked) html += plot.ToSvg();
    html += "</div>\n";
    html += Caption("GPUs each programme held over time (the largest 16 by nominal), against its "
                    "nominal (dashed): above the line it borrows, below it lends or is short.");
  }

  std::vector<LinePlot> grants = GrantBurnDownPlots(runs, frame);
  if (!grants.empty()) {
    html += "<h2>Grants</h2>\n";
    for (const LinePlot& plot : grants) html += plot.ToSvg();
    html += Caption("GPU-hours of grants used over time against what was granted: a line that "
                    "reaches the dashed one early means grantees ran out before their grants end.");
  }

  html += "<h2>Job completion time</h2>\n";
  html += JctCdfPlot(runs).ToSvg();
  html += Caption("Share of jobs done within a given time of their submit (log scale): the further "
                  "left, the better; the top of the curve is where the longest waits show.");

  return html;
}

Status WriteReportTables(const std::string& dir, const std::vector<SimRun>& runs) {
  namespace fs = std::filesystem;
  ALLOT_RETURN_IF_ERROR(WriteSummaryJson((fs::path(dir) / "summary.json").string(), runs));
  std::vector<CsvRow> programmes;
  std::vector<CsvRow> pools;
  std::vector<CsvRow> accounts;
  for (const SimRun& run : runs) {
    for (const ProgrammeSummary& row : run.summary.per_programme) programmes.push_back({{run.summary.policy}, ProgrammeJson(row)});
    for (const PoolSummary& row : run.summary.per_pool) pools.push_back({{run.summary.policy}, PoolJson(row)});
    for (const AccountSummary& row : run.summary.per_account) accounts.push_back({{run.summary.policy}, AccountJson(row)});
  }
  ALLOT_RETURN_IF_ERROR(WriteRowsCsv((fs::path(dir) / "programmes.csv").string(), {"policy"}, programmes));
  ALLOT_RETURN_IF_ERROR(WriteRowsCsv((fs::path(dir) / "pools.csv").string(), {"policy"}, pools));
  return WriteRowsCsv((fs::path(dir) / "accounts.csv").string(), {"policy"}, accounts);
}

Status WriteHtmlReport(const std::string& dir, const std::vector<SimRun>& runs,
                       const std::string& title) {
  ALLOT_RETURN_IF_ERROR(MakeDirectory(dir));

  std::string html;
  html += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += fmt::format("<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n", EscapeHtml(title),
                      kPageStyle);
  html += fmt::format("<h1>{}</h1>\n", EscapeHtml(title));
  std::vector<std::string> notes;
  for (const SimRun& run : runs) {
    for (const std::string& note : run.notes) {
      if (std::find(notes.begin(), notes.end(), note) == notes.end()) notes.push_back(note);
    }
  }
  for (const std::string& note : notes) html += fmt::format("<p class=\"note\">Note: {}</p>\n", EscapeHtml(note));

  html += "<h2>Summary</h2>\n";
  html += RenderHtml(SummaryTable(runs));
  html += Caption("Waits run from submit to a job's first start; restarts after node failures or "
                  "preemptions, and the GPU-hours they lost, are counted apart. Averages cover "
                  "jobs that ran to their end.");

  if (HasProgrammes(runs)) {
    html += "<h2>Programmes</h2>\n";
    html += Caption(
        "Each programme's GPU-hours split by whose GPUs they ran on: own (within its nominal, pool "
        "by pool), borrowed (above it), and lent (the part of its idle nominal others borrowed). "
        "The guarantee is the share of the time its demand reached its nominal in which it also "
        "held it, or no job of it that had waited a pass interval would have fit in what was "
        "missing. This is the figure a programme is promised.");
    for (const SimRun& run : runs) html += RunHeading(runs, run) + RenderHtml(ProgrammeTable(run.summary));
  }

  html += PlotSectionsHtml(runs, /*with_tables=*/true);

  html += "<h2>Accounts</h2>\n";
  html += Caption("Every account with jobs, by programme (accounts.csv has the same rows).");
  for (const SimRun& run : runs) {
    html += RunHeading(runs, run) + RenderHtml(AllAccountsTable(run.summary, run.series.origin));
  }

  for (const SimRun& run : runs) {
    if (run.problems.empty()) continue;
    html += fmt::format(
        "<details><summary class=\"note\">Trace and submit problems under {} (first {})"
        "</summary>\n<ul>\n",
        EscapeHtml(run.summary.policy), run.problems.size());
    for (const std::string& problem : run.problems) {
      html += fmt::format("<li>{}</li>\n", EscapeHtml(problem));
    }
    html += "</ul></details>\n";
  }
  html += "<p class=\"note\">Tables for tools: <a href=\"summary.json\">summary.json</a>, "
          "<a href=\"programmes.csv\">programmes.csv</a>, <a href=\"pools.csv\">pools.csv</a>, "
          "<a href=\"accounts.csv\">accounts.csv</a>.</p>\n";
  html += "</body>\n</html>\n";

  ALLOT_RETURN_IF_ERROR(WriteReportTables(dir, runs));
  std::string path = (std::filesystem::path(dir) / "index.html").string();
  return WriteWholeFile(path, html);
}

}  // namespace allot
