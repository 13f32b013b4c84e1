// Controller: the server's state and the job lifecycle, behind calls the HTTP layer maps routes
// onto. It owns the Scheduler (the same one the simulator drives), the durable Store, the
// tokens, and the scheduling loop.
//
// Every change follows one rule: change the state in memory under the state lock, queue its
// WriteBatch in the Store while still holding the lock (so the store's order is the state's
// order), release the lock, and answer only once the batch is durable. A submit acknowledged
// is therefore on disk; after a kill -9 Open() rebuilds exactly the acknowledged state: live
// jobs are submitted again with their ids and submit times, running jobs are put back on the
// GPUs they held with their allocation epochs, and operator changes (drains, quotas, grants)
// are applied again.
//
// If the store ever fails to commit, the process exits: it cannot tell the clients the truth
// any more, and a restart from disk is the one safe way on (crash-only).
//
// Calls take the caller's Principal and enforce tenant isolation: a tenant sees and changes only
// jobs and accounts in its subtree, and another tenant's job is "not found".
// Results are JSON documents in the shapes of docs/api.md. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "api/agent_protocol.h"
#include "api/submit_request.h"
#include "core/config.h"
#include "sched/scheduler.h"
#include "server/auth.h"
#include "server/steps.h"
#include "store/store.h"

namespace allot {

struct ControllerOptions {
  std::string data_dir;  // operator.token, job logs, and the SQLite store unless `store` names another
  // Where the durable state is (Store::Open): "" for DATA_DIR/allot.db, sqlite:DIR, or postgresql://...
  std::string store;
  // The term this server leads when several share a PostgreSQL store (store/leadership.h): every
  // write is fenced with it. 0: the only server, no fencing.
  int64_t fencing_epoch = 0;
  // The clock, in Unix seconds; tests may pass their own.
  std::function<Time()> now;
  // The account of the operator token written on first start ("" for none).
  std::string operator_account;
  // Least time between passes, whatever the policy says; under load, passes are spaced further
  // (three times the last pass's duration), so a stream of thousands of submits a second is not
  // starved by passes.
  double min_pass_interval_seconds = 0.005;
  // A pass also runs this often when nothing happened, so reasons and reservations stay fresh.
  double idle_pass_interval_seconds = 30;
  // Node agents (docs/agents.md): how often they sync, and after how many missed syncs their
  // node is marked down and its jobs end as node failures (requeued when they allow it).
  double heartbeat_seconds = 5;
  int missed_heartbeats = 3;
  // A sync with nothing to deliver waits up to this long for work (a long poll, which holds no
  // thread), and never longer than half the time after which its node is taken for lost.
  double agent_wait_max_seconds = 60;
  // The heartbeat grows with the pool, as Nomad's does: at least nodes / this many syncs a
  // second, so liveness of a 36,880-node pool costs a few hundred requests a second.
  double agent_syncs_per_second = 1000;
  // Seconds between SIGTERM and SIGKILL when a task is cancelled, preempted or out of time.
  double kill_grace_seconds = 30;
  // Submit requests a tenant's token may make per second, with bursts of up to submit_burst
  // (a token bucket per token; an array counts once). Over it: 429 with Retry-After. Operators'
  // tokens are not limited. 0: no limit.
  double submit_rate_per_token = 100;
  double submit_burst = 1000;
  // A node is down ("unknown") until its agent first syncs, so no job is placed where nothing can
  // run it. Off: every node of the config is up from the start (job ends come from operators).
  bool nodes_need_agents = true;
  // Ended jobs are kept this many days after they end, then deleted from the store, a bounded
  // number a minute (usage per account and day is kept apart and stays). 0: kept for ever.
  double history_retention_days = 0;
};

struct ListJobsQuery {
  std::vector<std::string> states;  // empty: pending and running
  std::string account;              // its subtree
  std::string user;
  Time submitted_since = 0;  // submit time in [since, until); 0: no bound
  Time submitted_until = 0;
  JobId before = 0;          // ids below this only: the next page of a history (newest first)
  size_t limit = 1000;
  bool with_steps = false;  // each job's steps too (sacct); a listing leaves them out by default
};

// A page of the queue (GET /v1/queue).
struct QueueQuery {
  std::string account;  // "" : all the caller may see
  std::string user;
  size_t offset = 0;
  size_t limit = 50;
};

struct UsageQuery {
  std::string start;   // YYYY-MM-DD; "": 30 days before end
  std::string end;     // YYYY-MM-DD, exclusive; "": now
  std::string period;  // day | week | month | total
  std::string account;
};

class Controller {
 public:
  // Opens the store under options.data_dir and rebuilds the state from it. On first start it
  // writes an operator token to DATA/operator.token (mode 0600); `created_token` says so.
  static StatusOr<std::unique_ptr<Controller>> Open(Config config, ControllerOptions options);
  ~Controller();

