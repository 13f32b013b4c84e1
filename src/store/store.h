// Store: the server's durable state behind one small interface, in one of two engines:
//   - SQLite (sqlite_store.cc), one file in WAL mode: the embedded default, for --dev and small sites;
//   - PostgreSQL 15 through libpq (postgres_store.cc): production, replicated by PostgreSQL itself.
//
// The server keeps its live state in memory and writes every change here as a WriteBatch: one
// transaction, applied whole or not at all. Commit returns only once the transaction is durable
// (SQLite synchronous=FULL; PostgreSQL's commit), so what the server acknowledges survives a
// kill -9 or a power cut. Writers that arrive while a commit is in flight are grouped into the
// next transaction, one fsync for all of them (group commit, as leveldb's DBImpl::Write), which
// is what lets thousands of concurrent submits a second each wait for their own durable commit.
// The grouping lives here, once; an engine only applies a group (ApplyGroup) and answers reads.
//
//   ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open("sqlite:data"));
//   WriteBatch batch;
//   batch.PutJob({.id = 7, .state = "pending", .account = "lab", .user = "kim", .doc = json});
//   ALLOT_RETURN_IF_ERROR(store->Commit(std::move(batch)));  // durable now
//
// Tables: jobs (one row per job, its record as a JSON document plus the columns queries filter
// on), usage (GPU-seconds per account, pool and UTC day), tokens (SHA-256 of bearer tokens),
// settings (operator changes that outlive the config file: node drains, quotas, grants), audit
// (privileged actions). Both engines have the same tables and columns, versioned migrations, and
// refuse a schema newer than they know.
// Thread-safe: Commit from any thread; reads use their own connection and never wait for a
// commit's fsync.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/job.h"
#include "core/status.h"
#include "core/units.h"

namespace allot {

struct JobRow {
  JobId id = 0;
  std::string state;    // pending, running, completed, failed, cancelled, timeout, node_fail
  std::string account;  // account name
  std::string user;
  Time submit_time = 0;
  Time end_time = 0;  // 0 while live
  std::string doc;    // the server's whole job record, JSON
};

struct UsageRow {
  std::string account;
  std::string pool;
  Time day = 0;  // UTC midnight
  double gpu_seconds = 0;
};

struct TokenRow {
  int64_t id = 0;
  std::string hash;  // hex SHA-256 of the token
  std::string user;
  std::string role;
  std::string account;
  Time created = 0;
  bool revoked = false;
  std::string node;  // agent tokens: the node they are bound to
};

// An operator change kept across restarts: (kind, key) -> JSON value, e.g.
// ("node", "n17") -> {"state": "draining", "reason": "bad fan"}.
struct SettingRow {
  std::string kind;
  std::string key;
  std::string value;
};

// One privileged action, for the audit log (docs/security.md): who did what to what, when,
// and from where. Written in the same transaction as the change it records.
struct AuditRow {
  int64_t id = 0;  // assigned by the store
  Time time = 0;
  std::string user;
  int64_t token_id = 0;
  std::string role;
  std::string action;  // e.g. token.create, quota.set, node.drain, job.cancel
  std::string target;  // what it acted on: a token id, account/pool, node, job id
  std::string detail;  // the request's own words (JSON), or ""
  std::string remote;  // the client's address and port
};

struct AuditQuery {
  Time since = 0;
  Time until = 0;       // 0: now
  std::string action;   // "": any; "job." matches a prefix
  std::string user;
  size_t limit = 1000;
};

class WriteBatch {
 public:
  void PutJob(JobRow row) { ops_.emplace_back(std::move(row)); }
  // Adds GPU-seconds to (account, pool, day).
  void AddUsage(UsageRow row) { ops_.emplace_back(std::move(row)); }
  // Inserts a token, or with an existing id replaces it (revocation).
  void PutToken(TokenRow row) { ops_.emplace_back(std::move(row)); }
  void PutSetting(SettingRow row) { ops_.emplace_back(std::move(row)); }
  void DeleteSetting(std::string kind, std::string key) {
    ops_.emplace_back(DeletedSetting{std::move(kind), std::move(key)});
  }
  void AddAudit(AuditRow row) { ops_.emplace_back(std::move(row)); }
  // Deletes up to `limit` jobs that ended before `ended_before` (history retention), oldest
  // first. Live jobs are never touched.
  void PurgeEndedJobs(Time ended_before, size_t limit) { ops_.emplace_back(PurgedJobs{ended_before, limit}); }
  void Append(WriteBatch&& other);

  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }

