#include "store/leadership.h"

#include <chrono>

#include "store/postgres_connection.h"

namespace allot {

using namespace postgres;  // NOLINT: PostgreSQL's side of leadership

namespace {

// The advisory lock the leader holds for its whole term: "allot.ld" in ASCII.
constexpr int64_t kLeaderLock = 0x616c6c6f742e6c64;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

StatusOr<std::unique_ptr<Leadership>> Leadership::Connect(const std::string& uri) {
  ALLOT_ASSIGN_OR_RETURN(Connection connection, postgres::Connect(uri));
  // A takeover waits for the old term's transactions in flight (allot_fence's row lock); if one
  // hangs, give up for now and try again at the next attempt rather than block a standby.
  ALLOT_RETURN_IF_ERROR(Exec(connection.get(), "SET lock_timeout = '2s'"));
  return std::unique_ptr<Leadership>(new Leadership(connection.release()));
}

Leadership::~Leadership() { PQfinish(connection_); }

StatusOr<bool> Leadership::TryAcquire(const std::string& advertise) {
  if (leading()) return true;
  ALLOT_ASSIGN_OR_RETURN(Result locked, Query(connection_, fmt::format("SELECT pg_try_advisory_lock({})", kLeaderLock),
                                              {}, "try the leader lock"));
  if (Text(locked.get(), 0, 0) != "t") return false;
  // A new term: one more than the last, so every write of an earlier leader now fails.
  Params params;
  params.Add(advertise).Add(NowSeconds());
  StatusOr<Result> term = Query(connection_,
                                "UPDATE allot_leader SET epoch = epoch + 1, url = $1, since = $2 WHERE id = 1 "
                                "RETURNING epoch",
                                params, "begin a term of leadership");
  if (!term.ok() || PQntuples(term->get()) != 1) {
    // Let another server try; this one tries again later.
    (void)Exec(connection_, fmt::format("SELECT pg_advisory_unlock({})", kLeaderLock));
    return term.ok() ? InternalError("store: allot_leader has no row") : term.status();
  }
  epoch_ = Int(term->get(), 0, 0);
  return true;
}

StatusOr<Leadership::Leader> Leadership::CurrentLeader() {
  ALLOT_ASSIGN_OR_RETURN(Result result, Query(connection_, "SELECT url, epoch FROM allot_leader WHERE id = 1", {},
                                              "read the leader"));
  if (PQntuples(result.get()) != 1) return Leader{};
  return Leader{.url = Text(result.get(), 0, 0), .epoch = Int(result.get(), 0, 1)};
}

bool Leadership::StillHeld() {
  if (!leading()) return false;
  Result result(PQexec(connection_, "SELECT 1"));
  return result && Succeeded(result.get()) && PQstatus(connection_) == CONNECTION_OK;
}

}  // namespace allot
