#include "core/accounts.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace allot {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr PoolIndex kPool0 = 0;
constexpr PoolIndex kPool1 = 1;

// root > public > {lab-a (nominal 10), lab-b (nominal 6, lends at most 2)}
//      > industry (nominal 100, set explicitly)
class AccountTreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    public_ = tree_.Add(tree_.root(), "public", 1).value();
    lab_a_ = tree_.Add(public_, "lab-a", 2).value();
    lab_b_ = tree_.Add(public_, "lab-b", 1).value();
    industry_ = tree_.Add(tree_.root(), "industry", 3).value();
    SetNominal(lab_a_, kPool0, 10);
    SetNominal(lab_b_, kPool0, 6);
    tree_.mutable_account(lab_b_).quota[kPool0].lend_limit = 2;
    SetNominal(lab_a_, kPool1, 1);
    SetNominal(industry_, kPool0, 100);
  }

  void SetNominal(AccountIndex account, PoolIndex pool, int64_t nominal) {
    PoolQuota& quota = tree_.mutable_account(account).quota[pool];
    quota.nominal = nominal;
    quota.nominal_set = true;
  }

  AccountTree tree_{/*pool_count=*/2};
  AccountIndex public_ = 0, lab_a_ = 0, lab_b_ = 0, industry_ = 0;
};

TEST_F(AccountTreeTest, AddBuildsPathsAndDepths) {
  EXPECT_EQ(tree_.account(tree_.root()).name, "root");
  EXPECT_EQ(tree_.account(lab_a_).path, "public/lab-a");
  EXPECT_EQ(tree_.account(industry_).path, "industry");
  EXPECT_EQ(tree_.account(lab_a_).depth, 2);
  EXPECT_EQ(tree_.account(lab_a_).weight, 2);
  EXPECT_EQ(tree_.account(lab_a_).parent, public_);
  EXPECT_THAT(tree_.account(public_).children, ElementsAre(lab_a_, lab_b_));
  EXPECT_TRUE(tree_.account(lab_a_).is_leaf());
  EXPECT_FALSE(tree_.account(public_).is_leaf());
  EXPECT_EQ(tree_.account(lab_a_).quota.size(), 2u);
  EXPECT_EQ(tree_.Find("lab-b").value(), lab_b_);
  EXPECT_EQ(tree_.Find("root").value(), tree_.root());
}

TEST_F(AccountTreeTest, FindUnknownAccountIsNotFound) {
  StatusOr<AccountIndex> missing = tree_.Find("lab-x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("unknown account 'lab-x'"));
}

TEST_F(AccountTreeTest, PathToRootAndAncestry) {
  EXPECT_THAT(tree_.PathToRoot(lab_b_), ElementsAre(lab_b_, public_, tree_.root()));
  EXPECT_TRUE(tree_.IsAncestorOrSelf(public_, lab_b_));
  EXPECT_TRUE(tree_.IsAncestorOrSelf(lab_b_, lab_b_));
  EXPECT_TRUE(tree_.IsAncestorOrSelf(tree_.root(), lab_a_));
  EXPECT_FALSE(tree_.IsAncestorOrSelf(lab_a_, lab_b_));
  EXPECT_FALSE(tree_.IsAncestorOrSelf(industry_, lab_a_));
  EXPECT_FALSE(tree_.IsAncestorOrSelf(lab_a_, public_));
}

TEST_F(AccountTreeTest, FinalizeSumsChildrenIntoUnsetNominals) {
  ASSERT_TRUE(tree_.Finalize().ok());
  EXPECT_EQ(tree_.account(public_).quota[kPool0].nominal, 16);
  EXPECT_EQ(tree_.account(public_).quota[kPool1].nominal, 1);
  EXPECT_EQ(tree_.account(industry_).quota[kPool0].nominal, 100);
  EXPECT_EQ(tree_.account(tree_.root()).quota[kPool0].nominal, 116);
  EXPECT_EQ(tree_.account(tree_.root()).quota[kPool1].nominal, 1);
}

TEST_F(AccountTreeTest, FinalizeKeepsAnExplicitInternalNominal) {
  SetNominal(public_, kPool0, 12);
  ASSERT_TRUE(tree_.Finalize().ok());
  EXPECT_EQ(tree_.account(public_).quota[kPool0].nominal, 12);
  EXPECT_EQ(tree_.account(tree_.root()).quota[kPool0].nominal, 112);
}

TEST_F(AccountTreeTest, FinalizeRejectsNegativeQuotas) {
  tree_.mutable_account(lab_b_).quota[kPool1].borrow_limit = -1;
  Status status = tree_.Finalize();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("public/lab-b"));
  EXPECT_THAT(status.message(), HasSubstr("must not be negative"));
}

