// The las order: queues by attained service, preemption across queues, promotion, and the
// config that sets them.
#include "sched/las.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string_view>
#include <variant>
#include <vector>

#include "core/config.h"
#include "sched/scheduler.h"

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// One node of 8 GPUs. Queues: under 1 GPU-hour, 1-4, 4 and more.
constexpr std::string_view kLas = R"(
pools:
  - name: p
nodes:
  - {name: n, pool: p}
accounts:
  - {name: solo, quota: {p: 8}}
policy:
  queue_order: las
  backfill: first_fit
  las_thresholds: [1, 4]
  las_promote: 1
)";

std::unique_ptr<Scheduler> Make(std::string_view yaml) {
  StatusOr<Config> config = ParseConfig(yaml, "test");
  EXPECT_TRUE(config.ok()) << config.status().message();
  if (!config.ok()) return nullptr;
  StatusOr<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create(std::move(config).value());
  EXPECT_TRUE(scheduler.ok()) << scheduler.status().message();
  return scheduler.ok() ? std::move(scheduler).value() : nullptr;
}

JobSpec Spec(int gpus, Duration time_limit = 36000) {
  JobSpec spec;
  spec.account = "solo";
  spec.tasks = 1;
  spec.gpus_per_task = gpus;
  spec.time_limit = time_limit;
  return spec;
}

template <typename T>
std::vector<T> Of(const PassResult& pass) {
  std::vector<T> out;
  for (const Decision& decision : pass.decisions) {
    if (const T* typed = std::get_if<T>(&decision)) out.push_back(*typed);
  }
  return out;
}

TEST(LasLevelsTest, AJobPassesAThresholdWhenItsServiceReachesIt) {
  LasLevels levels({1, 4}, 0);
  EXPECT_EQ(levels.OfService(0), 0);
  EXPECT_EQ(levels.OfService(3599), 0);
  EXPECT_EQ(levels.OfService(3600), 1);
  EXPECT_EQ(levels.OfService(4 * 3600 - 1), 1);
  EXPECT_EQ(levels.OfService(4 * 3600), 2);
  EXPECT_EQ(levels.OfService(1e12), 2);

  Job job;
  job.spec.tasks = 1;
  job.spec.gpus_per_task = 8;
  job.attained_gpu_seconds = 3600;  // an earlier run
  job.state = JobState::kRunning;
  job.start_time = 100;
  // 1 GPU-hour before, 8 GPUs x 1,350 s = 3 GPU-hours now: 4 in all.
  EXPECT_DOUBLE_EQ(LasLevels::Attained(job, 1450), 4 * 3600.0);
  EXPECT_EQ(levels.Of(job, 1449), 1);
  EXPECT_EQ(levels.Of(job, 1450), 2);
}

// Job 1 holds the node for half an hour: 4 GPU-hours, the last queue. A new 1-GPU job (queue 0)
// preempts it; the victim keeps what it attained and waits in its queue.
TEST(LasTest, ANewJobPreemptsAJobThatHasAttainedMore) {
  std::unique_ptr<Scheduler> scheduler = Make(kLas);
  ASSERT_NE(scheduler, nullptr);
  ASSERT_TRUE(scheduler->Submit(1, Spec(8), 0).ok());
  ASSERT_EQ(scheduler->RunPass(0).started, 1u);

  ASSERT_TRUE(scheduler->Submit(2, Spec(1), 1800).ok());
  PassResult pass = scheduler->RunPass(1800);
  std::vector<PreemptDecision> preempts = Of<PreemptDecision>(pass);
  ASSERT_EQ(preempts.size(), 1u);
  EXPECT_EQ(preempts[0].victim, 1u);
  EXPECT_EQ(preempts[0].preemptor, 2u);
  EXPECT_TRUE(preempts[0].requeued);
  EXPECT_THAT(preempts[0].reason, HasSubstr("least attained service"));
  EXPECT_THAT(preempts[0].reason, HasSubstr("4.00 GPU-hours, queue 2"));
  std::vector<StartDecision> starts = Of<StartDecision>(pass);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].job, 2u);

  const Job& victim = *scheduler->model().FindJob(1);
  EXPECT_EQ(victim.state, JobState::kPending);
  EXPECT_DOUBLE_EQ(victim.attained_gpu_seconds, 8 * 1800.0);
  EXPECT_EQ(victim.requeue_time, 1800);
  EXPECT_EQ(victim.restarts, 1);
  EXPECT_THAT(victim.reason.message, HasSubstr("preempted by job 2"));
}

