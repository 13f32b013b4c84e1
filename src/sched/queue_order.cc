#include "sched/queue_order.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
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

// The model's pending jobs in (class, submit, id) order, walked lazily: jobs the filter does not
// admit, jobs that became pending after Begin and, with a limit, jobs asking for more GPUs than
// it allows are passed over. The walk resumes after the last key it passed, so jobs may start,
// or be requeued, while it runs. When few jobs are small enough for the limit, it merges the
// model's per-size queues of those instead of walking the whole queue.
class PendingWalk {
 public:
  void Begin(const Model& model, PendingFilter include) {
    model_ = &model;
    include_ = std::move(include);
    limit_ = {};
    sequence_ = model.pending_sequence();
    passed_any_ = false;
    at_peeked_ = false;
  }
  void Limit(RequestLimit limit) { limit_ = std::move(limit); }
  // The next job to hand out, without passing it; nullptr at the end, or where the queue
  // reaches `stop` (nothing at or after it is passed over).
  const Job* Peek(const std::optional<Model::PendingOrder>& stop = std::nullopt) {
    StartableRequests limit = limit_ ? limit_() : StartableRequests{};
    if (limit.gpus == INT64_MAX || !FewFit(limit)) return WalkQueue(limit, stop);
    while (std::optional<Model::PendingOrder> key = MergeSizes(limit)) {
      if (stop && !(*key < *stop)) break;
      const Job* job = model_->FindJob(key->id);
      if (Hands(limit, *job)) return job;
      last_ = *key;
      passed_any_ = true;
    }
    // Every job before `stop` (or to the end) was outside the limit: it is passed over now, not
    // looked at later under a limit that what follows `stop` may have loosened.
    PassUpTo(stop);
    return nullptr;
  }
  void Pass(const Job& job) {
    if (at_peeked_ && model_->pending_erasures() == erasures_) {
      ++peeked_;  // still valid: nothing left the queue since Peek
    } else {
      at_peeked_ = false;
    }
    last_ = Model::OrderOf(job);
    passed_any_ = true;
  }

 private:
  void PassUpTo(const std::optional<Model::PendingOrder>& stop) {
    const std::set<Model::PendingOrder>& queue = model_->pending_in_order();
    auto end = stop ? queue.lower_bound(*stop) : queue.end();
    if (end == queue.begin()) return;
    Model::PendingOrder before = *std::prev(end);
    if (!passed_any_ || last_ < before) {
      last_ = before;
      passed_any_ = true;
      at_peeked_ = false;
    }
  }
  bool Hands(const StartableRequests& limit, const Job& job) const {
    return limit.Admits(job) && job.pending_since <= sequence_ && include_(job);
  }
  // Steps through the whole queue. The position is kept between calls while no job leaves the
  // queue (jobs that enter it are not handed out in this sweep, so they may be stepped over).
  const Job* WalkQueue(const StartableRequests& limit, const std::optional<Model::PendingOrder>& stop) {
    const std::set<Model::PendingOrder>& queue = model_->pending_in_order();
    std::set<Model::PendingOrder>::const_iterator at;
    if (at_peeked_ && model_->pending_erasures() == erasures_) {
      at = peeked_;
    } else {
      at = passed_any_ ? queue.upper_bound(last_) : queue.begin();
    }
    for (; at != queue.end(); ++at) {
      if (stop && !(*at < *stop)) break;
      const Job* job = model_->FindJob(at->id);
      if (Hands(limit, *job)) {
        peeked_ = at;
        at_peeked_ = true;
        erasures_ = model_->pending_erasures();
        return job;
      }
      last_ = *at;
      passed_any_ = true;
    }
    at_peeked_ = false;
    return nullptr;
  }

