#include "sched/queue_order.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace allot {
namespace {

// The sort key of a pending job, read once per pass: comparisons must not look jobs up.
struct OrderKey {
  int priority;
  size_t rank;  // position among the starving jobs put first; SIZE_MAX for the others
  Time submit;
  JobId id;
  bool operator<(const OrderKey& other) const {
    if (priority != other.priority) return priority > other.priority;
    if (rank != other.rank) return rank < other.rank;
    if (submit != other.submit) return submit < other.submit;
    return id < other.id;
  }
};

std::vector<OrderKey> SortedKeys(const Model& model, const std::vector<JobId>& pending,
                                 const std::vector<JobId>& first) {
  std::unordered_map<JobId, size_t> rank;
  for (size_t i = 0; i < first.size(); ++i) rank.emplace(first[i], i);
  std::vector<OrderKey> keys;
  keys.reserve(pending.size());
  for (JobId id : pending) {
    const Job& job = *model.FindJob(id);
    auto found = rank.find(id);
    keys.push_back({job.priority, found == rank.end() ? SIZE_MAX : found->second, job.submit_time, id});
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

class FifoOrder final : public QueueOrder {
 public:
  void Begin(const Model& model, std::vector<JobId> pending, std::vector<JobId> first) override {
    std::vector<OrderKey> keys = SortedKeys(model, pending, first);
    jobs_.clear();
    jobs_.reserve(keys.size());
    for (const OrderKey& key : keys) jobs_.push_back(key.id);
    next_ = 0;
  }
  std::optional<JobId> Next() override {
    if (next_ == jobs_.size()) return std::nullopt;
    return jobs_[next_++];
  }
  void Started(const Job&) override {}

 private:
  std::vector<JobId> jobs_;
  size_t next_ = 0;
};

class FairShareOrder final : public QueueOrder {
 public:
  explicit FairShareOrder(Duration half_life) : half_life_(half_life) {}

  void Begin(const Model& model, std::vector<JobId> pending, std::vector<JobId> first) override {
    model_ = &model;
    first_ = std::move(first);
    is_first_.clear();
    for (JobId id : first_) is_first_.insert(id);
    const AccountTree& tree = model.accounts();
    // Jobs grouped by class (highest first), each class's jobs in submit order.
    std::vector<OrderKey> keys = SortedKeys(model, pending, {});
    pending_.clear();
    pending_.reserve(keys.size());
    for (const OrderKey& key : keys) pending_.push_back(key.id);
    class_begin_ = 0;
    queues_.assign(tree.accounts().size(), {});
    children_.assign(tree.accounts().size(), {});
    key_.assign(tree.accounts().size(), 0.0);
    in_parent_.assign(tree.accounts().size(), false);
    LoadNextClass();
  }

  std::optional<JobId> Next() override {
    while (true) {
      // Starving jobs of this class first, in the order given.
      while (next_first_ < first_.size()) {
        JobId id = first_[next_first_++];
        if (model_->FindJob(id)->priority == class_priority_) return id;
      }
      AccountIndex at = model_->accounts().root();
      if (children_[at].empty() && queues_[at].empty()) {
        if (class_begin_ == pending_.size()) return std::nullopt;
        LoadNextClass();
        continue;
      }
      while (queues_[at].empty()) at = children_[at].begin()->second;
      JobId id = queues_[at].front();
      queues_[at].pop_front();
      if (queues_[at].empty()) Unlink(at);
      return id;
    }
  }

  void Started(const Job& job) override {
    const AccountTree& tree = model_->accounts();
    for (AccountIndex at = job.account; at != tree.root(); at = tree.account(at).parent) {
      if (!in_parent_[at]) {
        key_[at] = Key(at);
        continue;
      }
      auto& siblings = children_[tree.account(at).parent];
      siblings.erase({key_[at], at});
      key_[at] = Key(at);
      siblings.emplace(key_[at], at);
    }
  }

 private:
  // (recent usage as average GPUs + GPUs held now) / weight.
  double Key(AccountIndex index) const {
    const Account& account = model_->accounts().account(index);
    double recent = half_life_ > 0
                        ? account.decayed_usage * std::log(2.0) / static_cast<double>(half_life_)
                        : account.decayed_usage / 86400.0;
    return (recent + static_cast<double>(account.allocated_total)) / account.weight;
  }

  void LoadNextClass() {
    const AccountTree& tree = model_->accounts();
    if (class_begin_ == pending_.size()) return;
    int priority = model_->FindJob(pending_[class_begin_])->priority;
    class_priority_ = priority;
    next_first_ = 0;
    size_t end = class_begin_;
    while (end < pending_.size() && model_->FindJob(pending_[end])->priority == priority) {
      const Job& job = *model_->FindJob(pending_[end]);
      if (!is_first_.count(job.id)) queues_[job.account].push_back(job.id);
      ++end;
    }
    for (size_t i = class_begin_; i < end; ++i) {
      if (is_first_.count(pending_[i])) continue;
      AccountIndex at = model_->FindJob(pending_[i])->account;
      // Link the account and its ancestors into their parents' ordered sets, once each.
      while (at != tree.root() && !in_parent_[at]) {
        key_[at] = Key(at);
        children_[tree.account(at).parent].emplace(key_[at], at);
        in_parent_[at] = true;
        at = tree.account(at).parent;
      }
    }
    class_begin_ = end;
  }

  // The account has no more jobs: remove it, and every ancestor left empty, from the order.
  void Unlink(AccountIndex at) {
    const AccountTree& tree = model_->accounts();
    while (at != tree.root() && queues_[at].empty() && children_[at].empty()) {
      children_[tree.account(at).parent].erase({key_[at], at});
      in_parent_[at] = false;
      at = tree.account(at).parent;
    }
  }

  Duration half_life_;
  const Model* model_ = nullptr;
  std::vector<JobId> pending_;
  size_t class_begin_ = 0;
  std::vector<std::deque<JobId>> queues_;                        // per account, this class
  std::vector<std::set<std::pair<double, AccountIndex>>> children_;  // per account: by key
  std::vector<double> key_;
  std::vector<bool> in_parent_;
  std::vector<JobId> first_;
  std::unordered_set<JobId> is_first_;
  size_t next_first_ = 0;
  int class_priority_ = 0;
};

}  // namespace

std::unique_ptr<QueueOrder> MakeQueueOrder(std::string_view name, Duration half_life) {
  if (name == "fifo") return std::make_unique<FifoOrder>();
  return std::make_unique<FairShareOrder>(half_life);
}

}  // namespace allot
