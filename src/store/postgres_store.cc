#include "store/postgres_store.h"

#include <mutex>
#include <utility>

#include "store/postgres_connection.h"

namespace allot {
namespace {

using namespace postgres;  // NOLINT: this file is the PostgreSQL engine

// Schema versions, applied in order; allot_schema.version records how many have run. The same
// tables and columns as the SQLite engine ("user" is quoted: it is a keyword here).
constexpr const char* kMigrations[] = {
    R"sql(
    CREATE TABLE jobs (
      id BIGINT PRIMARY KEY,
      state TEXT NOT NULL,
      account TEXT NOT NULL,
      "user" TEXT NOT NULL,
      submit_time BIGINT NOT NULL,
      end_time BIGINT NOT NULL,
      doc TEXT NOT NULL
    );
    CREATE INDEX jobs_live ON jobs(id) WHERE state IN ('pending', 'running');
    CREATE INDEX jobs_by_account ON jobs(account, id);
    CREATE TABLE usage (
      account TEXT NOT NULL,
      pool TEXT NOT NULL,
      day BIGINT NOT NULL,
      gpu_seconds DOUBLE PRECISION NOT NULL,
      PRIMARY KEY (account, pool, day)
    );
    CREATE INDEX usage_by_day ON usage(day);
    CREATE TABLE tokens (
      id BIGINT PRIMARY KEY,
      hash TEXT NOT NULL UNIQUE,
      "user" TEXT NOT NULL,
      role TEXT NOT NULL,
      account TEXT NOT NULL,
      created BIGINT NOT NULL,
      revoked BIGINT NOT NULL DEFAULT 0,
      node TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE settings (
      kind TEXT NOT NULL,
      key TEXT NOT NULL,
      value TEXT NOT NULL,
      PRIMARY KEY (kind, key)
    );
    CREATE TABLE audit (
      id BIGSERIAL PRIMARY KEY,
      time BIGINT NOT NULL,
      "user" TEXT NOT NULL,
      token_id BIGINT NOT NULL,
      role TEXT NOT NULL,
      action TEXT NOT NULL,
      target TEXT NOT NULL,
      detail TEXT NOT NULL,
      remote TEXT NOT NULL
    );
    CREATE INDEX audit_by_time ON audit(time);
    )sql",
    // 2: leadership among servers sharing the database (store/leadership.h). One row: the
    // current term's fencing epoch and the leader's advertised URL. allot_fence runs first in
    // every write transaction of a leader; FOR SHARE makes a takeover (which updates the row)
    // wait for transactions in flight, and every later one of the old term fail.
    R"sql(
    CREATE TABLE allot_leader (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      epoch BIGINT NOT NULL,
      url TEXT NOT NULL,
      since BIGINT NOT NULL
    );
    INSERT INTO allot_leader (id, epoch, url, since) VALUES (1, 0, '', 0);
    CREATE FUNCTION allot_fence(expected BIGINT) RETURNS VOID LANGUAGE plpgsql AS $$
    DECLARE
      current BIGINT;
    BEGIN
      SELECT epoch INTO current FROM allot_leader WHERE id = 1 FOR SHARE;
      IF current IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'fenced: this server led epoch % but another server leads epoch % now', expected, current;
      END IF;
    END
    $$;
    )sql",
    // 3: jobs by submit time, for history over a time range and the recent submits' keys.
    R"sql(
    CREATE INDEX jobs_by_submit ON jobs(submit_time);
    )sql",
};

// Held (per transaction) while a server migrates, so two servers starting together against one
// database migrate one after the other. The key is "allot" in ASCII.
constexpr int64_t kMigrationLock = 0x616c6c6f74;

// Writes of more operations than this are sent in several pipeline syncs inside the one
// transaction: libpq writes while the server answers, and a pipeline that is never read can
// fill both sides' buffers.
constexpr size_t kOperationsPerSync = 1000;