 private:
  // Whether merging the per-size queues of the jobs within the limit costs less than walking the
  // queue. A merge step looks at every such size, and at each short job of the sizes only short
  // jobs may use; a walk step passes over queue / (jobs within the limit) jobs on average. Past
  // sqrt(queue) per merge step, walking is no worse, so counting stops there.
  bool FewFit(const StartableRequests& limit) const {
    size_t queue_length = model_->pending_in_order().size();
    size_t cap = static_cast<size_t>(std::sqrt(static_cast<double>(queue_length))) + 1;
    size_t merge_step = 0;
    size_t within = 0;
    for (const auto& [gpus, queue] : model_->pending_by_size()) {
      if (gpus > limit.gpus) break;
      if (gpus <= limit.gpus_past) {
        ++merge_step;
        within += queue.in_order.size();
      } else {
        for (const auto& [time_limit, key] : queue.by_time_limit) {
          if (time_limit > limit.short_limit || merge_step > cap) break;
          ++merge_step;
          ++within;
        }
      }
      if (merge_step > cap) return false;
    }
    return merge_step * (within + 1) < queue_length;
  }
  // The first job after the last one passed among the sizes within the limit (of the sizes
  // only short jobs may use, among those).
  std::optional<Model::PendingOrder> MergeSizes(const StartableRequests& limit) {
    at_peeked_ = false;
    std::optional<Model::PendingOrder> first;
    auto consider = [&](const Model::PendingOrder& key) {
      if ((!passed_any_ || last_ < key) && (!first || key < *first)) first = key;
    };
    for (const auto& [gpus, queue] : model_->pending_by_size()) {
      if (gpus > limit.gpus) break;
      if (gpus <= limit.gpus_past) {
        auto at = passed_any_ ? queue.in_order.upper_bound(last_) : queue.in_order.begin();
        if (at != queue.in_order.end()) consider(*at);
        continue;
      }
      // Only jobs that end before the first reservation starts may use this many GPUs.
      for (const auto& [time_limit, key] : queue.by_time_limit) {
        if (time_limit > limit.short_limit) break;
        consider(key);
      }
    }
    return first;
  }

  const Model* model_ = nullptr;
  PendingFilter include_;
  RequestLimit limit_;
  uint64_t sequence_ = 0;
  Model::PendingOrder last_{};
  bool passed_any_ = false;
  std::set<Model::PendingOrder>::const_iterator peeked_;  // WalkQueue's last job handed
  bool at_peeked_ = false;
  uint64_t erasures_ = 0;  // Model::pending_erasures() when peeked_ was taken
};

// Keys of the admitted pending jobs, in (class, submit, id) order, or with `length` by expected
// run time within each class.
std::vector<OrderKey> SortedKeys(const Model& model, PendingFilter include,
                                 const std::function<Duration(const Job&, Time)>& length = {}) {
  std::vector<OrderKey> keys;
  PendingWalk walk;
  walk.Begin(model, std::move(include));
  while (const Job* job = walk.Peek()) {
    keys.push_back({job->priority, length ? length(*job, model.now()) : 0, job->submit_time, job->id, job});
    walk.Pass(*job);
  }
  if (length) std::sort(keys.begin(), keys.end());
  return keys;
}

// The starving jobs a sweep hands out ahead of the others of their class, in the order given.
class FirstJobs {
 public:
  void Set(const Model& model, std::vector<JobId> first) {
    ids_ = std::move(first);
    set_.clear();
    set_.insert(ids_.begin(), ids_.end());
    priority_.clear();
    for (JobId id : ids_) priority_.push_back(model.FindJob(id)->priority);
    next_ = 0;
  }
  // The next one of this class or a higher one (classes are entered highest first; a class
  // whose other jobs were all passed over is never entered), if any is left.
  std::optional<JobId> TakeFrom(int priority) {
    if (next_ < ids_.size() && priority_[next_] >= priority) return ids_[next_++];
    return std::nullopt;
  }
  std::optional<JobId> TakeAny() {
    if (next_ < ids_.size()) return ids_[next_++];
    return std::nullopt;
  }
  bool Contains(JobId id) const { return !set_.empty() && set_.count(id) > 0; }
  // Where the class of the next one begins in the model's queue, if any is left.
  std::optional<Model::PendingOrder> NextClassStart() const {
    if (next_ == ids_.size()) return std::nullopt;
    return Model::PendingOrder{-priority_[next_], std::numeric_limits<Time>::min(), 0};
  }