  // Starts and stops the scheduling loop (passes, time limits, dependencies, array limits).
  void StartLoop();
  void StopLoop();
  bool created_operator_token() const { return created_operator_token_; }
  // How many agents' requests the front end has not finished (HttpServer::agent_backlog), so
  // that a pass's wakes are paced to what it sends; null (the default) paces nothing. The front
  // end resets it before it goes away.
  void SetAgentBacklog(std::function<size_t()> backlog);

  StatusOr<Principal> Authenticate(std::string_view token) const;

  // With an idempotency key (the Idempotency-Key header), a submit the same user already made
  // with that key is answered again with its first reply instead of creating jobs twice, so a
  // client that lost a reply may simply retry. Keys are kept 24 hours, and across restarts while
  // their jobs are live.
  StatusOr<nlohmann::json> Submit(const Principal& who, std::string_view body,
                                  std::string_view idempotency_key = {});
  StatusOr<nlohmann::json> ListJobs(const Principal& who, const ListJobsQuery& query);
  // With `with_queue_place`, a pending job's document adds its place in the queue
  // (queue_position, queue_length), as GET /v1/jobs/{id} shows it.
  StatusOr<nlohmann::json> GetJob(const Principal& who, JobId id, bool with_queue_place = false);
  StatusOr<nlohmann::json> CancelJob(const Principal& who, JobId id);
  StatusOr<nlohmann::json> HoldJob(const Principal& who, JobId id);
  StatusOr<nlohmann::json> ReleaseJob(const Principal& who, JobId id);
  StatusOr<nlohmann::json> FinishJob(const Principal& who, JobId id, std::string_view body);

  StatusOr<nlohmann::json> ListAccounts(const Principal& who);
  StatusOr<nlohmann::json> GetAccount(const Principal& who, std::string_view name);
  StatusOr<nlohmann::json> SetQuota(const Principal& who, std::string_view account,
                                    std::string_view pool, std::string_view body);
  StatusOr<nlohmann::json> SetGrant(const Principal& who, std::string_view account,
                                    std::string_view grant, std::string_view body);

  StatusOr<nlohmann::json> ListNodes(const Principal& who, std::string_view pool,
                                     std::string_view state);
  StatusOr<nlohmann::json> DrainNode(const Principal& who, std::string_view name,
                                     std::string_view body);
  StatusOr<nlohmann::json> ResumeNode(const Principal& who, std::string_view name);
  StatusOr<nlohmann::json> ListPools(const Principal& who);

  StatusOr<nlohmann::json> Usage(const Principal& who, const UsageQuery& query);
  StatusOr<nlohmann::json> PendingReasons(const Principal& who);
  // The pending jobs in the order the next pass looks at them, a page at a time: each with its
  // place in the whole queue (1 is next), its reason and, when reserved, its expected start.
  // Held jobs come last, without a place. Tenants see their own subtree's jobs only, with their
  // places in the whole queue.
  StatusOr<nlohmann::json> PendingQueue(const Principal& who, const QueueQuery& query);
  // The change feed behind the dashboard's live updates: every change queued for the store and
  // every pass moves a sequence number on. `done` gets the current number at once when it differs from
  // `after`, else when the next change comes or `timeout_seconds` is over, whichever is first
  // (a long poll that holds no thread).
  using ChangeDone = std::function<void(uint64_t sequence)>;
  void WaitForChange(const Principal& who, uint64_t after, double timeout_seconds, ChangeDone done);
  StatusOr<nlohmann::json> SchedulerStatus(const Principal& who);

  StatusOr<nlohmann::json> CreateToken(const Principal& who, std::string_view body);
  StatusOr<nlohmann::json> ListTokens(const Principal& who);
  StatusOr<nlohmann::json> RevokeToken(const Principal& who, int64_t id);
  // The audit log of privileged actions (operators only), newest first.
  StatusOr<nlohmann::json> ListAudit(const Principal& who, const AuditQuery& query);

