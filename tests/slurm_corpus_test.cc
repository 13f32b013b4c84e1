// The sbatch corpus (tests/slurm/*.sh): real-world-style batch scripts, each submitted unchanged
// with `sbatch` from a directory of its own to a two-agent cluster (nodes a1 and a2, 4 GPUs each),
// as a Slurm user would. Each script carries its expectations in comments, which sbatch ignores:
//
//   #EXPECT state completed              the job's end state (every element's, for an array)
//   #EXPECT exit 3                       its exit status
//   #EXPECT file slurm-%j.out contains rank=1 cuda=1
//                                        a file the job wrote (%j id, %A array id, %a each index,
//                                        %x name), relative to the submit directory
//   #EXPECT file out.txt lacks SECRET    ... and what it must not hold
//   #EXPECT elements 3                   an array's element count
//   #EXPECT sbatch --dependency=afterok:{prev}
//                                        sbatch options on the command line ({prev}: the job
//                                        of the script before this one)
//   #EXPECT args a "b c"                 the script's arguments
//   #EXPECT wrap COMMAND                 submitted as sbatch --wrap COMMAND instead of the file
//   #EXPECT rejected TEXT                sbatch refuses it, saying TEXT
//   #EXPECT after-prev                   it starts only once the job before it has ended
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "server/server_process.h"

namespace allot {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string Read(const fs::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

struct Expectation {
  std::string kind;  // state, exit, file, elements, sbatch, args, wrap, rejected, after-prev
  std::string rest;  // the rest of the line
};

std::vector<Expectation> ExpectationsOf(const std::string& script) {
  std::vector<Expectation> expectations;
  std::istringstream lines(script);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("#EXPECT ")) continue;
    std::string body = line.substr(8);
    size_t space = body.find(' ');
    expectations.push_back({body.substr(0, space), space == std::string::npos ? "" : body.substr(space + 1)});
  }
  return expectations;
}

// A job's output path pattern, as the job would have expanded it.
std::string Expand(std::string pattern, const json& job) {
  const std::map<std::string, std::string> codes = {
      {"%j", std::to_string(job.value("id", 0))},
      {"%A", std::to_string(job.value("array_job_id", 0) > 0 ? job.value("array_job_id", 0) : job.value("id", 0))},
      {"%a", job["array_index"].is_number_integer() ? std::to_string(job["array_index"].get<int>()) : "0"},
      {"%x", job.value("name", "")}};
  for (const auto& [code, value] : codes) {
    for (size_t at = pattern.find(code); at != std::string::npos; at = pattern.find(code, at + value.size())) {
      pattern.replace(at, code.size(), value);
    }
  }
  return pattern;
}