 private:
  std::vector<JobId> ids_;
  std::vector<int> priority_;
  std::unordered_set<JobId> set_;
  size_t next_ = 0;
};

// First in, first out, walked lazily; starving jobs go first in their class.
class FifoOrder final : public QueueOrder {
 public:
  void Begin(const Model& model, PendingFilter include, std::vector<JobId> first) override {
    walk_.Begin(model, std::move(include));
    first_.Set(model, std::move(first));
  }
  void LimitRequests(RequestLimit limit) override { walk_.Limit(std::move(limit)); }
  std::optional<JobId> Next() override {
    // The walk stops where the class of the next starving job begins: those go first, before any
    // job of their class is handed out or passed over (with what they change taken into account).
    while (const Job* job = walk_.Peek(first_.NextClassStart())) {
      walk_.Pass(*job);
      if (first_.Contains(job->id)) continue;
      return job->id;
    }
    return first_.TakeAny();
  }
  void Started(const Job&) override {}

 private:
  PendingWalk walk_;
  FirstJobs first_;
};

// Shortest first by a length function, sorted once per sweep.
class ListOrder final : public QueueOrder {
 public:
  explicit ListOrder(std::function<Duration(const Job&, Time)> length) : length_(std::move(length)) {}

  void Begin(const Model& model, PendingFilter include, std::vector<JobId> first) override {
    keys_ = SortedKeys(model, std::move(include), length_);
    first_.Set(model, std::move(first));
    next_ = 0;
    class_started_ = false;
  }
  std::optional<JobId> Next() override {
    while (next_ < keys_.size()) {
      int priority = keys_[next_].priority;
      // Entering a class: its starving jobs go first, in the order given.
      if (!class_started_) {
        if (std::optional<JobId> starving = first_.TakeFrom(priority)) return starving;
        class_started_ = true;
      }
      const OrderKey& key = keys_[next_++];
      if (next_ == keys_.size() || keys_[next_].priority != priority) class_started_ = false;
      if (first_.Contains(key.id)) continue;
      return key.id;
    }
    return std::nullopt;
  }
  void Started(const Job&) override {}

 private:
  std::function<Duration(const Job&, Time)> length_;
  std::vector<OrderKey> keys_;
  FirstJobs first_;
  size_t next_ = 0;
  bool class_started_ = false;
};

class FairShareOrder final : public QueueOrder {
 public:
  explicit FairShareOrder(Duration half_life) : half_life_(half_life) {}

  void Begin(const Model& model, PendingFilter include, std::vector<JobId> first) override {
    model_ = &model;
    first_ = std::move(first);
    is_first_.clear();
    for (JobId id : first_) is_first_.insert(id);
    const AccountTree& tree = model.accounts();
    // Jobs grouped by class (highest first), each class's jobs in submit order.
    pending_ = SortedKeys(model, std::move(include));
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
                                           const RuntimePredictor* predictor, const LasLevels* las) {
  if (name == "fifo") return std::make_unique<FifoOrder>();
  if (name == "sjf") {
    return std::make_unique<ListOrder>([](const Job& job, Time) { return job.spec.time_limit; });
  }
  if (name == "predicted") {
    return std::make_unique<ListOrder>([predictor](const Job& job, Time) {
      return predictor ? predictor->Predict(job) : job.spec.time_limit;  // no history: the limit
    });
  }
  if (name == "las") {
    // A pending job's attained service does not change while it waits; promotion may still move
    // it to queue 0, so the queue is taken at the model's time.
    return std::make_unique<ListOrder>([las](const Job& job, Time now) -> Duration {
      return las ? las->Of(job, now) : 0;
    });
  }
  return std::make_unique<FairShareOrder>(half_life);
}

}  // namespace allot
