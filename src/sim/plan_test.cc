#include "sim/plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/config.h"
#include "sim/plan_report.h"
#include "sim/report.h"

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

YAML::Node Yaml(std::string_view text) { return YAML::Load(std::string(text)); }

std::string Emit(const YAML::Node& node) {
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

// ---- Merging a change into a config ----------------------------------------------------------

TEST(MergeChangeTest, MapsMergeAndNamedListsMergeByName) {
  YAML::Node base = Yaml(R"(
pools:
  - {name: a, gpu_model: B200, shape: {pods: 2, gpus_per_node: 8}}
  - {name: b, gpu_model: H100}
policy: {backfill: easy, pass_interval: 30s}
)");
  YAML::Node change = Yaml(R"(
pools:
  - {name: a, shape: {pods: 3}}
  - {name: c, gpu_model: GB200}
policy: {backfill: conservative}
)");
  StatusOr<YAML::Node> merged = MergeChange(base, change, "change");
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ(Emit((*merged)["pools"]),
            "[{name: a, gpu_model: B200, shape: {pods: 3, gpus_per_node: 8}}, {name: b, gpu_model: H100}, "
            "{name: c, gpu_model: GB200}]");
  EXPECT_EQ(Emit((*merged)["policy"]), "{backfill: conservative, pass_interval: 30s}");
  // The base is left as it was.
  EXPECT_EQ(base["pools"][0]["shape"]["pods"].as<int>(), 2);
  EXPECT_EQ(base["policy"]["backfill"].as<std::string>(), "easy");
}

TEST(MergeChangeTest, NestedAccountsAndRemoval) {
  YAML::Node base = Yaml(R"(
accounts:
  - name: public
    children:
      - {name: x, quota: {p: 8}}
      - {name: y, quota: {p: 4}}
)");
  YAML::Node change = Yaml(R"(
accounts:
  - name: public
    children:
      - {name: x, quota: {p: 16}}
      - {name: y, remove: true}
)");
  StatusOr<YAML::Node> merged = MergeChange(base, change, "change");
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ(Emit((*merged)["accounts"]), "[{name: public, children: [{name: x, quota: {p: 16}}]}]");
  EXPECT_THAT(DescribeChange(base, change),
              ElementsAre("accounts/public/x.quota.p: 16 (was 8)", "accounts/public/y: removed"));
  // A new named element is one line, not one per field.
  EXPECT_THAT(DescribeChange(base, Yaml("{pools: [{name: q, gpu_model: B200, shape: {pods: 1}}]}")),
              ElementsAre("pools/q: added"));
}

TEST(MergeChangeTest, ScalarsAndPlainListsAreReplaced) {
  YAML::Node merged = *MergeChange(Yaml("{a: 1, l: [1, 2]}"), Yaml("{a: 2, l: [3]}"), "change");
  EXPECT_EQ(Emit(merged), "{a: 2, l: [3]}");
  EXPECT_THAT(DescribeChange(Yaml("{a: 1, c: 3}"), Yaml("{a: 2, b: x, c: 3}")),
              ElementsAre("a: 2 (was 1)", "b: x (was unset)"));  // c did not change
  EXPECT_THAT(DescribeChange(Yaml("{q: {p: 8}}"), Yaml("{q: {p: {nominal: 8, lend_limit: 4}}}")),
              ElementsAre("q.p: {nominal: 8, lend_limit: 4} (was 8)"));
}

TEST(MergeChangeTest, DescribesKeysTheBaseLacks) {
  // New mappings and lists below keys the base does not have: described, not thrown over.
  EXPECT_THAT(DescribeChange(Yaml("{policy: {backfill: easy}}"), Yaml("{policy: {preemption: {reclaim: true}}}")),
              ElementsAre("policy.preemption.reclaim: true (was unset)"));
  EXPECT_THAT(DescribeChange(Yaml("{policy: {}}"), Yaml("{policy: {priority_classes: [{name: x, value: 5}]}}")),
              ElementsAre("policy.priority_classes/x: added"));
  EXPECT_THAT(DescribeChange(Yaml("{accounts: [{name: a}]}"), Yaml("{accounts: [{name: a, quota: {p: {nominal: 8}}}]}")),
              ElementsAre("accounts/a.quota.p.nominal: 8 (was unset)"));
}

TEST(MergeChangeTest, ChangesThatCannotApplySayWhere) {
  StatusOr<YAML::Node> wrong_shape = MergeChange(Yaml("{pools: [{name: a}]}"), Yaml("{pools: {name: a}}"), "s1");
  ASSERT_FALSE(wrong_shape.ok());
  EXPECT_THAT(wrong_shape.status().message(), HasSubstr("s1.pools: a mapping changes a list"));
  StatusOr<YAML::Node> missing = MergeChange(Yaml("{pools: [{name: a}]}"), Yaml("{pools: [{name: z, remove: true}]}"), "s2");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("cannot remove 'z'"));
}

