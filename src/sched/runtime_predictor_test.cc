#include "sched/runtime_predictor.h"

#include <gtest/gtest.h>

#include <string>

namespace allot {
namespace {

Job MakeJob(AccountIndex account, std::string user, Duration time_limit) {
  Job job;
  job.account = account;
  job.spec.user = std::move(user);
  job.spec.time_limit = time_limit;
  return job;
}

TEST(RuntimePredictorTest, WithoutHistoryTheTimeLimit) {
  RuntimePredictor predictor;
  EXPECT_EQ(predictor.Predict(MakeJob(1, "alice", 7200)), 7200);
}

TEST(RuntimePredictorTest, TheMedianOfTheUsersLastRunsCappedByTheLimit) {
  RuntimePredictor predictor;
  Job job = MakeJob(1, "alice", 7200);
  for (Duration ran : {100, 5000, 300, 200, 400}) predictor.Observe(job, ran);
  EXPECT_EQ(predictor.Predict(job), 300);  // median of 100, 200, 300, 400, 5000
  // Only the last five count: two long runs replace 100 and 5000.
  predictor.Observe(job, 6000);
  predictor.Observe(job, 6500);
  EXPECT_EQ(predictor.Predict(job), 400);  // median of 200, 300, 400, 6000, 6500
}

TEST(RuntimePredictorTest, AJobCannotRunPastItsLimit) {
  RuntimePredictor predictor;
  predictor.Observe(MakeJob(1, "alice", 86400), 50000);
  EXPECT_EQ(predictor.Predict(MakeJob(1, "alice", 3600)), 3600);
}

TEST(RuntimePredictorTest, AUserWithoutHistoryGetsTheAccountsRuns) {
  RuntimePredictor predictor;
  predictor.Observe(MakeJob(2, "alice", 86400), 900);
  EXPECT_EQ(predictor.Predict(MakeJob(2, "bob", 86400)), 900);   // same account
  EXPECT_EQ(predictor.Predict(MakeJob(3, "bob", 86400)), 86400);  // another account
  // Bob's own history wins once he has some.
  predictor.Observe(MakeJob(2, "bob", 86400), 40);
  EXPECT_EQ(predictor.Predict(MakeJob(2, "bob", 86400)), 40);
}

TEST(RuntimePredictorTest, AnEvenCountTakesTheShorterMiddleRun) {
  RuntimePredictor predictor;
  Job job = MakeJob(1, "", 7200);  // no user: the account's history
  predictor.Observe(job, 100);
  predictor.Observe(job, 900);
  EXPECT_EQ(predictor.Predict(job), 100);
}

}  // namespace
}  // namespace allot
