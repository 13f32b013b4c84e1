#include "store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <utility>

namespace allot {
namespace {

// Schema versions, applied in order; PRAGMA user_version records how many have run.
constexpr const char* kMigrations[] = {
    R"sql(
    CREATE TABLE jobs (
      id INTEGER PRIMARY KEY,
      state TEXT NOT NULL,
      account TEXT NOT NULL,
      user TEXT NOT NULL,
      submit_time INTEGER NOT NULL,
      end_time INTEGER NOT NULL,
      doc TEXT NOT NULL
    );
    CREATE INDEX jobs_live ON jobs(id) WHERE state IN ('pending', 'running');
    CREATE INDEX jobs_by_account ON jobs(account, id);
    CREATE TABLE usage (
      account TEXT NOT NULL,
      pool TEXT NOT NULL,
      day INTEGER NOT NULL,
      gpu_seconds REAL NOT NULL,
      PRIMARY KEY (account, pool, day)
    ) WITHOUT ROWID;
    CREATE INDEX usage_by_day ON usage(day);
    CREATE TABLE tokens (
      id INTEGER PRIMARY KEY,
      hash TEXT NOT NULL UNIQUE,
      user TEXT NOT NULL,
      role TEXT NOT NULL,
      account TEXT NOT NULL,
      created INTEGER NOT NULL,
      revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE settings (
      kind TEXT NOT NULL,
      key TEXT NOT NULL,
      value TEXT NOT NULL,
      PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    )sql",
    // 2: agent tokens bound to one node each; the audit log of privileged actions.
    R"sql(
    ALTER TABLE tokens ADD COLUMN node TEXT NOT NULL DEFAULT '';
    CREATE TABLE audit (
      id INTEGER PRIMARY KEY,
      time INTEGER NOT NULL,
      user TEXT NOT NULL,
      token_id INTEGER NOT NULL,
      role TEXT NOT NULL,
      action TEXT NOT NULL,
      target TEXT NOT NULL,
      detail TEXT NOT NULL,
      remote TEXT NOT NULL
    );
    CREATE INDEX audit_by_time ON audit(time);
    )sql",
    // 3: jobs by submit time, for history over a time range and the recent submits' keys.
    R"sql(
    CREATE INDEX jobs_by_submit ON jobs(submit_time);
    )sql",
};

Status SqliteError(sqlite3* db, std::string_view what) {
  return InternalError("store: {}: {}", what, sqlite3_errmsg(db));
}

Status Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    Status status = InternalError("store: {}", error ? error : "unknown error");
    sqlite3_free(error);
    return status;
  }
  return OkStatus();
}

// A prepared statement, finalized on scope exit. Bind* take 1-based positions, Column* 0-based.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &statement_, nullptr) != SQLITE_OK) statement_ = nullptr;
  }
  ~Statement() { sqlite3_finalize(statement_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return statement_ != nullptr; }
  void Bind(int position, int64_t value) { sqlite3_bind_int64(statement_, position, value); }
  void Bind(int position, double value) { sqlite3_bind_double(statement_, position, value); }
  void Bind(int position, const std::string& value) {
    sqlite3_bind_text(statement_, position, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(statement_); }
  void Reset() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
  }
  int64_t Int(int column) const { return sqlite3_column_int64(statement_, column); }
  double Real(int column) const { return sqlite3_column_double(statement_, column); }
  std::string Text(int column) const {
    const unsigned char* text = sqlite3_column_text(statement_, column);
    return text ? std::string(reinterpret_cast<const char*>(text),
                              static_cast<size_t>(sqlite3_column_bytes(statement_, column)))
                : std::string();
  }
  Status Error(std::string_view what) const { return SqliteError(db_, what); }

 private:
  sqlite3* db_;
  sqlite3_stmt* statement_ = nullptr;
};

constexpr const char* kJobColumns = "id, state, account, user, submit_time, end_time, doc";

