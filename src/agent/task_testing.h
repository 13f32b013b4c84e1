// Helpers for the agent's tests of tasks (task_runner_test.cc, cgroups_test.cc).
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "agent/task_runner.h"

namespace allot {

// Polls until the task ends (at most 10 s).
inline std::optional<int> WaitForExit(const TaskRunner& runner, RunningTask& task) {
  for (int i = 0; i < 1000; ++i) {
    if (std::optional<int> code = runner.Poll(task)) return code;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

inline std::string ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace allot
