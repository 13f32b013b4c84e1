// The Controller in process, on an injected clock: what depends on time passing (days of
// history) is checked without waiting for it.
#include "server/controller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/config.h"

namespace allot {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("allot-controller-{}-{}", getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Controller> Open(ControllerOptions options) {
    StatusOr<Config> config = LoadConfigFile(std::string(ALLOT_SOURCE_DIR) + "/tests/server/pool.yaml");
    EXPECT_TRUE(config.ok()) << config.status().message();
    options.data_dir = dir_.string();
    options.now = [this] { return clock_; };
    options.nodes_need_agents = false;
    StatusOr<std::unique_ptr<Controller>> controller = Controller::Open(std::move(*config), std::move(options));
    EXPECT_TRUE(controller.ok()) << controller.status().message();
    return controller.ok() ? std::move(*controller) : nullptr;
  }

  JobId SubmitAndCancel(Controller& controller) {
    StatusOr<json> submitted =
        controller.Submit(kOperator, R"({"account": "lab-a", "gpus": 1, "command": ["true"], "hold": true})");
    EXPECT_TRUE(submitted.ok()) << submitted.status().message();
    JobId id = (*submitted)["ids"][0].get<JobId>();
    EXPECT_TRUE(controller.CancelJob(kOperator, id).ok());
    return id;
  }

  const Principal kOperator{.user = "root", .role = Role::kOperator};
  fs::path dir_;
  Time clock_ = 1796083200;  // 2026-12-01
};

TEST_F(ControllerTest, HistoryRetentionDeletesJobsEndedLongerAgoOnly) {
  std::unique_ptr<Controller> controller = Open({.history_retention_days = 2});
  ASSERT_NE(controller, nullptr);
  JobId old_job = SubmitAndCancel(*controller);
  clock_ += 86400;
  JobId newer_job = SubmitAndCancel(*controller);
  controller->TickForTest();
  EXPECT_TRUE(controller->GetJob(kOperator, old_job).ok());  // ended a day ago: kept
  clock_ += 86400 + 3600;
  controller->TickForTest();
  StatusOr<json> purged = controller->GetJob(kOperator, old_job);
  ASSERT_FALSE(purged.ok());
  EXPECT_EQ(purged.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(controller->GetJob(kOperator, newer_job).ok());  // ended a day and an hour ago
}

TEST_F(ControllerTest, WithoutRetentionHistoryIsKept) {
  std::unique_ptr<Controller> controller = Open({});
  ASSERT_NE(controller, nullptr);
  JobId job = SubmitAndCancel(*controller);
  clock_ += 400 * 86400;
  controller->TickForTest();
  EXPECT_TRUE(controller->GetJob(kOperator, job).ok());
}

}  // namespace
}  // namespace allot
