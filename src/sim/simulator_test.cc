#include "sim/simulator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/config.h"
#include "sim/command.h"
#include "sim/report.h"

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A CSV trace in memory: `submit_time,duration,gpus,account,time_limit`.
std::vector<TraceJob> Jobs(std::string_view rows) {
  std::string text = "submit_time,duration,gpus,account,time_limit\n" + std::string(rows);
  TraceReadOptions options;
  options.strict = true;
  options.gpus_per_node = 1;
  StatusOr<Trace> trace = ParseTrace(text, "test.csv", TraceFormat::kCsv, options);
  EXPECT_TRUE(trace.ok()) << trace.status().ToString();
  return trace.ok() ? trace->jobs : std::vector<TraceJob>{};
}

SimRun MustSimulate(const std::string& cluster, const std::vector<TraceJob>& jobs, const std::string& policy,
                    SimOptions options = {}) {
  std::vector<std::string> accounts;
  for (const TraceJob& job : jobs) accounts.push_back(job.account);
  StatusOr<Config> config = FlatClusterConfig(cluster, accounts);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(ApplyPolicyPreset(policy, config->policy).ok());
  options.policy_name = policy;
  if (options.source.empty()) options.source = "test.csv";
  StatusOr<SimRun> run = Simulate(std::move(*config), jobs, options);
  EXPECT_TRUE(run.ok()) << run.status().ToString();
  return run.ok() ? std::move(*run) : SimRun{};
}

std::vector<Time> Starts(const SimRun& run) {
  std::vector<Time> starts;
  for (const JobRecord& job : run.jobs) starts.push_back(job.start);
  return starts;
}

// ---- Hand-checked runs on tiny traces -------------------------------------------------------

// 4 GPUs. Job 1 (2 GPUs) runs 0-100. Job 2 needs all 4: it waits for job 1. Job 3 (1 GPU, 20 s)
// arrives at 10: FCFS keeps it behind job 2 (start 150, when job 2 ends); EASY backfills it at
// once, since it ends (30) before job 2's reservation (100).
constexpr std::string_view kBackfillTrace =
    "0,100,2,a,100\n"
    "0,50,4,a,100\n"
    "10,20,1,a,20\n";

TEST(SimulatorTest, FcfsKeepsTheQueueOrder) {
  SimRun run = MustSimulate("4x1", Jobs(kBackfillTrace), "fcfs");
  EXPECT_THAT(Starts(run), ElementsAre(0, 100, 150));
  EXPECT_EQ(run.summary.jobs, 3u);
  EXPECT_EQ(run.summary.makespan_s, 170);
  // Waits 0, 100, 140; JCTs 100, 150, 160.
  EXPECT_DOUBLE_EQ(run.summary.avg_wait_s, 80);
  EXPECT_DOUBLE_EQ(run.summary.avg_jct_s, 410.0 / 3);
  // Allocated GPU-seconds 2x100 + 4x50 + 1x20 = 420 of 4 x 170.
  EXPECT_NEAR(run.summary.utilization, 420.0 / 680, 1e-12);
}

// 1 GPU. Jobs 1 and 2 build history: account a's jobs run 10 s of a 1,000 s limit, b's run 500 s
// of 600. Job 3 holds the GPU from 530 to 630 while jobs 4 (a) and 5 (b) arrive.
constexpr std::string_view kHistoryTrace =
    "0,10,1,a,1000\n"
    "20,500,1,b,600\n"
    "530,100,1,c,100\n"
    "540,10,1,a,1000\n"
    "540,500,1,b,600\n";

TEST(SimulatorTest, SjfStartsTheShortestLimitFirst) {
  SimRun run = MustSimulate("1x1", Jobs(kHistoryTrace), "sjf");
  // At 630: job 5's limit (600) is shorter than job 4's (1,000).
  EXPECT_THAT(Starts(run), ElementsAre(0, 20, 530, 1130, 630));
}

TEST(SimulatorTest, PredictedStartsTheJobItsAccountsHistorySaysIsShortest) {
  SimRun run = MustSimulate("1x1", Jobs(kHistoryTrace), "predicted");
  // At 630: a's jobs ran 10 s, b's 500 s: job 4 goes first despite its longer limit.
  EXPECT_THAT(Starts(run), ElementsAre(0, 20, 530, 630, 640));
  EXPECT_LT(run.summary.avg_wait_s, MustSimulate("1x1", Jobs(kHistoryTrace), "sjf").summary.avg_wait_s);
}

TEST(SimulatorTest, EasyBackfillsAJobThatEndsBeforeTheReservation) {
  SimRun run = MustSimulate("4x1", Jobs(kBackfillTrace), "easy");
  EXPECT_THAT(Starts(run), ElementsAre(0, 100, 10));
  EXPECT_EQ(run.summary.makespan_s, 150);
  // Bounded slowdowns: 1, (100+50)/50 = 3, 1.
  EXPECT_DOUBLE_EQ(run.summary.avg_bsld, 5.0 / 3);
}

