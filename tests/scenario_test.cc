// Golden scenario tests: each tests/scenarios/NAME.yaml (a config and a script) is run through
// the scheduler and its decision log compared with NAME.expected, line by line.
//
// After a deliberate change of behaviour, regenerate the expected files and read the diff:
//   ALLOT_UPDATE_GOLDEN=1 ./build/tests/scenario_test && git diff tests/scenarios
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sched/scenario.h"

namespace allot {
namespace {

// The source tree, compiled in by CMake; ALLOT_SOURCE_DIR in the environment overrides it.
std::filesystem::path ScenarioDirectory() {
  const char* source = std::getenv("ALLOT_SOURCE_DIR");
  return std::filesystem::path(source ? source : ALLOT_SOURCE_DIR) / "tests" / "scenarios";
}

std::vector<std::string> ScenarioNames() {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(ScenarioDirectory(), error)) {
    if (entry.path().extension() == ".yaml") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

class ScenarioTest : public testing::TestWithParam<std::string> {};

TEST_P(ScenarioTest, DecisionLogMatchesExpected) {
  std::filesystem::path base = ScenarioDirectory() / GetParam();
  StatusOr<std::string> log = RunScenarioFile(base.string() + ".yaml");
  ASSERT_TRUE(log.ok()) << log.status().message();
  std::filesystem::path expected_path = base.string() + ".expected";
  if (std::getenv("ALLOT_UPDATE_GOLDEN")) {
    std::ofstream(expected_path) << *log;
    GTEST_SKIP() << "rewrote " << expected_path;
  }
  ASSERT_TRUE(std::filesystem::exists(expected_path)) << "missing " << expected_path;
  std::istringstream actual(*log);
  std::istringstream expected(ReadFile(expected_path));
  std::string actual_line;
  std::string expected_line;
  int line = 0;
  while (true) {
    bool more_actual = static_cast<bool>(std::getline(actual, actual_line));
    bool more_expected = static_cast<bool>(std::getline(expected, expected_line));
    ++line;
    if (!more_actual && !more_expected) break;
    ASSERT_EQ(more_actual ? actual_line : "<end of log>", more_expected ? expected_line : "<end of file>")
        << GetParam() << ".expected, line " << line;
  }
}

TEST(ScenarioTest, FindsTheScenarios) { EXPECT_GE(ScenarioNames().size(), 6u); }

TEST(ScenarioTest, ReportsTheScriptLineOfABadCommand) {
  StatusOr<std::string> log = RunScenario(R"(
config:
  pools: [{name: p, shape: {gpus_per_node: 8}}]
  accounts: [{name: lab}]
script: |
  0 pass
  5 frobnicate
)", "bad.yaml");
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(log.status().message().find("bad.yaml:7: unknown command 'frobnicate'"), std::string::npos)
      << log.status().message();
}

TEST(ScenarioTest, RejectsTimeGoingBackwards) {
  StatusOr<std::string> log = RunScenario(R"(
config:
  pools: [{name: p, shape: {gpus_per_node: 8}}]
  accounts: [{name: lab}]
script: |
  1h pass
  10m pass
)", "back.yaml");
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("back.yaml:7: time 600 is before 3600"), std::string::npos)
      << log.status().message();
}

TEST(ScenarioTest, SameScenarioGivesTheSameLog) {
  std::string path = (ScenarioDirectory() / "fair_share.yaml").string();
  StatusOr<std::string> first = RunScenarioFile(path);
  StatusOr<std::string> second = RunScenarioFile(path);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
}

INSTANTIATE_TEST_SUITE_P(Golden, ScenarioTest, testing::ValuesIn(ScenarioNames()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace allot
