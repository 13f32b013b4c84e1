#include "store/leadership.h"

#include <poll.h>

#include <cerrno>
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
  auto leadership = std::unique_ptr<Leadership>(new Leadership(connection.release()));
  ALLOT_RETURN_IF_ERROR(leadership->Configure());
  return leadership;
}

Status Leadership::Configure() {
  // A takeover waits for the old term's transactions in flight (allot_fence's row lock); if one
  // hangs, give up for now and try again at the next attempt rather than block a standby.
  return Exec(connection_, "SET lock_timeout = '2s'");
}

Status Leadership::Reconnect() {
  if (PQstatus(connection_) == CONNECTION_OK) return OkStatus();
  // PostgreSQL restarted or failed over, or the session was ended: a standby keeps trying.
  PQreset(connection_);
  if (PQstatus(connection_) != CONNECTION_OK) return ConnectionError(connection_, "reconnect");
  return Configure();
}

Leadership::~Leadership() { PQfinish(connection_); }

StatusOr<bool> Leadership::TryAcquire(const std::string& advertise) {
  if (leading()) return true;
  ALLOT_RETURN_IF_ERROR(Reconnect());
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
  ALLOT_RETURN_IF_ERROR(Reconnect());
  ALLOT_ASSIGN_OR_RETURN(Result result, Query(connection_, "SELECT url, epoch FROM allot_leader WHERE id = 1", {},
                                              "read the leader"));
  if (PQntuples(result.get()) != 1) return Leader{};
  return Leader{.url = Text(result.get(), 0, 0), .epoch = Int(result.get(), 0, 1)};
}

Status Leadership::Advertise(const std::string& url) {
  if (!leading()) return FailedPreconditionError("only the leader says where it is");
  Params params;
  params.Add(url).Add(epoch_);
  return Query(connection_, "UPDATE allot_leader SET url = $1 WHERE id = 1 AND epoch = $2", params,
               "record the leader's URL")
      .status();
}

bool Leadership::StillHeld(double timeout_seconds) {
  if (!leading() || PQstatus(connection_) != CONNECTION_OK) return false;
  // A round trip with a deadline: on a half-open connection a plain query would wait for TCP to
  // give up, minutes, while another server may already lead.
  if (PQsendQuery(connection_, "SELECT 1") != 1) return false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  while (true) {
    if (PQconsumeInput(connection_) != 1) return false;
    if (PQisBusy(connection_) == 0) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd socket{.fd = PQsocket(connection_), .events = POLLIN, .revents = 0};
    if (::poll(&socket, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return false;
  }
  bool ok = true;
  while (PGresult* result = PQgetResult(connection_)) {
    ok = ok && Succeeded(result);
    PQclear(result);
  }
  return ok && PQstatus(connection_) == CONNECTION_OK;
}

}  // namespace allot