  // The agent protocol: an agent reports its node and tasks (running, exited) and log output,
  // and gets the tasks it should run and those it should kill (docs/agents.md). `done` gets the
  // reply, once: at once when there is something to say, else when work for the node appears
  // or its wait is over (a long poll). A waiting sync holds no thread, only its entry here.
  // `under_lock`: `done` is called under the state lock (a waiting sync answered because work
  // appeared), and must only hand the reply on; its JSON text is made later, outside the lock.
  using SyncDone = std::function<void(StatusOr<SyncReply> reply, bool under_lock)>;
  void AgentSync(const Principal& who, std::string_view node, std::string_view body, SyncDone done);
  // A task's output from `offset`: {"data", "next_offset", "complete"}.
  // Enrols a node: mints the agent token bound to it, once (a bootstrap or operator token may;
  // a node that has a live agent token already is refused until that one is revoked).
  StatusOr<nlohmann::json> RegisterAgent(const Principal& who, std::string_view node);
  StatusOr<nlohmann::json> JobLogs(const Principal& who, JobId id, int task, std::string_view stream,
                                   int64_t offset);

  // Job steps (docs/api.md, "Steps"): tasks started inside a running job's allocation by
  // `allot run` or `srun`, on its nodes, through their agents. The job's own credential
  // (ALLOT_JOB_TOKEN in its environment), its user's token or an operator's may start them.
  StatusOr<nlohmann::json> CreateStep(const Principal& who, JobId id, std::string_view body);
  StatusOr<nlohmann::json> GetStep(const Principal& who, JobId id, int step);
  StatusOr<nlohmann::json> CancelStep(const Principal& who, JobId id, int step);
  // The credential a job's tasks get for its steps: good for that job, in that allocation only.
  std::string JobToken(JobId id, uint64_t epoch) const;

  // Prometheus text exposition (docs/api.md, "Metrics").
  StatusOr<std::string> Metrics(const Principal& who);
  // Counted by the HTTP layer: requests answered with an error.
  void CountSubmitError() { submit_errors_.fetch_add(1, std::memory_order_relaxed); }

  // Runs one loop iteration now (tests): time limits, dependencies, a pass; waits until durable.
  void TickForTest();

 private:
  // What the server keeps for a live job beyond the scheduler's Job.
  struct JobRecord {
    // As submitted, account and user filled in; shared by all elements of an array (its index
    // list can be 100,000 long), with its JSON form for the job documents (arrays only: a single
    // job's is made when needed, which costs less memory than keeping it).
    std::shared_ptr<const SubmitRequest> request;
    std::shared_ptr<const nlohmann::json> spec_doc;
    JobId array_job_id = 0;
    int array_index = -1;   // -1: not an array element
    int array_limit = 0;    // the array's %N, 0: none
    bool user_held = false;
    bool throttled = false;           // over its array's limit
    bool waiting_dependencies = false;
    std::string dependency_note;      // why it waits, when waiting_dependencies
    std::string idempotency_key;      // the submit's Idempotency-Key, if any
    std::map<int, int> task_exits;    // task index -> exit status, in the current epoch
    bool timed_out = false;           // an agent ended a task at the time limit
    // When the current allocation was placed (steady clock), until its first task is reported
    // by an agent: the placement-to-running delay.
    std::optional<std::chrono::steady_clock::time_point> placed_at;
    bool out_of_memory = false;       // a task was killed at its memory limit
    // Steps (`allot run`, srun) started in the current allocation, by id; their tasks take
    // indexes from next_task_index up (0: just after the job's own tasks).
    std::vector<Step> steps;
    int next_task_index = 0;
    // What every task of the current start shares, made once per start: a 512-node gang's
    // tasks must not each walk its allocation or write its 40 variables again.
    struct StartCache {
      uint64_t epoch = 0;
      std::string hostlist;          // the nodes in task order, in Slurm's form "a[1-2],b7"
      // The same for every task; ALLOT_NODELIST goes apart, as the hostlist (TaskAssignment::nodelist).
      std::shared_ptr<const EnvironmentVariables> environment;
    };
    mutable std::optional<StartCache> start_cache;
  };
  struct AgentState {
    bool synced = false;  // has synced (its record is in the store), not only known as missing
    std::string hostname;
    std::string address;
    bool marked_down = false;  // down because it stopped syncing
    uint64_t sync_serial = 0;     // syncs so far; a newer one ends an older one's long poll
  };
  // A sync waiting for work for its node (a long poll): answered by WakeNode or at its deadline.
  struct LongPoll {
    uint64_t serial = 0;
    std::set<std::tuple<JobId, uint64_t, int>> known;  // the tasks the agent reported
    int protocol = 1;  // the version its agent speaks (AgentReport::protocol)
    SyncDone done;
  };
  struct EndInfo {
    std::string state;
    int exit_code = -1;  // -1: none
    std::string message;
  };
  struct Histogram {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // per bound, plus +Inf at the end
    double sum = 0;
    uint64_t count = 0;
    void Observe(double value);
  };

