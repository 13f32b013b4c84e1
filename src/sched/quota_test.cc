#include "sched/quota.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"

namespace allot {
namespace {

using ::testing::HasSubstr;

constexpr PoolIndex kPool = 0;
constexpr int64_t kPoolGpus = 16;

// A 16-GPU pool (two 8-GPU nodes) and root > {lab > {alice, bob}, other}. Each test appends the
// accounts it needs to this header.
constexpr std::string_view kPoolYaml = R"(
pools:
  - name: p
    shape: {pods: 1, leaves_per_pod: 1, nvlink_per_leaf: 2, nodes_per_nvlink: 1, gpus_per_node: 8}
)";

class QuotaTest : public ::testing::Test {
 protected:
  void Use(std::string_view accounts_yaml) {
    std::string yaml = std::string(kPoolYaml) + std::string(accounts_yaml);
    StatusOr<Config> config = ParseConfig(yaml, "test");
    ASSERT_TRUE(config.ok()) << config.status().message();
    config_ = std::move(config).value();
  }

  AccountTree& tree() { return config_.accounts; }
  AccountIndex Find(std::string_view name) { return tree().Find(name).value(); }
  void Charge(std::string_view account, int64_t gpus) { tree().Charge(Find(account), kPool, gpus, 0); }
  QuotaCheck Check(std::string_view account, int64_t gpus) {
    return CheckQuota(tree(), Find(account), kPool, gpus, kPoolGpus, "p");
  }
  std::optional<std::string> Never(std::string_view account, int64_t gpus, bool may_borrow = true) {
    return WhyQuotaNever(tree(), Find(account), kPool, gpus, kPoolGpus, may_borrow, "p");
  }

  Config config_;
};

constexpr std::string_view kPlain = R"(
accounts:
  - name: lab
    children:
      - {name: alice, quota: {p: 4}}
      - {name: bob, quota: {p: 4}}
  - {name: other, quota: {p: 8}}
)";

TEST_F(QuotaTest, WithinNominalFits) {
  Use(kPlain);
  QuotaCheck check = Check("alice", 4);
  EXPECT_TRUE(check.fits);
  EXPECT_FALSE(check.borrows);
  EXPECT_TRUE(check.within_nominal);
  EXPECT_EQ(check.room, 16);
  EXPECT_TRUE(check.why.empty());
}

TEST_F(QuotaTest, BorrowingIdleQuotaOfASiblingFits) {
  Use(kPlain);
  QuotaCheck check = Check("alice", 8);  // 4 of its own, 4 of bob's idle nominal
  EXPECT_TRUE(check.fits);
  EXPECT_TRUE(check.borrows);
  EXPECT_FALSE(check.within_nominal);

  // Going above lab's nominal borrows from other, one level up.
  check = Check("alice", 12);
  EXPECT_TRUE(check.fits);
  EXPECT_TRUE(check.borrows);
}

TEST_F(QuotaTest, UsageAlreadyChargedCountsTowardsNominal) {
  Use(kPlain);
  Charge("alice", 3);
  QuotaCheck check = Check("alice", 1);
  EXPECT_TRUE(check.fits);
  EXPECT_FALSE(check.borrows);
  EXPECT_TRUE(check.within_nominal);
  check = Check("alice", 2);
  EXPECT_TRUE(check.fits);
  EXPECT_TRUE(check.borrows);
  EXPECT_FALSE(check.within_nominal);
}

TEST_F(QuotaTest, NoRoomWhenThePoolIsUsedByOthers) {
  Use(kPlain);
  Charge("bob", 4);
  Charge("other", 8);
  QuotaCheck check = Check("alice", 4);
  EXPECT_TRUE(check.fits);
  EXPECT_FALSE(check.borrows);
  check = Check("alice", 5);
  EXPECT_FALSE(check.fits);
  EXPECT_TRUE(check.pool_full);  // no account limit binds: a wait for GPUs
  EXPECT_EQ(check.room, 4);
  EXPECT_TRUE(check.why.empty());  // placement words a wait for GPUs

  // Still within nominal while borrowers hold the pool: it may reclaim.
  Charge("bob", 4);  // bob now borrows alice's nominal
  check = Check("alice", 4);
  EXPECT_FALSE(check.fits);
  EXPECT_TRUE(check.within_nominal);
  EXPECT_EQ(check.room, 0);
}

TEST_F(QuotaTest, BorrowLimitCapsBorrowing) {
  Use(R"(
accounts:
  - name: lab
    children:
      - {name: alice, quota: {p: {nominal: 4, borrow_limit: 2}}}
      - {name: bob, quota: {p: 4}}
  - {name: other, quota: {p: 8}}
)");
  QuotaCheck check = Check("alice", 6);
  EXPECT_TRUE(check.fits);
  EXPECT_TRUE(check.borrows);
  check = Check("alice", 7);
  EXPECT_FALSE(check.fits);
  EXPECT_FALSE(check.pool_full);
  EXPECT_EQ(check.room, 6);
  EXPECT_THAT(check.why, HasSubstr("lab/alice"));
  EXPECT_THAT(check.why, HasSubstr("borrow limit 2"));

  Charge("alice", 3);
  check = Check("alice", 4);
  EXPECT_FALSE(check.fits);
  EXPECT_EQ(check.room, 3);
  EXPECT_TRUE(Check("alice", 3).fits);
}

