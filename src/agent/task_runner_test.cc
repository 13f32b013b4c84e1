#include "agent/task_runner.h"

#include "agent/task_testing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace allot {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

class TaskRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("allot-runner-{}-{}", getpid(),
                                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "tasks");
  }
  void TearDown() override { fs::remove_all(dir_); }

  TaskLaunch Launch(std::vector<std::string> argv) {
    TaskLaunch launch;
    launch.job = 7;
    launch.epoch = 2;
    launch.argv = std::move(argv);
    launch.environment = {{"PATH", "/usr/bin:/bin"}, {"ALLOT_JOB_ID", "7"}};
    launch.working_directory = dir_.string();
    launch.stdout_path = (dir_ / "logs" / "out.txt").string();
    launch.stderr_to_stdout = true;  // Slurm's rule for an output file without an error file
    return launch;
  }


  fs::path dir_;
};

TEST_F(TaskRunnerTest, RunsArgvWithExactlyTheGivenEnvironmentAndReportsTheExitCode) {
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM);
  StatusOr<RunningTask> task = runner.Launch(
      Launch({"/bin/sh", "-c", "echo job=$ALLOT_JOB_ID home=${HOME:-unset} cwd=$(pwd); echo oops >&2; exit 3"}));
  ASSERT_TRUE(task.ok()) << task.status().message();
  EXPECT_GT(task->group, 0);
  EXPECT_EQ(WaitForExit(runner, *task), 3);
  std::string out = ReadWholeFile(dir_ / "logs" / "out.txt");
  EXPECT_THAT(out, HasSubstr("job=7 home=unset cwd=" + dir_.string()));
  EXPECT_THAT(out, HasSubstr("oops"));  // stderr goes with stdout unless told otherwise
}

TEST_F(TaskRunnerTest, ScriptsRunWithTheirShebangAndStderrCanBeSeparate) {
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM);
  TaskLaunch launch = Launch({});
  launch.script = "#!/bin/sh\necho from-script\necho to-stderr >&2\n";
  launch.stderr_path = (dir_ / "logs" / "err.txt").string();
  launch.stderr_to_stdout = false;
  StatusOr<RunningTask> task = runner.Launch(launch);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(WaitForExit(runner, *task), 0);
  EXPECT_EQ(ReadWholeFile(dir_ / "logs" / "out.txt"), "from-script\n");
  EXPECT_EQ(ReadWholeFile(dir_ / "logs" / "err.txt"), "to-stderr\n");
}

TEST_F(TaskRunnerTest, AMissingCommandEndsWith127AndSaysWhyInItsOutput) {
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM);
  StatusOr<RunningTask> task = runner.Launch(Launch({"/no/such/program"}));
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(WaitForExit(runner, *task), 127);
  EXPECT_THAT(ReadWholeFile(dir_ / "logs" / "out.txt"), HasSubstr("cannot run '/no/such/program': No such file or directory"));
}

TEST_F(TaskRunnerTest, TheTasksOwnPathIsSearched) {
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM);
  fs::create_directories(dir_ / "bin");
  std::ofstream(dir_ / "bin" / "hello-allot") << "#!/bin/sh\necho found\n";
  fs::permissions(dir_ / "bin" / "hello-allot", fs::perms::owner_all);
  TaskLaunch launch = Launch({"hello-allot"});
  launch.environment["PATH"] = (dir_ / "bin").string() + ":/usr/bin:/bin";
  StatusOr<RunningTask> task = runner.Launch(launch);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(WaitForExit(runner, *task), 0);
  EXPECT_EQ(ReadWholeFile(dir_ / "logs" / "out.txt"), "found\n");
}

TEST_F(TaskRunnerTest, AMissingShimIsAnErrorAndLeavesNothingBehind) {
  TaskRunner runner((dir_ / "tasks").string(), (dir_ / "no-shim").string());
  StatusOr<RunningTask> task = runner.Launch(Launch({"true"}));
  ASSERT_FALSE(task.ok());
  EXPECT_THAT(task.status().message(), HasSubstr("no-shim"));
  EXPECT_TRUE(runner.Recover().empty());
}

