#include "agent/user_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace allot {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Uses the users every Debian system has: root (refused) and nobody.
class UserMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!getpwnam("nobody")) GTEST_SKIP() << "no user 'nobody' here";
    path_ = fs::temp_directory_path() / fmt::format("allot-user-map-{}.yaml", getpid());
  }
  void TearDown() override { fs::remove(path_); }
  StatusOr<UserMap> LoadText(const std::string& text) {
    std::ofstream(path_) << text;
    return UserMap::Load(path_.string());
  }
  fs::path path_;
};

TEST_F(UserMapTest, UsersThenAccountsThenTheDefault) {
  StatusOr<UserMap> map = LoadText("users:\n  alice: nobody\naccounts:\n  lab: nobody\n");
  ASSERT_TRUE(map.ok()) << map.status().message();
  StatusOr<UnixUser> alice = map->Resolve("alice", "other");
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(alice->name, "nobody");
  EXPECT_EQ(alice->uid, static_cast<int>(getpwnam("nobody")->pw_uid));
  EXPECT_TRUE(map->Resolve("bob", "lab").ok());
  StatusOr<UnixUser> unmapped = map->Resolve("bob", "other");
  ASSERT_FALSE(unmapped.ok());
  EXPECT_THAT(unmapped.status().message(), HasSubstr("no Unix user is mapped for user 'bob' of account 'other'"));

  StatusOr<UserMap> with_default = LoadText("default: nobody\n");
  ASSERT_TRUE(with_default.ok());
  EXPECT_EQ(with_default->Resolve("bob", "other")->name, "nobody");
}

TEST_F(UserMapTest, SameNameFindsTheJobsUserButNeverRoot) {
  StatusOr<UserMap> map = LoadText("same_name: true\n");
  ASSERT_TRUE(map.ok()) << map.status().message();
  EXPECT_EQ(map->Resolve("nobody", "lab")->name, "nobody");
  EXPECT_FALSE(map->Resolve("no-such-user-here", "lab").ok());
  StatusOr<UnixUser> root = map->Resolve("root", "lab");
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(root.status().message(), HasSubstr("is root"));
}

TEST_F(UserMapTest, BadFilesSayWhereAndWhat) {
  StatusOr<UserMap> root = LoadText("users:\n  alice: root\n");
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(root.status().message(), HasSubstr(":2: users.alice: 'root' is root"));
  StatusOr<UserMap> missing = LoadText("default: no-such-user-here\n");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("default: no Unix user 'no-such-user-here'"));
  StatusOr<UserMap> unknown = LoadText("usres:\n  alice: nobody\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown field 'usres'"));
  StatusOr<UserMap> flag = LoadText("same_name: maybe\n");
  ASSERT_FALSE(flag.ok());
  EXPECT_THAT(flag.status().message(), HasSubstr("same_name: expected true or false"));
  EXPECT_FALSE(UserMap::Load("/no/such/file.yaml").ok());
}

TEST_F(UserMapTest, RunAsIsOneUserForEveryJob) {
  StatusOr<UserMap> map = UserMap::Single("nobody");
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->Resolve("anyone", "any")->name, "nobody");
  StatusOr<UserMap> root = UserMap::Single("root");
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(root.status().message(), HasSubstr("--run-as: 'root' is root"));
}

}  // namespace
}  // namespace allot