TEST_F(QuotaTest, BorrowLimitOfAnAncestorCapsTheSubtree) {
  Use(R"(
accounts:
  - name: lab
    quota: {p: {borrow_limit: 0}}
    children:
      - {name: alice, quota: {p: 4}}
      - {name: bob, quota: {p: 4}}
  - {name: other, quota: {p: 8}}
)");
  // alice may borrow bob's idle nominal (inside lab), but lab may not go above its 8.
  QuotaCheck check = Check("alice", 8);
  EXPECT_TRUE(check.fits);
  EXPECT_TRUE(check.borrows);
  check = Check("alice", 9);
  EXPECT_FALSE(check.fits);
  EXPECT_EQ(check.room, 8);
  EXPECT_THAT(check.why, HasSubstr("account 'lab'"));
}

TEST_F(QuotaTest, LendLimitKeepsASiblingsIdleNominal) {
  Use(R"(
accounts:
  - name: lab
    children:
      - {name: alice, quota: {p: 4}}
      - {name: bob, quota: {p: {nominal: 4, lend_limit: 1}}}
  - {name: other, quota: {p: 8}}
)");
  Charge("other", 8);  // 8 GPUs left in the pool, 4 of them bob's idle nominal
  // bob lends at most 1 of its 4 idle GPUs: alice gets 8 - 3.
  QuotaCheck check = Check("alice", 5);
  EXPECT_TRUE(check.fits);
  EXPECT_TRUE(check.borrows);
  check = Check("alice", 6);
  EXPECT_FALSE(check.fits);
  EXPECT_FALSE(check.pool_full);
  EXPECT_EQ(check.room, 5);
  EXPECT_THAT(check.why, HasSubstr("do not lend"));

  // bob itself still gets its whole nominal.
  EXPECT_TRUE(Check("bob", 4).fits);

  // Once bob uses its nominal nothing is kept idle; the pool is the limit.
  Charge("bob", 4);
  check = Check("alice", 4);
  EXPECT_TRUE(check.fits);
  EXPECT_FALSE(Check("alice", 5).fits);
}

TEST_F(QuotaTest, WithoutLendLimitAllIdleNominalIsLent) {
  Use(kPlain);
  Charge("other", 8);
  EXPECT_TRUE(Check("alice", 8).fits);  // the control case of LendLimitKeepsASiblingsIdleNominal
}

TEST_F(QuotaTest, WhyQuotaNeverOverNominalPlusBorrowLimit) {
  Use(R"(
accounts:
  - name: lab
    children:
      - {name: alice, quota: {p: {nominal: 4, borrow_limit: 2}}}
      - {name: bob, quota: {p: 4}}
  - {name: other, quota: {p: 8}}
)");
  std::optional<std::string> why = Never("alice", 7);
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("lab/alice"));
  EXPECT_THAT(*why, HasSubstr("at most 6"));
  EXPECT_EQ(Never("alice", 6), std::nullopt);
  // bob may borrow without limit: up to the whole pool, never beyond it.
  EXPECT_EQ(Never("bob", 16), std::nullopt);
  why = Never("bob", 17);
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("pool 'p' has 16 GPUs"));
}

TEST_F(QuotaTest, WhyQuotaNeverForNonPreemptibleOverNominal) {
  Use(kPlain);
  std::optional<std::string> why = Never("alice", 5, /*may_borrow=*/false);
  ASSERT_TRUE(why.has_value());
  EXPECT_THAT(*why, HasSubstr("lab/alice"));
  EXPECT_THAT(*why, HasSubstr("not preemptible"));
  EXPECT_EQ(Never("alice", 4, /*may_borrow=*/false), std::nullopt);
  EXPECT_EQ(Never("alice", 5, /*may_borrow=*/true), std::nullopt);
}

TEST_F(QuotaTest, WhyQuotaNeverIgnoresCurrentUsage) {
  Use(kPlain);
  Charge("bob", 4);
  Charge("other", 8);
  Charge("alice", 4);
  EXPECT_EQ(Never("alice", 4), std::nullopt);  // waiting, not never
  EXPECT_FALSE(Check("alice", 4).fits);
}

TEST_F(QuotaTest, IsBorrowingFrom) {
  Use(kPlain);
  AccountIndex alice = Find("alice");
  AccountIndex bob = Find("bob");
  AccountIndex other = Find("other");
  EXPECT_FALSE(IsBorrowingFrom(tree(), alice, bob, kPool));
  Charge("alice", 6);  // 2 above its nominal, lab still within its 8
  EXPECT_TRUE(IsBorrowingFrom(tree(), alice, bob, kPool));
  EXPECT_FALSE(IsBorrowingFrom(tree(), bob, alice, kPool));
  EXPECT_FALSE(IsBorrowingFrom(tree(), alice, alice, kPool));
  Charge("alice", -2);
  EXPECT_FALSE(IsBorrowingFrom(tree(), alice, bob, kPool));
  EXPECT_FALSE(IsBorrowingFrom(tree(), alice, other, kPool));
}

TEST_F(QuotaTest, IsBorrowingFromLooksBelowTheCommonAncestorOnly) {
  Use(R"(
accounts:
  - name: lab
    quota: {p: 6}
    children:
      - {name: alice, quota: {p: 4}}
      - {name: bob, quota: {p: 4}}
  - {name: other, quota: {p: 10}}
)");
  Charge("alice", 4);
  Charge("bob", 4);  // both within their nominals, lab (8 of 6) borrows from other
  EXPECT_TRUE(IsBorrowingFrom(tree(), Find("alice"), Find("other"), kPool));
  EXPECT_FALSE(IsBorrowingFrom(tree(), Find("alice"), Find("bob"), kPool));
  EXPECT_FALSE(IsBorrowingFrom(tree(), Find("other"), Find("alice"), kPool));
}

}  // namespace
}  // namespace allot