Status Migrate(PGconn* connection) {
  ALLOT_RETURN_IF_ERROR(Exec(connection, "BEGIN"));
  auto migrate = [&]() -> Status {
    ALLOT_RETURN_IF_ERROR(Exec(connection, fmt::format("SELECT pg_advisory_xact_lock({})", kMigrationLock)));
    ALLOT_RETURN_IF_ERROR(Exec(connection, "CREATE TABLE IF NOT EXISTS allot_schema (version INTEGER NOT NULL)"));
    ALLOT_ASSIGN_OR_RETURN(Result current, Query(connection, "SELECT version FROM allot_schema", {}, "read schema version"));
    int version = 0;
    if (PQntuples(current.get()) == 0) {
      ALLOT_RETURN_IF_ERROR(Exec(connection, "INSERT INTO allot_schema (version) VALUES (0)"));
    } else {
      version = static_cast<int>(Int(current.get(), 0, 0));
    }
    constexpr int kLatest = static_cast<int>(std::size(kMigrations));
    if (version > kLatest) {
      return FailedPreconditionError("the store has schema version {} but this allot knows only up to {}; "
                                     "run a newer allot", version, kLatest);
    }
    for (int next = version; next < kLatest; ++next) {
      ALLOT_RETURN_IF_ERROR(Exec(connection, kMigrations[next]));
      ALLOT_RETURN_IF_ERROR(Exec(connection, fmt::format("UPDATE allot_schema SET version = {}", next + 1)));
    }
    return OkStatus();
  };
  Status migrated = migrate();
  if (!migrated.ok()) {
    (void)Exec(connection, "ROLLBACK");
    return migrated;
  }
  return Exec(connection, "COMMIT");
}

constexpr const char* kJobColumns = R"(id, state, account, "user", submit_time, end_time, doc)";

JobRow ReadJob(const PGresult* result, int row) {
  return JobRow{.id = static_cast<JobId>(Int(result, row, 0)),
                .state = Text(result, row, 1),
                .account = Text(result, row, 2),
                .user = Text(result, row, 3),
                .submit_time = Int(result, row, 4),
                .end_time = Int(result, row, 5),
                .doc = Text(result, row, 6)};
}

// The writes, prepared once per writer connection under these names.
struct PreparedWrite {
  const char* name;
  const char* sql;
};
constexpr PreparedWrite kPutJob{
    "put_job", R"(INSERT INTO jobs (id, state, account, "user", submit_time, end_time, doc)
                  VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET
                  state = EXCLUDED.state, account = EXCLUDED.account, "user" = EXCLUDED."user",
                  submit_time = EXCLUDED.submit_time, end_time = EXCLUDED.end_time, doc = EXCLUDED.doc)"};
constexpr PreparedWrite kAddUsage{
    "add_usage", R"(INSERT INTO usage AS u (account, pool, day, gpu_seconds) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (account, pool, day) DO UPDATE SET gpu_seconds = u.gpu_seconds + EXCLUDED.gpu_seconds)"};
constexpr PreparedWrite kPutToken{
    "put_token", R"(INSERT INTO tokens (id, hash, "user", role, account, created, revoked, node)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET
                    hash = EXCLUDED.hash, "user" = EXCLUDED."user", role = EXCLUDED.role,
                    account = EXCLUDED.account, created = EXCLUDED.created, revoked = EXCLUDED.revoked,
                    node = EXCLUDED.node)"};
constexpr PreparedWrite kPutSetting{
    "put_setting", R"(INSERT INTO settings (kind, key, value) VALUES ($1, $2, $3)
                      ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value)"};
constexpr PreparedWrite kFence{"fence", "SELECT allot_fence($1)"};
// An ended job was submitted before it ended: the submit-time index narrows the search.
constexpr PreparedWrite kPurgeJobs{
    "purge_jobs", R"(DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE submit_time < $1 AND end_time > 0
                     AND end_time < $1 AND state NOT IN ('pending', 'running') ORDER BY end_time LIMIT $2))"};
constexpr PreparedWrite kDeleteSetting{"delete_setting", "DELETE FROM settings WHERE kind = $1 AND key = $2"};
constexpr PreparedWrite kAddAudit{
    "add_audit", R"(INSERT INTO audit (time, "user", token_id, role, action, target, detail, remote)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8))"};

