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

// What limits the room for a request, kept as numbers; words are made only when a job does not
// fit, since most checks in a pass fit or are decided without a message.
struct Room {
  enum class Binding : uint8_t { kPool, kAccountLimit, kCohort };
  int64_t gpus = 0;
  Binding binding = Binding::kPool;
  AccountIndex account = 0;  // the account whose limit or cohort binds
  int64_t used = 0;
  int64_t siblings_keep = 0;
};

// Walks the path from the root down (path is leaf first, root last) with the root allowed
// `root_room` more GPUs.
Room RoomBelow(const AccountTree& tree, const AccountIndex* path, size_t length, PoolIndex pool,
               int64_t root_room) {
  Room room{root_room};
  for (size_t i = length - 1; i-- > 0;) {
    const Account& a = tree.account(path[i]);
    const Account& parent = tree.account(a.parent);
    const PoolQuota& quota = a.quota[pool];
    int64_t used = a.allocated[pool];
    int64_t by_limit = quota.borrow_limit >= kUnlimited ? kUnlimited
                                                        : quota.nominal + quota.borrow_limit - used;
    int64_t siblings_keep = parent.children_protected[pool] - tree.Protected(path[i], pool);
    int64_t by_cohort = room.gpus - siblings_keep;
    if (by_limit < by_cohort) {
      room = {by_limit, Room::Binding::kAccountLimit, path[i], used, 0};
    } else {
      room.gpus = by_cohort;
      if (siblings_keep > 0) {
        room.binding = Room::Binding::kCohort;
        room.account = path[i];
        room.siblings_keep = siblings_keep;
      }
    }
  }
  return room;
}

std::string DescribeBinding(const AccountTree& tree, const Room& room, PoolIndex pool,
                            int64_t pool_allocated, int64_t pool_gpus, std::string_view pool_name) {
  const Account& a = tree.account(room.account);
  switch (room.binding) {
    case Room::Binding::kPool:
      return fmt::format("pool '{}' has {} of {} GPUs allocated", pool_name, pool_allocated, pool_gpus);
    case Room::Binding::kAccountLimit:
      return fmt::format("account '{}' uses {} GPUs of nominal {} + borrow limit {}", a.path,
                         room.used, a.quota[pool].nominal, Limit(a.quota[pool].borrow_limit));
    case Room::Binding::kCohort:
      return fmt::format("the cohort of '{}' has {} GPUs left to lend ({} kept idle by accounts "
                         "that do not lend them)",
                         a.path, std::max<int64_t>(0, room.gpus), room.siblings_keep);
  }
  return {};
}

}  // namespace

QuotaCheck CheckQuota(const AccountTree& tree, AccountIndex account, PoolIndex pool, int64_t gpus,
                      int64_t pool_gpus, std::string_view pool_name) {
  QuotaCheck check;
  // The path leaf first, root last; trees are shallow, so it lives on the stack.
  constexpr size_t kMaxDepth = 64;
  AccountIndex path[kMaxDepth];
  size_t length = 0;
  for (AccountIndex at = account;; at = tree.account(at).parent) {
    if (length == kMaxDepth) {
      check.why = "the account tree is deeper than 64 levels";
      return check;
    }
    path[length++] = at;
    if (at == tree.root()) break;
  }
  for (size_t i = 0; i + 1 < length; ++i) {
    const Account& a = tree.account(path[i]);
    if (a.allocated[pool] + gpus > a.quota[pool].nominal) check.borrows = true;
  }
  const Account& root = tree.account(tree.root());
  Room room = RoomBelow(tree, path, length, pool, pool_gpus - root.allocated[pool]);
  const Account& leaf = tree.account(account);
  check.within_nominal = leaf.allocated[pool] + gpus <= leaf.quota[pool].nominal;
  check.room = std::max<int64_t>(0, room.gpus);
  check.fits = room.gpus >= gpus;
  if (!check.fits) {
    // Only the pool's own size binds: the job waits for GPUs, not for quota.
    check.pool_full = room.binding == Room::Binding::kPool;
    if (room.binding == Room::Binding::kCohort) check.cohort = tree.account(room.account).parent;
    // A full pool is a wait for GPUs, which the scheduler words from placement; only quota
    // waits need words here (every job behind a full pool lands here in a busy pass).
    if (!check.pool_full) {
      check.why = fmt::format("waiting for quota in pool '{}': needs {} GPUs, room for {}; {}",
                              pool_name, gpus, check.room,
                              DescribeBinding(tree, room, pool, root.allocated[pool], pool_gpus,
                                              pool_name));
    }
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