  // For the engines, which apply the operations in order.
  struct DeletedSetting {
    std::string kind;
    std::string key;
  };
  struct PurgedJobs {
    Time ended_before = 0;
    size_t limit = 0;
  };
  using Op = std::variant<JobRow, UsageRow, TokenRow, SettingRow, DeletedSetting, AuditRow, PurgedJobs>;
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

struct JobQuery {
  std::vector<std::string> states;    // empty: any
  std::vector<std::string> accounts;  // empty: any
  std::string user;                   // empty: any
  Time submitted_since = 0;           // submit_time >= this
  Time submitted_until = 0;           // submit_time < this; 0: no bound
  JobId before = 0;                   // id < this (paging, newest first); 0: no bound
  size_t limit = 1000;
};

class Store {
 public:
  // Opens (creating if needed) the store at `location` and brings its schema up to date:
  //   sqlite:DIR                  DIR/allot.db (the directory is created)
  //   postgresql://... (postgres://...)  a libpq connection URI; the database must exist
  //   anything else               the path of an SQLite file
  // A store whose schema is newer than this allot knows is refused, and nothing is changed.
  // fencing_epoch (PostgreSQL only): the term this server leads (store/leadership.h); every
  // write transaction fails once another server leads a later term. 0: no fencing.
  static StatusOr<std::unique_ptr<Store>> Open(const std::string& location, int64_t fencing_epoch = 0);
  // The location as it may be shown in logs: a PostgreSQL password is replaced by ***.
  static std::string Describe(const std::string& location);
  static bool IsPostgres(const std::string& location);
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // A batch queued for commit; Wait on it to learn whether it is durable.
  struct PendingCommit;
  using Ticket = std::shared_ptr<PendingCommit>;

  // Queues the batch behind every batch queued before it: batches are applied in the order they
  // were queued, so a caller that queues while holding its own state lock gets the store's order
  // to match its own. Cheap; never waits for the disk.
  Ticket Enqueue(WriteBatch batch);
  // Returns once the batch is durable. Whoever waits first commits everything queued so far in
  // one transaction; the others wait for it (group commit). On failure nothing of the group is
  // applied and every batch in it gets the error (the server treats that as fatal and restarts
  // from what is on disk).
  Status Wait(const Ticket& ticket);
  Status Commit(WriteBatch batch) { return Wait(Enqueue(std::move(batch))); }

  // Commits so far (transactions, and batches they carried), for metrics and benchmarks.
  uint64_t transactions() const;
  uint64_t batches() const;

  // "sqlite" or "postgresql".
  virtual std::string_view engine() const = 0;

  // Reads see every commit that Wait has returned for. Thread-safe; they never wait for a
  // commit in flight.
  virtual StatusOr<std::vector<JobRow>> LoadLiveJobs() = 0;  // pending and running, by id
  virtual StatusOr<std::optional<JobRow>> LoadJob(JobId id) = 0;
  // Newest first.
  virtual StatusOr<std::vector<JobRow>> ListJobs(const JobQuery& query) = 0;
  virtual StatusOr<JobId> MaxJobId() = 0;
  virtual StatusOr<std::vector<TokenRow>> LoadTokens() = 0;
  // Audit rows, newest first.
  virtual StatusOr<std::vector<AuditRow>> ListAudit(const AuditQuery& query) = 0;
  virtual StatusOr<std::vector<SettingRow>> LoadSettings() = 0;
  // Usage rows with day in [start, end).
  virtual StatusOr<std::vector<UsageRow>> LoadUsage(Time start, Time end) = 0;

 protected:
  Store() = default;
  // Applies the batches, in order, as one transaction: all of it is durable when this returns
  // OK, none of it otherwise. Called by one thread at a time.
  virtual Status ApplyGroup(const std::vector<const WriteBatch*>& group) = 0;

 private:
  mutable std::mutex write_mutex_;
  std::condition_variable committed_;
  std::deque<Ticket> queued_;
  bool committing_ = false;  // a waiter is writing a group now
  uint64_t transactions_ = 0;
  uint64_t batches_ = 0;
};

}  // namespace allot