// The statement and parameters that apply one operation of a batch.
std::pair<const PreparedWrite*, Params> WriteOf(const WriteBatch::Op& op) {
  Params params;
  if (const auto* job = std::get_if<JobRow>(&op)) {
    params.Add(static_cast<int64_t>(job->id)).Add(job->state).Add(job->account).Add(job->user);
    params.Add(job->submit_time).Add(job->end_time).Add(job->doc);
    return {&kPutJob, std::move(params)};
  }
  if (const auto* usage = std::get_if<UsageRow>(&op)) {
    params.Add(usage->account).Add(usage->pool).Add(usage->day).Add(usage->gpu_seconds);
    return {&kAddUsage, std::move(params)};
  }
  if (const auto* token = std::get_if<TokenRow>(&op)) {
    params.Add(token->id).Add(token->hash).Add(token->user).Add(token->role).Add(token->account);
    params.Add(token->created).Add(int64_t{token->revoked}).Add(token->node);
    return {&kPutToken, std::move(params)};
  }
  if (const auto* setting = std::get_if<SettingRow>(&op)) {
    params.Add(setting->kind).Add(setting->key).Add(setting->value);
    return {&kPutSetting, std::move(params)};
  }
  if (const auto* audit = std::get_if<AuditRow>(&op)) {
    params.Add(audit->time).Add(audit->user).Add(audit->token_id).Add(audit->role).Add(audit->action);
    params.Add(audit->target).Add(audit->detail).Add(audit->remote);
    return {&kAddAudit, std::move(params)};
  }
  if (const auto* purged = std::get_if<WriteBatch::PurgedJobs>(&op)) {
    params.Add(purged->ended_before).Add(static_cast<int64_t>(purged->limit));
    return {&kPurgeJobs, std::move(params)};
  }
  const auto& deleted = std::get<WriteBatch::DeletedSetting>(op);
  params.Add(deleted.kind).Add(deleted.key);
  return {&kDeleteSetting, std::move(params)};
}

class PostgresStore final : public Store {
 public:
  PostgresStore(std::string uri, int64_t fencing_epoch, Connection writer, Connection reader)
      : uri_(std::move(uri)), fencing_epoch_(fencing_epoch), writer_(std::move(writer)), reader_(std::move(reader)) {}

  Status Prepare() {
    for (const PreparedWrite* write :
         {&kPutJob, &kAddUsage, &kPutToken, &kPutSetting, &kDeleteSetting, &kAddAudit, &kFence, &kPurgeJobs}) {
      Result result(PQprepare(writer_.get(), write->name, write->sql, 0, nullptr));
      if (!result) return ConnectionError(writer_.get(), "prepare");
      if (!Succeeded(result.get())) return ResultError(result.get(), fmt::format("prepare {}", write->name));
    }
    return OkStatus();
  }

  std::string_view engine() const override { return "postgresql"; }

  StatusOr<std::vector<JobRow>> LoadLiveJobs() override {
    ALLOT_ASSIGN_OR_RETURN(Result result, Read(fmt::format("SELECT {} FROM jobs WHERE state IN ('pending', 'running') "
                                                           "ORDER BY id", kJobColumns), {}, "read jobs"));
    return Jobs(result.get());
  }

  StatusOr<std::optional<JobRow>> LoadJob(JobId id) override {
    Params params;
    params.Add(static_cast<int64_t>(id));
    ALLOT_ASSIGN_OR_RETURN(Result result, Read(fmt::format("SELECT {} FROM jobs WHERE id = $1", kJobColumns),
                                               params, "read job"));
    if (PQntuples(result.get()) == 0) return std::optional<JobRow>();
    return std::optional<JobRow>(ReadJob(result.get(), 0));
  }

  StatusOr<std::vector<JobRow>> ListJobs(const JobQuery& query) override {
    std::string sql = fmt::format("SELECT {} FROM jobs WHERE TRUE", kJobColumns);
    Params params;
    auto any_of = [&](std::string_view column, const std::vector<std::string>& values) {
      if (values.empty()) return;
      std::string list;
      for (const std::string& value : values) {
        params.Add(value);
        list += (list.empty() ? "" : ", ") + params.Last();
      }
      sql += fmt::format(" AND {} IN ({})", column, list);
    };
    any_of("state", query.states);
    any_of("account", query.accounts);
    if (!query.user.empty()) {
      params.Add(query.user);
      sql += fmt::format(R"( AND "user" = {})", params.Last());
    }
    if (query.submitted_since > 0) sql += fmt::format(" AND submit_time >= {}", params.Add(query.submitted_since).Last());
    if (query.submitted_until > 0) sql += fmt::format(" AND submit_time < {}", params.Add(query.submitted_until).Last());
    if (query.before > 0) sql += fmt::format(" AND id < {}", params.Add(static_cast<int64_t>(query.before)).Last());
    sql += fmt::format(" ORDER BY id DESC LIMIT {}", query.limit);
    ALLOT_ASSIGN_OR_RETURN(Result result, Read(sql, params, "list jobs"));
    return Jobs(result.get());
  }

  StatusOr<JobId> MaxJobId() override {
    ALLOT_ASSIGN_OR_RETURN(Result result, Read("SELECT COALESCE(MAX(id), 0) FROM jobs", {}, "read max job id"));
    return static_cast<JobId>(Int(result.get(), 0, 0));
  }