JobRow ReadJob(const Statement& statement) {
  return JobRow{.id = static_cast<JobId>(statement.Int(0)),
                .state = statement.Text(1),
                .account = statement.Text(2),
                .user = statement.Text(3),
                .submit_time = statement.Int(4),
                .end_time = statement.Int(5),
                .doc = statement.Text(6)};
}

StatusOr<sqlite3*> OpenConnection(const std::string& path) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Status(StatusCode::kUnavailable, fmt::format("cannot open the store '{}': {}", path, message));
  }
  sqlite3_busy_timeout(db, 10000);
  // WAL: readers never block the writer; FULL: a commit is on disk before Commit returns.
  Status configured = Exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  if (!configured.ok()) {
    sqlite3_close(db);
    return configured.WithContext(path);
  }
  return db;
}

Status Migrate(sqlite3* db) {
  int version = 0;
  {
    Statement statement(db, "PRAGMA user_version");
    if (!statement.ok() || statement.Step() != SQLITE_ROW) return SqliteError(db, "read schema version");
    version = static_cast<int>(statement.Int(0));
  }
  constexpr int kLatest = static_cast<int>(std::size(kMigrations));
  if (version > kLatest) {
    return FailedPreconditionError("the store has schema version {} but this allot knows only up to {}; "
                                   "run a newer allot", version, kLatest);
  }
  for (int next = version; next < kLatest; ++next) {
    ALLOT_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
    Status applied = Exec(db, kMigrations[next]);
    if (applied.ok()) applied = Exec(db, fmt::format("PRAGMA user_version={}", next + 1).c_str());
    if (!applied.ok()) {
      (void)Exec(db, "ROLLBACK");
      return applied;
    }
    ALLOT_RETURN_IF_ERROR(Exec(db, "COMMIT"));
  }
  return OkStatus();
}


class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* writer, sqlite3* reader) : write_db_(writer), read_db_(reader) {}
  ~SqliteStore() override {
    sqlite3_close(read_db_);
    sqlite3_close(write_db_);
  }

  std::string_view engine() const override { return "sqlite"; }
  StatusOr<std::vector<JobRow>> LoadLiveJobs() override;
  StatusOr<std::optional<JobRow>> LoadJob(JobId id) override;
  StatusOr<std::vector<JobRow>> ListJobs(const JobQuery& query) override;
  StatusOr<JobId> MaxJobId() override;
  StatusOr<std::vector<TokenRow>> LoadTokens() override;
  StatusOr<std::vector<AuditRow>> ListAudit(const AuditQuery& query) override;
  StatusOr<std::vector<SettingRow>> LoadSettings() override;
  StatusOr<std::vector<UsageRow>> LoadUsage(Time start, Time end) override;

 protected:
  Status ApplyGroup(const std::vector<const WriteBatch*>& group) override;

 private:
  sqlite3* write_db_;
  sqlite3* read_db_;
  std::mutex read_mutex_;  // one reader statement at a time on read_db_
};

