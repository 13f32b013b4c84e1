#include "sim/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace allot {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

// A fresh directory for one test, under GoogleTest's temporary directory.
std::string TestDir(const std::string& name) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "report_test" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

AccountSummary MakeAccount(std::string name, double gpu_hours) {
  AccountSummary account;
  account.name = std::move(name);
  account.jobs = 2;
  account.gpu_hours = gpu_hours;
  account.avg_wait_s = 30;
  account.p50_wait_s = 20;
  account.p95_wait_s = 90;
  account.p99_wait_s = 120;
  account.avg_bsld = 1.5;
  account.nominal_gpus = 8;
  account.avg_gpus = 4;
  account.share_of_nominal = 0.5;
  return account;
}

// Four jobs on two accounts: completed, timed out, never started, and still running at the end.
SimRun MakeRun(const std::string& policy) {
  SimRun run;
  run.account_names = {"lab-a", "lab-b"};
  run.pool_names = {"h100", "b200"};

  JobRecord completed;
  completed.id = 1;
  completed.account = 0;
  completed.pool = 0;
  completed.gpus = 8;
  completed.submit = 100;
  completed.first_start = 130;  // waited 30 s
  completed.start = 130;
  completed.end = 135;    // ran 5 s: slowdown (30 + 5) / max(5, 10) = 3.5
  completed.outcome = Outcome::kCompleted;
  run.jobs.push_back(completed);

  JobRecord timed_out;
  timed_out.id = 2;
  timed_out.account = 1;
  timed_out.pool = 1;
  timed_out.gpus = 16;
  timed_out.submit = 200;
  timed_out.first_start = 200;
  timed_out.start = 200;
  timed_out.end = 3800;
  timed_out.restarts = 1;
  timed_out.lost_gpu_seconds = 1200.5;
  timed_out.outcome = Outcome::kTimedOut;
  run.jobs.push_back(timed_out);

  JobRecord rejected;
  rejected.id = 3;
  rejected.account = 1;
  rejected.gpus = 4096;
  rejected.submit = 300;
  rejected.outcome = Outcome::kRejected;
  run.jobs.push_back(rejected);

  JobRecord running;
  running.id = 4;
  running.account = 0;
  running.pool = 1;
  running.gpus = 2;
  running.submit = 400;
  running.first_start = 460;
  running.start = 460;
  running.outcome = Outcome::kUnfinished;
  run.jobs.push_back(running);

  run.tracked = {{"lab-a", 8}, {"lab-b", 0}};
  run.series.origin = 100;
  run.series.step = 60;
  run.series.allocated_gpus = {8, 16, 16, 2};
  run.series.pending_jobs = {1, 0, 1, 0};
  run.series.tracked_gpus = {{8, 0, 0, 2}, {0, 16, 16, 0}};
  run.series.pending_by_reason.assign(static_cast<size_t>(ReasonCode::kPreempted) + 1, {0, 0, 0, 0});
  run.series.pending_by_reason[static_cast<size_t>(ReasonCode::kResources)] = {1, 0, 0, 0};
  run.series.pending_by_reason[static_cast<size_t>(ReasonCode::kQuota)] = {0, 0, 1, 0};

  SimSummary& summary = run.summary;
  summary.policy = policy;
  summary.total_gpus = 32;
  summary.trace_jobs = 4;
  summary.skipped_lines = 1;
  summary.jobs = 2;
  summary.completed = 1;
  summary.timed_out = 1;
  summary.rejected = 1;
  summary.unfinished = 1;
  summary.avg_wait_s = 4.2;
  summary.p50_wait_s = 15;
  summary.p95_wait_s = 28.5;
  summary.p99_wait_s = 29.7;
  summary.max_wait_s = 4980;  // 1h 23m
  summary.avg_jct_s = 1817.5;
  summary.avg_bsld = 2.25;
  summary.utilization = 0.4213;
  summary.makespan_s = 3700;
  summary.gpu_hours = 16.02;
  summary.gpu_hours_lost = 0.33;
  summary.preemptions = 3;
  summary.node_failures = 1;
  summary.passes = 42;
  summary.jain_fairness = 0.875;
  summary.sim_wall_s = 0.25;
  summary.peak_rss_bytes = 64 << 20;
  summary.per_account = {MakeAccount("lab-a", 0.02), MakeAccount("lab-b", 16)};

  ProgrammeSummary lab_a;
  lab_a.name = "lab-a";
  lab_a.nominal_gpus = 8;
  lab_a.gpu_hours = 0.02;
  lab_a.own_gpu_hours = 0.02;
  lab_a.lent_gpu_hours = 3;
  lab_a.demanded_s = 100;
  lab_a.shortfall_s = 10;
  lab_a.guarantee = 0.9;
  ProgrammeSummary lab_b;
  lab_b.name = "lab-b";
  lab_b.gpu_hours = 16;
  lab_b.borrowed_gpu_hours = 16;
  lab_b.grant_gpu_hours = 20;
  lab_b.grant_used_gpu_hours = 16;
  summary.per_programme = {lab_a, lab_b};
  run.series.programme_grant_used = {{}, {4, 8, 12, 16}};
  summary.per_pool = {{"h100", "H100", 16, 8, 0.02, 0.001}, {"b200", "B200", 16, 0, 16, 0.97}};
  return run;
}