  StatusOr<std::vector<TokenRow>> LoadTokens() override {
    ALLOT_ASSIGN_OR_RETURN(Result result, Read(R"(SELECT id, hash, "user", role, account, created, revoked, node
                                                  FROM tokens ORDER BY id)", {}, "read tokens"));
    std::vector<TokenRow> rows;
    for (int row = 0; row < PQntuples(result.get()); ++row) {
      const PGresult* r = result.get();
      rows.push_back({.id = Int(r, row, 0), .hash = Text(r, row, 1), .user = Text(r, row, 2),
                      .role = Text(r, row, 3), .account = Text(r, row, 4), .created = Int(r, row, 5),
                      .revoked = Int(r, row, 6) != 0, .node = Text(r, row, 7)});
    }
    return rows;
  }

  StatusOr<std::vector<AuditRow>> ListAudit(const AuditQuery& query) override {
    Params params;
    params.Add(query.since);
    std::string sql = fmt::format(R"(SELECT id, time, "user", token_id, role, action, target, detail, remote
                                     FROM audit WHERE time >= {})", params.Last());
    if (query.until > 0) sql += fmt::format(" AND time < {}", params.Add(query.until).Last());
    if (!query.action.empty()) {
      params.Add(query.action);
      sql += query.action.back() == '.' ? fmt::format(" AND starts_with(action, {})", params.Last())
                                        : fmt::format(" AND action = {}", params.Last());
    }
    if (!query.user.empty()) sql += fmt::format(R"( AND "user" = {})", params.Add(query.user).Last());
    sql += fmt::format(" ORDER BY id DESC LIMIT {}", query.limit);
    ALLOT_ASSIGN_OR_RETURN(Result result, Read(sql, params, "read the audit log"));
    std::vector<AuditRow> rows;
    for (int row = 0; row < PQntuples(result.get()); ++row) {
      const PGresult* r = result.get();
      rows.push_back({.id = Int(r, row, 0), .time = Int(r, row, 1), .user = Text(r, row, 2),
                      .token_id = Int(r, row, 3), .role = Text(r, row, 4), .action = Text(r, row, 5),
                      .target = Text(r, row, 6), .detail = Text(r, row, 7), .remote = Text(r, row, 8)});
    }
    return rows;
  }

  StatusOr<std::vector<SettingRow>> LoadSettings() override {
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    ALLOT_ASSIGN_OR_RETURN(Result result, Read(R"(SELECT kind, key, value FROM settings
                                                  ORDER BY kind COLLATE "C", key COLLATE "C")", {}, "read settings"));
    std::vector<SettingRow> rows;
    for (int row = 0; row < PQntuples(result.get()); ++row) {
      rows.push_back({Text(result.get(), row, 0), Text(result.get(), row, 1), Text(result.get(), row, 2)});
    }
    return rows;
  }

  StatusOr<std::vector<UsageRow>> LoadUsage(Time start, Time end) override {
    Params params;
    params.Add(start).Add(end);
    ALLOT_ASSIGN_OR_RETURN(Result result,
                           Read(R"(SELECT account, pool, day, gpu_seconds FROM usage WHERE day >= $1 AND day < $2
                                   ORDER BY day, account COLLATE "C", pool COLLATE "C")", params, "read usage"));
    std::vector<UsageRow> rows;
    for (int row = 0; row < PQntuples(result.get()); ++row) {
      const PGresult* r = result.get();
      rows.push_back({Text(r, row, 0), Text(r, row, 1), Int(r, row, 2), Real(r, row, 3)});
    }
    return rows;
  }

 protected:
  Status ApplyGroup(const std::vector<const WriteBatch*>& group) override;

 private:
  static std::vector<JobRow> Jobs(const PGresult* result) {
    std::vector<JobRow> rows;
    rows.reserve(static_cast<size_t>(PQntuples(result)));
    for (int row = 0; row < PQntuples(result); ++row) rows.push_back(ReadJob(result, row));
    return rows;
  }

  // A query on the reader connection; reconnects once if the server dropped it (a restart or a
  // failover of PostgreSQL), since a read changes nothing and may simply be asked again.
  StatusOr<Result> Read(const std::string& sql, const Params& params, std::string_view what) {
    std::lock_guard lock(read_mutex_);
    if (PQstatus(reader_.get()) != CONNECTION_OK) PQreset(reader_.get());
    StatusOr<Result> result = Query(reader_.get(), sql, params, what);
    if (!result.ok() && PQstatus(reader_.get()) != CONNECTION_OK) {
      PQreset(reader_.get());
      result = Query(reader_.get(), sql, params, what);
    }
    return result;
  }

  // Reads what the pipeline answers up to and including its next Sync. Returns the first error
  // among the answers (later statements of a failed pipeline are only "aborted").
  Status DrainToSync() {
    PGconn* connection = writer_.get();
    Status first_error = OkStatus();
    while (true) {
      Result result(PQgetResult(connection));
      if (!result) {
        // NULL ends one statement's answers; a broken connection gives nothing more.
        if (PQstatus(connection) != CONNECTION_OK) {
          return first_error.ok() ? ConnectionError(connection, "write") : first_error;
        }
        continue;
      }
      ExecStatusType status = PQresultStatus(result.get());
      if (status == PGRES_PIPELINE_SYNC) return first_error;
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_PIPELINE_ABORTED) continue;
      if (first_error.ok()) first_error = ResultError(result.get(), "write");
    }
  }

  std::string uri_;
  int64_t fencing_epoch_;  // 0: writes are not fenced
  Connection writer_;  // used by one group commit at a time (the base class's order)
  Connection reader_;
  std::mutex read_mutex_;  // one query at a time on reader_
};

Status PostgresStore::ApplyGroup(const std::vector<const WriteBatch*>& group) {
  PGconn* connection = writer_.get();
  if (PQstatus(connection) != CONNECTION_OK) {
    // Nothing of this group was sent. The server treats a failed commit as fatal and restarts
    // from the database, which is how it reconnects after PostgreSQL itself failed over.
    return Status(StatusCode::kUnavailable, fmt::format("store: lost the connection to '{}'", Store::Describe(uri_)));
  }
  if (PQenterPipelineMode(connection) != 1) return ConnectionError(connection, "enter pipeline mode");
  Status status = OkStatus();
  auto send = [&](const char* sql_or_name, const Params* params, bool prepared) {
    if (!status.ok()) return;
    std::vector<const char*> values = params ? params->Pointers() : std::vector<const char*>();
    int count = params ? params->count() : 0;
    int sent = prepared ? PQsendQueryPrepared(connection, sql_or_name, count, values.data(), nullptr, nullptr, 0)
                        : PQsendQueryParams(connection, sql_or_name, 0, nullptr, nullptr, nullptr, nullptr, 0);
    if (sent != 1) status = ConnectionError(connection, "send");
  };
  auto sync = [&] {
    if (!status.ok()) return;
    if (PQpipelineSync(connection) != 1) {
      status = ConnectionError(connection, "sync");
      return;
    }
    status = DrainToSync();
  };

  // One explicit transaction around every sync, so a group larger than kOperationsPerSync is
  // still applied whole or not at all.
  send("BEGIN", nullptr, false);
  Params epoch;
  if (fencing_epoch_ > 0) send(kFence.name, &epoch.Add(fencing_epoch_), true);
  size_t since_sync = 0;
  for (const WriteBatch* batch : group) {
    for (const WriteBatch::Op& op : batch->ops()) {
      auto [write, params] = WriteOf(op);
      send(write->name, &params, true);
      if (++since_sync == kOperationsPerSync) {
        sync();
        since_sync = 0;
      }
    }
  }
  send("COMMIT", nullptr, false);
  sync();
  if (!status.ok()) {
    // Answers still owed for what was sent before the failure are read and dropped, so the
    // connection can leave pipeline mode; the transaction is then rolled back.
    for (int attempt = 0; attempt < 3 && PQstatus(connection) == CONNECTION_OK &&
                          PQpipelineStatus(connection) == PQ_PIPELINE_ON && PQexitPipelineMode(connection) != 1;
         ++attempt) {
      if (PQpipelineSync(connection) == 1) (void)DrainToSync();  // the error is in status already
    }
    if (PQstatus(connection) == CONNECTION_OK) (void)Exec(connection, "ROLLBACK");
    return status;
  }
  if (PQexitPipelineMode(connection) != 1) return ConnectionError(connection, "leave pipeline mode");
  return OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& uri, int64_t fencing_epoch) {
  ALLOT_ASSIGN_OR_RETURN(Connection writer, Connect(uri));
  ALLOT_RETURN_IF_ERROR(Migrate(writer.get()));
  ALLOT_ASSIGN_OR_RETURN(Connection reader, Connect(uri));
  auto store = std::make_unique<PostgresStore>(uri, fencing_epoch, std::move(writer), std::move(reader));
  ALLOT_RETURN_IF_ERROR(store->Prepare());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace allot