// Jobs in the same queue keep their order: a running job of queue 0 is not preempted by a new one.
TEST(LasTest, AJobInTheSameQueueIsNotPreempted) {
  std::unique_ptr<Scheduler> scheduler = Make(kLas);
  ASSERT_NE(scheduler, nullptr);
  ASSERT_TRUE(scheduler->Submit(1, Spec(8), 0).ok());
  ASSERT_EQ(scheduler->RunPass(0).started, 1u);
  ASSERT_TRUE(scheduler->Submit(2, Spec(1), 300).ok());  // job 1: 8 x 300 s = 0.67 GPU-hours
  PassResult pass = scheduler->RunPass(300);
  EXPECT_THAT(Of<PreemptDecision>(pass), IsEmpty());
  EXPECT_EQ(scheduler->model().FindJob(1)->state, JobState::kRunning);
  EXPECT_EQ(scheduler->model().FindJob(2)->state, JobState::kPending);
}

// Waiting jobs go by queue, then submit time: a job that has not run goes before one that has,
// even one submitted earlier.
TEST(LasTest, WaitingJobsGoLeastAttainedFirst) {
  std::unique_ptr<Scheduler> scheduler = Make(kLas);
  ASSERT_NE(scheduler, nullptr);
  ASSERT_TRUE(scheduler->Submit(1, Spec(8), 0).ok());
  ASSERT_EQ(scheduler->RunPass(0).started, 1u);
  ASSERT_TRUE(scheduler->Submit(2, Spec(8, 600), 1800).ok());  // preempts job 1
  ASSERT_EQ(scheduler->RunPass(1800).preempted, 1u);
  ASSERT_TRUE(scheduler->Submit(3, Spec(8), 1900).ok());
  ASSERT_TRUE(scheduler->RunPass(1900).decisions.empty());
  EXPECT_THAT(scheduler->PendingOrder(1900), ElementsAre(3u, 1u));

  ASSERT_TRUE(scheduler->Complete(2, 2000).ok());
  PassResult pass = scheduler->RunPass(2000);
  std::vector<StartDecision> starts = Of<StartDecision>(pass);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].job, 3u);
}

// Job 1 ran 1,800 s and was preempted at 1,800. Job 2 (2 GPUs) runs from then; by 3,600 it has
// 1 GPU-hour (queue 1). Job 1 has waited as long as it ran: it is promoted to queue 0, preempts
// job 2, and runs from queue 0 with its earlier service forgiven for this run, not forgotten.
TEST(LasTest, AJobThatWaitedAsLongAsItRanIsPromoted) {
  std::unique_ptr<Scheduler> scheduler = Make(kLas);
  ASSERT_NE(scheduler, nullptr);
  ASSERT_TRUE(scheduler->Submit(1, Spec(8), 0).ok());
  ASSERT_EQ(scheduler->RunPass(0).started, 1u);
  ASSERT_TRUE(scheduler->Submit(2, Spec(2), 1800).ok());
  ASSERT_EQ(scheduler->RunPass(1800).preempted, 1u);

  // Not yet: waited 1,799 s of the 1,800 it ran.
  PassResult pass = scheduler->RunPass(3599);
  EXPECT_THAT(Of<PreemptDecision>(pass), IsEmpty());
  LasLevels levels({1, 4}, 1);
  EXPECT_EQ(levels.Of(*scheduler->model().FindJob(1), 3599), 2);
  EXPECT_EQ(levels.Of(*scheduler->model().FindJob(1), 3600), 0);

  pass = scheduler->RunPass(3600);
  std::vector<PreemptDecision> preempts = Of<PreemptDecision>(pass);
  ASSERT_EQ(preempts.size(), 1u);
  EXPECT_EQ(preempts[0].victim, 2u);
  EXPECT_EQ(preempts[0].preemptor, 1u);
  const Job& promoted = *scheduler->model().FindJob(1);
  EXPECT_EQ(promoted.state, JobState::kRunning);
  EXPECT_DOUBLE_EQ(promoted.forgiven_gpu_seconds, 8 * 1800.0);
  EXPECT_EQ(levels.Of(promoted, 3600), 0);
  EXPECT_EQ(levels.Of(promoted, 3600 + 449), 0);  // 8 x 449 s: just under 1 GPU-hour
  EXPECT_EQ(levels.Of(promoted, 3600 + 450), 1);
  // Job 2 (1 GPU-hour, queue 1) waits behind it; job 1 is not preempted by it.
  EXPECT_THAT(Of<PreemptDecision>(scheduler->RunPass(3700)), IsEmpty());
}

