#include "server/controller.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include "api/agent_protocol.h"
#include "api/submission.h"
#include "core/hostlist.h"
#include "core/input_limits.h"
#include "server/controller_internal.h"

namespace allot {
namespace {

using nlohmann::json;

using namespace controller_internal;

const std::vector<std::string> kLiveStates = {"pending", "running"};

}  // namespace

Controller::Controller(std::unique_ptr<Scheduler> scheduler, std::unique_ptr<Store> store,
                       ControllerOptions options)
    : options_(std::move(options)), store_(std::move(store)), scheduler_(std::move(scheduler)),
      last_seen_(std::make_unique<std::atomic<Time>[]>(scheduler_->model().cluster().nodes().size())) {
  pass_seconds_.bounds = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  pass_seconds_.counts.assign(pass_seconds_.bounds.size() + 1, 0);
  start_delay_seconds_.bounds = {0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60};
  start_delay_seconds_.counts.assign(start_delay_seconds_.bounds.size() + 1, 0);
  if (!options_.now) {
    options_.now = [] {
      return std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch()).count();
    };
  }
}

Controller::~Controller() { StopLoop(); }

StatusOr<std::unique_ptr<Controller>> Controller::Open(Config config, ControllerOptions options) {
  std::error_code error;
  std::filesystem::create_directories(options.data_dir, error);
  if (error) {
    return InvalidArgumentError("cannot create the data directory '{}': {}", options.data_dir, error.message());
  }
  ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, Scheduler::Create(std::move(config)));
  std::string location = options.store.empty() ? (std::filesystem::path(options.data_dir) / "allot.db").string()
                                               : options.store;
  ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(location, options.fencing_epoch));
  std::unique_ptr<Controller> controller(
      new Controller(std::move(scheduler), std::move(store), std::move(options)));
  ALLOT_RETURN_IF_ERROR(controller->Recover());
  return controller;
}

// ---- Durability -----------------------------------------------------------------------------

Store::Ticket Controller::Queue(WriteBatch batch) {
  if (!batch.empty()) NoteChange();
  return store_->Enqueue(std::move(batch));
}

void Controller::NoteChange() {
  ++change_sequence_;
  std::map<uint64_t, ChangeDone> waits = std::move(change_waits_);
  change_waits_.clear();
  // Cheap: each hands its reply to its connection's network thread.
  for (auto& [serial, done] : waits) done(change_sequence_);
}

void Controller::WaitForChange(const Principal&, uint64_t after, double timeout_seconds, ChangeDone done) {
  std::unique_lock lock(mutex_);
  // A number from before a restart, or one behind: the caller has something to catch up on now.
  if (after != change_sequence_ || timeout_seconds <= 0) {
    uint64_t now = change_sequence_;
    lock.unlock();
    done(now);
    return;
  }
  uint64_t serial = next_change_wait_++;
  change_waits_.emplace(serial, std::move(done));
  change_wait_deadlines_.emplace(
      std::chrono::steady_clock::now() +
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_seconds)),
      serial);
  long_poll_timer_wakeup_.notify_one();
}

void Controller::RefreshQueueOrder() {
  if (queue_order_sequence_ == change_sequence_) return;
  // A sort of the whole queue under the lock: on a busy pool the state changes many times a
  // second, and dashboards and `allot show` ask as often. While the number of pending jobs is
  // the same (no submit, start or end), an order up to a second old is kept; a changed count
  // means jobs came or went, which every reader must see at once.
  const auto now = std::chrono::steady_clock::now();
  if (queue_order_pending_ == scheduler_->model().pending().size() &&
      now - queue_order_built_ < std::chrono::seconds(1)) {
    return;
  }
  queue_order_built_ = now;
  queue_order_pending_ = scheduler_->model().pending().size();
  queue_order_ = scheduler_->PendingOrder(Now());
  queue_places_.clear();
  queue_places_.reserve(queue_order_.size());
  for (size_t i = 0; i < queue_order_.size(); ++i) queue_places_.emplace(queue_order_[i], i + 1);
  queue_order_sequence_ = change_sequence_;
}

void Controller::WaitDurable(const Store::Ticket& ticket) {
  Status status = store_->Wait(ticket);
  if (!status.ok()) {
    spdlog::critical("the store failed to commit ({}); exiting so that a restart recovers from disk",
                     status.message());
    std::_Exit(70);
  }
}

void Controller::MarkDirty() {
  std::lock_guard lock(loop_mutex_);
  dirty_ = true;
  loop_wakeup_.notify_one();
}

// ---- Authentication and visibility -----------------------------------------------------------

StatusOr<Principal> Controller::Authenticate(std::string_view token) const {
  if (token.empty()) {
    return Status(StatusCode::kUnauthenticated,
                  "missing bearer token: send the header 'Authorization: Bearer TOKEN'");
  }
  if (token.starts_with(kJobCredentialPrefix)) {
    std::optional<std::pair<uint64_t, uint64_t>> claim = CheckJobCredential(job_key_, token);
    if (!claim) return Status(StatusCode::kUnauthenticated, "this job credential is not valid");
    std::lock_guard lock(mutex_);
    const Job* job = scheduler_->model().FindJob(claim->first);
    if (!job || job->state != JobState::kRunning || job->epoch != claim->second) {
      return Status(StatusCode::kUnauthenticated,
                    fmt::format("job {}'s credential is for an allocation that has ended", claim->first));
    }
    return Principal{.user = job->spec.user, .role = Role::kJob, .account = job->spec.account,
                     .account_index = job->account, .job = claim->first, .job_epoch = claim->second};
  }
  std::string hash = HashToken(token);
  TokenRow row;
  {
    std::shared_lock lock(tokens_mutex_);
    auto found = tokens_by_hash_.find(hash);
    if (found == tokens_by_hash_.end()) {
      return Status(StatusCode::kUnauthenticated, "unknown or revoked token");
    }
    row = found->second;
  }
  StatusOr<Role> role = ParseRole(row.role);
  if (!role.ok()) return Status(StatusCode::kUnauthenticated, "the token has an unknown role");
  Principal principal{.token_id = row.id, .user = row.user, .role = *role, .account = row.account, .node = row.node};
  if (!row.account.empty()) {
    // The tree's shape is fixed at start (only quotas change), so a lookup needs no lock.
    StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(row.account);
    if (!account.ok()) {
      return Status(StatusCode::kUnauthenticated,
                    fmt::format("the token's account '{}' is no longer in the config", row.account));
    }
    principal.account_index = *account;
  }
  return principal;
}

