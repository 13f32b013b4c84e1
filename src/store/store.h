// Store: the server's durable state in one SQLite database (WAL), behind one small interface.
//
// The server keeps its live state in memory and writes every change here as a WriteBatch: one
// transaction, applied whole or not at all. Commit returns only once the transaction is on disk
// (synchronous=FULL), so what the server acknowledges survives a kill -9 or a power cut. Writers
// that arrive while a commit is in flight are grouped into the next transaction, one fsync for
// all of them (group commit, as leveldb's DBImpl::Write), which is what lets thousands of
// concurrent submits a second each wait for their own durable commit.
//
//   ALLOT_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open("data/allot.db"));
//   WriteBatch batch;
//   batch.PutJob({.id = 7, .state = "pending", .account = "lab", .user = "kim", .doc = json});
//   ALLOT_RETURN_IF_ERROR(store->Commit(std::move(batch)));  // durable now
//
// Tables: jobs (one row per job, its record as a JSON document plus the columns queries filter
// on), usage (GPU-seconds per account, pool and UTC day), tokens (SHA-256 of bearer tokens),
// settings (operator changes that outlive the config file: node drains, quotas, grants).
// Thread-safe: Commit from any thread; reads use their own connection and never wait for a
// commit's fsync.
#pragma once

#include <sqlite3.h>

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
  void Append(WriteBatch&& other);

  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }

 private:
  friend class Store;
  struct DeletedSetting {
    std::string kind;
    std::string key;
  };
  using Op = std::variant<JobRow, UsageRow, TokenRow, SettingRow, DeletedSetting, AuditRow>;
  std::vector<Op> ops_;
};

struct JobQuery {
  std::vector<std::string> states;    // empty: any
  std::vector<std::string> accounts;  // empty: any
  std::string user;                   // empty: any
  size_t limit = 1000;
};

class Store {
 public:
  // Opens (creating if needed) the database file and brings its schema up to date.
  static StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();
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

  StatusOr<std::vector<JobRow>> LoadLiveJobs();  // pending and running, by id
  StatusOr<std::optional<JobRow>> LoadJob(JobId id);
  // Newest first.
  StatusOr<std::vector<JobRow>> ListJobs(const JobQuery& query);
  StatusOr<JobId> MaxJobId();
  StatusOr<std::vector<TokenRow>> LoadTokens();
  // Audit rows, newest first.
  StatusOr<std::vector<AuditRow>> ListAudit(const AuditQuery& query);
  StatusOr<std::vector<SettingRow>> LoadSettings();
  // Usage rows with day in [start, end).
  StatusOr<std::vector<UsageRow>> LoadUsage(Time start, Time end);

 private:
  Store(sqlite3* writer, sqlite3* reader);
  Status ApplyGroup(const std::vector<Ticket>& group);

  sqlite3* write_db_;
  sqlite3* read_db_;
  std::mutex read_mutex_;  // one reader statement at a time on read_db_

  mutable std::mutex write_mutex_;
  std::condition_variable committed_;
  std::deque<Ticket> queued_;
  bool committing_ = false;  // a waiter is writing a group now
  uint64_t transactions_ = 0;
  uint64_t batches_ = 0;
};

}  // namespace allot
