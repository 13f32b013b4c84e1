// Admission against quotas: may an account's subtree take more GPUs of a pool right now?
//
// Room is computed top-down along the account's path. The root may use the pool's GPUs; each
// account x under parent P may use
//     min(nominal_x + borrow_limit_x - used_x,  room_P - idle nominal that x's siblings keep)
// where a sibling keeps the part of its idle nominal above its lend_limit. So an account always
// has its own nominal (unless borrowers hold it: then it may reclaim), may borrow idle quota of
// its cohort within its borrow limit, and never takes what a sibling refuses to lend.
// Every term is kept up to date by AccountTree::Charge, so a check costs O(depth).
//
//   QuotaCheck check = CheckQuota(model.accounts(), account, pool, 64, pool_gpus);
//   if (!check.fits) job.reason = {ReasonCode::kQuota, check.why};
#pragma once

#include <optional>
#include <string>

#include "core/accounts.h"

namespace allot {

struct QuotaCheck {
  bool fits = false;            // room for the request now
  bool borrows = false;         // admitting it takes some account on the path above its nominal
  bool within_nominal = false;  // the request fits in the account's own nominal: it may reclaim
  bool pool_full = false;       // no account limit binds: the pool lacks GPUs (a resource wait)
  // When idle nominal that other children of this account keep (do not lend) is what binds: it
  // shrinks as they start jobs. kNoAccount otherwise.
  AccountIndex cohort = kNoAccount;
  int64_t room = 0;             // GPUs the account may still take in this pool
  std::string why;              // when quota (not a full pool) keeps it out: the limit, in words
};

QuotaCheck CheckQuota(const AccountTree& tree, AccountIndex account, PoolIndex pool, int64_t gpus,
                      int64_t pool_gpus, std::string_view pool_name);

// Whether waiting could ever admit the request: it must fit under nominal + borrow limit at
// every level (and under the nominal alone when the job may not borrow). Returns why not.
std::optional<std::string> WhyQuotaNever(const AccountTree& tree, AccountIndex account,
                                         PoolIndex pool, int64_t gpus, int64_t pool_gpus,
                                         bool may_borrow, std::string_view pool_name);

// Whether `job_account` holds GPUs lent by `for_account`'s side: the branch of `job_account`
// just below their lowest common ancestor uses more than its nominal.
bool IsBorrowingFrom(const AccountTree& tree, AccountIndex job_account, AccountIndex for_account,
                     PoolIndex pool);

}  // namespace allot