bool Controller::Sees(const Principal& who, AccountIndex account) const {
  if (who.is_operator()) return true;
  // A job's credential sees its own account's jobs only; the HTTP layer lets it name no job but
  // its own.
  if (who.role == Role::kJob) return account == who.account_index;
  if (who.role != Role::kTenant || who.account_index == kNoAccount || account == kNoAccount) return false;
  return scheduler_->model().accounts().IsAncestorOrSelf(who.account_index, account);
}

StatusOr<AccountIndex> Controller::VisibleAccount(const Principal& who, std::string_view name) const {
  StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(name);
  if (!account.ok() || !Sees(who, *account)) return NotFoundError("no account '{}'", name);
  return *account;
}

StatusOr<const Job*> Controller::VisibleLiveJob(const Principal& who, JobId id) const {
  const Job* job = scheduler_->model().FindJob(id);
  if (!job || !Sees(who, job->account)) return NotFoundError("no job {}", id);
  return job;
}

// ---- Job documents ----------------------------------------------------------------------------

PendingReason Controller::ReasonFor(const Job& job, const JobRecord& record) const {
  if (record.user_held) {
    return {ReasonCode::kHeld, fmt::format("held; `allot release {}` lets it run", job.id)};
  }
  if (record.waiting_dependencies) return {ReasonCode::kNone, record.dependency_note};
  if (record.throttled) {
    return {ReasonCode::kHeld, fmt::format("array limit: at most {} elements of array {} run at once",
                                           record.array_limit, record.array_job_id)};
  }
  return scheduler_->ReasonOf(job);
}

std::string Controller::ReasonCodeFor(const JobRecord& record, const PendingReason& reason) {
  if (!record.user_held && record.waiting_dependencies) return "dependency";
  return std::string(ReasonCodeName(reason.code));
}

json Controller::LiveJobJson(const Job& job, const JobRecord& record) const {
  const Cluster& cluster = scheduler_->model().cluster();
  bool running = job.state == JobState::kRunning;
  json doc;
  doc["id"] = job.id;
  doc["name"] = job.spec.name;
  doc["account"] = job.spec.account;
  doc["user"] = job.spec.user;
  doc["state"] = running ? "running" : "pending";
  if (!running) {
    PendingReason reason = ReasonFor(job, record);
    doc["reason"] = {{"code", ReasonCodeFor(record, reason)}, {"message", reason.message}};
    doc["expected_start"] = reason.code == ReasonCode::kReserved ? json(job.reserved_start) : json(nullptr);
  }
  doc["held"] = record.user_held;
  doc["user_held"] = record.user_held;
  doc["submit_time"] = job.submit_time;
  doc["start_time"] = running ? job.start_time : 0;
  doc["end_time"] = 0;
  doc["time_limit"] = job.spec.time_limit;
  doc["tasks"] = job.spec.tasks;
  doc["gpus_per_task"] = job.spec.gpus_per_task;
  doc["gpus"] = job.gpus();
  doc["priority_class"] = job.spec.priority_class.empty() ? scheduler_->policy().default_priority_class
                                                          : job.spec.priority_class;
  doc["pool"] = running ? cluster.pool(job.pool).name : "";
  json nodes = json::array();
  json allocation = json::array();
  if (running) {
    for (const TaskAllocation& task : job.tasks) {
      const std::string& node = cluster.node(task.node).name;
      if (nodes.empty() || nodes.back() != node) nodes.push_back(node);
      json gpus = json::array();
      for (int gpu = 0; gpu < kMaxGpusPerNode; ++gpu) {
        if (task.gpu_mask & (uint32_t{1} << gpu)) gpus.push_back(gpu);
      }
      allocation.push_back({{"node", node}, {"gpus", gpus}, {"cpus", task.cpus}, {"memory", task.memory_bytes}});
    }
  }
  doc["nodes"] = nodes;
  doc["allocation"] = allocation;
  doc["epoch"] = job.epoch;
  doc["restarts"] = job.restarts;
  // The service of its earlier runs (the las order ranks by it): kept across restarts.
  doc["attained_gpu_seconds"] = job.attained_gpu_seconds;
  doc["requeue_time"] = job.requeue_time;
  if (job.forgiven_gpu_seconds > 0) doc["forgiven_gpu_seconds"] = job.forgiven_gpu_seconds;
  doc["exit_code"] = nullptr;
  doc["array_job_id"] = record.array_job_id;
  doc["array_index"] = record.array_index < 0 ? json(nullptr) : json(record.array_index);
  doc["array_limit"] = record.array_limit;
  if (!record.idempotency_key.empty()) doc["idempotency_key"] = record.idempotency_key;
  if (!record.task_exits.empty()) {
    json exits = json::object();
    for (const auto& [task, code] : record.task_exits) exits[std::to_string(task)] = code;
    doc["task_exits"] = exits;
  }
  doc["spec"] = record.spec_doc ? *record.spec_doc : SubmissionToJson(*record.request);
  if (!record.steps.empty()) {
    json steps = json::array();
    for (const Step& step : record.steps) steps.push_back(StepJson(job, step));
    doc["steps"] = std::move(steps);
  }
  return doc;
}