// ---- Plan files ------------------------------------------------------------------------------

std::string TestDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/plan_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string SmallPool() { return std::string(ALLOT_SOURCE_DIR) + "/tests/traces/small-pool.yaml"; }

TEST(ParsePlanTest, ReadsScenariosAndResolvesPathsAgainstThePlanFile) {
  StatusOr<Plan> plan = ParsePlan(R"(
plan:
  name: test
  config: ../pools/pool.yaml
  seeds: 3
  jobs: 500
scenarios:
  - name: today
  - name: sjf
    policy: sjf
  - name: more
    description: a purchase
    change: {pools: [{name: a}]}
)", "/plans/here/plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->config_path, "/plans/pools/pool.yaml");
  EXPECT_EQ(plan->workload_path, "/plans/pools/pool.yaml");
  EXPECT_THAT(plan->seeds, ElementsAre(1, 2, 3));
  EXPECT_EQ(plan->jobs, 500u);
  ASSERT_EQ(plan->scenarios.size(), 3u);
  EXPECT_EQ(plan->scenarios[1].policy, "sjf");
  EXPECT_EQ(plan->scenarios[2].description, "a purchase");
  EXPECT_TRUE(plan->scenarios[2].change.IsMap());
}

TEST(ParsePlanTest, BadPlansSayWhatToFix) {
  auto error = [](std::string_view yaml) {
    StatusOr<Plan> plan = ParsePlan(yaml, "p.yaml");
    return plan.ok() ? std::string("ok") : std::string(plan.status().message());
  };
  EXPECT_THAT(error("scenarios: [{name: a}]"), HasSubstr("the plan section names the config"));
  EXPECT_THAT(error("plan: {seeds: 2}\nscenarios: [{name: a}]"), HasSubstr("plan.config: missing"));
  EXPECT_THAT(error("plan: {config: c.yaml}\nscenarios: []"), HasSubstr("at least one scenario"));
  EXPECT_THAT(error("plan: {config: c.yaml}\nscenarios: [{name: a}, {name: a}]"), HasSubstr("'a' names two scenarios"));
  EXPECT_THAT(error("plan: {config: c.yaml}\nscenarios: [{name: a, policy: fastest}]"), HasSubstr("fastest"));
  EXPECT_THAT(error("plan: {config: c.yaml, seeds: 0}\nscenarios: [{name: a}]"), HasSubstr("plan.seeds"));
  EXPECT_THAT(error("plan: {config: c.yaml, seeds: [1, 1]}\nscenarios: [{name: a}]"), HasSubstr("listed twice"));
  EXPECT_THAT(error("plan: {config: c.yaml}\nscenarios: [{name: a, chnage: {}}]"), HasSubstr("unknown field 'chnage'"));
  EXPECT_THAT(error("plan: {config: c.yaml}\nscenarios: [{name: a, change: [1]}]"), HasSubstr("expected a mapping"));
}

// ---- Running a plan --------------------------------------------------------------------------

Plan SmallPlan(std::vector<uint64_t> seeds) {
  std::string text = fmt::format(R"(
plan:
  config: {}
  jobs: 400
scenarios:
  - name: today
  - name: today again
  - name: bigger public pool
    change:
      pools: [{{name: public-b200, shape: {{leaves_per_pod: 6}}}}]
      accounts: [{{name: public, children: [{{name: research, quota: {{public-b200: 320}}}}]}}]
  - name: first fit
    policy: first-fit
)", SmallPool());
  StatusOr<Plan> plan = ParsePlan(text, "plan.yaml");
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  plan->seeds = std::move(seeds);
  return *plan;
}