class SlurmCorpusTest : public ::testing::Test {
 public:
  json Call(const std::string& method, const std::string& path, const std::string& body = "") {
    httplib::Client client = server_->Client();
    httplib::Headers headers = {{"Authorization", "Bearer " + server_->OperatorToken()}};
    httplib::Result result = method == "GET" ? client.Get(path, headers) : client.Post(path, headers, body, "application/json");
    if (!result) return json::object();
    json reply = json::parse(result->body, nullptr, false);
    return reply.is_discarded() ? json::object() : reply;
  }

 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("allot-corpus-{}", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "work");
    // Jobs run as nobody when the agents run as root: the submit directories are theirs to write.
    fs::permissions(dir_ / "work", fs::perms::all | fs::perms::sticky_bit);
    server_ = std::make_unique<ServerProcess>(ALLOT_BINARY, std::string(ALLOT_SOURCE_DIR) + "/tests/server/agents.yaml",
                                              (dir_ / "data").string(),
                                              std::vector<std::string>{"--heartbeat", "0.5", "--kill-grace", "1"});
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.message();
    // The user submits with a tenant token of account 'lab', as on a real cluster.
    user_token_ = Call("POST", "/v1/tokens", json{{"role", "tenant"}, {"account", "lab"}, {"user", "kim"}}.dump())["token"];
    for (const char* node : {"a1", "a2"}) {
      std::string token = Call("POST", "/v1/tokens", json{{"role", "agent"}, {"node", node}}.dump())["token"];
      auto agent = std::make_unique<AgentProcess>(
          ALLOT_BINARY,
          std::vector<std::string>{"--server", server_->url(), "--token", token, "--node", node, "--gpus", "4",
                                   "--gpu-model", "H200"},
          (dir_ / fmt::format("agent-{}", node)).string());
      ASSERT_TRUE(agent->Start().ok());
      agents_.push_back(std::move(agent));
    }
  }

  void TearDown() override {
    for (const json& job : Call("GET", "/v1/jobs").value("jobs", json::array())) {
      Call("POST", fmt::format("/v1/jobs/{}/cancel", job.value("id", 0)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    agents_.clear();
    server_.reset();
    fs::remove_all(dir_);
  }

  // Runs a shell command line in `dir` with allot's Slurm commands first on PATH and the server
  // in the environment, as a user's shell would; its output (both streams) and exit status.
  std::pair<std::string, int> Shell(const fs::path& dir, const std::string& command) {
    std::string line = fmt::format("cd '{}' && PATH='{}':\"$PATH\" ALLOT_SERVER='{}' ALLOT_TOKEN='{}' {} 2>&1", dir.string(),
                                   fs::path(ALLOT_BINARY).parent_path().string(), server_->url(), user_token_,
                                   command);
    FILE* pipe = popen(line.c_str(), "r");
    if (pipe == nullptr) return {"popen failed", -1};
    std::string output;
    char buffer[4096];
    for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
    int status = pclose(pipe);
    return {output, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
  }

  fs::path dir_;
  std::unique_ptr<ServerProcess> server_;
  std::string user_token_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

// Whether every job submitted so far has ended; waits up to `seconds`.
bool AllEnded(SlurmCorpusTest* test, double seconds);

TEST_F(SlurmCorpusTest, EveryScriptRunsUnchangedAsUnderSlurm) {
  std::vector<fs::path> scripts;
  for (const fs::directory_entry& entry : fs::directory_iterator(fs::path(ALLOT_SOURCE_DIR) / "tests" / "slurm")) {
    if (entry.path().extension() == ".sh") scripts.push_back(entry.path());
  }
  std::sort(scripts.begin(), scripts.end());
  ASSERT_GE(scripts.size(), 20u);

  // One script at a time on an idle cluster, so the GPUs each rank gets are known (the lowest
  // free ones), except that a script submitted with a dependency on the one before it goes in
  // while that one still runs.
  struct Submitted {
    fs::path script;
    fs::path dir;
    int64_t id = 0;
    std::vector<Expectation> expectations;
  };
  std::vector<Submitted> pending_checks;
  int64_t previous = 0;
  json previous_job;
  auto check = [&](const Submitted& job) {
    SCOPED_TRACE(job.script.filename().string());
    json ended = Call("GET", "/v1/jobs?state=completed,failed,cancelled,timeout,node_fail&limit=10000");
    std::vector<json> elements;
    for (const json& doc : ended.value("jobs", json::array())) {
      if (doc.value("id", int64_t{0}) == job.id || doc.value("array_job_id", int64_t{0}) == job.id) elements.push_back(doc);
    }
    std::sort(elements.begin(), elements.end(), [](const json& a, const json& b) { return a["id"] < b["id"]; });
    ASSERT_FALSE(elements.empty()) << "job " << job.id << " is not in the history";
    const std::string log = Read(job.dir / fmt::format("slurm-{}.out", job.id));
    for (const Expectation& expectation : job.expectations) {
      const std::string& rest = expectation.rest;
      if (expectation.kind == "state" || expectation.kind == "exit") {
        for (const json& element : elements) {
          const json& actual = element[expectation.kind == "state" ? "state" : "exit_code"];
          EXPECT_EQ(actual.dump(), expectation.kind == "state" ? json(rest).dump() : rest)
              << "job " << element["id"] << ": " << element.value("end_reason", "") << "\n" << log;
        }
      } else if (expectation.kind == "elements") {
        EXPECT_EQ(elements.size(), static_cast<size_t>(std::stoi(rest)));
      } else if (expectation.kind == "file") {
        // "PATH contains TEXT" or "PATH lacks TEXT"
        size_t first = rest.find(' ');
        size_t second = rest.find(' ', first + 1);
        ASSERT_NE(second, std::string::npos) << "malformed: #EXPECT file " << rest;
        const std::string verb = rest.substr(first + 1, second - first - 1);
        for (const json& element : elements) {
          fs::path path = job.dir / Expand(rest.substr(0, first), element);
          std::string text = Expand(rest.substr(second + 1), element);
          if (verb == "contains") {
            EXPECT_THAT(Read(path), HasSubstr(text)) << path;
          } else {
            EXPECT_THAT(Read(path), ::testing::Not(HasSubstr(text))) << path;
          }
        }
      } else if (expectation.kind == "after-prev") {
        ASSERT_TRUE(previous_job.is_object());
        EXPECT_GE(elements.front().value("start_time", int64_t{0}), previous_job.value("end_time", int64_t{0}));
      }
    }
    previous_job = elements.back();
  };

  for (const fs::path& script : scripts) {
    SCOPED_TRACE(script.filename().string());
    Submitted job{script, dir_ / "work" / script.stem(), 0, ExpectationsOf(Read(script))};
    std::string options;
    std::string args;
    std::string wrap;
    std::string rejected;
    for (const Expectation& expectation : job.expectations) {
      if (expectation.kind == "sbatch") options += " " + expectation.rest;
      if (expectation.kind == "args") args += " " + expectation.rest;
      if (expectation.kind == "wrap") wrap = expectation.rest;
      if (expectation.kind == "rejected") rejected = expectation.rest;
    }
    const bool depends_on_previous = options.find("{prev}") != std::string::npos;
    if (!depends_on_previous) {
      ASSERT_TRUE(AllEnded(this, 60)) << "jobs still live: " << Call("GET", "/v1/jobs").dump();
      for (const Submitted& done : pending_checks) check(done);
      pending_checks.clear();
    }
    for (size_t at = options.find("{prev}"); at != std::string::npos; at = options.find("{prev}")) {
      options.replace(at, 6, std::to_string(previous));
    }
    fs::create_directories(job.dir);
    fs::permissions(job.dir, fs::perms::all);
    fs::copy_file(script, job.dir / script.filename());
    std::string command = wrap.empty() ? fmt::format("sbatch{} {}{}", options, script.filename().string(), args)
                                       : fmt::format("sbatch{} --wrap '{}'", options, wrap);
    auto [output, status] = Shell(job.dir, command);
    if (!rejected.empty()) {
      EXPECT_NE(status, 0) << output;
      EXPECT_THAT(output, HasSubstr(rejected));
      continue;
    }
    ASSERT_EQ(status, 0) << command << ": " << output;
    ASSERT_THAT(output, ::testing::StartsWith("Submitted batch job ")) << output;
    job.id = std::stoll(output.substr(20));
    previous = job.id;
    pending_checks.push_back(std::move(job));
  }
  ASSERT_TRUE(AllEnded(this, 60)) << "jobs still live: " << Call("GET", "/v1/jobs").dump();
  for (const Submitted& done : pending_checks) check(done);
}

bool AllEnded(SlurmCorpusTest* test, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (test->Call("GET", "/v1/jobs").value("jobs", json::array()).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace
}  // namespace allot