Status SqliteStore::ApplyGroup(const std::vector<const WriteBatch*>& group) {
  sqlite3* db = write_db_;
  Statement put_job(db, "INSERT INTO jobs (id, state, account, user, submit_time, end_time, doc) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET "
                        "state = ?2, account = ?3, user = ?4, submit_time = ?5, end_time = ?6, doc = ?7");
  Statement add_usage(db, "INSERT INTO usage (account, pool, day, gpu_seconds) VALUES (?1, ?2, ?3, ?4) "
                          "ON CONFLICT (account, pool, day) DO UPDATE SET gpu_seconds = gpu_seconds + ?4");
  Statement put_token(db, "INSERT INTO tokens (id, hash, user, role, account, created, revoked, node) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO UPDATE SET "
                          "hash = ?2, user = ?3, role = ?4, account = ?5, created = ?6, revoked = ?7, node = ?8");
  Statement put_setting(db, "INSERT INTO settings (kind, key, value) VALUES (?1, ?2, ?3) "
                            "ON CONFLICT (kind, key) DO UPDATE SET value = ?3");
  Statement delete_setting(db, "DELETE FROM settings WHERE kind = ?1 AND key = ?2");
  // An ended job was submitted before it ended: the submit-time index narrows the search.
  Statement purge_jobs(db, "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE submit_time < ?1 AND end_time > 0 "
                           "AND end_time < ?1 AND state NOT IN ('pending', 'running') ORDER BY end_time LIMIT ?2)");
  Statement add_audit(db, "INSERT INTO audit (time, user, token_id, role, action, target, detail, remote) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  for (const Statement* statement :
       {&put_job, &add_usage, &put_token, &put_setting, &delete_setting, &add_audit, &purge_jobs}) {
    if (!statement->ok()) return statement->Error("prepare");
  }

  ALLOT_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE"));
  auto run = [](Statement& statement) -> Status {
    int result = statement.Step();
    statement.Reset();
    return result == SQLITE_DONE ? OkStatus() : statement.Error("write");
  };
  auto apply = [&](const WriteBatch::Op& op) -> Status {
    if (const auto* job = std::get_if<JobRow>(&op)) {
      put_job.Bind(1, static_cast<int64_t>(job->id));
      put_job.Bind(2, job->state);
      put_job.Bind(3, job->account);
      put_job.Bind(4, job->user);
      put_job.Bind(5, job->submit_time);
      put_job.Bind(6, job->end_time);
      put_job.Bind(7, job->doc);
      return run(put_job);
    }
    if (const auto* usage = std::get_if<UsageRow>(&op)) {
      add_usage.Bind(1, usage->account);
      add_usage.Bind(2, usage->pool);
      add_usage.Bind(3, usage->day);
      add_usage.Bind(4, usage->gpu_seconds);
      return run(add_usage);
    }
    if (const auto* token = std::get_if<TokenRow>(&op)) {
      put_token.Bind(1, token->id);
      put_token.Bind(2, token->hash);
      put_token.Bind(3, token->user);
      put_token.Bind(4, token->role);
      put_token.Bind(5, token->account);
      put_token.Bind(6, token->created);
      put_token.Bind(7, int64_t{token->revoked});
      put_token.Bind(8, token->node);
      return run(put_token);
    }
    if (const auto* setting = std::get_if<SettingRow>(&op)) {
      put_setting.Bind(1, setting->kind);
      put_setting.Bind(2, setting->key);
      put_setting.Bind(3, setting->value);
      return run(put_setting);
    }
    if (const auto* audit = std::get_if<AuditRow>(&op)) {
      add_audit.Bind(1, audit->time);
      add_audit.Bind(2, audit->user);
      add_audit.Bind(3, audit->token_id);
      add_audit.Bind(4, audit->role);
      add_audit.Bind(5, audit->action);
      add_audit.Bind(6, audit->target);
      add_audit.Bind(7, audit->detail);
      add_audit.Bind(8, audit->remote);
      return run(add_audit);
    }
    if (const auto* purged = std::get_if<WriteBatch::PurgedJobs>(&op)) {
      purge_jobs.Bind(1, purged->ended_before);
      purge_jobs.Bind(2, static_cast<int64_t>(purged->limit));
      return run(purge_jobs);
    }
    const auto& deleted = std::get<WriteBatch::DeletedSetting>(op);
    delete_setting.Bind(1, deleted.kind);
    delete_setting.Bind(2, deleted.key);
    return run(delete_setting);
  };
  for (const WriteBatch* batch : group) {
    for (const WriteBatch::Op& op : batch->ops()) {
      if (Status applied = apply(op); !applied.ok()) {
        (void)Exec(db, "ROLLBACK");
        return applied;
      }
    }
  }
  return Exec(db, "COMMIT");
}

