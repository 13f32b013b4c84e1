// Test support: a scratch PostgreSQL database per test, in the cluster that
// scripts/with-postgresql.sh starts and names in ALLOT_TEST_POSTGRESQL.
//
//   ScratchPostgresDatabase database;
//   if (!database.available()) GTEST_SKIP() << ScratchPostgresDatabase::kSkipReason;
//   Store::Open(database.uri());
#pragma once

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "core/status.h"

namespace allot {

class ScratchPostgresDatabase {
 public:
  static constexpr const char* kSkipReason =
      "ALLOT_TEST_POSTGRESQL is not set: run the tests under scripts/with-postgresql.sh to test the PostgreSQL store";

  ScratchPostgresDatabase() {
    const char* admin = std::getenv("ALLOT_TEST_POSTGRESQL");
    if (admin == nullptr || *admin == '\0') return;
    admin_uri_ = admin;
    static std::atomic<int> counter{0};
    name_ = fmt::format("allot_test_{}_{}", getpid(), counter++);
    Run(fmt::format("DROP DATABASE IF EXISTS {}", name_));
    if (!Run(fmt::format("CREATE DATABASE {}", name_))) {
      name_.clear();
      return;
    }
    uri_ = WithDatabase(admin_uri_, name_);
  }
  ~ScratchPostgresDatabase() {
    if (!name_.empty()) Run(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name_));
  }
  ScratchPostgresDatabase(const ScratchPostgresDatabase&) = delete;
  ScratchPostgresDatabase& operator=(const ScratchPostgresDatabase&) = delete;

  bool available() const { return !uri_.empty(); }
  const std::string& uri() const { return uri_; }
  const std::string& error() const { return error_; }

  // Runs one statement in the scratch database (or, before it exists, the admin one).
  bool Run(const std::string& sql, bool in_scratch = false) {
    PGconn* connection = PQconnectdb((in_scratch ? uri_ : admin_uri_).c_str());
    bool ok = PQstatus(connection) == CONNECTION_OK;
    if (ok) {
      PQsetNoticeProcessor(connection, [](void*, const char*) {}, nullptr);
      PGresult* result = PQexec(connection, sql.c_str());
      ok = PQresultStatus(result) == PGRES_COMMAND_OK || PQresultStatus(result) == PGRES_TUPLES_OK;
      if (!ok) error_ = PQresultErrorMessage(result);
      PQclear(result);
    } else {
      error_ = PQerrorMessage(connection);
    }
    PQfinish(connection);
    return ok;
  }

  // postgresql://host/olddb?params -> postgresql://host/DATABASE?params
  static std::string WithDatabase(const std::string& uri, const std::string& database) {
    size_t authority = uri.find("://");
    authority = authority == std::string::npos ? 0 : authority + 3;
    size_t query = uri.find('?', authority);
    size_t path = uri.find('/', authority);
    size_t end = query == std::string::npos ? uri.size() : query;
    if (path == std::string::npos || path > end) path = end;
    return uri.substr(0, path) + "/" + database + uri.substr(end);
  }

 private:
  std::string admin_uri_;
  std::string name_;
  std::string uri_;
  std::string error_;
};

}  // namespace allot