TEST(RunPlanTest, ScenariosReplayTheSameJobsSideBySide) {
  PlanOptions options;
  options.threads = 2;
  std::vector<double> last_progress(4, 0);
  options.progress = [&](size_t scenario, double fraction) { last_progress.at(scenario) = fraction; };
  StatusOr<std::vector<ScenarioResult>> results = RunPlan(SmallPlan({1, 2}), options);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 4u);
  for (const ScenarioResult& result : *results) ASSERT_EQ(result.runs.size(), 2u);
  EXPECT_THAT(last_progress, ElementsAre(1.0, 1.0, 1.0, 1.0));

  const ScenarioResult& today = (*results)[0];
  const ScenarioResult& again = (*results)[1];
  const ScenarioResult& bigger = (*results)[2];
  const ScenarioResult& first_fit = (*results)[3];
  EXPECT_TRUE(today.changes.empty());
  // Same jobs, same pool: the same run, whichever thread ran it.
  for (size_t seed = 0; seed < 2; ++seed) {
    EXPECT_EQ(today.runs[seed].summary.avg_wait_s, again.runs[seed].summary.avg_wait_s);
    EXPECT_EQ(today.runs[seed].summary.gpu_hours, again.runs[seed].summary.gpu_hours);
    EXPECT_EQ(today.runs[seed].summary.trace_jobs, 400u);
    EXPECT_EQ(bigger.runs[seed].summary.trace_jobs, 400u);
    EXPECT_EQ(first_fit.runs[seed].summary.trace_jobs, 400u);
  }
  // Seeds differ from each other.
  EXPECT_NE(today.runs[0].summary.gpu_hours, today.runs[1].summary.gpu_hours);
  // The purchase: 2 more leaves of 64 GPUs, and research's quota follows.
  EXPECT_EQ(bigger.runs[0].summary.total_gpus, today.runs[0].summary.total_gpus + 128);
  EXPECT_THAT(bigger.changes, ElementsAre("pools/public-b200.shape.leaves_per_pod: 6 (was 4)",
                                          "accounts/public/research.quota.public-b200: 320 (was 192)"));
  EXPECT_THAT(first_fit.changes, ElementsAre("policy preset: first-fit"));
  // The run labels are the scenario names; only the first seed keeps job records.
  EXPECT_EQ(bigger.runs[0].summary.policy, "bigger public pool");
  EXPECT_EQ(bigger.runs[0].jobs.size(), 400u);
  EXPECT_TRUE(bigger.runs[1].jobs.empty());
}

TEST(RunPlanTest, OneThreadAndTwoGiveTheSameResults) {
  PlanOptions one;
  PlanOptions two;
  two.threads = 2;
  StatusOr<std::vector<ScenarioResult>> a = RunPlan(SmallPlan({3}), one);
  StatusOr<std::vector<ScenarioResult>> b = RunPlan(SmallPlan({3}), two);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t s = 0; s < a->size(); ++s) {
    nlohmann::json left = SummaryJson((*a)[s].runs[0].summary);
    nlohmann::json right = SummaryJson((*b)[s].runs[0].summary);
    for (nlohmann::json* json : {&left, &right}) {
      json->erase("sim_wall_s");
      json->erase("peak_rss_bytes");
    }
    EXPECT_EQ(left, right) << (*a)[s].name;
  }
}

TEST(RunPlanTest, ABrokenScenarioFailsBeforeAnySimulation) {
  Plan plan = SmallPlan({1});
  plan.scenarios[2].change = Yaml("{accounts: [{name: public, children: [{name: research, quota: {nowhere: 8}}]}]}");
  bool simulated = false;
  PlanOptions options;
  options.progress = [&](size_t, double) { simulated = true; };
  StatusOr<std::vector<ScenarioResult>> results = RunPlan(plan, options);
  ASSERT_FALSE(results.ok());
  EXPECT_THAT(results.status().message(), HasSubstr("scenario 'bigger public pool'"));
  EXPECT_THAT(results.status().message(), HasSubstr("nowhere"));
  EXPECT_FALSE(simulated);
}

TEST(RunPlanTest, TheNationalSplitExampleRuns) {
  // The example a planner starts from must stay valid as the national config changes.
  StatusOr<Plan> plan = LoadPlanFile(std::string(ALLOT_SOURCE_DIR) + "/examples/plans/national-split.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->seeds.size(), 3u);
  plan->seeds = {1};
  plan->jobs = 3000;
  PlanOptions options;
  options.threads = 2;
  StatusOr<std::vector<ScenarioResult>> results = RunPlan(*plan, options);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 3u);
  EXPECT_EQ((*results)[0].runs[0].summary.total_gpus, 264608);
  EXPECT_EQ((*results)[1].runs[0].summary.total_gpus, 264608 + 13824);
  EXPECT_EQ((*results)[2].runs[0].summary.total_gpus, 264608);
  EXPECT_EQ((*results)[2].changes.size(), 16u);  // the lend limits of 12 projects in 16 quotas
  for (const ScenarioResult& result : *results) EXPECT_EQ(result.runs[0].summary.rejected, 0u) << result.name;
}

