#include "store/store.h"

#include <gmock/gmock.h>
#include <sqlite3.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "store/leadership.h"
#include "store/postgres_testing.h"

namespace allot {
namespace {

using ::testing::HasSubstr;

// Every test runs against both engines: SQLite in a temporary directory, and PostgreSQL in a
// scratch database of the cluster scripts/with-postgresql.sh starts (skipped without one).
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgresql") {
      postgres_ = std::make_unique<ScratchPostgresDatabase>();
      if (!postgres_->available()) {
        if (!postgres_->error().empty()) FAIL() << "scratch database: " << postgres_->error();
        GTEST_SKIP() << ScratchPostgresDatabase::kSkipReason;
      }
      location_ = postgres_->uri();
      return;
    }
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');
    dir_ = std::filesystem::temp_directory_path() / fmt::format("allot-store-test-{}-{}", getpid(), name);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    location_ = (dir_ / "allot.db").string();
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Store> OpenStore() {
    StatusOr<std::unique_ptr<Store>> store = Store::Open(location_);
    EXPECT_TRUE(store.ok()) << store.status().message();
    if (store.ok()) {
      EXPECT_EQ((*store)->engine(), GetParam());
    }
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Writes a schema version this allot does not know, behind the store's back.
  void SetSchemaVersion(int version) {
    if (postgres_) {
      ASSERT_TRUE(postgres_->Run(fmt::format("UPDATE allot_schema SET version = {}", version), true))
          << postgres_->error();
      return;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(location_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, fmt::format("PRAGMA user_version={}", version).c_str(), nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }

  static JobRow Job(JobId id, std::string state, std::string account = "lab") {
    return JobRow{.id = id, .state = std::move(state), .account = std::move(account),
                  .user = "kim", .submit_time = 100 + static_cast<Time>(id),
                  .doc = fmt::format(R"({{"id": {}}})", id)};
  }

  std::unique_ptr<ScratchPostgresDatabase> postgres_;
  std::filesystem::path dir_;
  std::string location_;
};

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(StoreTest, CommittedJobsSurviveReopen) {
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

TEST_P(StoreTest, ListJobsFiltersNewestFirst) {
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
  // Submitted in [103, 104): job 3 alone (Job() submits job N at 100 + N).
  StatusOr<std::vector<JobRow>> window = store->ListJobs({.submitted_since = 103, .submitted_until = 104});
  ASSERT_TRUE(window.ok()) << window.status().message();
  ASSERT_EQ(window->size(), 1u);
  EXPECT_EQ((*window)[0].id, 3u);
  // Paging, newest first: the page below id 3.
  StatusOr<std::vector<JobRow>> page = store->ListJobs({.before = 3, .limit = 10});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].id, 2u);
  EXPECT_EQ(store->ListJobs({.user = "nobody"})->size(), 0u);
}

TEST_P(StoreTest, RetentionPurgesOnlyJobsEndedLongAgo) {
  std::unique_ptr<Store> store = OpenStore();
  WriteBatch batch;
  for (JobId id = 1; id <= 6; ++id) {
    JobRow row = Job(id, id == 5 ? "running" : id == 6 ? "pending" : "completed");
    row.end_time = id <= 4 ? 200 + static_cast<Time>(id) : 0;  // jobs 1-4 ended at 201-204
    batch.PutJob(row);
  }
  ASSERT_TRUE(store->Commit(std::move(batch)).ok());
  WriteBatch purge;
  purge.PurgeEndedJobs(204, 2);  // ended before 204: jobs 1-3, at most 2 of them, oldest first
  ASSERT_TRUE(store->Commit(std::move(purge)).ok());
  auto ids = [&] {
    std::set<JobId> left;
    StatusOr<std::vector<JobRow>> rows = store->ListJobs({});
    EXPECT_TRUE(rows.ok());
    if (rows.ok()) {
      for (const JobRow& row : *rows) left.insert(row.id);
    }
    return left;
  };
  EXPECT_EQ(ids(), (std::set<JobId>{3, 4, 5, 6}));
  WriteBatch again;
  again.PurgeEndedJobs(1000000, 100);
  ASSERT_TRUE(store->Commit(std::move(again)).ok());
  EXPECT_EQ(ids(), (std::set<JobId>{5, 6}));  // live jobs stay
}

TEST_P(StoreTest, UsageAddsUpPerAccountPoolAndDay) {
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

TEST_P(StoreTest, TokensAndSettingsRoundTrip) {
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

TEST_P(StoreTest, FailedBatchChangesNothing) {
  std::unique_ptr<Store> store = OpenStore();
  WriteBatch first;
  first.PutToken({.id = 1, .hash = "same", .user = "a", .role = "operator"});
  ASSERT_TRUE(store->Commit(std::move(first)).ok());
  WriteBatch bad;
  bad.PutJob(Job(7, "pending"));
  bad.PutToken({.id = 2, .hash = "same", .user = "b", .role = "operator"});  // hash must be unique
  Status status = store->Commit(std::move(bad));
  EXPECT_FALSE(status.ok());
  // SQLite: "UNIQUE constraint failed"; PostgreSQL: "violates unique constraint".
  std::string message = status.message();
  std::transform(message.begin(), message.end(), message.begin(), [](unsigned char c) { return std::tolower(c); });
  EXPECT_THAT(message, HasSubstr("unique"));
  EXPECT_FALSE(store->LoadJob(7)->has_value());
  EXPECT_EQ(store->LoadTokens()->size(), 1u);
  // The store still works after a failed commit.
  WriteBatch good;
  good.PutJob(Job(8, "pending"));
  EXPECT_TRUE(store->Commit(std::move(good)).ok());
}

TEST_P(StoreTest, ConcurrentCommitsAreAllDurableAndGrouped) {
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

TEST_P(StoreTest, RefusesANewerSchema) {
  {
    std::unique_ptr<Store> store = OpenStore();
    WriteBatch batch;
    batch.PutJob(Job(1, "pending"));
    ASSERT_TRUE(store->Commit(std::move(batch)).ok());
  }
  SetSchemaVersion(99);
  StatusOr<std::unique_ptr<Store>> store = Store::Open(location_);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
  // Refused, not changed: an allot that knows the schema still finds the job.
  SetSchemaVersion(3);  // the latest of both engines
  std::unique_ptr<Store> reopened = OpenStore();
  ASSERT_NE(reopened, nullptr);
  EXPECT_TRUE(reopened->LoadJob(1)->has_value());
}

// A group larger than one pipeline sync (1,000 writes) is still one transaction: a failure in
// its last write leaves none of the others behind.
TEST_P(StoreTest, LargeFailedGroupChangesNothing) {
  std::unique_ptr<Store> store = OpenStore();
  WriteBatch first;
  first.PutToken({.id = 1, .hash = "same", .user = "a", .role = "operator"});
  ASSERT_TRUE(store->Commit(std::move(first)).ok());
  WriteBatch big;
  for (JobId id = 1; id <= 2500; ++id) big.PutJob(Job(id, "pending"));
  big.AddUsage({"lab", "p", 86400, 5});
  big.PutToken({.id = 2, .hash = "same", .user = "b", .role = "operator"});
  EXPECT_FALSE(store->Commit(std::move(big)).ok());
  EXPECT_EQ(*store->MaxJobId(), 0u);
  EXPECT_TRUE(store->LoadUsage(0, 10 * 86400)->empty());
  WriteBatch good;
  for (JobId id = 1; id <= 2500; ++id) good.PutJob(Job(id, "pending"));
  ASSERT_TRUE(store->Commit(std::move(good)).ok());
  EXPECT_EQ(store->LoadLiveJobs()->size(), 2500u);
}

TEST_P(StoreTest, AuditFiltersByActionPrefixUserAndTime) {
  std::unique_ptr<Store> store = OpenStore();
  WriteBatch batch;
  batch.AddAudit({.time = 10, .user = "root", .role = "operator", .action = "job.cancel", .target = "7"});
  batch.AddAudit({.time = 20, .user = "kim", .role = "tenant", .action = "job.hold", .target = "8"});
  batch.AddAudit({.time = 30, .user = "root", .role = "operator", .action = "node.drain", .target = "n1"});
  ASSERT_TRUE(store->Commit(std::move(batch)).ok());
  StatusOr<std::vector<AuditRow>> jobs = store->ListAudit({.action = "job."});
  ASSERT_TRUE(jobs.ok()) << jobs.status().message();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].action, "job.hold");  // newest first
  EXPECT_EQ(store->ListAudit({.user = "root"})->size(), 2u);
  EXPECT_EQ(store->ListAudit({.since = 15, .until = 30})->size(), 1u);
  EXPECT_EQ(store->ListAudit({.action = "node.drain"})->front().target, "n1");
}

TEST(StoreOpenTest, NamesTheEngineAndHidesPasswords) {
  EXPECT_EQ(Store::Describe("postgresql://allot:s3cret@db1:5432/allot"), "postgresql://allot:***@db1:5432/allot");
  EXPECT_EQ(Store::Describe("postgresql:///allot?host=/run/pg&password=s3cret&user=a"),
            "postgresql:///allot?host=/run/pg&password=***&user=a");
  EXPECT_EQ(Store::Describe("sqlite:/var/lib/allot"), "sqlite:/var/lib/allot");
  EXPECT_EQ(Store::Describe("postgresql://allot:a/b@c@db1/allot?x=1"), "postgresql://allot:***@db1/allot?x=1");
  StatusOr<std::unique_ptr<Store>> unknown = Store::Open("mysql://u:pw@host/db");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("use sqlite:DIR or postgresql://"));
  EXPECT_THAT(unknown.status().message(), ::testing::Not(HasSubstr("pw")));
  StatusOr<std::unique_ptr<Store>> unreachable = Store::Open("postgresql://allot:pw@/nodb?host=/nonexistent");
  ASSERT_FALSE(unreachable.ok());
  EXPECT_THAT(unreachable.status().message(), HasSubstr("cannot connect to the store"));
  EXPECT_THAT(unreachable.status().message(), ::testing::Not(HasSubstr(":pw@")));
}

TEST(StoreOpenTest, SqliteDirectoryIsCreated) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / fmt::format("allot-store-dir-{}", getpid());
  std::filesystem::remove_all(dir);
  StatusOr<std::unique_ptr<Store>> store = Store::Open("sqlite:" + (dir / "nested").string());
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_EQ((*store)->engine(), "sqlite");
  EXPECT_TRUE(std::filesystem::exists(dir / "nested" / "allot.db"));
  store->reset();
  std::filesystem::remove_all(dir);
}

// Two servers on one PostgreSQL database: one leads; when its session ends the other takes a new
// term, and the first one's store can no longer write a row (fencing).
TEST(LeadershipTest, OneLeaderAtATimeAndADeposedLeaderCannotWrite) {
  ScratchPostgresDatabase database;
  if (!database.available()) GTEST_SKIP() << ScratchPostgresDatabase::kSkipReason;
  ASSERT_TRUE(Store::Open(database.uri()).ok());  // migrates
  StatusOr<std::unique_ptr<Leadership>> first = Leadership::Connect(database.uri());
  StatusOr<std::unique_ptr<Leadership>> second = Leadership::Connect(database.uri());
  ASSERT_TRUE(first.ok() && second.ok()) << first.status().message();
  ASSERT_TRUE(*(*first)->TryAcquire("http://a:1"));
  EXPECT_FALSE(*(*second)->TryAcquire("http://b:2"));
  EXPECT_TRUE((*first)->StillHeld());
  StatusOr<Leadership::Leader> leader = (*second)->CurrentLeader();
  ASSERT_TRUE(leader.ok());
  EXPECT_EQ(leader->url, "http://a:1");
  EXPECT_EQ(leader->epoch, (*first)->epoch());

  StatusOr<std::unique_ptr<Store>> old_store = Store::Open(database.uri(), (*first)->epoch());
  ASSERT_TRUE(old_store.ok());
  WriteBatch before;
  before.PutJob({.id = 1, .state = "pending", .account = "lab", .user = "kim", .doc = "{}"});
  ASSERT_TRUE((*old_store)->Commit(std::move(before)).ok());

  first->reset();  // the leader's session ends, as when its process dies
  // The server ends that backend, and frees its lock, a moment after the client hangs up; a
  // standby tries again until it does, as this one does here.
  bool acquired = false;
  for (auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       !acquired && std::chrono::steady_clock::now() < give_up;) {
    StatusOr<bool> attempt = (*second)->TryAcquire("http://b:2");
    ASSERT_TRUE(attempt.ok()) << attempt.status().message();
    acquired = *attempt;
    if (!acquired) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(acquired) << "the lock of a closed session was never freed";
  EXPECT_GT((*second)->epoch(), leader->epoch);
  WriteBatch after;
  after.PutJob({.id = 2, .state = "pending", .account = "lab", .user = "kim", .doc = "{}"});
  Status fenced = (*old_store)->Commit(std::move(after));
  ASSERT_FALSE(fenced.ok());
  EXPECT_THAT(fenced.message(), HasSubstr("fenced"));
  StatusOr<std::unique_ptr<Store>> new_store = Store::Open(database.uri(), (*second)->epoch());
  ASSERT_TRUE(new_store.ok());
  EXPECT_FALSE((*new_store)->LoadJob(2)->has_value());
  WriteBatch mine;
  mine.PutJob({.id = 2, .state = "pending", .account = "lab", .user = "kim", .doc = "{}"});
  EXPECT_TRUE((*new_store)->Commit(std::move(mine)).ok());
  EXPECT_EQ((*new_store)->LoadLiveJobs()->size(), 2u);
}

TEST(LeadershipTest, FencingNeedsPostgres) {
  StatusOr<std::unique_ptr<Store>> store = Store::Open("sqlite:/tmp/allot-no-fencing", 3);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("need PostgreSQL"));
}

}  // namespace
}  // namespace allot
