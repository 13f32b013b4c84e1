// Leadership: which of several `allot server` processes sharing one PostgreSQL database leads.
//
// The leader holds a session-level advisory lock on a connection of its own. A standby tries
// for it every second; the lock is free the moment the leader's connection closes (its process
// died: the kernel closes its sockets; its machine died: PostgreSQL's TCP keepalives end the
// session). Each term of leadership gets a fencing epoch, one more than the last, recorded in
// allot_leader together with the leader's advertised URL. The leader's store writes check the
// epoch inside every transaction (allot_fence, a row lock shared with the takeover), so a
// deposed leader that still has a connection cannot write a single row after a new term began:
// its commit fails and it exits, crash-only, as on any failed commit.
//
//   ALLOT_ASSIGN_OR_RETURN(auto leadership, Leadership::Connect(uri));
//   while (!*leadership->TryAcquire("http://10.0.0.5:8080")) { answer as a standby; sleep 1 s; }
//   Store::Open(uri, leadership->epoch());
//   ... every second: if (!leadership->StillHeld()) exit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

struct pg_conn;  // libpq's PGconn

namespace allot {

class Leadership {
 public:
  // Connects (the schema must exist: open the Store once first, which migrates it).
  static StatusOr<std::unique_ptr<Leadership>> Connect(const std::string& uri);
  ~Leadership();
  Leadership(const Leadership&) = delete;
  Leadership& operator=(const Leadership&) = delete;

  // Tries once, without waiting, to become the leader. On true, this process leads a new term:
  // epoch() is its fencing epoch and allot_leader names `advertise`.
  StatusOr<bool> TryAcquire(const std::string& advertise);
  // The leader's advertised URL as recorded ("" before any), and its epoch.
  struct Leader {
    std::string url;
    int64_t epoch = 0;
  };
  StatusOr<Leader> CurrentLeader();
  bool leading() const { return epoch_ > 0; }
  int64_t epoch() const { return epoch_; }
  // Records where the leader serves, once it knows (after binding a port chosen by the system).
  Status Advertise(const std::string& url);
  // Whether the session that holds the lock is still alive: a round trip, given up after
  // timeout_seconds. False means the lock may already be another server's: the caller must stop
  // acting as leader.
  bool StillHeld(double timeout_seconds = 2);

 private:
  explicit Leadership(pg_conn* connection) : connection_(connection) {}
  Status Configure();
  // A standby's connection that broke is made again (PostgreSQL restarted, failed over).
  Status Reconnect();

  pg_conn* connection_;
  int64_t epoch_ = 0;
};

}  // namespace allot