// 4 GPUs. Job 1 (3 GPUs) runs 0-100. Job 2 (2 GPUs) reserves t=100 on GPUs busy now, leaving 2
// extra GPUs at its start. Job 3 (4 GPUs) is second in line. Job 4 (1 GPU, 1000 s) fits the idle
// GPU: EASY protects only job 2, which it does not delay, so it starts at 1 and job 3 waits for
// it (1001). Conservative also protects job 3 (reserved at 200), so job 4 waits until job 3 ends.
constexpr std::string_view kConservativeTrace =
    "0,100,3,a,100\n"
    "1,100,2,a,100\n"
    "1,100,4,a,100\n"
    "1,1000,1,a,1000\n";

TEST(SimulatorTest, EasyProtectsOnlyTheFirstBlockedJob) {
  SimRun run = MustSimulate("4x1", Jobs(kConservativeTrace), "easy");
  EXPECT_THAT(Starts(run), ElementsAre(0, 100, 1001, 1));
}

TEST(SimulatorTest, ConservativeProtectsEveryBlockedJob) {
  SimRun run = MustSimulate("4x1", Jobs(kConservativeTrace), "conservative");
  EXPECT_THAT(Starts(run), ElementsAre(0, 100, 200, 300));
}

TEST(SimulatorTest, FairShareServesTheLighterAccountFirst) {
  // One GPU. Account a queues four 100 s jobs at 0; b queues two at 1. FIFO runs all of a's first;
  // fair share alternates once a has used the GPU: b1 at 100, then a2, b2, a3, a4.
  std::vector<TraceJob> jobs = Jobs(
      "0,100,1,a,100\n0,100,1,a,100\n0,100,1,a,100\n0,100,1,a,100\n"
      "1,100,1,b,100\n1,100,1,b,100\n");
  EXPECT_THAT(Starts(MustSimulate("1x1", jobs, "easy")), ElementsAre(0, 100, 200, 300, 400, 500));
  SimRun fair = MustSimulate("1x1", jobs, "fair-share");
  EXPECT_THAT(Starts(fair), ElementsAre(0, 200, 400, 500, 100, 300));
  ASSERT_EQ(fair.summary.per_account.size(), 2u);
  EXPECT_EQ(fair.summary.per_account[0].name, "a");
  EXPECT_DOUBLE_EQ(fair.summary.per_account[0].gpu_hours, 400.0 / 3600);
  EXPECT_DOUBLE_EQ(fair.summary.per_account[1].avg_wait_s, (99.0 + 299.0) / 2);
}

TEST(SimulatorTest, JobsRunningPastTheirLimitAreKilledThere) {
  SimRun run = MustSimulate("2x1", Jobs("0,500,1,a,100\n0,50,1,a,100\n"), "easy");
  ASSERT_EQ(run.jobs.size(), 2u);
  EXPECT_EQ(run.jobs[0].outcome, Outcome::kTimedOut);
  EXPECT_EQ(run.jobs[0].end, 100);
  EXPECT_EQ(run.jobs[1].outcome, Outcome::kCompleted);
  EXPECT_EQ(run.summary.timed_out, 1u);
  EXPECT_EQ(run.summary.completed, 1u);
}

TEST(SimulatorTest, ACompletionBeforeTheTimeLimitStartsTheNextJobAtOnce) {
  // Job 1 asks for 1000 s and ends at 10; job 2, which waited for it, starts at 10.
  SimRun run = MustSimulate("1x1", Jobs("0,10,1,a,1000\n0,10,1,a,1000\n"), "fcfs");
  EXPECT_THAT(Starts(run), ElementsAre(0, 10));
}

TEST(SimulatorTest, JobsLargerThanTheClusterAreRejectedAndCounted) {
  std::vector<TraceJob> jobs = Jobs("0,10,1,a,10\n5,10,8,a,10\n");
  SimRun run = MustSimulate("4x1", jobs, "easy");
  EXPECT_EQ(run.jobs[1].outcome, Outcome::kRejected);
  EXPECT_EQ(run.summary.rejected, 1u);
  EXPECT_EQ(run.summary.jobs, 1u);
  ASSERT_EQ(run.problems.size(), 1u);
  EXPECT_THAT(run.problems[0], HasSubstr("test.csv:3: job 2 rejected"));
  EXPECT_THAT(run.problems[0], HasSubstr("at most 4 such tasks"));

  // --strict makes it an error.
  std::vector<std::string> accounts = {"a"};
  StatusOr<Config> config = FlatClusterConfig("4x1", accounts);
  ASSERT_TRUE(config.ok());
  SimOptions strict;
  strict.strict = true;
  strict.source = "test.csv";
  StatusOr<SimRun> failed = Simulate(std::move(*config), jobs, strict);
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(failed.status().message(), HasSubstr("test.csv:3"));
}