TEST(RunPlanTest, AWorkloadInAFileOfItsOwn) {
  // The pool from one file, the workload from another: each document stays what it was.
  std::string dir = TestDir("separate_workload");
  YAML::Node pool = YAML::LoadFile(SmallPool());
  YAML::Node workload(YAML::NodeType::Map);
  workload["workload"] = pool["workload"];
  pool.remove("workload");
  std::ofstream(dir + "/pool.yaml") << Emit(pool);
  std::ofstream(dir + "/workload.yaml") << Emit(workload);
  StatusOr<Plan> plan = ParsePlan(R"(
plan: {config: pool.yaml, workload: workload.yaml, jobs: 300}
scenarios:
  - name: today
  - name: more failures
    change: {workload: {failures: {mtbf: 1d}}}
)", dir + "/plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  StatusOr<std::vector<ScenarioResult>> results = RunPlan(*plan, PlanOptions{});
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  EXPECT_EQ((*results)[0].runs[0].summary.total_gpus, 512);
  EXPECT_GT((*results)[1].runs[0].summary.node_failures, (*results)[0].runs[0].summary.node_failures);
  EXPECT_EQ((*results)[1].runs[0].summary.trace_jobs, 300u);  // failures do not change the jobs
  EXPECT_THAT((*results)[1].changes, ElementsAre("workload.failures.mtbf: 1d (was 30d)"));
}

TEST(RunPlanTest, AScenarioWithWorkOfItsOwn) {
  // A new account and a class of jobs for it: generated from the scenario's own pool.
  Plan plan = SmallPlan({1});
  plan.scenarios.resize(1);
  PlanScenario newcomer;
  newcomer.name = "newcomer";
  newcomer.change = Yaml(R"({accounts: [{name: public, children: [{name: lab, quota: {public-b200: 0}}]}],
                             workload: {classes: [{name: lab-jobs, weight: 5, accounts: [lab], gpus: [1, 4],
                                                   runtime: [10m, 1h]}]}})");
  plan.scenarios.push_back(newcomer);
  StatusOr<std::vector<ScenarioResult>> results = RunPlan(plan, PlanOptions{});
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  EXPECT_THAT((*results)[1].changes, ::testing::Contains("its own jobs (the workload changed)"));
  bool lab_ran = false;
  for (const AccountSummary& account : (*results)[1].runs[0].summary.per_account) {
    lab_ran = lab_ran || (account.name == "lab" && account.jobs > 0);
  }
  EXPECT_TRUE(lab_ran);
  // A class naming an account no scenario has fails before anything runs.
  plan.scenarios[1].change = Yaml("{workload: {classes: [{name: ghost, weight: 1, accounts: [nobody], gpus: 1, runtime: 1h}]}}");
  StatusOr<std::vector<ScenarioResult>> broken = RunPlan(plan, PlanOptions{});
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(broken.status().message(), HasSubstr("scenario 'newcomer'"));
}

TEST(WritePlanReportTest, OnePageSideBySideAndTablesForTools) {
  Plan plan = SmallPlan({1, 2});
  StatusOr<std::vector<ScenarioResult>> results = RunPlan(plan, PlanOptions{});
  ASSERT_TRUE(results.ok());
  std::string dir = TestDir("report");
  ASSERT_TRUE(WritePlanReport(dir, plan, *results).ok());
  std::ifstream in(dir + "/index.html");
  std::stringstream html;
  html << in.rdbuf();
  for (const char* expected : {"<h2>Headline</h2>", "The guarantee, by programme", "Who ran on whose GPUs",
                               "bigger public pool", "first fit", "mean over 2 seeds", "<svg",
                               "pools/public-b200.shape.leaves_per_pod: 6 (was 4)"}) {
    EXPECT_TRUE(html.str().find(expected) != std::string::npos) << "the page lacks: " << expected;
  }
  EXPECT_TRUE(html.str().find("<script") == std::string::npos);
  auto lines = [&](const std::string& file) {
    std::ifstream csv(dir + "/" + file);
    size_t count = 0;
    for (std::string line; std::getline(csv, line);) ++count;
    return count;
  };
  EXPECT_EQ(lines("headline.csv"), 1u + 4 * 2);
  EXPECT_EQ(lines("programmes.csv"), 1u + 4 * 2 * 3);  // research, startup, owner-train
  EXPECT_GT(lines("accounts.csv"), 1u + 4 * 2);
  std::ifstream json_file(dir + "/plan.json");
  nlohmann::json json = nlohmann::json::parse(json_file);
  ASSERT_EQ(json["scenarios"].size(), 4u);
  EXPECT_EQ(json["scenarios"][2]["runs"][1]["seed"], 2);
  EXPECT_EQ(FormatPlanTable(*results).find("avg wait") != std::string::npos, true);
}

}  // namespace
}  // namespace allot