std::vector<SimRun> TwoRuns() { return {MakeRun("fcfs"), MakeRun("easy")}; }

// --- JSON -------------------------------------------------------------------------------------

TEST(SummaryJsonTest, CarriesEverySummaryField) {
  SimRun run = MakeRun("fcfs");
  nlohmann::json json = SummaryJson(run.summary);
  EXPECT_EQ(json["policy"], "fcfs");
  EXPECT_EQ(json["jobs"], 2);
  EXPECT_DOUBLE_EQ(json["avg_wait_s"].get<double>(), 4.2);
  EXPECT_DOUBLE_EQ(json["avg_jct_s"].get<double>(), 1817.5);
  EXPECT_DOUBLE_EQ(json["avg_bsld"].get<double>(), 2.25);
  EXPECT_DOUBLE_EQ(json["utilization"].get<double>(), 0.4213);
  EXPECT_EQ(json["makespan_s"], 3700);
  EXPECT_DOUBLE_EQ(json["sim_wall_s"].get<double>(), 0.25);
  EXPECT_EQ(json["total_gpus"], 32);
  EXPECT_EQ(json["skipped_lines"], 1);
  EXPECT_EQ(json["rejected"], 1);
  EXPECT_DOUBLE_EQ(json["max_wait_s"].get<double>(), 4980);
  EXPECT_EQ(json["passes"], 42);
  EXPECT_EQ(json["peak_rss_bytes"], 64 << 20);
  for (const char* field : {"trace_jobs", "completed", "timed_out", "cancelled", "failed",
                            "unfinished", "p50_wait_s", "p95_wait_s", "p99_wait_s", "gpu_hours",
                            "gpu_hours_lost", "preemptions", "node_failures", "jain_fairness"}) {
    EXPECT_TRUE(json.contains(field)) << field;
  }
}

TEST(SummaryJsonTest, PerAccountIsKeyedByName) {
  nlohmann::json json = SummaryJson(MakeRun("fcfs").summary);
  ASSERT_TRUE(json["per_account"].is_object());
  ASSERT_TRUE(json["per_account"].contains("lab-b"));
  const nlohmann::json& lab_b = json["per_account"]["lab-b"];
  EXPECT_EQ(lab_b["jobs"], 2);
  EXPECT_DOUBLE_EQ(lab_b["gpu_hours"].get<double>(), 16);
  EXPECT_DOUBLE_EQ(lab_b["p95_wait_s"].get<double>(), 90);
  EXPECT_EQ(lab_b["nominal_gpus"], 8);
  EXPECT_DOUBLE_EQ(lab_b["share_of_nominal"].get<double>(), 0.5);
  for (const char* field : {"avg_wait_s", "p50_wait_s", "p99_wait_s", "avg_bsld", "avg_gpus"}) {
    EXPECT_TRUE(lab_b.contains(field)) << field;
  }
}

TEST(RunsJsonTest, OneRunIsItsSummary) {
  nlohmann::json json = RunsJson({MakeRun("fcfs")});
  EXPECT_EQ(json["policy"], "fcfs");
  EXPECT_DOUBLE_EQ(json["avg_wait_s"].get<double>(), 4.2);
}