json Controller::StoredLiveJobJson(const Job& job, const JobRecord& record) const {
  json doc = LiveJobJson(job, record);
  // Whole steps are stored, not shown: a step keeps its caller's environment, which may hold
  // secrets.
  if (!record.steps.empty()) {
    doc.erase("steps");  // the records below hold all of it
    json steps = json::array();
    for (const Step& step : record.steps) steps.push_back(StepToJson(step));
    doc["step_records"] = std::move(steps);
    doc["next_task_index"] = record.next_task_index;
  }
  return doc;
}

json Controller::EndedJobJson(const Job& job, const JobRecord& record, const EndInfo& end, Time now) const {
  json doc = LiveJobJson(job, record);
  doc.erase("reason");
  doc["state"] = end.state;
  doc["end_time"] = now;
  doc["exit_code"] = end.exit_code < 0 ? json(nullptr) : json(end.exit_code);
  doc["end_reason"] = end.message;
  if (job.state == JobState::kRunning) {
    doc["start_time"] = job.start_time;
  }
  // Steps still running when their job ended were killed with it.
  if (doc.contains("steps")) {
    for (json& step : doc["steps"]) {
      if (step["state"] == "running") step["state"] = "cancelled";
    }
  }
  return doc;
}

JobRow Controller::RowOf(JobId id, const json& doc) const {
  return JobRow{.id = id,
                .state = doc["state"].get<std::string>(),
                .account = doc["account"].get<std::string>(),
                .user = doc["user"].get<std::string>(),
                .submit_time = doc["submit_time"].get<Time>(),
                .end_time = doc["end_time"].get<Time>(),
                .doc = doc.dump(-1, ' ', false, json::error_handler_t::replace)};
}

void Controller::PersistLive(JobId id, WriteBatch& batch) const {
  const Job* job = scheduler_->model().FindJob(id);
  auto record = records_.find(id);
  if (!job || record == records_.end()) return;
  batch.PutJob(RowOf(id, StoredLiveJobJson(*job, record->second)));
}

std::vector<UsageRow> Controller::RunUsage(const Job& job, Time end) const {
  const std::string& pool = scheduler_->model().cluster().pool(job.pool).name;
  std::vector<UsageRow> rows;
  for (Time from = job.start_time; from < end;) {
    Time day = DayStart(from);
    Time to = std::min(end, day + kDay);
    rows.push_back({job.spec.account, pool, day, static_cast<double>(job.gpus()) * static_cast<double>(to - from)});
    from = to;
  }
  return rows;
}

void Controller::ChargeRun(const Job& job, Time end, WriteBatch& batch) const {
  for (UsageRow& row : RunUsage(job, end)) batch.AddUsage(std::move(row));
}

json Controller::RecordEnded(const Job& job, const EndInfo& end, Time now, WriteBatch& batch) {
  auto found = records_.find(job.id);
  if (found == records_.end()) return json();
  if (job.state == JobState::kRunning) ChargeRun(job, now, batch);
  json doc = EndedJobJson(job, found->second, end, now);
  batch.PutJob(RowOf(job.id, doc));
  ended_states_[job.id] = end.state;
  if (job.state == JobState::kRunning) {
    // Its agents ship the last of its output after it ended; remember where its tasks ran.
    std::vector<NodeIndex>& nodes = ended_nodes_[job.id];
    for (const TaskAllocation& task : job.tasks) nodes.push_back(task.node);
    // And where its steps' tasks ran, unless there were so many (a long loop of sruns) that the
    // table would cost more than their last output is worth.
    constexpr int kStepTasksRemembered = 1024;
    if (!found->second.steps.empty() &&
        found->second.next_task_index <= static_cast<int>(job.tasks.size()) + kStepTasksRemembered) {
      const std::vector<JobNode> job_nodes = JobNodes(job);
      nodes.resize(static_cast<size_t>(found->second.next_task_index), std::numeric_limits<NodeIndex>::max());
      for (const Step& step : found->second.steps) {
        for (const StepTask& task : step.tasks) nodes[static_cast<size_t>(task.index)] = job_nodes[static_cast<size_t>(task.node)].node;
      }
    }
    ended_nodes_order_.push_back(job.id);
    while (ended_nodes_order_.size() > kEndedJobsRemembered) {
      ended_nodes_.erase(ended_nodes_order_.front());
      ended_nodes_order_.pop_front();
    }
  }
  finished_by_state_[end.state]++;
  // Its agents kill what still runs of it: wake those waiting for work.
  WakeJob(job.id);
  if (job.state == JobState::kRunning) {
    for (const TaskAllocation& task : job.tasks) WakeNode(task.node);
  }
  waiting_.erase(job.id);
  records_.erase(found);
  return doc;
}

void Controller::Audit(const Principal& who, std::string_view action, std::string target, const json& detail,
                       WriteBatch& batch) const {
  batch.AddAudit({.time = Now(), .user = who.user, .token_id = who.token_id, .role = std::string(RoleName(who.role)),
                  .action = std::string(action), .target = std::move(target),
                  .detail = detail.is_null() ? "" : detail.dump(-1, ' ', false, json::error_handler_t::replace),
                  .remote = who.remote});
}

bool Controller::TaskRanOn(JobId id, int task, NodeIndex node) const {
  if (task < 0) return false;
  const size_t index = static_cast<size_t>(task);
  if (const Job* job = scheduler_->model().FindJob(id)) {
    if (job->state != JobState::kRunning) return false;
    if (index < job->tasks.size()) return job->tasks[index].node == node;
    auto [step, step_task] = FindStepTask(records_.at(id), task);
    return step_task != nullptr && step_task->host == node;
  }
  auto ended = ended_nodes_.find(id);
  return ended != ended_nodes_.end() && index < ended->second.size() && ended->second[index] == node;
}