TEST(LasTest, WithoutPromotionAPreemptedJobWaitsInItsQueue) {
  std::string yaml(kLas);
  yaml.replace(yaml.find("las_promote: 1"), 14, "las_promote: 0");
  std::unique_ptr<Scheduler> scheduler = Make(yaml);
  ASSERT_NE(scheduler, nullptr);
  ASSERT_TRUE(scheduler->Submit(1, Spec(8), 0).ok());
  ASSERT_EQ(scheduler->RunPass(0).started, 1u);
  ASSERT_TRUE(scheduler->Submit(2, Spec(2), 1800).ok());
  ASSERT_EQ(scheduler->RunPass(1800).preempted, 1u);
  EXPECT_THAT(Of<PreemptDecision>(scheduler->RunPass(100000)), IsEmpty());
  EXPECT_EQ(scheduler->model().FindJob(1)->state, JobState::kPending);
}

// las takes turns between jobs that requeue; it never ends a job, nor preempts one that is not
// preemptible or of a higher class.
TEST(LasTest, OnlyPreemptibleRequeuingJobsOfTheClassOrBelowArePreempted) {
  for (int variant = 0; variant < 3; ++variant) {
    std::unique_ptr<Scheduler> scheduler = Make(kLas);
    ASSERT_NE(scheduler, nullptr);
    JobSpec first = Spec(8);
    if (variant == 0) first.preemptible = false;
    if (variant == 1) first.priority_class = "critical";
    if (variant == 2) first.requeue = false;
    ASSERT_TRUE(scheduler->Submit(1, first, 0).ok());
    ASSERT_EQ(scheduler->RunPass(0).started, 1u);
    ASSERT_TRUE(scheduler->Submit(2, Spec(1), 1800).ok());
    EXPECT_THAT(Of<PreemptDecision>(scheduler->RunPass(1800)), IsEmpty()) << "variant " << variant;
    EXPECT_EQ(scheduler->model().FindJob(1)->state, JobState::kRunning);
  }
}

TEST(LasTest, WithPriorityPreemptionOffLasOnlyOrdersTheQueue) {
  std::string yaml(kLas);
  yaml += "  preemption: {priority: false}\n";
  std::unique_ptr<Scheduler> scheduler = Make(yaml);
  ASSERT_NE(scheduler, nullptr);
  ASSERT_TRUE(scheduler->Submit(1, Spec(8), 0).ok());
  ASSERT_EQ(scheduler->RunPass(0).started, 1u);
  ASSERT_TRUE(scheduler->Submit(2, Spec(1), 1800).ok());
  EXPECT_THAT(Of<PreemptDecision>(scheduler->RunPass(1800)), IsEmpty());
}

TEST(LasTest, AJobRequeuedByANodeFailureKeepsWhatItAttained) {
  std::unique_ptr<Scheduler> scheduler = Make(kLas);
  ASSERT_NE(scheduler, nullptr);
  ASSERT_TRUE(scheduler->Submit(1, Spec(8), 0).ok());
  ASSERT_EQ(scheduler->RunPass(0).started, 1u);
  StatusOr<NodeFailure> failure = scheduler->SetNodeState(0, NodeState::kDown, 900);
  ASSERT_TRUE(failure.ok());
  EXPECT_THAT(failure->requeued, ElementsAre(1u));
  const Job& job = *scheduler->model().FindJob(1);
  EXPECT_DOUBLE_EQ(job.attained_gpu_seconds, 8 * 900.0);
  EXPECT_EQ(job.requeue_time, 900);
}

TEST(LasConfigTest, ThresholdsMustBePositiveAndAscend) {
  auto error = [](std::string_view policy) {
    std::string yaml(kLas);
    yaml.replace(yaml.find("  las_thresholds: [1, 4]"), 24, std::string(policy));
    StatusOr<Config> config = ParseConfig(yaml, "test");
    return config.ok() ? std::string() : std::string(config.status().message());
  };
  EXPECT_EQ(error("  las_thresholds: [0.5, 2, 8]"), "");
  EXPECT_THAT(error("  las_thresholds: [4, 1]"), HasSubstr("thresholds must ascend"));
  EXPECT_THAT(error("  las_thresholds: [0, 1]"), HasSubstr("above 0 and at most 1e9"));
  EXPECT_THAT(error("  las_thresholds: []"), HasSubstr("expected a list"));
  EXPECT_THAT(error("  las_thresholds: 4"), HasSubstr("expected a list"));
  EXPECT_THAT(error("  las_thresholds: [one]"), HasSubstr("expected a number"));
  EXPECT_THAT(error("  las_thresholds: [1]\n  las_promote: -1"), HasSubstr("las_promote"));

  StatusOr<Config> defaults = ParseConfig("pools: [{name: p}]\nnodes: [{name: n, pool: p}]\naccounts: [{name: a}]\n", "test");
  ASSERT_TRUE(defaults.ok()) << defaults.status().message();
  EXPECT_THAT(defaults->policy.las_thresholds, ElementsAre(0.25, 1, 4, 16, 64, 256));
  EXPECT_DOUBLE_EQ(defaults->policy.las_promote, 1);
}

}  // namespace
}  // namespace allot