TEST(RunsJsonTest, SeveralRunsAreKeyedByPolicy) {
  std::vector<SimRun> runs = TwoRuns();
  runs[1].summary.avg_wait_s = 7.5;
  nlohmann::json json = RunsJson(runs);
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json["fcfs"]["policy"], "fcfs");
  EXPECT_DOUBLE_EQ(json["easy"]["avg_wait_s"].get<double>(), 7.5);
}

TEST(RunsJsonTest, RunsOfOnePolicyDoNotOverwriteEachOther) {
  nlohmann::json json = RunsJson({MakeRun("easy"), MakeRun("easy")});
  EXPECT_TRUE(json.contains("easy"));
  EXPECT_TRUE(json.contains("easy#2"));
}

TEST(WriteSummaryJsonTest, WritesIndentedJsonDeterministically) {
  std::string dir = TestDir("json");
  std::vector<SimRun> runs = TwoRuns();
  ASSERT_TRUE(WriteSummaryJson(dir + "/a.json", runs).ok());
  ASSERT_TRUE(WriteSummaryJson(dir + "/b.json", runs).ok());
  std::string text = ReadFile(dir + "/a.json");
  EXPECT_EQ(text, RunsJson(runs).dump(2) + "\n");
  EXPECT_EQ(text, ReadFile(dir + "/b.json"));
  EXPECT_EQ(nlohmann::json::parse(text)["easy"]["policy"], "easy");
}

TEST(WriteSummaryJsonTest, UnwritablePathIsAnErrorNamingIt) {
  Status status = WriteSummaryJson("/proc/nonexistent/x.json", TwoRuns());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("/proc/nonexistent/x.json"));
  EXPECT_THAT(status.message(), HasSubstr("No such file or directory"));
}

// --- CSV --------------------------------------------------------------------------------------

TEST(WriteJobsCsvTest, OneRowPerJobPerRun) {
  std::string path = TestDir("csv") + "/jobs.csv";
  ASSERT_TRUE(WriteJobsCsv(path, TwoRuns()).ok());
  std::vector<std::string> lines = Lines(ReadFile(path));
  ASSERT_EQ(lines.size(), 1u + 2 * 4);
  EXPECT_EQ(lines[0],
            "policy,job,account,pool,gpus,submit,start,end,wait_s,run_s,bsld,outcome,restarts,"
            "lost_gpu_s,first_start,recover_s");
  EXPECT_EQ(lines[1], "fcfs,1,lab-a,h100,8,100,130,135,30,5,3.500,completed,0,0,130,0");
  EXPECT_EQ(lines[2], "fcfs,2,lab-b,b200,16,200,200,3800,0,3600,1.000,timed_out,1,1200.5,200,0");
  EXPECT_EQ(lines[3], "fcfs,3,lab-b,,4096,300,,,,,,rejected,0,0,,");
  EXPECT_EQ(lines[4], "fcfs,4,lab-a,b200,2,400,460,,60,,,unfinished,0,0,460,0");
  EXPECT_EQ(lines[5], "easy,1,lab-a,h100,8,100,130,135,30,5,3.500,completed,0,0,130,0");
}

TEST(WriteJobsCsvTest, CancelledJobsHaveNoSlowdown) {
  SimRun run = MakeRun("fcfs");
  run.jobs.resize(1);
  run.jobs[0].outcome = Outcome::kCancelled;
  std::string path = TestDir("csv_cancelled") + "/jobs.csv";
  ASSERT_TRUE(WriteJobsCsv(path, {run}).ok());
  EXPECT_EQ(Lines(ReadFile(path)).at(1), "fcfs,1,lab-a,h100,8,100,130,135,30,5,,cancelled,0,0,130,0");
}

TEST(WriteJobsCsvTest, QuotesNamesWithCommas) {
  SimRun run = MakeRun("easy, tuned");
  run.account_names[0] = "lab \"a\"";
  run.jobs.resize(1);
  std::string path = TestDir("csv_quoted") + "/jobs.csv";
  ASSERT_TRUE(WriteJobsCsv(path, {run}).ok());
  EXPECT_EQ(Lines(ReadFile(path)).at(1),
            "\"easy, tuned\",1,\"lab \"\"a\"\"\",h100,8,100,130,135,30,5,3.500,completed,0,0,130,0");
}

