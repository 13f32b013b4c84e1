// Standby: an `allot server` that shares a PostgreSQL store with a leader waits here until it
// leads. Meanwhile it listens on its own address and answers every request 503 with
// Retry-After and the leader's URL (X-Allot-Leader, and `leader` in the JSON body), so clients
// given several servers (ALLOT_SERVER=a,b) move on to the leader at once. Once the leader's
// session ends it takes over within a second or two: a new term, a new fencing epoch, and the
// caller then recovers the state exactly as a restart does.
#pragma once

#include <signal.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"
#include "store/leadership.h"

namespace allot {

struct StandbyOptions {
  std::string store;      // the postgresql:// URI
  std::string advertise;  // this server's URL, as clients and agents should reach it
  std::string host;       // where to listen while standing by
  int port = 0;
  std::string tls_certificate_file;
  std::string tls_key_file;
};

struct Leading {
  std::unique_ptr<Leadership> leadership;  // null: a signal asked the standby to stop
  int port = 0;  // the port the standby listened on (the leader listens on the same one)
};

// Leads at once if nobody does; otherwise stands by until it can, or until one of `stop`
// arrives (blocked signals, waited for here). Prints "allot server standby on URL ..." once.
StatusOr<Leading> LeadOrStandBy(const StandbyOptions& options, const sigset_t& stop);

// Checks every second that the leader's lock session answers within 2 s; if it does not, another
// server may lead already, so this one exits at once (status 70), crash-only, as on a failed commit.
class LeadershipWatch {
 public:
  explicit LeadershipWatch(Leadership& leadership);
  ~LeadershipWatch();  // stops watching

 private:
  Leadership& leadership_;
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace allot