TEST(SimulatorTest, CancellationsEndPendingAndRunningJobs) {
  std::string text =
      "submit_time,duration,gpus,account,time_limit,cancel_after\n"
      "0,100,1,a,100,30\n"   // cancelled while running, at 30
      "0,100,1,a,100,20\n"   // cancelled while pending, at 20
      "0,100,1,a,100,\n";    // runs from 30, when the GPU comes free
  StatusOr<Trace> trace = ParseTrace(text, "cancel.csv", TraceFormat::kCsv, {});
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  SimRun run = MustSimulate("1x1", trace->jobs, "fcfs");
  EXPECT_EQ(run.jobs[0].outcome, Outcome::kCancelled);
  EXPECT_EQ(run.jobs[0].end, 30);
  EXPECT_EQ(run.jobs[1].outcome, Outcome::kCancelled);
  EXPECT_EQ(run.jobs[1].start, -1);
  EXPECT_EQ(run.jobs[2].start, 30);
  EXPECT_EQ(run.summary.cancelled, 2u);
}

TEST(SimulatorTest, ANodeFailureRequeuesItsJobAndCountsTheLostWork) {
  SimOptions options;
  options.node_events = {{40, "n1", NodeState::kDown}, {60, "n1", NodeState::kUp}};
  SimRun run = MustSimulate("1x2", Jobs("0,100,2,a,200\n"), "easy", options);
  ASSERT_EQ(run.jobs.size(), 1u);
  const JobRecord& job = run.jobs[0];
  EXPECT_EQ(job.restarts, 1);
  EXPECT_DOUBLE_EQ(job.lost_gpu_seconds, 2 * 40);
  EXPECT_EQ(job.start, 60);  // requeued, started over when the node came back
  EXPECT_EQ(job.end, 160);
  EXPECT_EQ(run.summary.node_failures, 1u);
  EXPECT_DOUBLE_EQ(run.summary.gpu_hours_lost, 80.0 / 3600);
  // The wait a user sees ends at the first start; the 20 s lost to the failure count apart.
  EXPECT_EQ(job.first_start, 0);
  EXPECT_EQ(job.wait(), 0);
  EXPECT_EQ(job.recovering, 20);
  EXPECT_EQ(job.recovered, 1);
  EXPECT_DOUBLE_EQ(run.summary.avg_wait_s, 0);
  ASSERT_EQ(run.summary.per_account.size(), 1u);
  const AccountSummary& account = run.summary.per_account[0];
  EXPECT_EQ(account.restarts, 1u);
  EXPECT_DOUBLE_EQ(account.lost_gpu_hours, 80.0 / 3600);
  EXPECT_DOUBLE_EQ(account.avg_recover_s, 20);
  // Slowdown still counts the whole time from submit to end, against the last execution.
  EXPECT_DOUBLE_EQ(run.summary.avg_bsld, 160.0 / 100);
}

// ---- Programmes: own, borrowed and lent GPU-time, and the guarantee --------------------------

// One 8-GPU node shared by two programmes with 4 GPUs of nominal each, a under public and b
// under industry. b runs two 4-GPU jobs from 0 to 1000, the second on a's idle nominal; a asks
// for its 4 GPUs at 100, for 100 s.
constexpr std::string_view kTwoProgrammes = R"(
pools:
  - name: p
nodes:
  - {name: n, count: 1, pool: p}
accounts:
  - name: public
    children:
      - {name: a, quota: {p: 4}}
  - name: industry
    children:
      - {name: b, quota: {p: 4}}
policy: {queue_order: fifo, backfill: easy, pass_interval: 10s, preemption: {reclaim: RECLAIM}}
)";

SimRun SimulateProgrammes(bool reclaim, std::string_view rows) {
  std::string yaml(kTwoProgrammes);
  yaml.replace(yaml.find("RECLAIM"), 7, reclaim ? "true" : "false");
  StatusOr<Config> config = ParseConfig(yaml, "programmes.yaml");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  SimOptions options;
  options.source = "programmes.csv";
  StatusOr<SimRun> run = Simulate(std::move(*config), Jobs(rows), options);
  EXPECT_TRUE(run.ok()) << run.status().ToString();
  return run.ok() ? std::move(*run) : SimRun{};
}

const ProgrammeSummary& Programme(const SimRun& run, std::string_view name) {
  for (const ProgrammeSummary& programme : run.summary.per_programme) {
    if (programme.name == name) return programme;
  }
  ADD_FAILURE() << "no programme " << name;
  static const ProgrammeSummary kNone;
  return kNone;
}