TEST(WriteJobsCsvTest, UnwritablePathIsAnError) {
  Status status = WriteJobsCsv("/proc/nonexistent/jobs.csv", TwoRuns());
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("/proc/nonexistent/jobs.csv"));
}

// --- Text table -------------------------------------------------------------------------------

TEST(FormatSummaryTableTest, OneColumnPerRunWithReadableDurations) {
  std::string table = FormatSummaryTable(TwoRuns());
  std::vector<std::string> lines = Lines(table);
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0], HasSubstr("fcfs"));
  EXPECT_THAT(lines[0], HasSubstr("easy"));
  EXPECT_LT(lines[0].find("fcfs"), lines[0].find("easy"));
  const std::vector<std::string> labels = {"jobs (ran to end)",
                                           "completed",
                                           "timed out",
                                           "cancelled",
                                           "failed",
                                           "rejected (never placeable)",
                                           "unfinished",
                                           "skipped trace lines",
                                           "avg wait",
                                           "p50 wait",
                                           "p95 wait",
                                           "p99 wait",
                                           "max wait",
                                           "avg JCT",
                                           "avg bounded slowdown",
                                           "utilisation",
                                           "makespan",
                                           "GPU-hours",
                                           "GPU-hours lost",
                                           "preemptions",
                                           "node failures",
                                           "passes",
                                           "Jain fairness",
                                           "sim wall time"};
  for (const std::string& label : labels) {
    EXPECT_THAT(table, HasSubstr(label));
  }
  EXPECT_THAT(table, HasSubstr("4.2 s"));    // avg wait
  EXPECT_THAT(table, HasSubstr("1h 23m"));   // max wait, 4980 s
  EXPECT_THAT(table, HasSubstr("30m 18s"));  // avg JCT, 1817.5 s
  EXPECT_THAT(table, HasSubstr("42.1%"));    // utilisation
  EXPECT_THAT(table, HasSubstr("0.875"));    // Jain fairness
}

TEST(FormatSummaryTableTest, ColumnsLineUp) {
  std::vector<std::string> lines = Lines(FormatSummaryTable(TwoRuns()));
  // Right-aligned value columns: every metric row of the summary ends where the header ends.
  size_t width = lines[0].size();
  for (size_t i = 2; i < lines.size() && !lines[i].empty(); ++i) {
    EXPECT_EQ(lines[i].size(), width) << lines[i];
  }
}

TEST(FormatSummaryTableTest, AccountsByGpuHours) {
  std::string table = FormatSummaryTable({MakeRun("fcfs")});
  size_t section = table.find("Accounts under fcfs");
  ASSERT_NE(section, std::string::npos);
  size_t lab_a = table.find("lab-a", section);
  size_t lab_b = table.find("lab-b", section);
  ASSERT_NE(lab_a, std::string::npos);
  ASSERT_NE(lab_b, std::string::npos);
  EXPECT_LT(lab_b, lab_a);               // 16 GPU-hours before 0.02
  EXPECT_THAT(table, HasSubstr("50%"));  // share of nominal
  EXPECT_THAT(table, Not(HasSubstr("more accounts")));
}

TEST(FormatSummaryTableTest, ShowsTwentyLargestAccounts) {
  SimRun run = MakeRun("fcfs");
  run.summary.per_account.clear();
  for (int i = 0; i < 25; ++i) {
    run.summary.per_account.push_back(MakeAccount(fmt::format("acct-{:02}", i), 100.0 + i));
  }
  std::string table = FormatSummaryTable({run});
  EXPECT_THAT(table, HasSubstr("... and 5 more accounts (see --json)"));
  EXPECT_THAT(table, HasSubstr("acct-24"));
  EXPECT_THAT(table, HasSubstr("acct-05"));
  EXPECT_THAT(table, Not(HasSubstr("acct-04")));
  EXPECT_THAT(table, Not(HasSubstr("acct-00")));
}

