#include "core/accounts.h"

#include <algorithm>
#include <cmath>

namespace allot {

AccountTree::AccountTree(size_t pool_count) : pool_count_(pool_count) {
  Account root;
  root.name = "root";
  root.path = "root";
  root.quota.assign(pool_count, PoolQuota{});
  root.allocated.assign(pool_count, 0);
  root.children_protected.assign(pool_count, 0);
  accounts_.push_back(std::move(root));
  by_name_.emplace("root", 0);
}

StatusOr<AccountIndex> AccountTree::Add(AccountIndex parent, std::string_view name, double weight) {
  if (name.empty()) return InvalidArgumentError("an account needs a name");
  if (name.find('/') != std::string_view::npos) {
    return InvalidArgumentError("account name '{}' must not contain '/'", name);
  }
  if (by_name_.count(std::string(name))) {
    return AlreadyExistsError("account '{}' is defined twice; account names must be unique", name);
  }
  if (!(weight > 0) || !std::isfinite(weight)) {
    return InvalidArgumentError("account '{}': weight must be a positive number", name);
  }
  AccountIndex index = static_cast<AccountIndex>(accounts_.size());
  Account account;
  account.name = std::string(name);
  account.path = parent == root() ? account.name
                                  : fmt::format("{}/{}", accounts_[parent].path, name);
  account.parent = parent;
  account.depth = accounts_[parent].depth + 1;
  account.weight = weight;
  account.quota.assign(pool_count_, PoolQuota{});
  account.allocated.assign(pool_count_, 0);
  account.children_protected.assign(pool_count_, 0);
  accounts_.push_back(std::move(account));
  accounts_[parent].children.push_back(index);
  by_name_.emplace(std::string(name), index);
  return index;
}

Status AccountTree::Finalize() {
  for (Account& account : accounts_) account.children_protected.assign(pool_count_, 0);
  // Children come after their parents, so a reverse walk completes children first.
  for (size_t i = accounts_.size(); i-- > 1;) {
    Account& account = accounts_[i];
    for (size_t pool = 0; pool < pool_count_; ++pool) {
      PoolQuota& quota = account.quota[pool];
      int64_t children_sum = 0;
      for (AccountIndex child : account.children) children_sum += accounts_[child].quota[pool].nominal;
      if (!quota.nominal_set) {
        quota.nominal = children_sum;
      }
      if (quota.nominal < 0 || quota.borrow_limit < 0 || quota.lend_limit < 0) {
        return InvalidArgumentError("account '{}': quotas must not be negative", account.path);
      }
    }
  }
  for (size_t pool = 0; pool < pool_count_; ++pool) {
    int64_t sum = 0;
    for (AccountIndex child : accounts_[0].children) sum += accounts_[child].quota[pool].nominal;
    accounts_[0].quota[pool].nominal = sum;
  }
  for (AccountIndex index = 1; index < accounts_.size(); ++index) {
    for (size_t pool = 0; pool < pool_count_; ++pool) {
      accounts_[accounts_[index].parent].children_protected[pool] +=
          Protected(index, static_cast<PoolIndex>(pool));
    }
  }
  return OkStatus();
}

StatusOr<AccountIndex> AccountTree::Find(std::string_view name) const {
  auto found = by_name_.find(std::string(name));
  if (found == by_name_.end()) return NotFoundError("unknown account '{}'", name);
  return found->second;
}

std::vector<AccountIndex> AccountTree::PathToRoot(AccountIndex account) const {
  std::vector<AccountIndex> path;
  for (AccountIndex at = account; at != kNoAccount; at = accounts_[at].parent) path.push_back(at);
  return path;
}

bool AccountTree::IsAncestorOrSelf(AccountIndex ancestor, AccountIndex account) const {
  for (AccountIndex at = account; at != kNoAccount; at = accounts_[at].parent) {
    if (at == ancestor) return true;
    if (accounts_[at].depth <= accounts_[ancestor].depth) return false;
  }
  return false;
}

int64_t AccountTree::Protected(AccountIndex account, PoolIndex pool) const {
  const Account& a = accounts_[account];
  int64_t idle = std::max<int64_t>(0, a.quota[pool].nominal - a.allocated[pool]);
  return std::max<int64_t>(0, idle - a.quota[pool].lend_limit);
}

void AccountTree::Charge(AccountIndex account, PoolIndex pool, int64_t gpus,
                         double end_time_weight) {
  for (AccountIndex at = account; at != kNoAccount; at = accounts_[at].parent) {
    Account& a = accounts_[at];
    int64_t protected_before = at == root() ? 0 : Protected(at, pool);
    a.allocated[pool] += gpus;
    a.allocated_total += gpus;
    a.committed_end_sum += end_time_weight;
    if (at != root()) {
      accounts_[a.parent].children_protected[pool] += Protected(at, pool) - protected_before;
    }
  }
}

void AccountTree::Accrue(Time from, Time to, Duration half_life) {
  if (to <= from) return;
  double elapsed = static_cast<double>(to - from);
  // Usage U decays as U * 2^(-t/H); a constant allocation A adds A * integral of the decay.
  // A half-life of 0 turns decay off: usage is remembered forever.
  double decay = half_life > 0 ? std::exp2(-elapsed / static_cast<double>(half_life)) : 1.0;
  double gained_per_gpu =
      half_life > 0 ? static_cast<double>(half_life) / std::log(2.0) * (1.0 - decay) : elapsed;
  for (Account& account : accounts_) {
    account.decayed_usage = account.decayed_usage * decay +
                            static_cast<double>(account.allocated_total) * gained_per_gpu;
    if (account.allocated_total == 0) continue;
    for (Grant& grant : account.grants) {
      Time overlap = std::min(to, grant.end) - std::max(from, grant.start);
      if (overlap > 0) {
        grant.used_gpu_seconds +=
            static_cast<double>(account.allocated_total) * static_cast<double>(overlap);
      }
    }
  }
}

const Grant* AccountTree::ActiveGrant(AccountIndex account, Time now) const {
  for (const Grant& grant : accounts_[account].grants) {
    if (grant.start <= now && now < grant.end) return &grant;
  }
  return nullptr;
}

}  // namespace allot