TEST(ProgrammeTest, WhatOneBorrowsAnotherLent) {
  // No demand from a: b's second job runs on a's idle nominal all along.
  SimRun run = SimulateProgrammes(/*reclaim=*/true, "0,1000,4,b,2000\n0,1000,4,b,2000\n");
  ASSERT_EQ(run.summary.per_programme.size(), 2u);
  const ProgrammeSummary& a = Programme(run, "a");
  const ProgrammeSummary& b = Programme(run, "b");
  EXPECT_EQ(a.nominal_gpus, 4);
  EXPECT_DOUBLE_EQ(b.own_gpu_hours, 4 * 1000 / 3600.0);
  EXPECT_DOUBLE_EQ(b.borrowed_gpu_hours, 4 * 1000 / 3600.0);
  EXPECT_DOUBLE_EQ(a.lent_gpu_hours, b.borrowed_gpu_hours);
  EXPECT_DOUBLE_EQ(a.own_gpu_hours, 0);
  EXPECT_DOUBLE_EQ(b.lent_gpu_hours, 0);
  EXPECT_DOUBLE_EQ(b.gpu_hours, b.own_gpu_hours + b.borrowed_gpu_hours);
  // b's demand (8) reached its nominal (4) the whole time, and it held it.
  EXPECT_DOUBLE_EQ(b.demanded_s, 1000);
  EXPECT_DOUBLE_EQ(b.guarantee, 1);
  EXPECT_DOUBLE_EQ(b.share_when_demanded, 1);
  EXPECT_DOUBLE_EQ(a.demanded_s, 0);
  ASSERT_EQ(run.summary.per_pool.size(), 1u);
  EXPECT_EQ(run.summary.per_pool[0].gpus, 8);
  EXPECT_EQ(run.summary.per_pool[0].nominal_gpus, 8);
  EXPECT_DOUBLE_EQ(run.summary.per_pool[0].utilization, 1);
}

TEST(ProgrammeTest, AProgrammeKeptFromItsNominalBreaksTheGuarantee) {
  // Without reclaim, a waits from 100 until b's jobs end at 1000: 900 s short of its nominal,
  // of which the first pass interval (10 s) is forgiven. a is demanded from 100 to 1100.
  std::string rows = "0,1000,4,b,2000\n0,1000,4,b,2000\n100,100,4,a,200\n";
  SimRun starved = SimulateProgrammes(/*reclaim=*/false, rows);
  const ProgrammeSummary& a = Programme(starved, "a");
  EXPECT_DOUBLE_EQ(a.demanded_s, 1000);
  EXPECT_DOUBLE_EQ(a.shortfall_s, 890);
  EXPECT_NEAR(a.guarantee, 0.11, 1e-9);
  EXPECT_DOUBLE_EQ(a.avg_wait_s, 900);
  EXPECT_DOUBLE_EQ(Programme(starved, "b").guarantee, 1);

  // With reclaim, b's borrowing job is preempted at 100 and a starts at once.
  SimRun served = SimulateProgrammes(/*reclaim=*/true, rows);
  const ProgrammeSummary& served_a = Programme(served, "a");
  EXPECT_DOUBLE_EQ(served_a.shortfall_s, 0);
  EXPECT_DOUBLE_EQ(served_a.guarantee, 1);
  EXPECT_DOUBLE_EQ(served_a.avg_wait_s, 0);
  EXPECT_EQ(Programme(served, "b").restarts, 1u);
  EXPECT_GT(Programme(served, "b").lost_gpu_hours, 0);
}

TEST(ProgrammeTest, AnAccountHoldingItsChildrensQuotaHasARow) {
  // `grantees` holds the quota its children run under: it is the quota holder, and the report
  // has its row although no job was submitted to it.
  StatusOr<Config> config = ParseConfig(R"(
pools:
  - name: p
nodes:
  - {name: n, count: 1, pool: p}
accounts:
  - name: public
    children:
      - name: grantees
        quota: {p: 4}
        children: [{name: g1}, {name: g2}]
  - name: industry
    children:
      - {name: b, quota: {p: 4}}
policy: {queue_order: fifo, backfill: easy, pass_interval: 10s, preemption: {reclaim: false}}
)", "holders.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  SimOptions options;
  StatusOr<SimRun> run = Simulate(std::move(*config), Jobs("0,1000,8,b,2000\n100,100,2,g1,200\n100,100,2,g2,200\n"),
                                  options);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  const AccountSummary* grantees = nullptr;
  for (const AccountSummary& account : run->summary.per_account) {
    if (account.name == "grantees") grantees = &account;
  }
  ASSERT_NE(grantees, nullptr);
  EXPECT_TRUE(grantees->quota_holder);
  EXPECT_EQ(grantees->nominal_gpus, 4);
  // Its grantees waited for b's borrowed GPUs from 100 to 1000 (overdue from 110): short.
  EXPECT_DOUBLE_EQ(grantees->demanded_s, 1000);
  EXPECT_DOUBLE_EQ(grantees->shortfall_s, 890);
  EXPECT_NEAR(Programme(*run, "grantees").guarantee, 0.11, 1e-9);
}