// --- HTML -------------------------------------------------------------------------------------

// Every "http://" or "https://" in `html` that is not the SVG namespace.
std::vector<std::string> ExternalUrls(const std::string& html) {
  std::vector<std::string> urls;
  for (const char* scheme : {"http://", "https://"}) {
    for (size_t at = html.find(scheme); at != std::string::npos; at = html.find(scheme, at + 1)) {
      std::string url = html.substr(at, html.find_first_of("\" <>", at) - at);
      if (url != "http://www.w3.org/2000/svg") urls.push_back(url);
    }
  }
  return urls;
}

TEST(WriteHtmlReportTest, SelfContainedPageWithPlotsAndTables) {
  std::string dir = TestDir("html") + "/report";
  ASSERT_TRUE(WriteHtmlReport(dir, TwoRuns(), "lublin <256> & friends").ok());
  std::string html = ReadFile(dir + "/index.html");
  ASSERT_FALSE(html.empty());
  EXPECT_THAT(html, HasSubstr("<svg"));
  EXPECT_THAT(html, HasSubstr("fcfs"));
  EXPECT_THAT(html, HasSubstr("easy"));
  EXPECT_THAT(html, HasSubstr("<title>lublin &lt;256&gt; &amp; friends</title>"));
  EXPECT_THAT(html, Not(HasSubstr("lublin <256>")));
  EXPECT_THAT(ExternalUrls(html), ::testing::IsEmpty());
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("<link")));
  EXPECT_THAT(html, HasSubstr("<td class=\"name\">lab-a</td>"));
  EXPECT_THAT(html, HasSubstr("<td class=\"name\">lab-b</td>"));
  EXPECT_THAT(html, HasSubstr("GPU utilisation"));
  EXPECT_THAT(html, HasSubstr("Queue length"));
  EXPECT_THAT(html, HasSubstr("Why jobs waited: fcfs"));
  EXPECT_THAT(html, HasSubstr("Why jobs waited: easy"));
  EXPECT_THAT(html, HasSubstr(">resources<"));  // the legend of a reason that held jobs
  EXPECT_THAT(html, Not(HasSubstr(">topology<")));  // one that never did is left out
  EXPECT_THAT(html, HasSubstr("Job completion time (CDF)"));
  EXPECT_THAT(html, HasSubstr("nominal (8)"));  // lab-a's dashed nominal line
  EXPECT_THAT(html, HasSubstr("stroke-dasharray"));
  // Utilisation, queue, pending reasons of each run, two tracked accounts, lab-b's grants, JCT CDF.
  size_t plots = 0;
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1)) {
    ++plots;
  }
  EXPECT_EQ(plots, 8u);
}

TEST(WriteHtmlReportTest, ProgrammesPoolsGrantsAndTablesForTools) {
  std::string dir = TestDir("html_programmes") + "/report";
  ASSERT_TRUE(WriteHtmlReport(dir, TwoRuns(), "programmes").ok());
  std::string html = ReadFile(dir + "/index.html");
  EXPECT_THAT(html, HasSubstr("<h2>Programmes</h2>"));
  EXPECT_THAT(html, HasSubstr("<td>90.0%</td>"));  // lab-a's guarantee
  EXPECT_THAT(html, HasSubstr("Grants of lab-b: GPU-hours used"));
  EXPECT_THAT(html, HasSubstr("granted (20)"));
  EXPECT_THAT(html, HasSubstr("<td class=\"name\">b200</td>"));
  EXPECT_THAT(html, HasSubstr("<td>97.0%</td>"));  // b200's utilisation

  std::vector<std::string> programmes = Lines(ReadFile(dir + "/programmes.csv"));
  ASSERT_EQ(programmes.size(), 1u + 2 * 2);
  EXPECT_THAT(programmes[0], ::testing::StartsWith("policy,programme,nominal_gpus,accounts,jobs,gpu_hours,"
                                                   "own_gpu_hours,borrowed_gpu_hours,lent_gpu_hours,"));
  EXPECT_THAT(programmes[1], ::testing::StartsWith("fcfs,lab-a,8,"));
  EXPECT_THAT(programmes[4], ::testing::StartsWith("easy,lab-b,0,"));
  EXPECT_EQ(Lines(ReadFile(dir + "/pools.csv")).size(), 1u + 2 * 2);
  EXPECT_EQ(Lines(ReadFile(dir + "/accounts.csv")).size(), 1u + 2 * 2);
  nlohmann::json json = nlohmann::json::parse(ReadFile(dir + "/summary.json"));
  EXPECT_DOUBLE_EQ(json["fcfs"]["per_programme"][0]["guarantee"].get<double>(), 0.9);
  EXPECT_EQ(json["easy"]["per_pool"][1]["pool"], "b200");
}