void Controller::SyncHold(JobId id) {
  const Job* job = scheduler_->model().FindJob(id);
  auto record = records_.find(id);
  if (!job || record == records_.end() || job->state != JobState::kPending) return;
  const JobRecord& r = record->second;
  bool hold = r.user_held || r.waiting_dependencies || r.throttled;
  if (hold && !job->held) (void)scheduler_->Hold(id);
  if (!hold && job->held) (void)scheduler_->Release(id);
}

std::optional<std::string> Controller::EndedState(JobId id) {
  if (auto found = ended_states_.find(id); found != ended_states_.end()) return found->second;
  StatusOr<std::optional<JobRow>> row = store_->LoadJob(id);
  if (!row.ok() || !row->has_value()) return std::nullopt;
  const std::string& state = (*row)->state;
  if (state == "pending" || state == "running") return std::nullopt;
  ended_states_[id] = state;
  return state;
}

// ---- Jobs -----------------------------------------------------------------------------------

Status Controller::TakeSubmitToken(const Principal& who) {
  if (who.is_operator() || options_.submit_rate_per_token <= 0) return OkStatus();
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  std::lock_guard lock(rate_mutex_);
  auto [bucket, fresh] = submit_buckets_.try_emplace(who.token_id);
  if (fresh) bucket->second = {.tokens = options_.submit_burst, .refilled_at = now};
  TokenBucket& tokens = bucket->second;
  tokens.tokens = std::min(options_.submit_burst, tokens.tokens + (now - tokens.refilled_at) * options_.submit_rate_per_token);
  tokens.refilled_at = now;
  if (tokens.tokens < 1) {
    return Status(StatusCode::kTooManyRequests,
                  fmt::format("token {} submits more than {} requests a second; wait and retry (an array of jobs "
                              "is one request)", who.token_id, options_.submit_rate_per_token));
  }
  tokens.tokens -= 1;
  return OkStatus();
}

StatusOr<json> Controller::Submit(const Principal& who, std::string_view body, std::string_view idempotency_key) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot submit jobs");
  ALLOT_RETURN_IF_ERROR(TakeSubmitToken(who));
  if (idempotency_key.size() > 255) return InvalidArgumentError("the Idempotency-Key header is over 255 characters");
  ALLOT_RETURN_IF_ERROR(CheckUtf8(idempotency_key, "the Idempotency-Key header"));
  ALLOT_ASSIGN_OR_RETURN(SubmitRequest parsed, ParseSubmission(body, "request"));
  JobSpec& spec = parsed.spec;
  if (spec.account.empty()) {
    if (who.account.empty()) {
      return InvalidArgumentError("the job names no account: add \"account\" (or --account) to the submission");
    }
    spec.account = who.account;
  }
  if (!who.is_operator() || spec.user.empty()) spec.user = who.user;
  ALLOT_RETURN_IF_ERROR(CheckUserName(spec.user, "user"));
  // Whether the caller may submit there at all, before anything (an earlier reply included) is
  // looked up. The tree's shape is fixed at start, so this needs no lock.
  StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(spec.account);
  if (!account.ok()) return InvalidArgumentError("unknown account '{}'", spec.account);
  if (!Sees(who, *account)) {
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("account '{}' is outside your account '{}'", spec.account, who.account));
  }
  const std::string reply_key = idempotency_key.empty() ? "" : IdempotencyScope(spec.account, spec.user, idempotency_key);
  // Everything that can fail is done before the state changes: the job documents are made from
  // these, so a submit either happens whole or not at all.
  auto request = std::make_shared<const SubmitRequest>(std::move(parsed));
  auto spec_doc = std::make_shared<const json>(SubmissionToJson(*request));
  (void)spec_doc->dump();  // throws here, not half-way through the change, if it cannot be written

  Store::Ticket ticket;
  json reply;
  {
    std::lock_guard lock(mutex_);
    const Time now = Now();
    if (!reply_key.empty()) {
      while (!submit_reply_ages_.empty() && submit_reply_ages_.front().first < now - kDay) {
        submit_replies_.erase(submit_reply_ages_.front().second);
        submit_reply_ages_.pop_front();
      }
      if (auto done = submit_replies_.find(reply_key); done != submit_replies_.end()) {
        // Answered before: the first reply's commit is queued ahead of anything queued now.
        ticket = Queue(WriteBatch());
        reply = done->second;
      }
    }
  }
  if (!reply.is_null()) {
    WaitDurable(ticket);
    return reply;
  }
  {
    std::lock_guard lock(mutex_);
    const Time now = Now();
    if (auto done = submit_replies_.find(reply_key); !reply_key.empty() && done != submit_replies_.end()) {
      return done->second;  // a retry raced the first attempt; the first one won
    }
    for (const Dependency& dependency : request->dependencies) {
      if (dependency.type == DependencyType::kSingleton) continue;
      const Job* live = scheduler_->model().FindJob(dependency.job);
      bool known = live ? Sees(who, live->account) : false;
      if (!live) {
        StatusOr<std::optional<JobRow>> row = store_->LoadJob(dependency.job);
        if (row.ok() && row->has_value()) {
          StatusOr<AccountIndex> owner = scheduler_->model().accounts().Find((*row)->account);
          known = owner.ok() && Sees(who, *owner);
        }
      }
      if (!known) return InvalidArgumentError("the dependency names job {}, which does not exist", dependency.job);
    }

    static const std::vector<int> kSingle = {-1};
    const std::vector<int>& indexes = request->array ? request->array->indexes : kSingle;
    const JobId first = next_id_;
    for (size_t i = 0; i < indexes.size(); ++i) {
      Status submitted = scheduler_->Submit(first + i, request->spec, now);
      if (!submitted.ok()) {
        for (size_t j = 0; j < i; ++j) (void)scheduler_->Cancel(first + j, now);
        return InvalidArgumentError("{}", submitted.message());
      }
    }
    WriteBatch batch;
    json ids = json::array();
    int limit = request->array ? request->array->max_concurrent : 0;
    for (size_t i = 0; i < indexes.size(); ++i) {
      JobId id = first + i;
      JobRecord record;
      record.request = request;
      if (request->array) record.spec_doc = spec_doc;  // written once for all elements
      record.user_held = request->hold;
      record.idempotency_key = std::string(idempotency_key);
      if (request->array) {
        record.array_job_id = first;
        record.array_index = indexes[i];
        record.array_limit = limit;
        record.throttled = limit > 0 && i >= static_cast<size_t>(limit);
        if (limit > 0) arrays_[first].push_back(id);
      }
      if (!request->dependencies.empty()) {
        record.waiting_dependencies = true;
        record.dependency_note = "dependencies not checked yet";
        waiting_.insert(id);
      }
      records_.emplace(id, std::move(record));
      SyncHold(id);
      PersistLive(id, batch);
      ids.push_back(id);
    }
    next_id_ = first + indexes.size();
    submits_.fetch_add(indexes.size(), std::memory_order_relaxed);
    ticket = Queue(std::move(batch));
    reply = {{"ids", ids}};
    if (request->array) reply["array_job_id"] = first;
    if (!reply_key.empty()) {
      submit_replies_[reply_key] = reply;
      submit_reply_ages_.emplace_back(now, reply_key);
    }
  }
  MarkDirty();
  WaitDurable(ticket);
  return reply;
}

