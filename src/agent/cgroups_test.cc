#include "agent/cgroups.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/task_runner.h"
#include "agent/task_testing.h"

namespace allot {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Task cgroups need a writable cgroup v2 hierarchy: root on most machines, or a delegated
// subtree. Where there is none, these tests say so and skip; Detect must still not fail.
class TaskCgroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = fmt::format("test-{}-{}", getpid(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
    dir_ = fs::temp_directory_path() / fmt::format("allot-cgroups-{}", name_);
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tasks");
    cgroups_ = TaskCgroups::Detect(name_);
  }
  void TearDown() override {
    if (cgroups_.available()) ::rmdir(cgroups_.parent().c_str());
    fs::remove_all(dir_);
  }

  TaskLaunch Launch(std::vector<std::string> argv) {
    TaskLaunch launch;
    launch.job = 3;
    launch.epoch = 1;
    launch.argv = std::move(argv);
    launch.environment = {{"PATH", "/usr/bin:/bin"}};
    launch.working_directory = dir_.string();
    launch.stdout_path = (dir_ / "out.txt").string();
    launch.stderr_to_stdout = true;
    return launch;
  }


  std::string name_;
  fs::path dir_;
  TaskCgroups cgroups_;
};

TEST_F(TaskCgroupsTest, DetectAlwaysDescribesWhatTasksGet) {
  EXPECT_FALSE(cgroups_.Describe().empty());
  EXPECT_EQ(cgroups_.available(), !cgroups_.parent().empty());
  TaskCgroups off;
  EXPECT_FALSE(off.available());
  StatusOr<std::string> none = off.Create("1.1.0", {.cpus = 2, .memory_bytes = 1 << 30});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "");
}

TEST_F(TaskCgroupsTest, ATaskRunsInItsOwnCgroupWhichIsGoneOnceCollected) {
  if (!cgroups_.available()) GTEST_SKIP() << cgroups_.Describe();
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM, cgroups_);
  StatusOr<RunningTask> task = runner.Launch(Launch({"/bin/sh", "-c", "cat /proc/self/cgroup"}));
  ASSERT_TRUE(task.ok()) << task.status().message();
  ASSERT_FALSE(task->cgroup.empty());
  EXPECT_TRUE(fs::is_directory(task->cgroup));
  EXPECT_EQ(WaitForExit(runner, *task), 0);
  // The cgroup's path as the task saw it is the tail of the directory made for it.
  std::string seen = ReadWholeFile(dir_ / "out.txt");
  EXPECT_THAT(seen, HasSubstr(fmt::format("allot-{}/3.1.0", name_)));
  runner.Collect(*task);
  EXPECT_FALSE(fs::exists(task->cgroup));
}

TEST_F(TaskCgroupsTest, AKillReachesProcessesThatLeftTheTasksProcessGroup) {
  if (!cgroups_.available()) GTEST_SKIP() << cgroups_.Describe();
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM, cgroups_);
  // setsid puts the sleeper in a session (and process group) of its own: a signal to the task's
  // group misses it; the cgroup does not.
  StatusOr<RunningTask> task =
      runner.Launch(Launch({"/bin/sh", "-c", "setsid sleep 100 & echo $! > escaped.pid; wait"}));
  ASSERT_TRUE(task.ok()) << task.status().message();
  fs::path pid_file = dir_ / "escaped.pid";
  for (int i = 0; i < 500 && ReadWholeFile(pid_file).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  pid_t escaped = std::stoi(ReadWholeFile(pid_file));
  ASSERT_EQ(kill(escaped, 0), 0);
  runner.Signal(*task, SIGKILL);
  EXPECT_EQ(WaitForExit(runner, *task), 128 + SIGKILL);
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = kill(escaped, 0) != 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "a process that left the task's process group survived the kill";
  runner.Collect(*task);
  EXPECT_FALSE(fs::exists(task->cgroup));
}

TEST_F(TaskCgroupsTest, CollectEndsWhatAFinishedTaskLeftRunning) {
  if (!cgroups_.available()) GTEST_SKIP() << cgroups_.Describe();
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM, cgroups_);
  StatusOr<RunningTask> task = runner.Launch(Launch({"/bin/sh", "-c", "setsid sleep 100 & echo $! > left.pid"}));
  ASSERT_TRUE(task.ok()) << task.status().message();
  EXPECT_EQ(WaitForExit(runner, *task), 0);
  pid_t left = std::stoi(ReadWholeFile(dir_ / "left.pid"));
  runner.Collect(*task);
  EXPECT_FALSE(fs::exists(task->cgroup));
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = kill(left, 0) != 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone);
}

TEST_F(TaskCgroupsTest, ATaskOverItsMemoryLimitIsKilledAndSaysSo) {
  if (!cgroups_.limits_memory()) GTEST_SKIP() << cgroups_.Describe();
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM, cgroups_);
  TaskLaunch launch = Launch({"/bin/sh", "-c", "head -c 200000000 /dev/zero | tail -c 1 > /dev/null; echo survived"});
  launch.limits.memory_bytes = 32 << 20;
  StatusOr<RunningTask> task = runner.Launch(launch);
  ASSERT_TRUE(task.ok()) << task.status().message();
  EXPECT_EQ(ReadWholeFile(fs::path(task->cgroup) / "memory.max"), fmt::format("{}\n", 32 << 20));
  std::optional<int> code = WaitForExit(runner, *task);
  ASSERT_TRUE(code.has_value());
  EXPECT_TRUE(runner.OutOfMemory(*task));
  runner.Collect(*task);
}

TEST_F(TaskCgroupsTest, CpuLimitsAreWrittenAsQuotaPerPeriod) {
  if (!cgroups_.limits_cpu()) GTEST_SKIP() << cgroups_.Describe();
  StatusOr<std::string> dir = cgroups_.Create("9.1.0", {.cpus = 3});
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  EXPECT_EQ(ReadWholeFile(fs::path(*dir) / "cpu.max"), "300000 100000\n");
  TaskCgroups::Remove(*dir);
  EXPECT_FALSE(fs::exists(*dir));
}

}  // namespace
}  // namespace allot