TEST_F(AccountTreeTest, ProtectedIsIdleNominalAboveLendLimit) {
  ASSERT_TRUE(tree_.Finalize().ok());
  // lab-b: 6 idle, lends 2, keeps 4. lab-a lends everything.
  EXPECT_EQ(tree_.Protected(lab_b_, kPool0), 4);
  EXPECT_EQ(tree_.Protected(lab_a_, kPool0), 0);
  EXPECT_EQ(tree_.account(public_).children_protected[kPool0], 4);
  EXPECT_EQ(tree_.account(public_).children_protected[kPool1], 0);
  EXPECT_EQ(tree_.account(tree_.root()).children_protected[kPool0], 0);
}

TEST_F(AccountTreeTest, ChargeUpdatesTheWholePath) {
  ASSERT_TRUE(tree_.Finalize().ok());
  tree_.Charge(lab_a_, kPool0, 8, 8.0 * 3600);
  for (AccountIndex account : {lab_a_, public_, tree_.root()}) {
    EXPECT_EQ(tree_.account(account).allocated[kPool0], 8) << tree_.account(account).name;
    EXPECT_EQ(tree_.account(account).allocated[kPool1], 0);
    EXPECT_EQ(tree_.account(account).allocated_total, 8);
    EXPECT_DOUBLE_EQ(tree_.account(account).committed_end_sum, 8.0 * 3600);
  }
  EXPECT_EQ(tree_.account(lab_b_).allocated[kPool0], 0);
  EXPECT_EQ(tree_.account(industry_).allocated_total, 0);

  tree_.Charge(industry_, kPool1, 3, 0);
  EXPECT_EQ(tree_.account(tree_.root()).allocated[kPool1], 3);
  EXPECT_EQ(tree_.account(tree_.root()).allocated_total, 11);

  // A negative charge refunds.
  tree_.Charge(lab_a_, kPool0, -8, -8.0 * 3600);
  EXPECT_EQ(tree_.account(public_).allocated[kPool0], 0);
  EXPECT_EQ(tree_.account(tree_.root()).allocated_total, 3);
  EXPECT_DOUBLE_EQ(tree_.account(public_).committed_end_sum, 0);
}

TEST_F(AccountTreeTest, ChargeKeepsChildrenProtectedInStep) {
  ASSERT_TRUE(tree_.Finalize().ok());
  // lab-b uses 1 of its 6: 5 idle, 2 lent, 3 protected.
  tree_.Charge(lab_b_, kPool0, 1, 0);
  EXPECT_EQ(tree_.Protected(lab_b_, kPool0), 3);
  EXPECT_EQ(tree_.account(public_).children_protected[kPool0], 3);
  // Using 4 or more leaves nothing above the lend limit.
  tree_.Charge(lab_b_, kPool0, 4, 0);
  EXPECT_EQ(tree_.account(public_).children_protected[kPool0], 0);
  // Over nominal (borrowing) the protected count stays at 0, not negative.
  tree_.Charge(lab_b_, kPool0, 5, 0);
  EXPECT_EQ(tree_.Protected(lab_b_, kPool0), 0);
  EXPECT_EQ(tree_.account(public_).children_protected[kPool0], 0);
  // Giving it all back restores the protected idle nominal.
  tree_.Charge(lab_b_, kPool0, -10, 0);
  EXPECT_EQ(tree_.account(public_).children_protected[kPool0], 4);
}

TEST_F(AccountTreeTest, ChargeOfAChildUpdatesTheParentsOwnProtection) {
  tree_.mutable_account(public_).quota[kPool0].lend_limit = 0;  // public lends nothing
  ASSERT_TRUE(tree_.Finalize().ok());
  EXPECT_EQ(tree_.account(tree_.root()).children_protected[kPool0], 16);
  tree_.Charge(lab_a_, kPool0, 5, 0);
  EXPECT_EQ(tree_.Protected(public_, kPool0), 11);
  EXPECT_EQ(tree_.account(tree_.root()).children_protected[kPool0], 11);
}

