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
#include "sim/result.h"

namespace allot {

// A fixed-width table: one column per run, one row per metric, then per-account rows.
std::string FormatSummaryTable(const std::vector<SimRun>& runs);

// The summary of one run (docs/simulation.md lists the fields).
nlohmann::json SummaryJson(const SimSummary& summary);
// One run: its summary object. Several: an object keyed by policy name.
nlohmann::json RunsJson(const std::vector<SimRun>& runs);
Status WriteSummaryJson(const std::string& path, const std::vector<SimRun>& runs);

// One row per job per run:
// policy,job,account,pool,gpus,submit,start,end,wait_s,run_s,bsld,outcome,restarts,lost_gpu_s
Status WriteJobsCsv(const std::string& path, const std::vector<SimRun>& runs);

// DIR/index.html: summary table and SVG plots (utilisation over time, queue length, each
// tracked account's GPUs against its nominal, JCT CDF), one line per run. Creates DIR.
Status WriteHtmlReport(const std::string& dir, const std::vector<SimRun>& runs,
                       const std::string& title);

}  // namespace allot
