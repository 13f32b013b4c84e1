// Reports of simulation runs: a table for people, JSON and CSV for tools, and an HTML page with
// SVG plots that opens offline.
//
//   std::vector<SimRun> runs = ...;         // one per policy
//   std::cout << FormatSummaryTable(runs);
//   ALLOT_RETURN_IF_ERROR(WriteSummaryJson("out.json", runs));
//   ALLOT_RETURN_IF_ERROR(WriteJobsCsv("jobs.csv", runs));
//   ALLOT_RETURN_IF_ERROR(WriteHtmlReport("report/", runs, "lublin_256 on 256x1"));
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "sim/report_kit.h"
#include "sim/result.h"

namespace allot {

// A fixed-width table: one column per run, one row per metric, then per-account rows.
std::string FormatSummaryTable(const std::vector<SimRun>& runs);

// Tables of one run's summary, for people (sim/report_kit.h renders them).
report::Table ProgrammeTable(const SimSummary& summary);
report::Table PoolTable(const SimSummary& summary);
report::Table GpuModelTable(const SimSummary& summary);
// Every account, by programme, most GPU-hours first; grant exhaustion in days since `origin`.
report::Table AllAccountsTable(const SimSummary& summary, Time origin);
// "97.5%", or "-" for a programme without nominal or never demanded.
std::string FormatGuarantee(const ProgrammeSummary& programme);

// The same rows for tools: flat objects, fields in a fixed order.
nlohmann::ordered_json ProgrammeJson(const ProgrammeSummary& programme);
nlohmann::ordered_json PoolJson(const PoolSummary& pool);
nlohmann::ordered_json AccountJson(const AccountSummary& account);

// A CSV of rows: the `lead` columns (e.g. scenario, seed) then the fields of each row, whose
// names the first row gives.
struct CsvRow {
  std::vector<std::string> lead;
  nlohmann::ordered_json fields;
};
Status WriteRowsCsv(const std::string& path, const std::vector<std::string>& lead_columns,
                    const std::vector<CsvRow>& rows);

// The summary of one run (docs/simulation.md lists the fields).
nlohmann::json SummaryJson(const SimSummary& summary);
// One run: its summary object. Several: an object keyed by policy name.
nlohmann::json RunsJson(const std::vector<SimRun>& runs);
Status WriteSummaryJson(const std::string& path, const std::vector<SimRun>& runs);

// One row per job per run:
// policy,job,account,pool,gpus,submit,start,end,wait_s,run_s,bsld,outcome,restarts,lost_gpu_s,
// first_start,recover_s. start, end and run_s are of the last execution; wait_s runs to the
// first; recover_s is the time spent waiting again after lost executions.
Status WriteJobsCsv(const std::string& path, const std::vector<SimRun>& runs);

// DIR/index.html: summary, programmes (own, borrowed, lent, the guarantee), pools, and SVG plots
// (utilisation over time, queue length, each programme's GPUs against its nominal, grant
// burn-down, JCT CDF), one line per run; then every account. Beside it, the tables for tools:
// summary.json, programmes.csv, pools.csv and accounts.csv. Creates DIR.
Status WriteHtmlReport(const std::string& dir, const std::vector<SimRun>& runs,
                       const std::string& title);
// The plot sections of that page (utilisation, queue, programmes against nominal, grants, JCT),
// each with a caption; `with_tables` adds the per-pool and per-model utilisation tables.
std::string PlotSectionsHtml(const std::vector<SimRun>& runs, bool with_tables);
// Only the tables for tools, into an existing DIR.
Status WriteReportTables(const std::string& dir, const std::vector<SimRun>& runs);

}  // namespace allot