TEST_F(AccountTreeTest, UsageHalvesAfterOneHalfLifeWithoutAllocation) {
  ASSERT_TRUE(tree_.Finalize().ok());
  constexpr Duration kHalfLife = 3600;
  tree_.mutable_account(lab_a_).decayed_usage = 1000;
  tree_.Accrue(0, kHalfLife, kHalfLife);
  EXPECT_NEAR(tree_.account(lab_a_).decayed_usage, 500, 1e-9);
  tree_.Accrue(kHalfLife, 3 * kHalfLife, kHalfLife);
  EXPECT_NEAR(tree_.account(lab_a_).decayed_usage, 125, 1e-9);
}

TEST_F(AccountTreeTest, DecayIsTheSameInOneStepOrMany) {
  ASSERT_TRUE(tree_.Finalize().ok());
  constexpr Duration kHalfLife = 1000;
  AccountTree stepped = tree_;
  tree_.Charge(lab_a_, kPool0, 4, 0);
  stepped.Charge(lab_a_, kPool0, 4, 0);
  tree_.Accrue(0, 5000, kHalfLife);
  for (Time t = 0; t < 5000; t += 100) stepped.Accrue(t, t + 100, kHalfLife);
  EXPECT_NEAR(stepped.account(lab_a_).decayed_usage, tree_.account(lab_a_).decayed_usage, 1e-6);
}

TEST_F(AccountTreeTest, ConstantAllocationApproachesSteadyState) {
  ASSERT_TRUE(tree_.Finalize().ok());
  constexpr Duration kHalfLife = 3600;
  constexpr int64_t kGpus = 8;
  tree_.Charge(lab_a_, kPool0, kGpus, 0);
  tree_.Accrue(0, 1000 * kHalfLife, kHalfLife);
  double steady = kGpus * kHalfLife / std::log(2.0);
  EXPECT_NEAR(tree_.account(lab_a_).decayed_usage, steady, steady * 1e-9);
  // Usage counts for the whole path, and not for accounts outside it.
  EXPECT_NEAR(tree_.account(public_).decayed_usage, steady, steady * 1e-9);
  EXPECT_NEAR(tree_.account(tree_.root()).decayed_usage, steady, steady * 1e-9);
  EXPECT_EQ(tree_.account(lab_b_).decayed_usage, 0);
  EXPECT_EQ(tree_.account(industry_).decayed_usage, 0);
}

TEST_F(AccountTreeTest, ShortIntervalAccruesAboutGpuSeconds) {
  ASSERT_TRUE(tree_.Finalize().ok());
  tree_.Charge(lab_a_, kPool0, 2, 0);
  tree_.Accrue(0, 10, /*half_life=*/7 * 86400);
  EXPECT_NEAR(tree_.account(lab_a_).decayed_usage, 20, 1e-3);
}

TEST_F(AccountTreeTest, ZeroHalfLifeRemembersUsageForever) {
  ASSERT_TRUE(tree_.Finalize().ok());
  tree_.mutable_account(lab_b_).decayed_usage = 50;
  tree_.Charge(lab_a_, kPool0, 3, 0);
  tree_.Accrue(0, 100, /*half_life=*/0);
  EXPECT_DOUBLE_EQ(tree_.account(lab_a_).decayed_usage, 300);
  EXPECT_DOUBLE_EQ(tree_.account(lab_b_).decayed_usage, 50);
}

TEST_F(AccountTreeTest, AccrueOverAnEmptyIntervalChangesNothing) {
  ASSERT_TRUE(tree_.Finalize().ok());
  tree_.mutable_account(lab_a_).decayed_usage = 100;
  tree_.Charge(lab_a_, kPool0, 3, 0);
  tree_.Accrue(50, 50, 3600);
  tree_.Accrue(60, 50, 3600);
  EXPECT_DOUBLE_EQ(tree_.account(lab_a_).decayed_usage, 100);
}