TEST(ProgrammeTest, AJobTooBigForWhatIsMissingIsNoShortfall) {
  // a holds 2 of its 4 GPUs and waits for an 8-GPU job: nothing it waits for fits in the 2 it
  // is missing, so its guarantee holds while b uses the rest.
  std::string rows = "0,1000,2,a,2000\n0,1000,4,b,2000\n0,1000,2,b,2000\n10,100,8,a,200\n";
  SimRun run = SimulateProgrammes(/*reclaim=*/false, rows);
  const ProgrammeSummary& a = Programme(run, "a");
  EXPECT_GT(a.demanded_s, 0);
  EXPECT_DOUBLE_EQ(a.shortfall_s, 0);
  EXPECT_DOUBLE_EQ(a.guarantee, 1);
}

TEST(SimulatorTest, ACheckpointedJobResumesWhereItSavedLast) {
  // Checkpoints every 30 s: the failure at 40 keeps 30 s of work and loses 10; the job resumes at
  // 60 with 70 s to go and ends at 130.
  std::vector<TraceJob> jobs = Jobs("0,100,2,a,200\n");
  jobs[0].checkpoint_interval = 30;
  SimOptions options;
  options.node_events = {{40, "n1", NodeState::kDown}, {60, "n1", NodeState::kUp}};
  SimRun run = MustSimulate("1x2", jobs, "easy", options);
  EXPECT_EQ(run.jobs[0].start, 60);
  EXPECT_EQ(run.jobs[0].end, 130);
  EXPECT_EQ(run.jobs[0].outcome, Outcome::kCompleted);
  EXPECT_DOUBLE_EQ(run.jobs[0].lost_gpu_seconds, 2 * 10);
}

// 8 GPUs. Job 1 (8 GPUs, 2 h, a checkpoint every 10 min) has 4 GPU-hours by 1,800, when job 2
// (1 GPU, 60 s) arrives. las preempts job 1 for it: job 2 runs 1,800-1,860, and job 1 resumes
// from its checkpoint at 1,800 with 5,400 s to go, ending at 7,260. EASY keeps job 2 waiting to 7,200.
TEST(SimulatorTest, LasPreemptsALongJobForANewOneThatResumesFromItsCheckpoint) {
  std::vector<TraceJob> jobs = Jobs("0,7200,8,a,7200\n1800,60,1,b,60\n");
  jobs[0].checkpoint_interval = 600;
  SimRun las = MustSimulate("1x8", jobs, "las");
  EXPECT_EQ(las.jobs[1].start, 1800);
  EXPECT_EQ(las.jobs[1].end, 1860);
  EXPECT_EQ(las.jobs[0].end, 7260);
  EXPECT_EQ(las.jobs[0].restarts, 1);
  EXPECT_DOUBLE_EQ(las.jobs[0].lost_gpu_seconds, 0);
  EXPECT_EQ(las.summary.preemptions, 1u);
  EXPECT_DOUBLE_EQ(las.summary.avg_jct_s, (7260.0 + 60.0) / 2);

  SimRun easy = MustSimulate("1x8", jobs, "easy");
  EXPECT_EQ(easy.jobs[1].start, 7200);
  EXPECT_EQ(easy.summary.preemptions, 0u);
}

TEST(SimulatorTest, PassIntervalBatchesEvents) {
  // With passes at least 60 s apart, the job arriving at 10 waits for the pass at 60.
  SimOptions options;
  options.pass_interval = 60;
  SimRun run = MustSimulate("2x1", Jobs("0,100,1,a,100\n10,100,1,a,100\n"), "easy", options);
  EXPECT_THAT(Starts(run), ElementsAre(0, 60));
  // Passes at 0 and 60; the ends at 100 and 160 wait for the passes at 120 and 180.
  EXPECT_EQ(run.summary.passes, 4u);
  EXPECT_EQ(run.jobs[1].end, 160);
}

TEST(SimulatorTest, HorizonStopsTheRunWithJobsUnfinished) {
  SimOptions options;
  options.horizon = 50;
  SimRun run = MustSimulate("1x1", Jobs("0,100,1,a,100\n0,100,1,a,100\n"), "easy", options);
  EXPECT_EQ(run.summary.unfinished, 2u);
  EXPECT_EQ(run.summary.makespan_s, 50);
  EXPECT_DOUBLE_EQ(run.summary.utilization, 1.0);
}