StatusOr<json> Controller::ListJobs(const Principal& who, const ListJobsQuery& query) {
  std::vector<std::string> states = query.states.empty() ? kLiveStates : query.states;
  bool want_pending = false, want_running = false;
  std::vector<std::string> ended;
  for (const std::string& state : states) {
    if (state == "ended") {
      ended.insert(ended.end(), kEndedStates.begin(), kEndedStates.end());
    } else if (state == "pending") {
      want_pending = true;
    } else if (state == "running") {
      want_running = true;
    } else if (std::find(kEndedStates.begin(), kEndedStates.end(), state) != kEndedStates.end()) {
      ended.push_back(state);
    } else {
      return InvalidArgumentError("unknown state '{}'; use pending, running, {}, or ended (all of those)", state,
                                  fmt::join(kEndedStates, ", "));
    }
  }
  if (query.limit == 0 || query.limit > 100000) return InvalidArgumentError("limit must be between 1 and 100000");

  json jobs = json::array();
  std::vector<std::string> subtree;
  JobId next_before = 0;
  Store::Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    const AccountTree& tree = scheduler_->model().accounts();
    AccountIndex scope = who.is_operator() ? tree.root() : who.account_index;
    if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot list jobs");
    if (!query.account.empty()) {
      ALLOT_ASSIGN_OR_RETURN(scope, VisibleAccount(who, query.account));
    }
    if (scope != tree.root()) {
      for (AccountIndex a = 0; a < tree.accounts().size(); ++a) {
        if (tree.IsAncestorOrSelf(scope, a)) subtree.push_back(tree.account(a).name);
      }
    }
    std::vector<JobId> ids;
    for (const auto& [id, job] : scheduler_->model().jobs()) {
      bool running = job.state == JobState::kRunning;
      if (running ? !want_running : !want_pending) continue;
      if (!query.user.empty() && job.spec.user != query.user) continue;
      if (scope != tree.root() && !tree.IsAncestorOrSelf(scope, job.account)) continue;
      if (job.submit_time < query.submitted_since) continue;
      if (query.submitted_until > 0 && job.submit_time >= query.submitted_until) continue;
      if (query.before > 0 && id >= query.before) continue;
      ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    if (ids.size() > query.limit) ids.resize(query.limit);
    for (JobId id : ids) {
      jobs.push_back(LiveJobJson(*scheduler_->model().FindJob(id), records_.at(id)));
      if (!query.with_steps) jobs.back().erase("steps");
    }
    // Jobs that ended before this listing are read from the store once their records are in.
    if (!ended.empty()) ticket = Queue(WriteBatch());
  }
  if (ticket) WaitDurable(ticket);
  if (!ended.empty() && jobs.size() < query.limit) {
    ALLOT_ASSIGN_OR_RETURN(std::vector<JobRow> rows,
                           store_->ListJobs({.states = ended, .accounts = subtree, .user = query.user,
                                             .submitted_since = query.submitted_since,
                                             .submitted_until = query.submitted_until, .before = query.before,
                                             .limit = query.limit - jobs.size()}));
    // A history (ended jobs only) comes in pages, newest first: a full page says where the next
    // one starts.
    if (!want_pending && !want_running && !rows.empty() && rows.size() == query.limit) {
      next_before = rows.back().id;
    }
    std::reverse(rows.begin(), rows.end());
    json finished = json::array();
    for (const JobRow& row : rows) {
      finished.push_back(json::parse(row.doc));
      if (!query.with_steps) finished.back().erase("steps");
    }
    finished.insert(finished.end(), jobs.begin(), jobs.end());
    jobs = std::move(finished);
  }
  json reply = {{"jobs", jobs}};
  if (next_before > 0) reply["next_before"] = next_before;
  return reply;
}