  Controller(std::unique_ptr<Scheduler> scheduler, std::unique_ptr<Store> store, ControllerOptions options);
  Status Recover();
  Status BootstrapOperatorToken();

  Time Now() const { return options_.now(); }
  // Queues the batch (under mutex_) and returns the ticket to wait on outside it.
  Store::Ticket Queue(WriteBatch batch);
  // Waits for durability; a failed commit ends the process (see the file comment).
  void WaitDurable(const Store::Ticket& ticket);
  void MarkDirty();
  // Moves the change feed on and answers those waiting on it (under mutex_).
  void NoteChange();
  // Brings queue_order_ up to date (under mutex_).
  void RefreshQueueOrder();

  // Under mutex_.
  bool Sees(const Principal& who, AccountIndex account) const;
  StatusOr<const Job*> VisibleLiveJob(const Principal& who, JobId id) const;
  nlohmann::json LiveJobJson(const Job& job, const JobRecord& record) const;
  nlohmann::json EndedJobJson(const Job& job, const JobRecord& record, const EndInfo& end, Time now) const;
  JobRow RowOf(JobId id, const nlohmann::json& doc) const;
  PendingReason ReasonFor(const Job& job, const JobRecord& record) const;
  // The reason's code as the API names it: the scheduler's codes plus "dependency".
  static std::string ReasonCodeFor(const JobRecord& record, const PendingReason& reason);
  void PersistLive(JobId id, WriteBatch& batch) const;
  // A job left the scheduler (ended for good): records it, charges its last run, returns its
  // final document.
  nlohmann::json RecordEnded(const Job& job, const EndInfo& end, Time now, WriteBatch& batch);
  // GPU-seconds of the job's current run from its start to `end`, split at UTC midnights.
  std::vector<UsageRow> RunUsage(const Job& job, Time end) const;
  void ChargeRun(const Job& job, Time end, WriteBatch& batch) const;
  void SyncHold(JobId id);
  // Records a privileged action in the batch that makes the change, so both are durable together.
  void Audit(const Principal& who, std::string_view action, std::string target, const nlohmann::json& detail,
             WriteBatch& batch) const;
  // Whether task `task` of job `id` runs on `node` now, or ran there when the job ended.
  bool TaskRanOn(JobId id, int task, NodeIndex node) const;
  std::optional<std::string> EndedState(JobId id);
  void Tick(Time now, WriteBatch& batch);
  // History retention: queues the deletion of jobs that ended too long ago, once a minute.
  void PurgeHistory(Time now, WriteBatch& batch);
  void EnforceTimeLimits(Time now, WriteBatch& batch);
  void ResolveDependencies(WriteBatch& batch);
  void ApplyArrayLimits(WriteBatch& batch);
  void RunPass(Time now, WriteBatch& batch);
  // A job started again or requeued: what its previous run's tasks and steps did is forgotten.
  void ForgetRun(JobId id);
  void LoopMain();
  // Marks down the nodes whose agents stopped syncing.
  void CheckAgents(Time now, WriteBatch& batch);
  // The tasks of running jobs placed on `node` as the agent should run them.
  std::vector<TaskAssignment> AssignmentsFor(NodeIndex node, const std::set<std::tuple<JobId, uint64_t, int>>& known) const;
  // The variables of task `task` of the job that are its own (its GPUs, ranks), over the ones
  // all its tasks share (StartCacheOf).
  EnvironmentVariables TaskEnvironment(const Job& job, const JobRecord& record, int task) const;
  // The job's StartCache for its current epoch, made on first use (under the state lock).
  const JobRecord::StartCache& StartCacheOf(const Job& job, const JobRecord& record) const;
  std::string LogPath(JobId id, int task, std::string_view stream) const;
  // Answers the node's waiting sync, if any, with what it should run and kill now; while a pass's
  // batch commits, notes the node for WakeAfterCommit instead.
  void WakeNode(NodeIndex node);
  // Wakes the nodes whose waiting syncs know a task of the job, and the nodes it runs on.
  void WakeJob(JobId id);
  // Wakes the nodes a pass gave work or took it from, once the pass's changes are durable (an
  // agent never runs a start the store could still lose), a slice of nodes per hold of the state
  // lock, so that submits and syncs go on between slices while thousands of nodes are woken.
  // From the start of a pass until then, WakeNode only notes its node here.
  // Between its slices, waits while the front end has more than a slice of agents' replies still
  // to send (SetAgentBacklog): a pass's thousands of wakes then go out as fast as the network
  // takes them, not all at once into one queue ahead of everyone's requests.
  void WakeAfterCommit();
  // Answers the node's waiting sync with its assignments and kills, or with nothing at all
  // (`superseded`: the agent has given up on it and synced again; its reply goes nowhere).
  void CompleteLongPoll(NodeIndex node, bool superseded = false);
  // LiveJobJson and what only the store keeps (the job's steps).
  nlohmann::json StoredLiveJobJson(const Job& job, const JobRecord& record) const;
  std::vector<TaskKill> KillsFor(NodeIndex node, const std::set<std::tuple<JobId, uint64_t, int>>& known) const;
  // Whether the agent of `node` should go on running task `index` of job `id` in `epoch`: a task
  // of the job's current allocation placed there, or a live step's task there.
  bool TaskIsCurrent(JobId id, uint64_t epoch, int index, NodeIndex node) const;
  // Whether a restored job's steps fit its allocation (a damaged record must not index past it).
  static Status CheckSteps(const Job& job, const JobRecord& record);
  // The step task a task index names, if the index is a step's.
  static std::pair<Step*, StepTask*> FindStepTask(JobRecord& record, int index);
  static std::pair<const Step*, const StepTask*> FindStepTask(const JobRecord& record, int index);
  TaskAssignment StepAssignment(const Job& job, const JobRecord& record, const Step& step, const StepTask& task) const;
  nlohmann::json StepJson(const Job& job, const Step& step) const;
  // Looks up a step the caller may see: its job's own credential, or whoever sees the job.
  StatusOr<std::pair<const Job*, JobRecord*>> StepJob(const Principal& who, JobId id) const;
  void LongPollTimerMain();
  // The heartbeat in force: the configured one, or longer for a large pool (see options).
  double HeartbeatSeconds() const;
  StatusOr<NodeIndex> FindNode(std::string_view name) const;
  nlohmann::json NodeJson(NodeIndex node) const;
  nlohmann::json AccountJson(AccountIndex account) const;
  StatusOr<AccountIndex> VisibleAccount(const Principal& who, std::string_view name) const;
  // Looks up a live job the caller sees and applies `change` under the lock; the change may end
  // the job, and then sets the final document. Answers the job as it is after the change.
  using JobChange = std::function<Status(const Job&, JobRecord&, WriteBatch&, nlohmann::json& ended)>;
  StatusOr<nlohmann::json> ChangeJob(const Principal& who, JobId id, const JobChange& change);