StatusOr<std::vector<JobRow>> SqliteStore::LoadLiveJobs() {
  std::lock_guard lock(read_mutex_);
  Statement statement(read_db_, fmt::format("SELECT {} FROM jobs WHERE state IN ('pending', 'running') "
                                            "ORDER BY id", kJobColumns).c_str());
  if (!statement.ok()) return statement.Error("prepare");
  std::vector<JobRow> rows;
  int result;
  while ((result = statement.Step()) == SQLITE_ROW) rows.push_back(ReadJob(statement));
  if (result != SQLITE_DONE) return statement.Error("read jobs");
  return rows;
}

StatusOr<std::optional<JobRow>> SqliteStore::LoadJob(JobId id) {
  std::lock_guard lock(read_mutex_);
  Statement statement(read_db_, fmt::format("SELECT {} FROM jobs WHERE id = ?1", kJobColumns).c_str());
  if (!statement.ok()) return statement.Error("prepare");
  statement.Bind(1, static_cast<int64_t>(id));
  int result = statement.Step();
  if (result == SQLITE_ROW) return std::optional<JobRow>(ReadJob(statement));
  if (result != SQLITE_DONE) return statement.Error("read job");
  return std::optional<JobRow>();
}

StatusOr<std::vector<JobRow>> SqliteStore::ListJobs(const JobQuery& query) {
  std::string sql = fmt::format("SELECT {} FROM jobs WHERE 1", kJobColumns);
  auto placeholders = [](size_t count, size_t first) {
    std::string text;
    for (size_t i = 0; i < count; ++i) text += fmt::format("{}?{}", i ? ", " : "", first + i);
    return text;
  };
  size_t next = 1;
  if (!query.states.empty()) {
    sql += fmt::format(" AND state IN ({})", placeholders(query.states.size(), next));
    next += query.states.size();
  }
  if (!query.accounts.empty()) {
    sql += fmt::format(" AND account IN ({})", placeholders(query.accounts.size(), next));
    next += query.accounts.size();
  }
  if (!query.user.empty()) sql += fmt::format(" AND user = ?{}", next++);
  if (query.submitted_since > 0) sql += fmt::format(" AND submit_time >= ?{}", next++);
  if (query.submitted_until > 0) sql += fmt::format(" AND submit_time < ?{}", next++);
  if (query.before > 0) sql += fmt::format(" AND id < ?{}", next++);
  sql += fmt::format(" ORDER BY id DESC LIMIT {}", query.limit);

  std::lock_guard lock(read_mutex_);
  Statement statement(read_db_, sql.c_str());
  if (!statement.ok()) return statement.Error("prepare");
  int position = 1;
  for (const std::string& state : query.states) statement.Bind(position++, state);
  for (const std::string& account : query.accounts) statement.Bind(position++, account);
  if (!query.user.empty()) statement.Bind(position++, query.user);
  if (query.submitted_since > 0) statement.Bind(position++, query.submitted_since);
  if (query.submitted_until > 0) statement.Bind(position++, query.submitted_until);
  if (query.before > 0) statement.Bind(position++, static_cast<int64_t>(query.before));
  std::vector<JobRow> rows;
  int result;
  while ((result = statement.Step()) == SQLITE_ROW) rows.push_back(ReadJob(statement));
  if (result != SQLITE_DONE) return statement.Error("list jobs");
  return rows;
}

StatusOr<JobId> SqliteStore::MaxJobId() {
  std::lock_guard lock(read_mutex_);
  Statement statement(read_db_, "SELECT COALESCE(MAX(id), 0) FROM jobs");
  if (!statement.ok() || statement.Step() != SQLITE_ROW) return statement.Error("read max job id");
  return static_cast<JobId>(statement.Int(0));
}

