// The tenancy tree: accounts with per-pool quotas, fair-share weights, grants and their usage.
//
// root > public | industry > organisation > project. Every account holds, per pool:
//   nominal       GPUs guaranteed to its subtree (an internal account defaults to the sum of its
//                 children's);
//   borrow_limit  how far above nominal the subtree may go by borrowing idle GPUs of its cohort
//                 (unlimited by default);
//   lend_limit    how much of its idle nominal its cohort may borrow (all of it by default).
// A cohort is the set of children of one account. The root's cohort is the whole pool.
//
// The tree also keeps the live usage that admission needs at every level, updated in O(depth)
// when GPUs are charged or refunded, so a quota check never sums over siblings.
//
//   AccountTree tree(/*pool_count=*/2);
//   AccountIndex industry = *tree.Add(tree.root(), "industry", /*weight=*/1);
//   tree.mutable_account(industry).quota[0].nominal = 1024;
//   ALLOT_RETURN_IF_ERROR(tree.Finalize());
//
// Not thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/cluster.h"
#include "core/units.h"

namespace allot {

using AccountIndex = uint32_t;
inline constexpr AccountIndex kNoAccount = UINT32_MAX;
inline constexpr int64_t kUnlimited = std::numeric_limits<int64_t>::max() / 4;

struct PoolQuota {
  int64_t nominal = 0;
  int64_t borrow_limit = kUnlimited;
  int64_t lend_limit = kUnlimited;
  bool nominal_set = false;  // false: an internal account takes the sum of its children
};

// GPU-hours given to an account's subtree for a period [start, end).
struct Grant {
  std::string name;
  double gpu_hours = 0;
  Time start = 0;
  Time end = kForever;
  double used_gpu_seconds = 0;  // charged while jobs of the subtree run inside the period
};

struct Account {
  std::string name;  // unique in the tree
  std::string path;  // "public/startups/acme", for messages
  AccountIndex parent = kNoAccount;
  std::vector<AccountIndex> children;
  int depth = 0;
  double weight = 1.0;
  std::vector<PoolQuota> quota;  // indexed by pool
  std::vector<Grant> grants;

  // Live usage of the whole subtree.
  std::vector<int64_t> allocated;      // GPUs allocated now, per pool
  int64_t allocated_total = 0;         // over all pools
  double decayed_usage = 0;            // GPU-seconds, decayed with the fair-share half-life
  double committed_end_sum = 0;        // sum of gpus * (start + time_limit) of running jobs
  std::vector<int64_t> children_protected;  // per pool: idle nominal children keep to themselves

  bool is_leaf() const { return children.empty(); }
};

class AccountTree {
 public:
  explicit AccountTree(size_t pool_count);

  AccountIndex root() const { return 0; }
  size_t pool_count() const { return pool_count_; }
  StatusOr<AccountIndex> Add(AccountIndex parent, std::string_view name, double weight);
  // Fills default nominals of internal accounts, checks the quotas and derives what admission
  // caches from them. Call after the last Add, and again after any quota change.
  Status Finalize();

  StatusOr<AccountIndex> Find(std::string_view name) const;
  const Account& account(AccountIndex index) const { return accounts_[index]; }
  Account& mutable_account(AccountIndex index) { return accounts_[index]; }
  const std::vector<Account>& accounts() const { return accounts_; }
  // The account and its ancestors, innermost first, root last.
  std::vector<AccountIndex> PathToRoot(AccountIndex account) const;
  bool IsAncestorOrSelf(AccountIndex ancestor, AccountIndex account) const;

  // GPUs of this account's nominal that are idle and that it does not lend.
  int64_t Protected(AccountIndex account, PoolIndex pool) const;

  // Adds (or with negative gpus removes) an allocation to the account and its ancestors.
  void Charge(AccountIndex account, PoolIndex pool, int64_t gpus, double end_time_weight);

  // Ages fair-share usage and charges grants for running allocations from `from` to `to`.
  void Accrue(Time from, Time to, Duration half_life);

  // The grant of this account that covers `now`, or nullptr.
  const Grant* ActiveGrant(AccountIndex account, Time now) const;

 private:
  size_t pool_count_;
  std::vector<Account> accounts_;
  std::unordered_map<std::string, AccountIndex> by_name_;
};

}  // namespace allot
