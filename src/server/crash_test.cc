// Crash tests: kill -9 the server in the middle of a stream of submits, restart it on the same
// data directory, and check that every acknowledged job is there exactly once, that running jobs
// are back on the GPUs they held, and that the server goes on working.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/job.h"
#include "server/server_process.h"

namespace allot {
namespace {

using nlohmann::json;

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = (std::filesystem::temp_directory_path() / fmt::format("allot-crash-{}", getpid())).string();
    std::filesystem::remove_all(data_dir_);
    server_ = std::make_unique<ServerProcess>(ALLOT_BINARY, std::string(ALLOT_SOURCE_DIR) + "/tests/server/pool.yaml",
                                              data_dir_, std::vector<std::string>{"--static-nodes"});
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(data_dir_);
  }

  json GetAllJobs() {
    httplib::Client client = server_->Client();
    httplib::Headers headers = {{"Authorization", "Bearer " + server_->OperatorToken()}};
    auto result = client.Get("/v1/jobs?state=pending,running,completed,failed,cancelled,timeout,node_fail,preempted&limit=100000",
                             headers);
    EXPECT_TRUE(result);
    if (!result) return json::array();
    EXPECT_EQ(result->status, 200) << result->body;
    return json::parse(result->body)["jobs"];
  }

  std::string data_dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CrashTest, EveryAcknowledgedSubmitSurvivesKill9) {
  std::map<std::string, JobId> acknowledged;  // job name -> id the server answered
  std::mutex acknowledged_mutex;
  std::mt19937 random(7);
  constexpr int kRounds = 3;
  constexpr int kClients = 4;
  for (int round = 0; round < kRounds; ++round) {
    Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.message();
    std::string token = server_->OperatorToken();
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        httplib::Client client = server_->Client();
        httplib::Headers headers = {{"Authorization", "Bearer " + token}};
        for (int i = 0; !stop; ++i) {
          std::string name = fmt::format("r{}-c{}-{}", round, c, i);
          json spec = {{"name", name}, {"account", c % 2 ? "lab-a" : "lab-b"}, {"gpus", 1 + i % 4},
                       {"time_limit", "1d"}, {"command", {"true"}}};
          auto result = client.Post("/v1/jobs", headers, spec.dump(), "application/json");
          if (!result) break;  // the server is gone
          ASSERT_EQ(result->status, 201) << result->body;
          std::lock_guard lock(acknowledged_mutex);
          acknowledged[name] = json::parse(result->body)["ids"][0].get<JobId>();
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 900)(random)));
    server_->Kill();
    stop = true;
    for (std::thread& thread : clients) thread.join();
  }

  ASSERT_TRUE(server_->Start().ok());
  json jobs = GetAllJobs();
  std::map<std::string, std::vector<JobId>> found;
  std::set<JobId> ids;
  for (const json& job : jobs) {
    found[job["name"].get<std::string>()].push_back(job["id"].get<JobId>());
    EXPECT_TRUE(ids.insert(job["id"].get<JobId>()).second) << "duplicate id " << job["id"];
  }
  ASSERT_GT(acknowledged.size(), 50u) << "too few submits to mean anything";
  for (const auto& [name, id] : acknowledged) {
    auto at = found.find(name);
    ASSERT_NE(at, found.end()) << "acknowledged job " << name << " (id " << id << ") was lost";
    EXPECT_EQ(at->second, std::vector<JobId>{id}) << name << " is duplicated or has another id";
  }
  // Jobs the server had not acknowledged may be there too (their commit finished as the server
  // died), but never twice.
  for (const auto& [name, list] : found) EXPECT_EQ(list.size(), 1u) << name;

  // The GPUs held before the last kill are held again, and never twice.
  std::map<std::pair<std::string, int>, JobId> gpu_owner;
  size_t running = 0;
  for (const json& job : jobs) {
    if (job["state"] != "running") continue;
    ++running;
    for (const json& task : job["allocation"]) {
      for (const json& gpu : task["gpus"]) {
        auto [it, fresh] = gpu_owner.emplace(std::make_pair(task["node"].get<std::string>(), gpu.get<int>()),
                                             job["id"].get<JobId>());
        EXPECT_TRUE(fresh) << "GPU " << gpu << " of " << task["node"] << " is given to jobs " << it->second
                           << " and " << job["id"];
      }
    }
  }
  EXPECT_GT(running, 0u);
  EXPECT_LE(gpu_owner.size(), 36u);  // 4 x 8 + 2 x 2 GPUs in the pool

  // Restart once more with a clean stop: the same state again.
  EXPECT_EQ(server_->Stop(), 0);
  ASSERT_TRUE(server_->Start().ok());
  json again = GetAllJobs();
  ASSERT_EQ(again.size(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(again[i]["id"], jobs[i]["id"]);
    EXPECT_EQ(again[i]["state"], jobs[i]["state"]);
    EXPECT_EQ(again[i]["allocation"], jobs[i]["allocation"]);
  }
}

}  // namespace
}  // namespace allot