StatusOr<json> Controller::GetJob(const Principal& who, JobId id, bool with_queue_place) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot read jobs");
  Store::Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    if (const Job* job = scheduler_->model().FindJob(id)) {
      if (!Sees(who, job->account)) return NotFoundError("no job {}", id);
      json doc = LiveJobJson(*job, records_.at(id));
      if (with_queue_place && job->state == JobState::kPending) {
        RefreshQueueOrder();
        auto place = queue_places_.find(id);
        doc["queue_position"] = place == queue_places_.end() ? json(nullptr) : json(place->second);
        doc["queue_length"] = queue_order_.size();
      }
      return doc;
    }
    // A job that has just ended is in neither place until its end record is committed: wait for
    // what is queued, so a job never vanishes between its end and its record.
    ticket = Queue(WriteBatch());
  }
  WaitDurable(ticket);
  ALLOT_ASSIGN_OR_RETURN(std::optional<JobRow> row, store_->LoadJob(id));
  if (!row) return NotFoundError("no job {}", id);
  StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(row->account);
  if (!who.is_operator() && (!account.ok() || !Sees(who, *account))) return NotFoundError("no job {}", id);
  return json::parse(row->doc);
}

StatusOr<json> Controller::ChangeJob(const Principal& who, JobId id, const JobChange& change) {
  Store::Ticket ticket;
  json reply;
  {
    std::lock_guard lock(mutex_);
    const Job* job = scheduler_->model().FindJob(id);
    if (!job) {
      std::optional<std::string> ended = EndedState(id);
      if (ended) {
        StatusOr<std::optional<JobRow>> row = store_->LoadJob(id);
        StatusOr<AccountIndex> account = scheduler_->model().accounts().Find(row.ok() && *row ? (*row)->account : "");
        if (who.is_operator() || (account.ok() && Sees(who, *account))) {
          return FailedPreconditionError("job {} has already ended ({})", id, *ended);
        }
      }
      return NotFoundError("no job {}", id);
    }
    // Agents act on jobs wherever they run; the calls that let them in say which.
    if (who.role != Role::kAgent && !Sees(who, job->account)) return NotFoundError("no job {}", id);
    WriteBatch batch;
    ALLOT_RETURN_IF_ERROR(change(*job, records_.at(id), batch, reply));
    if (const Job* live = scheduler_->model().FindJob(id)) {
      PersistLive(id, batch);
      reply = LiveJobJson(*live, records_.at(id));
    }
    ticket = Queue(std::move(batch));
  }
  MarkDirty();
  WaitDurable(ticket);
  return reply;
}

StatusOr<json> Controller::CancelJob(const Principal& who, JobId id) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot cancel jobs");
  return ChangeJob(who, id, [&](const Job& job, JobRecord&, WriteBatch& batch, json& ended) -> Status {
    const Time now = Now();
    ALLOT_ASSIGN_OR_RETURN(Job stopped, scheduler_->Cancel(job.id, now));
    ended = RecordEnded(stopped, {"cancelled", -1, fmt::format("cancelled by {}", who.user)}, now, batch);
    // `stopped`, not `job`: the scheduler's record is gone once the job ended.
    if (who.is_operator()) {
      Audit(who, "job.cancel", std::to_string(stopped.id), json{{"user", stopped.spec.user}, {"account", stopped.spec.account}}, batch);
    }
    return OkStatus();
  });
}

StatusOr<json> Controller::HoldJob(const Principal& who, JobId id) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot hold jobs");
  return ChangeJob(who, id, [&](const Job& job, JobRecord& record, WriteBatch&, json&) -> Status {
    if (job.state != JobState::kPending) return FailedPreconditionError("job {} is running; only pending jobs can be held", job.id);
    if (record.user_held) return FailedPreconditionError("job {} is held already", job.id);
    record.user_held = true;
    SyncHold(job.id);
    return OkStatus();
  });
}

StatusOr<json> Controller::ReleaseJob(const Principal& who, JobId id) {
  if (who.role == Role::kAgent) return Status(StatusCode::kPermissionDenied, "agents cannot release jobs");
  return ChangeJob(who, id, [&](const Job& job, JobRecord& record, WriteBatch&, json&) -> Status {
    if (!record.user_held) return FailedPreconditionError("job {} is not held", job.id);
    record.user_held = false;
    SyncHold(job.id);
    return OkStatus();
  });
}

StatusOr<json> Controller::FinishJob(const Principal& who, JobId id, std::string_view body) {
  if (who.role == Role::kTenant) {
    return Status(StatusCode::kPermissionDenied, "only agents and operators report job ends");
  }
  ALLOT_ASSIGN_OR_RETURN(json report, ParseBody(body, {"exit_code", "epoch", "message"}));
  if (!report.contains("exit_code") || !report["exit_code"].is_number_integer() ||
      report["exit_code"].get<int64_t>() < 0 || report["exit_code"].get<int64_t>() > 255) {
    return InvalidArgumentError("exit_code: expected the job's exit status, an integer from 0 to 255");
  }
  if (report.contains("message") && !report["message"].is_string()) return InvalidArgumentError("message: expected a string");
  int exit_code = report["exit_code"].get<int>();
  std::optional<uint64_t> epoch;
  if (report.contains("epoch")) {
    if (!report["epoch"].is_number_unsigned()) return InvalidArgumentError("epoch: expected a non-negative integer");
    epoch = report["epoch"].get<uint64_t>();
  }
  std::string message = report.value("message", "");
  return ChangeJob(who, id, [&](const Job& job, JobRecord&, WriteBatch& batch, json& ended) -> Status {
    if (job.state != JobState::kRunning) return FailedPreconditionError("job {} is not running", job.id);
    if (who.role == Role::kAgent) {
      StatusOr<NodeIndex> node = scheduler_->model().cluster().FindNode(who.node);
      bool ours = node.ok() && std::any_of(job.tasks.begin(), job.tasks.end(),
                                           [&](const TaskAllocation& task) { return task.node == *node; });
      if (!ours) return Status(StatusCode::kPermissionDenied, fmt::format("job {} runs no task on node '{}'", job.id, who.node));
    }
    // Fencing: a report from an older allocation of this job must not end the current one.
    if (epoch && *epoch != job.epoch) {
      return FailedPreconditionError("job {}: the report is for allocation epoch {}, the job runs in epoch {}",
                                     job.id, *epoch, job.epoch);
    }
    const Time now = Now();
    ALLOT_ASSIGN_OR_RETURN(Job stopped, scheduler_->Complete(job.id, now));
    EndInfo end{exit_code == 0 ? "completed" : "failed", exit_code,
                message.empty() ? fmt::format("exited with status {}", exit_code) : message};
    ended = RecordEnded(stopped, end, now, batch);
    if (who.is_operator()) Audit(who, "job.finish", std::to_string(stopped.id), report, batch);  // `job` is gone
    return OkStatus();
  });
}

