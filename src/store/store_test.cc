#include "store/store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <thread>

namespace allot {
namespace {

using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("allot-store-test-{}-{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Store> OpenStore() {
    StatusOr<std::unique_ptr<Store>> store = Store::Open((dir_ / "allot.db").string());
    EXPECT_TRUE(store.ok()) << store.status().message();
    return store.ok() ? std::move(*store) : nullptr;
  }

  static JobRow Job(JobId id, std::string state, std::string account = "lab") {
    return JobRow{.id = id, .state = std::move(state), .account = std::move(account),
                  .user = "kim", .submit_time = 100 + static_cast<Time>(id),
                  .doc = fmt::format(R"({{"id": {}}})", id)};
  }

  std::filesystem::path dir_;
};

TEST_F(StoreTest, CommittedJobsSurviveReopen) {
  {
    std::unique_ptr<Store> store = OpenStore();
    WriteBatch batch;
    batch.PutJob(Job(1, "pending"));
    batch.PutJob(Job(2, "running"));
    batch.PutJob(Job(3, "completed"));
    ASSERT_TRUE(store->Commit(std::move(batch)).ok());
    WriteBatch update;
    JobRow finished = Job(2, "failed");
    finished.end_time = 500;
    update.PutJob(finished);
    ASSERT_TRUE(store->Commit(std::move(update)).ok());
  }
  std::unique_ptr<Store> store = OpenStore();
  StatusOr<std::vector<JobRow>> live = store->LoadLiveJobs();
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].id, 1u);
  EXPECT_EQ((*live)[0].doc, R"({"id": 1})");
  StatusOr<std::optional<JobRow>> two = store->LoadJob(2);
  ASSERT_TRUE(two.ok() && two->has_value());
  EXPECT_EQ((*two)->state, "failed");
  EXPECT_EQ((*two)->end_time, 500);
  EXPECT_FALSE(store->LoadJob(9)->has_value());
  EXPECT_EQ(*store->MaxJobId(), 3u);
}

TEST_F(StoreTest, ListJobsFiltersNewestFirst) {
  std::unique_ptr<Store> store = OpenStore();
  WriteBatch batch;
  batch.PutJob(Job(1, "completed", "a"));
  batch.PutJob(Job(2, "completed", "b"));
  batch.PutJob(Job(3, "failed", "a"));
  batch.PutJob(Job(4, "pending", "a"));
  ASSERT_TRUE(store->Commit(std::move(batch)).ok());
  StatusOr<std::vector<JobRow>> rows = store->ListJobs({.states = {"completed", "failed"}, .accounts = {"a"}});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].id, 3u);
  EXPECT_EQ((*rows)[1].id, 1u);
  EXPECT_EQ(store->ListJobs({.limit = 2})->size(), 2u);
  EXPECT_EQ(store->ListJobs({.user = "nobody"})->size(), 0u);
}

TEST_F(StoreTest, UsageAddsUpPerAccountPoolAndDay) {
  std::unique_ptr<Store> store = OpenStore();
  WriteBatch batch;
  batch.AddUsage({"lab", "p", 86400, 3600});
  batch.AddUsage({"lab", "p", 86400, 1800});
  batch.AddUsage({"lab", "q", 86400, 10});
  batch.AddUsage({"lab", "p", 2 * 86400, 7});
  ASSERT_TRUE(store->Commit(std::move(batch)).ok());
  StatusOr<std::vector<UsageRow>> rows = store->LoadUsage(86400, 2 * 86400);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].pool, "p");
  EXPECT_DOUBLE_EQ((*rows)[0].gpu_seconds, 5400);
  EXPECT_EQ(store->LoadUsage(0, 10 * 86400)->size(), 3u);
}

TEST_F(StoreTest, TokensAndSettingsRoundTrip) {
  std::unique_ptr<Store> store = OpenStore();
  WriteBatch batch;
  batch.PutToken({.id = 1, .hash = "aa", .user = "root", .role = "operator", .created = 5});
  batch.PutToken({.id = 2, .hash = "bb", .user = "kim", .role = "tenant", .account = "lab", .created = 6});
  batch.PutSetting({"node", "n1", R"({"state": "draining"})"});
  batch.PutSetting({"node", "n2", R"({"state": "draining"})"});
  ASSERT_TRUE(store->Commit(std::move(batch)).ok());
  WriteBatch revoke;
  revoke.PutToken({.id = 2, .hash = "bb", .user = "kim", .role = "tenant", .account = "lab", .created = 6, .revoked = true});
  revoke.DeleteSetting("node", "n1");
  ASSERT_TRUE(store->Commit(std::move(revoke)).ok());
  StatusOr<std::vector<TokenRow>> tokens = store->LoadTokens();
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 2u);
  EXPECT_FALSE((*tokens)[0].revoked);
  EXPECT_TRUE((*tokens)[1].revoked);
  EXPECT_EQ((*tokens)[1].account, "lab");
  StatusOr<std::vector<SettingRow>> settings = store->LoadSettings();
  ASSERT_TRUE(settings.ok());
  ASSERT_EQ(settings->size(), 1u);
  EXPECT_EQ((*settings)[0].key, "n2");
}

TEST_F(StoreTest, FailedBatchChangesNothing) {
  std::unique_ptr<Store> store = OpenStore();
  WriteBatch first;
  first.PutToken({.id = 1, .hash = "same", .user = "a", .role = "operator"});
  ASSERT_TRUE(store->Commit(std::move(first)).ok());
  WriteBatch bad;
  bad.PutJob(Job(7, "pending"));
  bad.PutToken({.id = 2, .hash = "same", .user = "b", .role = "operator"});  // hash must be unique
  Status status = store->Commit(std::move(bad));
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("UNIQUE"));
  EXPECT_FALSE(store->LoadJob(7)->has_value());
  EXPECT_EQ(store->LoadTokens()->size(), 1u);
  // The store still works after a failed commit.
  WriteBatch good;
  good.PutJob(Job(8, "pending"));
  EXPECT_TRUE(store->Commit(std::move(good)).ok());
}

TEST_F(StoreTest, ConcurrentCommitsAreAllDurableAndGrouped) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  {
    std::unique_ptr<Store> store = OpenStore();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          WriteBatch batch;
          batch.PutJob(Job(static_cast<JobId>(t * kPerThread + i + 1), "pending"));
          ASSERT_TRUE(store->Commit(std::move(batch)).ok());
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(store->batches(), uint64_t{kThreads * kPerThread});
    EXPECT_LE(store->transactions(), store->batches());
  }
  std::unique_ptr<Store> store = OpenStore();
  StatusOr<std::vector<JobRow>> live = store->LoadLiveJobs();
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), size_t{kThreads * kPerThread});
  std::set<JobId> ids;
  for (const JobRow& row : *live) ids.insert(row.id);
  EXPECT_EQ(ids.size(), size_t{kThreads * kPerThread});
}

TEST_F(StoreTest, RefusesANewerSchema) {
  { OpenStore(); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "allot.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  StatusOr<std::unique_ptr<Store>> store = Store::Open((dir_ / "allot.db").string());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
}

}  // namespace
}  // namespace allot