TEST(SimulatorTest, TimeSeriesAveragesAllocationPerBucket) {
  SimOptions options;
  options.sample_step = 100;
  SimRun run = MustSimulate("2x1", Jobs("0,150,2,a,150\n"), "easy", options);
  // Bucket [0,100): 2 GPUs all along; [100,150): 2 GPUs over its 50 s.
  EXPECT_THAT(run.series.allocated_gpus, ElementsAre(2.0, 2.0));
  ASSERT_EQ(run.tracked.size(), 1u);
  EXPECT_EQ(run.tracked[0].name, "a");
}

// kBackfillTrace under FCFS, sampled every 50 s: job 2 waits from 0 to 100 (bucket 1 has no pass
// and carries bucket 0's count), job 3 from 10 to 150; the queue is empty from 150.
TEST(SimulatorTest, PendingReasonsAreSampledOncePerBucket) {
  SimOptions options;
  options.sample_step = 50;
  SimRun run = MustSimulate("4x1", Jobs(kBackfillTrace), "fcfs", options);
  const auto& by_reason = run.series.pending_by_reason;
  ASSERT_EQ(by_reason.size(), static_cast<size_t>(ReasonCode::kPreempted) + 1);
  std::vector<double> totals(run.series.allocated_gpus.size(), 0);
  for (const std::vector<double>& line : by_reason) {
    ASSERT_EQ(line.size(), totals.size());
    for (size_t bucket = 0; bucket < line.size(); ++bucket) totals[bucket] += line[bucket];
  }
  EXPECT_THAT(totals, ElementsAre(1.0, 1.0, 1.0, 0.0));
  // Every waiting job has been looked at: none is without a reason.
  for (double count : by_reason[static_cast<size_t>(ReasonCode::kNone)]) EXPECT_EQ(count, 0);
}

// Two nodes of 2 GPUs, each its own NVLink domain. A 1-GPU job leaves its node half used: one GPU
// fragmented all along; a 2-GPU job fills its node: none.
TEST(SimulatorTest, FragmentationCountsIdleGpusInPartlyUsedDomains) {
  SimOptions options;
  options.sample_step = 50;
  SimRun half = MustSimulate("2x2", Jobs("0,100,1,a,100\n"), "easy", options);
  ASSERT_EQ(half.summary.per_pool.size(), 1u);
  EXPECT_DOUBLE_EQ(half.summary.per_pool[0].fragmented_gpus, 1.0);
  SimRun whole = MustSimulate("2x2", Jobs("0,100,2,a,100\n"), "easy", options);
  EXPECT_DOUBLE_EQ(whole.summary.per_pool[0].fragmented_gpus, 0.0);
}