// ---- The scheduling loop ----------------------------------------------------------------------

void Controller::EnforceTimeLimits(Time now, WriteBatch& batch) {
  const Model& model = scheduler_->model();
  std::vector<JobId> over;
  for (PoolIndex pool = 0; pool < model.cluster().pools().size(); ++pool) {
    for (const auto& [end, id] : model.running_by_end(pool)) {
      if (end > now) break;
      over.push_back(id);
    }
  }
  for (JobId id : over) {
    StatusOr<Job> stopped = scheduler_->Complete(id, now);
    if (!stopped.ok()) continue;
    RecordEnded(*stopped, {"timeout", -1, fmt::format("ended at its time limit of {}", FormatDuration(stopped->spec.time_limit))},
                now, batch);
  }
}

void Controller::ResolveDependencies(WriteBatch&) {
  const Model& model = scheduler_->model();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    JobId id = *it;
    auto record = records_.find(id);
    const Job* job = model.FindJob(id);
    if (record == records_.end() || !job) {
      it = waiting_.erase(it);
      continue;
    }
    std::string note;
    for (const Dependency& dependency : record->second.request->dependencies) {
      if (dependency.type == DependencyType::kSingleton) {
        for (const auto& [other_id, other] : records_) {
          if (other_id < id && other.request->spec.name == record->second.request->spec.name &&
              other.request->spec.user == record->second.request->spec.user) {
            note = fmt::format("singleton: job {} of the same name and user has not ended", other_id);
            break;
          }
        }
        if (!note.empty()) break;
        continue;
      }
      std::string_view type = DependencyTypeName(dependency.type);
      if (const Job* other = model.FindJob(dependency.job)) {
        if (dependency.type == DependencyType::kAfter && other->state == JobState::kRunning) continue;
        note = fmt::format("{}: waiting for job {} to {}", type, dependency.job,
                           dependency.type == DependencyType::kAfter ? "start" : "end");
        break;
      }
      std::optional<std::string> ended = EndedState(dependency.job);
      if (!ended) {
        note = fmt::format("{}: job {} is unknown; this dependency can never be satisfied", type, dependency.job);
        break;
      }
      bool ok = (dependency.type == DependencyType::kAfterOk && *ended == "completed") ||
                (dependency.type == DependencyType::kAfterNotOk && *ended != "completed") ||
                dependency.type == DependencyType::kAfter || dependency.type == DependencyType::kAfterAny;
      if (!ok) {
        note = fmt::format("{}: job {} ended as {}; this dependency can never be satisfied (cancel the job)",
                           type, dependency.job, *ended);
        break;
      }
    }
    if (note.empty()) {
      record->second.waiting_dependencies = false;
      record->second.dependency_note.clear();
      SyncHold(id);
      it = waiting_.erase(it);
    } else {
      record->second.dependency_note = note;
      ++it;
    }
  }
}

void Controller::ApplyArrayLimits(WriteBatch&) {
  const Model& model = scheduler_->model();
  for (auto it = arrays_.begin(); it != arrays_.end();) {
    std::vector<JobId>& members = it->second;
    std::erase_if(members, [&](JobId id) { return model.FindJob(id) == nullptr; });
    if (members.empty()) {
      it = arrays_.erase(it);
      continue;
    }
    int limit = records_.at(members.front()).array_limit;
    int active = 0;
    for (JobId id : members) active += records_.at(id).throttled ? 0 : 1;
    for (JobId id : members) {
      if (active >= limit) break;
      JobRecord& record = records_.at(id);
      if (!record.throttled) continue;
      record.throttled = false;
      SyncHold(id);
      ++active;
    }
    ++it;
  }
}

void Controller::ForgetRun(JobId id) {
  auto record = records_.find(id);
  if (record == records_.end()) return;
  record->second.task_exits.clear();
  record->second.timed_out = false;
  record->second.out_of_memory = false;
  record->second.steps.clear();
  record->second.next_task_index = 0;
}