TEST_F(AccountTreeTest, GrantsAreChargedOnlyWithinTheirPeriod) {
  Account& lab_a = tree_.mutable_account(lab_a_);
  lab_a.grants.push_back({.name = "q1", .gpu_hours = 100, .start = 1000, .end = 2000});
  lab_a.grants.push_back({.name = "q2", .gpu_hours = 100, .start = 2000, .end = 3000});
  tree_.mutable_account(public_).grants.push_back({.name = "pub", .gpu_hours = 1000});
  ASSERT_TRUE(tree_.Finalize().ok());

  tree_.Charge(lab_a_, kPool0, 4, 0);
  tree_.Accrue(500, 1500, 3600);  // 500 s inside q1
  EXPECT_DOUBLE_EQ(tree_.account(lab_a_).grants[0].used_gpu_seconds, 4 * 500);
  EXPECT_DOUBLE_EQ(tree_.account(lab_a_).grants[1].used_gpu_seconds, 0);
  // A grant on an ancestor is charged for its subtree's use.
  EXPECT_DOUBLE_EQ(tree_.account(public_).grants[0].used_gpu_seconds, 4 * 1000);

  tree_.Accrue(1500, 2500, 3600);  // 500 s in q1, 500 s in q2
  EXPECT_DOUBLE_EQ(tree_.account(lab_a_).grants[0].used_gpu_seconds, 4 * 1000);
  EXPECT_DOUBLE_EQ(tree_.account(lab_a_).grants[1].used_gpu_seconds, 4 * 500);

  tree_.Charge(lab_a_, kPool0, -4, 0);
  tree_.Accrue(2500, 2900, 3600);  // nothing running: nothing charged
  EXPECT_DOUBLE_EQ(tree_.account(lab_a_).grants[1].used_gpu_seconds, 4 * 500);

  tree_.Charge(lab_a_, kPool0, 1, 0);
  tree_.Accrue(3000, 4000, 3600);  // after q2 ended
  EXPECT_DOUBLE_EQ(tree_.account(lab_a_).grants[1].used_gpu_seconds, 4 * 500);
  EXPECT_DOUBLE_EQ(tree_.account(lab_a_).grants[0].used_gpu_seconds, 4 * 1000);
}

TEST_F(AccountTreeTest, ActiveGrantCoversHalfOpenPeriod) {
  Account& lab_a = tree_.mutable_account(lab_a_);
  lab_a.grants.push_back({.name = "q1", .gpu_hours = 100, .start = 1000, .end = 2000});
  lab_a.grants.push_back({.name = "q2", .gpu_hours = 100, .start = 2000, .end = 3000});
  EXPECT_EQ(tree_.ActiveGrant(lab_a_, 999), nullptr);
  ASSERT_NE(tree_.ActiveGrant(lab_a_, 1000), nullptr);
  EXPECT_EQ(tree_.ActiveGrant(lab_a_, 1000)->name, "q1");
  EXPECT_EQ(tree_.ActiveGrant(lab_a_, 1999)->name, "q1");
  EXPECT_EQ(tree_.ActiveGrant(lab_a_, 2000)->name, "q2");
  EXPECT_EQ(tree_.ActiveGrant(lab_a_, 3000), nullptr);
  EXPECT_EQ(tree_.ActiveGrant(lab_b_, 1500), nullptr);
}

TEST_F(AccountTreeTest, DuplicateNameIsAnError) {
  for (AccountIndex parent : {tree_.root(), public_, lab_a_}) {
    StatusOr<AccountIndex> again = tree_.Add(parent, "lab-b", 1);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
    EXPECT_THAT(again.status().message(), HasSubstr("account 'lab-b' is defined twice"));
  }
  EXPECT_EQ(tree_.Add(tree_.root(), "root", 1).status().code(), StatusCode::kAlreadyExists);
}

TEST_F(AccountTreeTest, BadWeightsAreErrors) {
  for (double weight : {0.0, -1.0, std::numeric_limits<double>::infinity(),
                        std::numeric_limits<double>::quiet_NaN()}) {
    StatusOr<AccountIndex> added = tree_.Add(public_, "lab-c", weight);
    ASSERT_FALSE(added.ok()) << weight;
    EXPECT_EQ(added.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(added.status().message(), HasSubstr("weight must be a positive number"));
  }
  // The failed attempts left no trace: the name is still free.
  EXPECT_TRUE(tree_.Add(public_, "lab-c", 0.5).ok());
}

TEST_F(AccountTreeTest, BadNamesAreErrors) {
  EXPECT_EQ(tree_.Add(public_, "", 1).status().code(), StatusCode::kInvalidArgument);
  StatusOr<AccountIndex> slash = tree_.Add(public_, "a/b", 1);
  ASSERT_FALSE(slash.ok());
  EXPECT_EQ(slash.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(slash.status().message(), HasSubstr("must not contain '/'"));
}

}  // namespace
}  // namespace allot
