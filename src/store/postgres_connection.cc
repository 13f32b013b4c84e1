#include "store/postgres_connection.h"

#include <cstdlib>

#include "store/store.h"

namespace allot::postgres {

std::string Trimmed(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "unknown error" : text;
}

Status ConnectionError(PGconn* connection, std::string_view what) {
  return InternalError("store: {}: {}", what, Trimmed(PQerrorMessage(connection)));
}

Status ResultError(const PGresult* result, std::string_view what) {
  return InternalError("store: {}: {}", what, Trimmed(PQresultErrorMessage(result)));
}

bool Succeeded(const PGresult* result) {
  ExecStatusType status = PQresultStatus(result);
  return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

Params& Params::Add(double value) { return Add(fmt::format("{}", value)); }

std::string Params::Last() const { return fmt::format("${}", values_.size()); }

std::vector<const char*> Params::Pointers() const {
  std::vector<const char*> pointers;
  pointers.reserve(values_.size());
  for (const std::string& value : values_) pointers.push_back(value.c_str());
  return pointers;
}

int64_t Int(const PGresult* result, int row, int column) {
  return std::strtoll(PQgetvalue(result, row, column), nullptr, 10);
}
double Real(const PGresult* result, int row, int column) {
  return std::strtod(PQgetvalue(result, row, column), nullptr);
}
std::string Text(const PGresult* result, int row, int column) {
  return std::string(PQgetvalue(result, row, column), static_cast<size_t>(PQgetlength(result, row, column)));
}

Status Exec(PGconn* connection, const std::string& sql) {
  Result result(PQexec(connection, sql.c_str()));
  if (!result) return ConnectionError(connection, "exec");
  if (!Succeeded(result.get())) return ResultError(result.get(), "exec");
  return OkStatus();
}

StatusOr<Result> Query(PGconn* connection, const std::string& sql, const Params& params, std::string_view what) {
  std::vector<const char*> values = params.Pointers();
  Result result(PQexecParams(connection, sql.c_str(), params.count(), nullptr, values.data(), nullptr, nullptr, 0));
  if (!result) return ConnectionError(connection, what);
  if (!Succeeded(result.get())) return ResultError(result.get(), what);
  return result;
}

StatusOr<Connection> Connect(const std::string& uri) {
  // Defaults the URI may override (it is expanded last): a connection attempt and a dead peer are
  // given up on within seconds, not TCP's minutes or hours, so a leader notices it lost the
  // database, and a read never hangs the server behind a black-holed host.
  const char* const keywords[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                                  "keepalives_count", "tcp_user_timeout", "application_name", "dbname", nullptr};
  const char* const values[] = {"5", "1", "5", "2", "3", "10000", "allot", uri.c_str(), nullptr};
  Connection connection(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
  if (!connection || PQstatus(connection.get()) != CONNECTION_OK) {
    return Status(StatusCode::kUnavailable,
                  fmt::format("cannot connect to the store '{}': {}", Store::Describe(uri),
                              connection ? Trimmed(PQerrorMessage(connection.get())) : "out of memory"));
  }
  // Notices ("relation already exists, skipping") are not errors; keep them off stderr.
  PQsetNoticeProcessor(connection.get(), [](void*, const char*) {}, nullptr);
  return connection;
}

}  // namespace allot::postgres
