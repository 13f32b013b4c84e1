#include "sim/plan_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "sim/report.h"
#include "sim/report_kit.h"

namespace allot {
namespace {

using report::Caption;
using report::EscapeHtml;
using report::FormatApproxSeconds;
using report::FormatCount;
using report::FormatNumber;
using report::FormatPercent;
using report::RenderHtml;
using report::RenderText;
using report::Table;

using Extract = std::function<double(const SimSummary&)>;
using Format = std::string (*)(double);

Spread SpreadOf(const std::vector<double>& values) {
  Spread spread;
  if (values.empty()) return spread;
  spread.count = values.size();
  spread.min = *std::min_element(values.begin(), values.end());
  spread.max = *std::max_element(values.begin(), values.end());
  double sum = 0;
  for (double value : values) sum += value;
  spread.mean = sum / static_cast<double>(values.size());
  return spread;
}

Spread SpreadOver(const ScenarioResult& result, const Extract& extract) {
  std::vector<double> values;
  for (const SimRun& run : result.runs) values.push_back(extract(run.summary));
  return SpreadOf(values);
}

// "42.1 s", or over several seeds "42.1 s (40.3-44.0)".
std::string FormatSpread(const Spread& spread, Format format) {
  if (spread.count == 0) return "-";
  std::string text = format(spread.mean);
  if (spread.count > 1 && spread.max > spread.min) {
    text += fmt::format(" ({}-{})", format(spread.min), format(spread.max));
  }
  return text;
}

std::string Seconds(double value) { return FormatApproxSeconds(value); }
std::string Percent(double value) { return FormatPercent(value); }
std::string Whole(double value) { return FormatNumber(value); }
std::string TwoDecimals(double value) { return FormatNumber(value, 2); }

struct Headline {
  std::string_view label;
  Extract extract;
  Format format;
};

const std::vector<Headline>& Headlines() {
  static const std::vector<Headline> kHeadlines = {
      {"GPUs", [](const SimSummary& s) { return static_cast<double>(s.total_gpus); }, Whole},
      {"utilisation", [](const SimSummary& s) { return s.utilization; }, Percent},
      {"jobs run to the end", [](const SimSummary& s) { return static_cast<double>(s.jobs); }, Whole},
      {"unfinished at the end", [](const SimSummary& s) { return static_cast<double>(s.unfinished); }, Whole},
      {"rejected", [](const SimSummary& s) { return static_cast<double>(s.rejected); }, Whole},
      {"avg wait (to first start)", [](const SimSummary& s) { return s.avg_wait_s; }, Seconds},
      {"p95 wait", [](const SimSummary& s) { return s.p95_wait_s; }, Seconds},
      {"p99 wait", [](const SimSummary& s) { return s.p99_wait_s; }, Seconds},
      {"avg job completion time", [](const SimSummary& s) { return s.avg_jct_s; }, Seconds},
      {"avg bounded slowdown", [](const SimSummary& s) { return s.avg_bsld; }, TwoDecimals},
      {"GPU-hours lost to restarts", [](const SimSummary& s) { return s.gpu_hours_lost; }, Whole},
      {"preemptions", [](const SimSummary& s) { return static_cast<double>(s.preemptions); }, Whole},
      {"node failures", [](const SimSummary& s) { return static_cast<double>(s.node_failures); }, Whole},
  };
  return kHeadlines;
}

Table HeadlineTable(const std::vector<ScenarioResult>& results) {
  Table table;
  table.header.emplace_back();
  for (const ScenarioResult& result : results) table.header.push_back(result.name);
  for (const Headline& headline : Headlines()) {
    std::vector<std::string> row{std::string(headline.label)};
    for (const ScenarioResult& result : results) {
      row.push_back(FormatSpread(SpreadOver(result, headline.extract), headline.format));
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

// Programme names in the order they first appear.
std::vector<std::string> ProgrammeNames(const std::vector<ScenarioResult>& results) {
  std::vector<std::string> names;
  for (const ScenarioResult& result : results) {
    for (const SimRun& run : result.runs) {
      for (const ProgrammeSummary& programme : run.summary.per_programme) {
        if (std::find(names.begin(), names.end(), programme.name) == names.end()) names.push_back(programme.name);
      }
    }
  }
  return names;
}

const ProgrammeSummary* FindProgramme(const SimSummary& summary, const std::string& name) {
  for (const ProgrammeSummary& programme : summary.per_programme) {
    if (programme.name == name) return &programme;
  }
  return nullptr;
}

// One row per programme, one column per scenario: `cell` of the programme's spread over seeds.
// A programme absent from a scenario, or for which `applies` is false in every seed, shows "-".
Table ProgrammeComparison(const std::vector<ScenarioResult>& results,
                          const std::function<double(const ProgrammeSummary&)>& value,
                          const std::function<bool(const ProgrammeSummary&)>& applies, Format format) {
  Table table;
  table.header.push_back("programme");
  for (const ScenarioResult& result : results) table.header.push_back(result.name);
  for (const std::string& name : ProgrammeNames(results)) {
    std::vector<std::string> row{name};
    for (const ScenarioResult& result : results) {
      std::vector<double> values;
      for (const SimRun& run : result.runs) {
        const ProgrammeSummary* programme = FindProgramme(run.summary, name);
        if (programme != nullptr && applies(*programme)) values.push_back(value(*programme));
      }
      row.push_back(FormatSpread(SpreadOf(values), format));
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

bool Always(const ProgrammeSummary&) { return true; }
bool WasDemanded(const ProgrammeSummary& programme) { return programme.nominal_gpus > 0 && programme.demanded_s > 0; }

// Own, borrowed and lent GPU-hours in one cell, means over seeds, in thousands.
Table SharingTable(const std::vector<ScenarioResult>& results) {
  Table table;
  table.header.push_back("programme");
  for (const ScenarioResult& result : results) table.header.push_back(result.name);
  auto thousands = [](double hours) { return FormatNumber(hours / 1000.0) + "k"; };
  for (const std::string& name : ProgrammeNames(results)) {
    std::vector<std::string> row{name};
    for (const ScenarioResult& result : results) {
      std::vector<double> own, borrowed, lent;
      for (const SimRun& run : result.runs) {
        if (const ProgrammeSummary* programme = FindProgramme(run.summary, name)) {
          own.push_back(programme->own_gpu_hours);
          borrowed.push_back(programme->borrowed_gpu_hours);
          lent.push_back(programme->lent_gpu_hours);
        }
      }
      row.push_back(own.empty() ? "-"
                                : fmt::format("{} / {} / {}", thousands(SpreadOf(own).mean),
                                              thousands(SpreadOf(borrowed).mean), thousands(SpreadOf(lent).mean)));
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

Table PoolComparison(const std::vector<ScenarioResult>& results) {
  std::vector<std::pair<std::string, std::string>> pools;  // name, GPU model
  for (const ScenarioResult& result : results) {
    for (const SimRun& run : result.runs) {
      for (const PoolSummary& pool : run.summary.per_pool) {
        auto same = [&](const auto& known) { return known.first == pool.name; };
        if (std::none_of(pools.begin(), pools.end(), same)) pools.emplace_back(pool.name, pool.gpu_model);
      }
    }
  }
  Table table;
  table.header = {"pool", "GPU model"};
  table.name_columns = 2;
  for (const ScenarioResult& result : results) table.header.push_back(result.name);
  for (const auto& [name, model] : pools) {
    std::vector<std::string> row{name, model};
    for (const ScenarioResult& result : results) {
      std::vector<double> values;
      std::vector<double> fragmented;
      int64_t gpus = 0;
      for (const SimRun& run : result.runs) {
        for (const PoolSummary& pool : run.summary.per_pool) {
          if (pool.name != name) continue;
          values.push_back(pool.utilization);
          fragmented.push_back(pool.gpus > 0 ? pool.fragmented_gpus / static_cast<double>(pool.gpus) : 0);
          gpus = pool.gpus;
        }
      }
      row.push_back(values.empty() ? "-"
                                   : fmt::format("{} of {}; {} fragmented", FormatSpread(SpreadOf(values), Percent),
                                                 FormatNumber(static_cast<double>(gpus)),
                                                 FormatSpread(SpreadOf(fragmented), Percent)));
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

Table ScenarioTable(const std::vector<ScenarioResult>& results) {
  Table table;
  table.header = {"scenario", "what it changes", "GPUs"};
  table.name_columns = 2;
  for (const ScenarioResult& result : results) {
    std::string changes;
    for (const std::string& change : result.changes) changes += (changes.empty() ? "" : "; ") + change;
    if (changes.empty()) changes = "nothing: the pool as configured";
    if (!result.description.empty()) changes = result.description + " (" + changes + ")";
    double gpus = result.runs.empty() ? 0 : static_cast<double>(result.runs.front().summary.total_gpus);
    table.rows.push_back({result.name, changes, FormatNumber(gpus)});
  }
  return table;
}

std::vector<SimRun> FirstSeedRuns(const std::vector<ScenarioResult>& results) {
  // Only what the plots read: summaries, series and the first seed's job records.
  std::vector<SimRun> runs;
  for (const ScenarioResult& result : results) {
    if (!result.runs.empty()) runs.push_back(result.runs.front());
  }
  return runs;
}

std::string SeedsNote(const std::vector<ScenarioResult>& results) {
  size_t seeds = results.empty() ? 0 : results.front().seeds.size();
  if (seeds <= 1) return "One seed: no spread is shown; add seeds to see how much of a difference is chance.";
  return fmt::format("Each figure is the mean over {} seeds, with the least and greatest in brackets "
                     "where they differ. The same seed gives every scenario the same jobs; a "
                     "difference smaller than the brackets may be chance.", seeds);
}

}  // namespace

std::string FormatPlanTable(const std::vector<ScenarioResult>& results) {
  std::string text = RenderText(HeadlineTable(results));
  text += "\nThe guarantee (of the time a programme's demand reached its nominal, the share in which it held it)\n";
  text += RenderText(ProgrammeComparison(
      results, [](const ProgrammeSummary& p) { return p.guarantee; }, WasDemanded, Percent));
  return text;
}

nlohmann::json PlanJson(const Plan& plan, const std::vector<ScenarioResult>& results) {
  nlohmann::json scenarios = nlohmann::json::array();
  for (const ScenarioResult& result : results) {
    nlohmann::json runs = nlohmann::json::array();
    for (size_t i = 0; i < result.runs.size(); ++i) {
      nlohmann::json summary = SummaryJson(result.runs[i].summary);
      summary["seed"] = result.seeds[i];
      runs.push_back(std::move(summary));
    }
    scenarios.push_back({{"name", result.name},
                         {"description", result.description},
                         {"changes", result.changes},
                         {"runs", std::move(runs)}});
  }
  return {{"plan", {{"name", plan.name}, {"config", plan.config_path}, {"workload", plan.workload_path},
                    {"jobs", plan.jobs}, {"seeds", plan.seeds}}},
          {"scenarios", std::move(scenarios)}};
}

Status WritePlanReport(const std::string& dir, const Plan& plan, const std::vector<ScenarioResult>& results) {
  namespace fs = std::filesystem;
  ALLOT_RETURN_IF_ERROR(report::MakeDirectory(dir));
  std::string title = plan.name.empty() ? fmt::format("allot plan: {}", plan.path) : plan.name;

  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += fmt::format("<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n", EscapeHtml(title), report::kPageStyle);
  html += fmt::format("<h1>{}</h1>\n", EscapeHtml(title));
  if (!plan.description.empty()) html += fmt::format("<p>{}</p>\n", EscapeHtml(plan.description));
  html += Caption(SeedsNote(results));

  html += "<h2>Scenarios</h2>\n" + RenderHtml(ScenarioTable(results));

  html += "<h2>Headline</h2>\n" + RenderHtml(HeadlineTable(results));
  html += Caption("Waits run from submit to a job's first start. GPU-hours lost to restarts are the "
                  "work thrown away by node failures and preemptions since a job's last checkpoint.");

  html += "<h2>The guarantee, by programme</h2>\n";
  html += RenderHtml(ProgrammeComparison(
      results, [](const ProgrammeSummary& p) { return p.guarantee; }, WasDemanded, Percent));
  html += Caption(
      "Of the time a programme's demand reached its nominal, the share in which it held its "
      "nominal, or nothing it had waited a pass interval for would have fit in what was missing. "
      "Judged at each quota holder, pool by pool, weighed by nominal. This is the figure a "
      "programme is promised; \"-\" means its demand never reached its nominal.");
  html += "<h3>Share of nominal held while demanded</h3>\n";
  html += RenderHtml(ProgrammeComparison(
      results, [](const ProgrammeSummary& p) { return p.share_when_demanded; }, WasDemanded, Percent));

  html += "<h2 id=\"sharing\">Who ran on whose GPUs</h2>\n" + RenderHtml(SharingTable(results));
  html += Caption("GPU-hours of each programme: own (within its nominal, pool by pool) / borrowed "
                  "(above it) / lent (its idle nominal that others used), thousands, means over seeds. "
                  "Borrowing beyond what owners lent ran on GPUs under no quota.");

  html += "<h2>Waits by programme</h2>\n<h3>Average wait</h3>\n";
  html += RenderHtml(ProgrammeComparison(
      results, [](const ProgrammeSummary& p) { return p.avg_wait_s; }, Always, Seconds));
  html += "<h3>p95 wait</h3>\n";
  html += RenderHtml(ProgrammeComparison(
      results, [](const ProgrammeSummary& p) { return p.p95_wait_s; }, Always, Seconds));
  html += "<h3>GPU-hours lost to restarts</h3>\n";
  html += RenderHtml(ProgrammeComparison(
      results, [](const ProgrammeSummary& p) { return p.lost_gpu_hours; }, Always, Whole));
  html += Caption("Restarts after node failures and preemptions cost the work since the last "
                  "checkpoint; a programme of long, large runs loses most.");

  html += "<h2>Pools</h2>\n" + RenderHtml(PoolComparison(results));
  html += Caption("Utilisation of each pool (allocated GPU-hours over its GPUs and the run's length), and "
                  "its fragmentation (GPUs idle in partly used NVLink domains, averaged over the run, as a "
                  "share of the pool: idle GPUs a gang needing whole domains cannot use). A pool busy in one "
                  "scenario and idle in another shows where a change moved work.");

  html += Caption("The plots below follow the first seed of each scenario over time.");
  html += PlotSectionsHtml(FirstSeedRuns(results), /*with_tables=*/false);

  html += "<h2>Drill-down: every account (first seed)</h2>\n";
  for (const ScenarioResult& result : results) {
    if (result.runs.empty()) continue;
    const SimRun& run = result.runs.front();
    html += fmt::format("<details><summary>{}: {} accounts</summary>\n", EscapeHtml(result.name),
                        run.summary.per_account.size());
    html += RenderHtml(AllAccountsTable(run.summary, run.series.origin));
    html += "</details>\n";
  }
  html += "<p class=\"note\">Tables for tools: <a href=\"plan.json\">plan.json</a>, "
          "<a href=\"headline.csv\">headline.csv</a>, <a href=\"programmes.csv\">programmes.csv</a>, "
          "<a href=\"pools.csv\">pools.csv</a>, <a href=\"accounts.csv\">accounts.csv</a>.</p>\n";
  html += "</body>\n</html>\n";

  // The same figures for tools: one row per scenario and seed (and programme, pool, account).
  std::vector<CsvRow> headline, programmes, pools, accounts;
  for (const ScenarioResult& result : results) {
    for (size_t i = 0; i < result.runs.size(); ++i) {
      const SimSummary& summary = result.runs[i].summary;
      std::vector<std::string> lead = {result.name, std::to_string(result.seeds[i])};
      nlohmann::ordered_json fields;
      for (const Headline& figure : Headlines()) fields[std::string(figure.label)] = figure.extract(summary);
      headline.push_back({lead, std::move(fields)});
      for (const ProgrammeSummary& row : summary.per_programme) programmes.push_back({lead, ProgrammeJson(row)});
      for (const PoolSummary& row : summary.per_pool) pools.push_back({lead, PoolJson(row)});
      for (const AccountSummary& row : summary.per_account) accounts.push_back({lead, AccountJson(row)});
    }
  }
  std::vector<std::string> lead_columns = {"scenario", "seed"};
  ALLOT_RETURN_IF_ERROR(WriteRowsCsv((fs::path(dir) / "headline.csv").string(), lead_columns, headline));
  ALLOT_RETURN_IF_ERROR(WriteRowsCsv((fs::path(dir) / "programmes.csv").string(), lead_columns, programmes));
  ALLOT_RETURN_IF_ERROR(WriteRowsCsv((fs::path(dir) / "pools.csv").string(), lead_columns, pools));
  ALLOT_RETURN_IF_ERROR(WriteRowsCsv((fs::path(dir) / "accounts.csv").string(), lead_columns, accounts));
  ALLOT_RETURN_IF_ERROR(report::WriteWholeFile((fs::path(dir) / "plan.json").string(), PlanJson(plan, results).dump(2) + "\n"));
  return report::WriteWholeFile((fs::path(dir) / "index.html").string(), html);
}

}  // namespace allot