StatusOr<std::vector<AuditRow>> SqliteStore::ListAudit(const AuditQuery& query) {
  std::string sql = "SELECT id, time, user, token_id, role, action, target, detail, remote FROM audit WHERE time >= ?1";
  if (query.until > 0) sql += " AND time < ?2";
  if (!query.action.empty()) {
    sql += query.action.back() == '.' ? " AND substr(action, 1, length(?3)) = ?3" : " AND action = ?3";
  }
  if (!query.user.empty()) sql += " AND user = ?4";
  sql += fmt::format(" ORDER BY id DESC LIMIT {}", query.limit);
  std::lock_guard lock(read_mutex_);
  Statement statement(read_db_, sql.c_str());
  if (!statement.ok()) return statement.Error("prepare");
  statement.Bind(1, query.since);
  if (query.until > 0) statement.Bind(2, query.until);
  if (!query.action.empty()) statement.Bind(3, query.action);
  if (!query.user.empty()) statement.Bind(4, query.user);
  std::vector<AuditRow> rows;
  int result;
  while ((result = statement.Step()) == SQLITE_ROW) {
    rows.push_back({.id = statement.Int(0), .time = statement.Int(1), .user = statement.Text(2),
                    .token_id = statement.Int(3), .role = statement.Text(4), .action = statement.Text(5),
                    .target = statement.Text(6), .detail = statement.Text(7), .remote = statement.Text(8)});
  }
  if (result != SQLITE_DONE) return statement.Error("read the audit log");
  return rows;
}

StatusOr<std::vector<TokenRow>> SqliteStore::LoadTokens() {
  std::lock_guard lock(read_mutex_);
  Statement statement(read_db_, "SELECT id, hash, user, role, account, created, revoked, node FROM tokens ORDER BY id");
  if (!statement.ok()) return statement.Error("prepare");
  std::vector<TokenRow> rows;
  int result;
  while ((result = statement.Step()) == SQLITE_ROW) {
    rows.push_back({.id = statement.Int(0), .hash = statement.Text(1), .user = statement.Text(2),
                    .role = statement.Text(3), .account = statement.Text(4),
                    .created = statement.Int(5), .revoked = statement.Int(6) != 0, .node = statement.Text(7)});
  }
  if (result != SQLITE_DONE) return statement.Error("read tokens");
  return rows;
}

StatusOr<std::vector<SettingRow>> SqliteStore::LoadSettings() {
  std::lock_guard lock(read_mutex_);
  Statement statement(read_db_, "SELECT kind, key, value FROM settings ORDER BY kind, key");
  if (!statement.ok()) return statement.Error("prepare");
  std::vector<SettingRow> rows;
  int result;
  while ((result = statement.Step()) == SQLITE_ROW) {
    rows.push_back({statement.Text(0), statement.Text(1), statement.Text(2)});
  }
  if (result != SQLITE_DONE) return statement.Error("read settings");
  return rows;
}

StatusOr<std::vector<UsageRow>> SqliteStore::LoadUsage(Time start, Time end) {
  std::lock_guard lock(read_mutex_);
  Statement statement(read_db_, "SELECT account, pool, day, gpu_seconds FROM usage "
                                "WHERE day >= ?1 AND day < ?2 ORDER BY day, account, pool");
  if (!statement.ok()) return statement.Error("prepare");
  statement.Bind(1, start);
  statement.Bind(2, end);
  std::vector<UsageRow> rows;
  int result;
  while ((result = statement.Step()) == SQLITE_ROW) {
    rows.push_back({statement.Text(0), statement.Text(1), statement.Int(2), statement.Real(3)});
  }
  if (result != SQLITE_DONE) return statement.Error("read usage");
  return rows;
}

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  ALLOT_ASSIGN_OR_RETURN(sqlite3* writer, OpenConnection(path));
  // The store holds every tenant's jobs and the token hashes: its owner's alone, whatever the
  // umask was when an older allot created it.
  for (const char* suffix : {"", "-wal", "-shm"}) ::chmod((path + suffix).c_str(), 0600);
  if (Status migrated = Migrate(writer); !migrated.ok()) {
    sqlite3_close(writer);
    return migrated;
  }
  StatusOr<sqlite3*> reader = OpenConnection(path);
  if (!reader.ok()) {
    sqlite3_close(writer);
    return reader.status();
  }
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(writer, *reader));
}

}  // namespace allot