  ControllerOptions options_;
  std::unique_ptr<Store> store_;
  bool created_operator_token_ = false;
  std::string job_key_;  // signs jobs' own credentials (JobToken); kept in the store

  mutable std::mutex mutex_;  // guards everything below up to the loop's fields
  std::unique_ptr<Scheduler> scheduler_;
  std::unordered_map<JobId, JobRecord> records_;
  std::set<JobId> waiting_;                      // jobs with unresolved dependencies
  std::map<JobId, std::vector<JobId>> arrays_;   // throttled arrays: array job id -> elements
  std::unordered_map<JobId, std::string> ended_states_;  // jobs that ended, for dependencies
  // Where the tasks of recently ended jobs ran (the last kEndedJobsRemembered), so their agents
  // may still ship the output that follows the end, and nobody else may.
  static constexpr size_t kEndedJobsRemembered = 100000;
  std::unordered_map<JobId, std::vector<NodeIndex>> ended_nodes_;
  std::deque<JobId> ended_nodes_order_;
  std::map<NodeIndex, std::string> drain_reasons_;
  std::unordered_map<NodeIndex, AgentState> agents_;
  // When each node's agent last synced, by NodeIndex. Kept outside the state lock and written as
  // a sync arrives, before it waits for that lock: a sync queued behind a long pass has already
  // shown that its node is alive, and is never the reason the node is taken for lost.
  std::unique_ptr<std::atomic<Time>[]> last_seen_;
  std::unordered_map<NodeIndex, LongPoll> long_polls_;
  std::unordered_map<JobId, std::set<NodeIndex>> long_polls_by_job_;  // who waits knowing a task of the job
  std::vector<NodeIndex> wake_after_commit_;  // nodes WakeNode held back for WakeAfterCommit
  std::mutex agent_backlog_mutex_;  // not under mutex_: taken alone
  std::function<size_t()> agent_backlog_;
  bool wakes_wait_for_commit_ = false;         // a pass ran; its batch is not durable yet
  std::multimap<std::chrono::steady_clock::time_point, std::pair<NodeIndex, uint64_t>> long_poll_deadlines_;
  std::condition_variable long_poll_timer_wakeup_;  // with mutex_
  bool long_poll_timer_stopping_ = false;
  std::thread long_poll_timer_;
  std::minstd_rand jitter_{std::random_device{}()};  // spreads long polls' deadlines
  // The change feed (WaitForChange): waiting requests by serial, and their deadlines, which the
  // long polls' timer thread also keeps.
  uint64_t change_sequence_ = 1;
  std::map<uint64_t, ChangeDone> change_waits_;
  uint64_t next_change_wait_ = 0;
  std::multimap<std::chrono::steady_clock::time_point, uint64_t> change_wait_deadlines_;
  // The queue order (Scheduler::PendingOrder) as of change_sequence_ = queue_order_sequence_
  // (or up to a second older: RefreshQueueOrder), and each job's place in it (1 is next).
  std::vector<JobId> queue_order_;
  std::unordered_map<JobId, size_t> queue_places_;
  uint64_t queue_order_sequence_ = 0;
  size_t queue_order_pending_ = 0;  // model().pending().size() when it was worked out
  std::chrono::steady_clock::time_point queue_order_built_{};
  // Jobs' output: syncs append to the log files under log_file_mutex_ (never holding mutex_);
  // log_mutex_ guards only the count of appends taken in but not yet written, per job, which a
  // sync raises under mutex_ and JobLogs waits on (logs_written_).
  std::mutex log_file_mutex_;
  std::mutex log_mutex_;
  std::condition_variable logs_written_;
  std::unordered_map<JobId, int> log_writes_in_flight_;
  JobId next_id_ = 1;
  // (user, idempotency key) -> the reply of the submit that used it, and when.
  std::unordered_map<std::string, nlohmann::json> submit_replies_;
  std::deque<std::pair<Time, std::string>> submit_reply_ages_;
  uint64_t passes_ = 0;
  Time last_pass_time_ = 0;
  double last_pass_seconds_ = 0;
  Histogram pass_seconds_;
  Histogram start_delay_seconds_;  // from placement to an agent reporting the job's first task
  std::map<std::string, uint64_t> finished_by_state_;

  // Per-token submit rate limits (options_.submit_rate_per_token).
  struct TokenBucket {
    double tokens = 0;
    double refilled_at = 0;  // steady seconds
  };
  Status TakeSubmitToken(const Principal& who);
  std::mutex rate_mutex_;
  std::unordered_map<int64_t, TokenBucket> submit_buckets_;  // by token id

  mutable std::shared_mutex tokens_mutex_;
  std::unordered_map<std::string, TokenRow> tokens_by_hash_;
  int64_t next_token_id_ = 1;

  std::atomic<uint64_t> submits_{0};
  std::atomic<uint64_t> submit_errors_{0};

  std::mutex loop_mutex_;
  std::condition_variable loop_wakeup_;
  bool dirty_ = false;
  bool stopping_ = false;
  Time next_history_purge_ = 0;
  std::thread loop_;
};

}  // namespace allot