TEST(WriteHtmlReportTest, LeavesOutPanelsWithNothingToShow) {
  SimRun run = MakeRun("fcfs");
  run.series.pending_jobs.assign(run.series.pending_jobs.size(), 0);
  run.summary.per_account.resize(1);
  std::string dir = TestDir("html_empty_panels") + "/report";
  ASSERT_TRUE(WriteHtmlReport(dir, {run}, "quiet").ok());
  std::string html = ReadFile(dir + "/index.html");
  EXPECT_THAT(html, Not(HasSubstr("Queue length")));   // nothing ever waited
  EXPECT_THAT(html, Not(HasSubstr("Why jobs waited")));
  EXPECT_THAT(html, Not(HasSubstr("Jain fairness")));  // a fairness index over one account
}

TEST(WriteHtmlReportTest, EscapesPolicyAndAccountNames) {
  std::vector<SimRun> runs = TwoRuns();
  runs[0].summary.policy = "fair<share>";
  runs[0].tracked[0].name = "lab&co";
  std::string dir = TestDir("html_escape");
  ASSERT_TRUE(WriteHtmlReport(dir, runs, "t").ok());
  std::string html = ReadFile(dir + "/index.html");
  EXPECT_THAT(html, HasSubstr("fair&lt;share&gt;"));
  EXPECT_THAT(html, HasSubstr("lab&amp;co"));
  EXPECT_THAT(html, Not(HasSubstr("fair<share>")));
  EXPECT_THAT(html, Not(HasSubstr("lab&co")));
}

TEST(WriteHtmlReportTest, DeterministicOutput) {
  std::string first = TestDir("html_first");
  std::string second = TestDir("html_second");
  ASSERT_TRUE(WriteHtmlReport(first, TwoRuns(), "same").ok());
  ASSERT_TRUE(WriteHtmlReport(second, TwoRuns(), "same").ok());
  EXPECT_EQ(ReadFile(first + "/index.html"), ReadFile(second + "/index.html"));
}

TEST(WriteHtmlReportTest, LongSeriesAreDownsampled) {
  // A year of minute buckets and a hundred thousand jobs still make a small page.
  SimRun run = MakeRun("fcfs");
  size_t buckets = size_t{365} * 24 * 60;
  run.series.allocated_gpus.assign(buckets, 16);
  run.series.pending_jobs.assign(buckets, 3);
  run.series.tracked_gpus.assign(2, std::vector<double>(buckets, 4));
  JobRecord job = run.jobs[0];
  for (int i = 0; i < 100000; ++i) {
    job.end = job.start + 10 + i;
    run.jobs.push_back(job);
  }
  std::string dir = TestDir("html_long");
  ASSERT_TRUE(WriteHtmlReport(dir, {run}, "long").ok());
  std::string html = ReadFile(dir + "/index.html");
  EXPECT_LT(html.size(), 200u * 1024);
  EXPECT_THAT(html, HasSubstr("time since start (days)"));
}

TEST(WriteHtmlReportTest, WorksWithoutSeriesOrJobs) {
  SimRun run;
  run.summary.policy = "empty";
  std::string dir = TestDir("html_empty");
  ASSERT_TRUE(WriteHtmlReport(dir, {run}, "nothing").ok());
  EXPECT_THAT(ReadFile(dir + "/index.html"), HasSubstr("no data"));
}

TEST(WriteHtmlReportTest, UncreatableDirectoryIsAnError) {
  Status status = WriteHtmlReport("/proc/nonexistent/report", TwoRuns(), "t");
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("/proc/nonexistent/report"));
}

}  // namespace
}  // namespace allot
