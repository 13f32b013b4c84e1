// The planner's report of `allot plan`: scenarios side by side, programme totals first and
// drill-down after, every figure with its spread over the seeds.
//
//   ALLOT_ASSIGN_OR_RETURN(std::vector<ScenarioResult> results, RunPlan(plan, options));
//   std::cout << FormatPlanTable(results);
//   ALLOT_RETURN_IF_ERROR(WritePlanReport("report/", plan, results));
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "sim/plan.h"

namespace allot {

// Mean, least and greatest of one figure over a scenario's seeds.
struct Spread {
  double mean = 0;
  double min = 0;
  double max = 0;
  size_t count = 0;
};

// The headline figures and, per programme, the guarantee, for the terminal.
std::string FormatPlanTable(const std::vector<ScenarioResult>& results);

// Everything in one object: the plan, each scenario's changes, and each run's summary.
nlohmann::json PlanJson(const Plan& plan, const std::vector<ScenarioResult>& results);

// DIR/index.html, and beside it plan.json, headline.csv, programmes.csv, pools.csv and
// accounts.csv (one row per scenario, seed and row). Creates DIR.
Status WritePlanReport(const std::string& dir, const Plan& plan, const std::vector<ScenarioResult>& results);

}  // namespace allot
