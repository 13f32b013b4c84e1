// UserMap: which Unix user a job's tasks run as on this node. The agent runs as root; tasks never
// do. Either every task runs as one user (`allot agent --run-as USER`), or a map file says, per
// job, whose uid it gets (`allot agent --user-map FILE`), as Slurm runs a job as the user who
// submitted it:
//
//   users:            # allot user -> Unix user
//     alice: alice
//   accounts:         # account -> Unix user, for a job whose user is not listed
//     startup-017: s017
//   same_name: true   # otherwise the Unix user named like the job's user, where there is one
//   default: nobody   # otherwise this user; without it, an unmapped job fails to start
//
// Every user named must exist on the node and must not be root: Load checks the listed ones,
// Resolve the same-name ones.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "core/status.h"

namespace allot {

struct UnixUser {
  std::string name;
  int uid = -1;
  int gid = -1;
  std::string home;
};

// The user from the password database; an error for a missing user or for root.
StatusOr<UnixUser> LookUpUnixUser(const std::string& name);

class UserMap {
 public:
  // Every job as one user (--run-as).
  static StatusOr<UserMap> Single(const std::string& name);
  // A map file (--user-map); errors name the file and what to fix.
  static StatusOr<UserMap> Load(const std::string& path);

  // The Unix user for a job of `user` in `account`; an error says why there is none.
  StatusOr<UnixUser> Resolve(const std::string& user, const std::string& account) const;

 private:
  std::map<std::string, UnixUser> users_;
  std::map<std::string, UnixUser> accounts_;
  bool same_name_ = false;
  std::optional<UnixUser> default_;
};

}  // namespace allot
