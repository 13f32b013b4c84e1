#include "sched/queue_order.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace allot {
namespace {

// The sort key of a pending job, read once per pass: comparisons must not look jobs up.
// `length` is the expected run time for the shortest-first orders, 0 for the others.
struct OrderKey {
  int priority;
  Duration length;
  Time submit;
  JobId id;
  const Job* job;
  bool operator<(const OrderKey& other) const {
    if (priority != other.priority) return priority > other.priority;
    if (length != other.length) return length < other.length;
    if (submit != other.submit) return submit < other.submit;
    return id < other.id;
  }
};

// Keys of the pending jobs in (class, submit, id) order. The scheduler hands jobs
// in that order already (Model::pending_in_order), so sorting is only a fallback.
// With `length`, the keys are sorted by expected run time within each class.
std::vector<OrderKey> SortedKeys(const Model& model, const std::vector<JobId>& pending,
                                 const std::function<Duration(const Job&)>& length = {}) {
  std::vector<OrderKey> keys;
  keys.reserve(pending.size());
  for (JobId id : pending) {
    const Job& job = *model.FindJob(id);
    keys.push_back({job.priority, length ? length(job) : 0, job.submit_time, id, &job});
  }
  if (!std::is_sorted(keys.begin(), keys.end())) std::sort(keys.begin(), keys.end());
  return keys;
}

// One list per pass: fifo (no length), or shortest first by the length function.
class ListOrder final : public QueueOrder {
 public:
  explicit ListOrder(std::function<Duration(const Job&)> length = {}) : length_(std::move(length)) {}

  void Begin(const Model& model, std::vector<JobId> pending, std::vector<JobId> first) override {
    keys_ = SortedKeys(model, pending, length_);
    first_ = std::move(first);
    is_first_.clear();
    is_first_.insert(first_.begin(), first_.end());
    first_priority_.clear();
    for (JobId id : first_) first_priority_.push_back(model.FindJob(id)->priority);
    next_ = 0;
    next_first_ = 0;
    class_started_ = false;
  }
  std::optional<JobId> Next() override {
    while (next_ < keys_.size()) {
      int priority = keys_[next_].priority;
      // Entering a class: its starving jobs go first, in the order given.
      if (!class_started_) {
        while (next_first_ < first_.size() && first_priority_[next_first_] > priority) ++next_first_;
        if (next_first_ < first_.size() && first_priority_[next_first_] == priority) {
          return first_[next_first_++];
        }
        class_started_ = true;
      }
      const OrderKey& key = keys_[next_++];
      if (next_ == keys_.size() || keys_[next_].priority != priority) class_started_ = false;
      if (!is_first_.empty() && is_first_.count(key.id)) continue;
      return key.id;
    }
    return std::nullopt;
  }
  void Started(const Job&) override {}

 private:
  std::function<Duration(const Job&)> length_;
  std::vector<OrderKey> keys_;
  std::vector<JobId> first_;
  std::vector<int> first_priority_;
  std::unordered_set<JobId> is_first_;
  size_t next_ = 0;
  size_t next_first_ = 0;
  bool class_started_ = false;
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
    pending_ = SortedKeys(model, pending);
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
    int priority = pending_[class_begin_].priority;
    class_priority_ = priority;
    next_first_ = 0;
    size_t end = class_begin_;
    while (end < pending_.size() && pending_[end].priority == priority) {
      const Job& job = *pending_[end].job;
      if (is_first_.empty() || !is_first_.count(job.id)) queues_[job.account].push_back(job.id);
      ++end;
    }
    for (size_t i = class_begin_; i < end; ++i) {
      if (!is_first_.empty() && is_first_.count(pending_[i].id)) continue;
      AccountIndex at = pending_[i].job->account;
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
  std::vector<OrderKey> pending_;  // by class, then submit time
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

std::unique_ptr<QueueOrder> MakeQueueOrder(std::string_view name, Duration half_life,
                                           const RuntimePredictor* predictor) {
  if (name == "fifo") return std::make_unique<ListOrder>();
  if (name == "sjf") {
    return std::make_unique<ListOrder>([](const Job& job) { return job.spec.time_limit; });
  }
  if (name == "predicted") {
    return std::make_unique<ListOrder>([predictor](const Job& job) {
      return predictor ? predictor->Predict(job) : job.spec.time_limit;  // no history: the limit
    });
  }
  return std::make_unique<FairShareOrder>(half_life);
}

}  // namespace allot
