#include "agent/user_map.h"

#include <pwd.h>
#include <yaml-cpp/yaml.h>

#include <vector>

namespace allot {

StatusOr<UnixUser> LookUpUnixUser(const std::string& name) {
  struct passwd* entry = getpwnam(name.c_str());
  if (!entry) return NotFoundError("no Unix user '{}' on this node", name);
  if (entry->pw_uid == 0) return InvalidArgumentError("'{}' is root; tasks run as unprivileged users only", name);
  return UnixUser{.name = name, .uid = static_cast<int>(entry->pw_uid), .gid = static_cast<int>(entry->pw_gid),
                  .home = entry->pw_dir ? entry->pw_dir : "/"};
}

StatusOr<UserMap> UserMap::Single(const std::string& name) {
  StatusOr<UnixUser> user = LookUpUnixUser(name);
  if (!user.ok()) return InvalidArgumentError("--run-as: {}", user.status().message());
  UserMap map;
  map.default_ = *user;
  return map;
}

StatusOr<UserMap> UserMap::Load(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& error) {
    return InvalidArgumentError("{}: {}", path, error.what());
  }
  if (!root.IsMap()) return InvalidArgumentError("{}: expected a map with users, accounts, same_name, default", path);
  UserMap map;
  auto where = [&](const YAML::Node& node) { return fmt::format("{}:{}", path, node.Mark().line + 1); };
  auto unix_user = [&](const YAML::Node& node, const std::string& field) -> StatusOr<UnixUser> {
    if (!node.IsScalar()) return InvalidArgumentError("{}: {}: expected a Unix user name", where(node), field);
    StatusOr<UnixUser> user = LookUpUnixUser(node.as<std::string>());
    if (!user.ok()) return InvalidArgumentError("{}: {}: {}", where(node), field, user.status().message());
    return user;
  };
  for (const auto& entry : root) {
    const std::string key = entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    if (key == "users" || key == "accounts") {
      if (!value.IsMap()) return InvalidArgumentError("{}: {}: expected a map of names to Unix users", where(value), key);
      for (const auto& pair : value) {
        std::string name = pair.first.as<std::string>();
        ALLOT_ASSIGN_OR_RETURN(UnixUser user, unix_user(pair.second, fmt::format("{}.{}", key, name)));
        (key == "users" ? map.users_ : map.accounts_)[name] = user;
      }
    } else if (key == "same_name") {
      if (!value.IsScalar() || (value.as<std::string>() != "true" && value.as<std::string>() != "false")) {
        return InvalidArgumentError("{}: same_name: expected true or false", where(value));
      }
      map.same_name_ = value.as<bool>();
    } else if (key == "default") {
      ALLOT_ASSIGN_OR_RETURN(map.default_, unix_user(value, "default"));
    } else {
      return InvalidArgumentError("{}: unknown field '{}' (expected users, accounts, same_name, default)",
                                  where(entry.first), key);
    }
  }
  return map;
}

StatusOr<UnixUser> UserMap::Resolve(const std::string& user, const std::string& account) const {
  if (auto found = users_.find(user); found != users_.end()) return found->second;
  if (auto found = accounts_.find(account); found != accounts_.end()) return found->second;
  if (same_name_ && !user.empty()) {
    StatusOr<UnixUser> same = LookUpUnixUser(user);
    if (same.ok()) return same;
    if (same.status().code() != StatusCode::kNotFound) return same.status();  // root
  }
  if (default_) return *default_;
  return NotFoundError("no Unix user is mapped for user '{}' of account '{}' on this node; add one to the agent's "
                       "--user-map file", user, account);
}

}  // namespace allot
