#include "sched/quota.h"

#include <algorithm>
#include <vector>

namespace allot {
namespace {

std::string Limit(int64_t value) {
  return value >= kUnlimited ? "unlimited" : std::to_string(value);
}

}  // namespace

namespace {

struct Room {
  int64_t gpus = 0;
  std::string binding;     // the limit that set it
  bool pool_binds = true;  // no account limit or unlent idle quota lowered it below the pool's
};

// Walks the path from the root down with the root allowed `root_room` more GPUs.
Room RoomBelow(const AccountTree& tree, const std::vector<AccountIndex>& path, PoolIndex pool,
               int64_t root_room, std::string binding) {
  Room room{root_room, std::move(binding)};
  for (size_t i = path.size() - 1; i-- > 0;) {
    const Account& a = tree.account(path[i]);
    const Account& parent = tree.account(a.parent);
    const PoolQuota& quota = a.quota[pool];
    int64_t used = a.allocated[pool];
    int64_t by_limit = quota.borrow_limit >= kUnlimited ? kUnlimited
                                                        : quota.nominal + quota.borrow_limit - used;
    int64_t siblings_keep = parent.children_protected[pool] - tree.Protected(path[i], pool);
    int64_t by_cohort = room.gpus - siblings_keep;
    if (by_limit < by_cohort) {
      room.gpus = by_limit;
      room.binding = fmt::format("account '{}' uses {} GPUs of nominal {} + borrow limit {}",
                                 a.path, used, quota.nominal, Limit(quota.borrow_limit));
      room.pool_binds = false;
    } else {
      room.gpus = by_cohort;
      if (siblings_keep > 0) {
        room.binding = fmt::format("the cohort of '{}' has {} GPUs left to lend ({} kept idle by "
                                   "accounts that do not lend them)",
                                   a.path, std::max<int64_t>(0, by_cohort), siblings_keep);
        room.pool_binds = false;
      }
    }
  }
  return room;
}

}  // namespace

QuotaCheck CheckQuota(const AccountTree& tree, AccountIndex account, PoolIndex pool, int64_t gpus,
                      int64_t pool_gpus, std::string_view pool_name) {
  QuotaCheck check;
  std::vector<AccountIndex> path = tree.PathToRoot(account);  // leaf first, root last
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    const Account& a = tree.account(path[i]);
    if (a.allocated[pool] + gpus > a.quota[pool].nominal) check.borrows = true;
  }
  const Account& root = tree.account(tree.root());
  Room room = RoomBelow(tree, path, pool, pool_gpus - root.allocated[pool],
                        fmt::format("pool '{}' has {} of {} GPUs allocated", pool_name,
                                    root.allocated[pool], pool_gpus));
  const Account& leaf = tree.account(account);
  check.within_nominal = leaf.allocated[pool] + gpus <= leaf.quota[pool].nominal;
  check.room = std::max<int64_t>(0, room.gpus);
  check.fits = room.gpus >= gpus;
  if (!check.fits) {
    // Only the pool's own size binds: the job waits for GPUs, not for quota.
    check.pool_full = room.pool_binds;
    check.why = check.pool_full
                    ? fmt::format("waiting for GPUs in pool '{}': needs {}, {} of {} allocated",
                                  pool_name, gpus, root.allocated[pool], pool_gpus)
                    : fmt::format("waiting for quota in pool '{}': needs {} GPUs, room for {}; {}",
                                  pool_name, gpus, check.room, room.binding);
  }
  return check;
}

std::optional<std::string> WhyQuotaNever(const AccountTree& tree, AccountIndex account,
                                         PoolIndex pool, int64_t gpus, int64_t pool_gpus,
                                         bool may_borrow, std::string_view pool_name) {
  for (AccountIndex at = account; at != tree.root(); at = tree.account(at).parent) {
    const Account& a = tree.account(at);
    const PoolQuota& quota = a.quota[pool];
    if (!may_borrow && gpus > quota.nominal) {
      return fmt::format("account '{}' has a nominal quota of {} GPUs in pool '{}' and the job "
                         "(not preemptible, so it never borrows) needs {}",
                         a.path, quota.nominal, pool_name, gpus);
    }
    if (quota.borrow_limit < kUnlimited && gpus > quota.nominal + quota.borrow_limit) {
      return fmt::format("account '{}' may use at most {} GPUs in pool '{}' (nominal {} + borrow "
                         "limit {}) and the job needs {}",
                         a.path, quota.nominal + quota.borrow_limit, pool_name, quota.nominal,
                         quota.borrow_limit, gpus);
    }
  }
  if (gpus > pool_gpus) {
    return fmt::format("pool '{}' has {} GPUs and the job needs {}", pool_name, pool_gpus, gpus);
  }
  return std::nullopt;
}

bool IsBorrowingFrom(const AccountTree& tree, AccountIndex job_account, AccountIndex for_account,
                     PoolIndex pool) {
  // The victim's branch in the cohort it shares with `for_account`: the ancestor just below their
  // lowest common ancestor. Only if that branch is above its nominal does it hold GPUs the
  // other branch lent.
  for (AccountIndex at = job_account; at != tree.root(); at = tree.account(at).parent) {
    if (tree.IsAncestorOrSelf(at, for_account)) return false;
    AccountIndex parent = tree.account(at).parent;
    if (tree.IsAncestorOrSelf(parent, for_account)) {
      const Account& branch = tree.account(at);
      return branch.allocated[pool] > branch.quota[pool].nominal;
    }
  }
  return false;
}

}  // namespace allot