void Controller::RunPass(Time now, WriteBatch& batch) {
  auto started = std::chrono::steady_clock::now();
  // Whatever this pass starts or ends reaches agents only once it is durable (WakeAfterCommit):
  // an agent must never run a start that a crash before the commit would forget.
  wakes_wait_for_commit_ = true;
  PassResult pass = scheduler_->RunPass(now);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ++passes_;
  NoteChange();  // reasons and reservations may have moved even where nothing started
  last_pass_time_ = now;
  last_pass_seconds_ = seconds;
  pass_seconds_.Observe(seconds);

  std::set<JobId> touched;
  std::map<JobId, std::string> preempt_reasons;
  for (const Decision& decision : pass.decisions) {
    if (const auto* start = std::get_if<StartDecision>(&decision)) {
      touched.insert(start->job);
      if (auto record = records_.find(start->job); record != records_.end()) {
        record->second.placed_at = std::chrono::steady_clock::now();
      }
    } else if (const auto* preempt = std::get_if<PreemptDecision>(&decision)) {
      preempt_reasons[preempt->victim] = preempt->reason;
      if (preempt->requeued) {
        // Charge the run that was stopped: the victim may have started again in this pass.
        if (const Job* victim = scheduler_->model().FindJob(preempt->victim)) {
          Job stopped = *victim;
          stopped.pool = preempt->pool;
          stopped.start_time = preempt->run_start;
          ChargeRun(stopped, now, batch);
        }
        touched.insert(preempt->victim);
      }
    }
  }
  for (const Job& ended : pass.ended) {
    RecordEnded(ended, {"preempted", -1, preempt_reasons[ended.id]}, now, batch);
  }
  for (JobId id : touched) {
    ForgetRun(id);
    PersistLive(id, batch);
  }
  // Started jobs: their nodes get their tasks; requeued ones: their old nodes kill them. Both
  // once the batch is durable (WakeNode holds them for WakeAfterCommit).
  for (JobId id : touched) WakeJob(id);
}

void Controller::Tick(Time now, WriteBatch& batch) {
  EnforceTimeLimits(now, batch);
  CheckAgents(now, batch);
  ResolveDependencies(batch);
  ApplyArrayLimits(batch);
  RunPass(now, batch);
  PurgeHistory(now, batch);
}

void Controller::PurgeHistory(Time now, WriteBatch& batch) {
  if (options_.history_retention_days <= 0 || now < next_history_purge_) return;
  // A minute apart and bounded, so a first purge of years of history is spread out rather than
  // one long transaction; 10,000 a minute outpaces any pool's ends.
  constexpr size_t kJobsPerPurge = 10000;
  const auto kept = static_cast<Time>(options_.history_retention_days * 86400);
  batch.PurgeEndedJobs(now - kept, kJobsPerPurge);
  next_history_purge_ = now + 60;
}

void Controller::TickForTest() {
  Store::Ticket ticket;
  {
    std::lock_guard lock(mutex_);
    WriteBatch batch;
    Tick(Now(), batch);
    ticket = Queue(std::move(batch));
  }
  WaitDurable(ticket);
  WakeAfterCommit();
}

void Controller::LoopMain() {
  using Clock = std::chrono::steady_clock;
  // Passes run at most this often: the policy's interval, and never more than a quarter of the
  // time (three times the last pass's duration between passes), so that a large queue's passes
  // leave the lock to submits and agents; small queues get a pass within milliseconds.
  const double policy_interval = std::max<double>(options_.min_pass_interval_seconds,
                                                  static_cast<double>(scheduler_->policy().pass_interval));
  Clock::duration min_interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(policy_interval));
  const auto idle_interval = std::chrono::duration<double>(options_.idle_pass_interval_seconds);
  Clock::time_point last_pass = Clock::now() - std::chrono::hours(1);
  while (true) {
    {
      std::unique_lock lock(loop_mutex_);
      // Wake for events, and at least every second for time limits.
      loop_wakeup_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_ || dirty_; });
      if (stopping_) return;
      // Events within the interval wait for the next pass together.
      auto next_pass = last_pass + min_interval;
      if (dirty_ && Clock::now() < next_pass) {
        loop_wakeup_.wait_until(lock, next_pass, [&] { return stopping_; });
        if (stopping_) return;
      }
    }
    bool pass_due;
    {
      std::lock_guard lock(loop_mutex_);
      pass_due = dirty_ || Clock::now() - last_pass >= idle_interval;
      dirty_ = false;
    }
    Store::Ticket ticket;
    {
      std::lock_guard lock(mutex_);
      WriteBatch batch;
      const Time now = Now();
      EnforceTimeLimits(now, batch);
      CheckAgents(now, batch);
      bool ended_some = !batch.empty();
      ResolveDependencies(batch);
      ApplyArrayLimits(batch);
      PurgeHistory(now, batch);
      if (pass_due || ended_some) {
        Clock::time_point started = Clock::now();
        RunPass(now, batch);
        last_pass = Clock::now();
        min_interval = std::max(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(policy_interval)),
                                3 * (last_pass - started));
      }
      if (!batch.empty()) ticket = Queue(std::move(batch));
    }
    if (ticket) WaitDurable(ticket);
    WakeAfterCommit();
  }
}

void Controller::StartLoop() {
  {
    std::lock_guard lock(mutex_);
    if (!long_poll_timer_.joinable()) {
      long_poll_timer_stopping_ = false;
      long_poll_timer_ = std::thread([this] { LongPollTimerMain(); });
    }
  }
  std::lock_guard lock(loop_mutex_);
  if (loop_.joinable()) return;
  stopping_ = false;
  dirty_ = true;
  loop_ = std::thread([this] { LoopMain(); });
}

void Controller::StopLoop() {
  {
    std::lock_guard lock(loop_mutex_);
    stopping_ = true;
    loop_wakeup_.notify_all();
  }
  if (loop_.joinable()) loop_.join();
  {
    std::lock_guard lock(mutex_);
    long_poll_timer_stopping_ = true;
    long_poll_timer_wakeup_.notify_all();
    // Waiting syncs hold their connections (through their responders); they go now, while the
    // front end that owns those connections still exists.
    long_polls_.clear();
    long_polls_by_job_.clear();
    long_poll_deadlines_.clear();
    change_waits_.clear();
    change_wait_deadlines_.clear();
  }
  if (long_poll_timer_.joinable()) long_poll_timer_.join();
}

}  // namespace allot