TEST_F(TaskRunnerTest, SignalsReachTheWholeProcessGroup) {
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM);
  // The task starts a child of its own and waits; a signal must reach both.
  StatusOr<RunningTask> task =
      runner.Launch(Launch({"/bin/sh", "-c", "sleep 100 & echo $! > child.pid; wait"}));
  ASSERT_TRUE(task.ok());
  fs::path child_file = dir_ / "child.pid";
  for (int i = 0; i < 500 && ReadWholeFile(child_file).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  pid_t child = std::stoi(ReadWholeFile(child_file));
  runner.Signal(*task, SIGTERM);
  EXPECT_EQ(WaitForExit(runner, *task), 128 + SIGTERM);
  bool child_gone = false;
  for (int i = 0; i < 500 && !child_gone; ++i) {
    child_gone = kill(child, 0) != 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(child_gone) << "the task's own child survived the signal";
}

TEST_F(TaskRunnerTest, TasksRunAsTheMappedUnprivilegedUser) {
  if (geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  struct passwd* nobody = getpwnam("nobody");
  if (!nobody) GTEST_SKIP() << "no user 'nobody' here";
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM);
  TaskLaunch launch = Launch({"/bin/sh", "-c", "id -u; id -G"});
  launch.working_directory = "/";
  launch.uid = static_cast<int>(nobody->pw_uid);
  launch.gid = static_cast<int>(nobody->pw_gid);
  // The output file is opened as the task's user, so it must be somewhere that user may write.
  fs::create_directories(dir_ / "logs");
  ASSERT_EQ(chown((dir_ / "logs").c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  StatusOr<RunningTask> task = runner.Launch(launch);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(WaitForExit(runner, *task), 0);
  EXPECT_EQ(ReadWholeFile(dir_ / "logs" / "out.txt"), fmt::format("{}\n{}\n", nobody->pw_uid, nobody->pw_gid));
  EXPECT_EQ(ReadWholeFile(task->stdout_path), ReadWholeFile(dir_ / "logs" / "out.txt"));  // the agent's copy
  struct stat info {};
  ASSERT_EQ(stat((dir_ / "logs" / "out.txt").c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, nobody->pw_uid);  // created by the user, not chowned by root
}

// The hostile-client probe's first finding: a job naming root's files as its output got them
// chowned to it and shipped back as its log. Now the shim opens them as the job's user.
TEST_F(TaskRunnerTest, AJobCannotWriteOrReadFilesItsUserCannot) {
  if (geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  struct passwd* nobody = getpwnam("nobody");
  if (!nobody) GTEST_SKIP() << "no user 'nobody' here";
  fs::path secret = dir_ / "secret";
  std::ofstream(secret) << "top secret\n";
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  fs::path own = dir_ / "nobody-owns";
  fs::create_directories(own);
  ASSERT_EQ(chown(own.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  fs::create_symlink(secret, own / "link");

  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM);
  for (const fs::path& output : {secret, own / "link", dir_ / "made-by-root" / "out.txt"}) {
    TaskLaunch launch = Launch({"/bin/echo", "written"});
    launch.working_directory = "/";
    launch.uid = static_cast<int>(nobody->pw_uid);
    launch.gid = static_cast<int>(nobody->pw_gid);
    launch.stdout_path = output.string();
    StatusOr<RunningTask> task = runner.Launch(launch);
    ASSERT_TRUE(task.ok());
    EXPECT_EQ(WaitForExit(runner, *task), 127) << output;
    std::string shipped = ReadWholeFile(task->stdout_path);
    EXPECT_THAT(shipped, HasSubstr("cannot open the output file " + output.string() + ": "));
    EXPECT_THAT(shipped, Not(HasSubstr("top secret")));
    runner.Collect(*task);
  }
  EXPECT_EQ(ReadWholeFile(secret), "top secret\n");
  struct stat info {};
  ASSERT_EQ(stat(secret.c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, 0u);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(dir_ / "made-by-root"));  // no directory made for the job as root
}

TEST_F(TaskRunnerTest, AScriptIsReadableByItsUserOnly) {
  if (geteuid() != 0) GTEST_SKIP() << "switching users needs root";
  struct passwd* nobody = getpwnam("nobody");
  if (!nobody) GTEST_SKIP() << "no user 'nobody' here";
  TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM);
  TaskLaunch launch = Launch({});
  launch.script = "#!/bin/sh\nid -un\n";
  launch.stdout_path.clear();
  launch.stderr_to_stdout = false;
  launch.uid = static_cast<int>(nobody->pw_uid);
  launch.gid = static_cast<int>(nobody->pw_gid);
  launch.working_directory = "/";
  StatusOr<RunningTask> task = runner.Launch(launch);
  ASSERT_TRUE(task.ok());
  struct stat info {};
  ASSERT_EQ(stat((fs::path(task->state_dir) / "script").c_str(), &info), 0);
  EXPECT_EQ(info.st_uid, nobody->pw_uid);
  EXPECT_EQ(info.st_mode & 0777, 0500u);
  ASSERT_EQ(stat(task->state_dir.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0711u);  // passable to run the script, not listable
  EXPECT_EQ(WaitForExit(runner, *task), 0);
  EXPECT_EQ(ReadWholeFile(task->stdout_path), "nobody\n");
  ASSERT_EQ(stat(task->stdout_path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);  // the agent's copy is root's alone
}

TEST_F(TaskRunnerTest, ARestartedRunnerFindsItsTasksAgain) {
  RunningTask started;
  {
    TaskRunner runner((dir_ / "tasks").string(), ALLOT_SHIM);
    StatusOr<RunningTask> task = runner.Launch(Launch({"/bin/sh", "-c", "sleep 0.3; exit 5"}));
    ASSERT_TRUE(task.ok());
    started = *task;
  }
  TaskRunner restarted((dir_ / "tasks").string(), ALLOT_SHIM);
  std::vector<RunningTask> found = restarted.Recover();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].job, 7u);
  EXPECT_EQ(found[0].epoch, 2u);
  EXPECT_EQ(found[0].group, started.group);
  EXPECT_FALSE(restarted.Poll(found[0]).has_value());  // still running
  EXPECT_EQ(WaitForExit(restarted, found[0]), 5);
  restarted.Collect(found[0]);
  EXPECT_TRUE(restarted.Recover().empty());
}

}  // namespace
}  // namespace allot
