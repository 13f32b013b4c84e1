// postgres: the few libpq wrappers the PostgreSQL store and Leadership share. Internal to the
// store module.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace allot::postgres {

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;
struct ConnectionDeleter {
  void operator()(PGconn* connection) const { PQfinish(connection); }
};
using Connection = std::unique_ptr<PGconn, ConnectionDeleter>;

// libpq's messages end in a newline; this is the message without it.
std::string Trimmed(const char* message);
Status ConnectionError(PGconn* connection, std::string_view what);
Status ResultError(const PGresult* result, std::string_view what);
// PGRES_COMMAND_OK or PGRES_TUPLES_OK.
bool Succeeded(const PGresult* result);

// Parameters travel as text; PostgreSQL converts them to the columns' types.
class Params {
 public:
  Params& Add(int64_t value) { return Add(std::to_string(value)); }
  Params& Add(double value);  // the shortest text that reads back exactly
  Params& Add(std::string value) {
    values_.push_back(std::move(value));
    return *this;
  }
  // "$N" for the value just added.
  std::string Last() const;
  int count() const { return static_cast<int>(values_.size()); }
  std::vector<const char*> Pointers() const;

 private:
  std::vector<std::string> values_;
};

int64_t Int(const PGresult* result, int row, int column);
double Real(const PGresult* result, int row, int column);
std::string Text(const PGresult* result, int row, int column);

Status Exec(PGconn* connection, const std::string& sql);
StatusOr<Result> Query(PGconn* connection, const std::string& sql, const Params& params, std::string_view what);
// Connects to a libpq URI, with short connect and keepalive timeouts unless the URI sets its own;
// errors name the store with its password hidden.
StatusOr<Connection> Connect(const std::string& uri);

}  // namespace allot::postgres