TEST(SimulatorTest, FlatClusterSpecIsChecked) {
  EXPECT_EQ(FlatClusterConfig("256", {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FlatClusterConfig("4x17", {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FlatClusterConfig("0x1", {}).status().code(), StatusCode::kInvalidArgument);
  StatusOr<Config> config = FlatClusterConfig("64x8", {"b", "a", "b"});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->cluster.total_gpus(), 512);
  EXPECT_EQ(config->cluster.pool(0).domains_by_level[static_cast<int>(Level::kLeaf)].size(), 2u);
  EXPECT_EQ(config->accounts.accounts().size(), 3u);  // root, a, b
}

TEST(SimulatorTest, FlatClusterTakesGroupsOfMixedShapes) {
  StatusOr<Config> config = FlatClusterConfig("812x8,1x4", {"a"});
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->cluster.total_gpus(), 812 * 8 + 4);
  EXPECT_EQ(config->cluster.nodes().size(), 813u);
  EXPECT_EQ(config->cluster.nodes().back().gpus, 4);
  for (const char* bad : {"812x8,", ",1x4", "812x8,,1x4", "812x8;1x4", "812x8,1x0", "600000x1,600000x1"}) {
    StatusOr<Config> refused = FlatClusterConfig(bad, {"a"});
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  // A job of 8 GPUs never lands on the 4-GPU node; one of 4 may.
  SimRun run = MustSimulate("1x8,1x4", Jobs("0,100,8,a,100\n0,100,4,a,100\n0,100,4,a,100\n"), "easy");
  EXPECT_THAT(Starts(run), ElementsAre(0, 0, 100));
}

TEST(SimulatorTest, UnknownPolicyNamesTheKnownOnes) {
  PolicyConfig policy;
  Status status = ApplyPolicyPreset("lifo", policy);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("fcfs, easy, conservative, fair-share"));
}

// ---- Cross-check against an independent brute-force reference -------------------------------

struct ReferenceJob {
  Time submit;
  Duration run;    // already cut at the limit
  Duration limit;
  int size;
};

// Textbook FCFS and EASY (Mu'alem and Feitelson 2001) on `nodes` identical 1-GPU nodes, written
// from the definition with no code shared with allot: at every moment something arrives or ends,
// start queue heads while they fit; with EASY, give the first blocked job a shadow time from the
// running jobs' limits and let later jobs start if they fit now and either end by the shadow time
// or use only nodes the first job will not need then.
std::vector<Time> ReferenceStarts(const std::vector<ReferenceJob>& jobs, int nodes, bool easy) {
  std::vector<Time> start(jobs.size(), -1);
  std::vector<size_t> queue;
  std::vector<size_t> running;
  size_t next = 0;
  int free = nodes;
  while (next < jobs.size() || !queue.empty() || !running.empty()) {
    Time now = kForever;
    if (next < jobs.size()) now = jobs[next].submit;
    for (size_t r : running) now = std::min(now, start[r] + jobs[r].run);
    for (size_t i = 0; i < running.size();) {
      size_t r = running[i];
      if (start[r] + jobs[r].run == now) {
        free += jobs[r].size;
        running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    while (next < jobs.size() && jobs[next].submit == now) queue.push_back(next++);
    while (!queue.empty() && jobs[queue.front()].size <= free) {
      size_t j = queue.front();
      queue.erase(queue.begin());
      start[j] = now;
      free -= jobs[j].size;
      running.push_back(j);
    }
    if (!easy || queue.empty()) continue;
    // Shadow time: when enough running jobs will have reached their limits for the head.
    std::vector<std::pair<Time, int>> ends;
    for (size_t r : running) ends.emplace_back(start[r] + jobs[r].limit, jobs[r].size);
    std::sort(ends.begin(), ends.end());
    int head = jobs[queue.front()].size;
    int available = free;
    Time shadow = now;
    for (auto [end, size] : ends) {
      if (available >= head) break;
      available += size;
      shadow = end;
    }
    int extra = available - head;
    for (size_t q = 1; q < queue.size();) {
      size_t j = queue[q];
      bool ends_in_time = now + jobs[j].limit <= shadow;
      if (jobs[j].size <= free && (ends_in_time || jobs[j].size <= extra)) {
        start[j] = now;
        free -= jobs[j].size;
        if (!ends_in_time) extra -= jobs[j].size;
        running.push_back(j);
        queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(q));
      } else {
        ++q;
      }
    }
  }
  return start;
}

class LublinCrossCheck : public ::testing::TestWithParam<size_t> {};

TEST_P(LublinCrossCheck, FcfsAndEasyMatchTheReference) {
  std::string path = std::string(ALLOT_SOURCE_DIR) + "/../shared/traces/lublin_256.swf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not here";
  StatusOr<Trace> trace = ReadTrace(path, TraceFormat::kSwf, {});
  ASSERT_TRUE(trace.ok()) << trace.status().ToString();
  size_t prefix = std::min(GetParam(), trace->jobs.size());
  std::vector<TraceJob> jobs(trace->jobs.begin(), trace->jobs.begin() + static_cast<std::ptrdiff_t>(prefix));
  std::vector<ReferenceJob> reference;
  for (const TraceJob& job : jobs) {
    reference.push_back({job.submit, std::min(job.runtime, job.time_limit), job.time_limit, job.tasks});
  }
  for (bool easy : {false, true}) {
    SimRun run = MustSimulate("256x1", jobs, easy ? "easy" : "fcfs");
    std::vector<Time> expected = ReferenceStarts(reference, 256, easy);
    std::vector<Time> actual = Starts(run);
    ASSERT_EQ(actual.size(), expected.size());
    size_t mismatches = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
      if (actual[i] == expected[i]) continue;
      if (++mismatches <= 5) {
        ADD_FAILURE() << (easy ? "easy" : "fcfs") << ": job " << jobs[i].id << " started at "
                      << actual[i] << ", reference " << expected[i];
      }
    }
    EXPECT_EQ(mismatches, 0u) << (easy ? "easy" : "fcfs");
  }
}

// The whole trace takes seconds in a release build and many minutes under the sanitizers, which
// check the same code on the shorter prefixes.
#if defined(__SANITIZE_ADDRESS__)
INSTANTIATE_TEST_SUITE_P(Prefixes, LublinCrossCheck, ::testing::Values(500, 2000));
#else
INSTANTIATE_TEST_SUITE_P(Prefixes, LublinCrossCheck, ::testing::Values(500, 2000, 10000));
#endif

// ---- The command: determinism and outputs ---------------------------------------------------

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(SimCommandTest, SameInputsAndSeedGiveByteIdenticalOutput) {
  std::string dir = ::testing::TempDir() + "/sim_determinism";
  std::filesystem::create_directories(dir);
  SimCommand command;
  command.config = std::string(ALLOT_SOURCE_DIR) + "/tests/traces/small-pool.yaml";
  command.format = TraceFormat::kNational;
  command.policies = {"fair-share", "easy"};
  command.seed = 7;
  command.national_jobs = 1000;
  std::vector<std::string> outputs;
  for (int round = 0; round < 2; ++round) {
    command.json_path = fmt::format("{}/run{}.json", dir, round);
    command.jobs_csv_path = fmt::format("{}/run{}.csv", dir, round);
    StatusOr<std::vector<SimRun>> runs = RunSimCommand(command);
    ASSERT_TRUE(runs.ok()) << runs.status().ToString();
    ASSERT_EQ(runs->size(), 2u);
    EXPECT_GT(runs->front().summary.jobs, 100u);
    // Fewer jobs than the model's over the same days: the run says the load is lighter.
    ASSERT_EQ(runs->front().notes.size(), 1u);
    EXPECT_THAT(runs->front().notes[0], HasSubstr("became 1000 over the same days"));
    ASSERT_TRUE(WriteSimOutputs(command, *runs).ok());
    // Wall time and memory are measurements of this process, not results; the rest must match.
    nlohmann::json json = nlohmann::json::parse(ReadFile(command.json_path));
    for (auto& [policy, summary] : json.items()) {
      summary.erase("sim_wall_s");
      summary.erase("peak_rss_bytes");
    }
    outputs.push_back(json.dump() + ReadFile(command.jobs_csv_path));
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  // A different seed gives a different workload.
  command.policies = {"easy"};
  command.seed = 8;
  StatusOr<std::vector<SimRun>> other = RunSimCommand(command);
  ASSERT_TRUE(other.ok());
  command.seed = 7;
  StatusOr<std::vector<SimRun>> again = RunSimCommand(command);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(other->front().summary.avg_wait_s, again->front().summary.avg_wait_s);
}

TEST(SimCommandTest, BadInputSaysWhatToFix) {
  SimCommand command;
  command.trace = "x.swf";
  EXPECT_THAT(RunSimCommand(command).status().message(), HasSubstr("--config FILE or --cluster"));
  command.cluster = "4x1";
  command.policies = {"easy", "lottery"};
  EXPECT_THAT(RunSimCommand(command).status().message(), HasSubstr("unknown policy 'lottery'"));
  command.policies = {"easy"};
  command.trace = std::string(ALLOT_SOURCE_DIR) + "/tests/traces/nonexistent.swf";
  EXPECT_EQ(RunSimCommand(command).status().code(), StatusCode::kNotFound);
  command.trace = std::string(ALLOT_SOURCE_DIR) + "/tests/traces/bad.swf";
  command.strict = true;
  EXPECT_THAT(RunSimCommand(command).status().message(), HasSubstr("bad.swf:"));
}

// --checkpoint reaches the trace's jobs and --las-thresholds / --las-promote every policy's
// config; bad values are refused before anything runs.
TEST(SimCommandTest, CheckpointAndLasSettingsApplyToTheRun) {
  SimCommand command;
  command.cluster = "16x1";
  command.trace = std::string(ALLOT_SOURCE_DIR) + "/tests/traces/tiny.swf";
  command.policies = {"las"};
  StatusOr<std::vector<SimRun>> plain = RunSimCommand(command);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  command.checkpoint_interval = 60;
  command.las_thresholds = {0.01, 0.1};
  command.las_promote = 0;
  StatusOr<std::vector<SimRun>> tuned = RunSimCommand(command);
  ASSERT_TRUE(tuned.ok()) << tuned.status().ToString();
  EXPECT_EQ(tuned->front().summary.jobs, plain->front().summary.jobs);

  command.las_thresholds = {1, 0.5};
  EXPECT_THAT(RunSimCommand(command).status().message(), HasSubstr("--las-thresholds: expected positive GPU-hours, ascending"));
  command.las_thresholds = {};
  command.las_promote = 2e6;
  EXPECT_THAT(RunSimCommand(command).status().message(), HasSubstr("--las-promote"));
  command.las_promote = -1;
  command.cluster.clear();
  command.config = std::string(ALLOT_SOURCE_DIR) + "/tests/traces/small-pool.yaml";
  command.format = TraceFormat::kNational;
  command.trace.clear();
  EXPECT_THAT(RunSimCommand(command).status().message(), HasSubstr("--checkpoint applies to a trace"));
}

TEST(SimCommandTest, WritesTheReportDirectory) {
  std::string dir = ::testing::TempDir() + "/sim_report";
  std::filesystem::remove_all(dir);
  SimCommand command;
  command.cluster = "16x1";
  command.trace = std::string(ALLOT_SOURCE_DIR) + "/tests/traces/tiny.swf";
  command.policies = {"fcfs", "easy"};
  command.report_dir = dir;
  StatusOr<std::vector<SimRun>> runs = RunSimCommand(command);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  ASSERT_TRUE(WriteSimOutputs(command, *runs).ok());
  std::string html = ReadFile(dir + "/index.html");
  EXPECT_THAT(html, HasSubstr("<svg"));
  EXPECT_THAT(html, HasSubstr("fcfs"));
  EXPECT_THAT(html, HasSubstr("easy"));
}

}  // namespace
}  // namespace allot
