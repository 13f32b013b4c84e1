// trivial_jobs_benchmark: end-to-end throughput of trivial jobs on a one-machine cluster.
// Starts `allot server --dev` (the server and an agent with 8 emulated GPUs in one process),
// submits JOBS jobs that run `true` (1 GPU each, so 8 run at once), and waits until every one
// has ended: submit, schedule, start the process, see it exit, record it. Reports jobs per
// second from the first submit to the last end, and fails unless every job completed.
//
//   ./build/src/agent/trivial_jobs_benchmark [--jobs 1000] [--clients 8]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/server_process.h"

int main(int argc, char** argv) {
  using nlohmann::json;
  int jobs = 1000;
  int clients = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--jobs")) jobs = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--clients")) clients = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--jobs N] [--clients N]\n", argv[0]);
      return 2;
    }
  }
  std::string data = (std::filesystem::temp_directory_path() / fmt::format("allot-trivial-{}", getpid())).string();
  std::filesystem::remove_all(data);
  allot::ServerProcess server(ALLOT_BINARY, "", data, {"--dev"});
  if (allot::Status started = server.Start(); !started.ok()) {
    std::fprintf(stderr, "%s\n", started.message().c_str());
    return 1;
  }
  httplib::Headers headers = {{"Authorization", "Bearer " + server.OperatorToken()}};
  auto begin = std::chrono::steady_clock::now();
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      httplib::Client client = server.Client();
      for (int i = next++; i < jobs; i = next++) {
        auto reply = client.Post("/v1/jobs", headers, R"({"command": ["true"], "time_limit": 60})", "application/json");
        if (!reply || reply->status != 201) failed++;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  double submitted = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  httplib::Client client = server.Client();
  // Done when nothing is pending or running; /v1/scheduler is a cheap read, so polling it often
  // does not slow down what is measured. The outcome is checked after the clock stops.
  while (true) {
    auto reply = client.Get("/v1/scheduler", headers);
    if (reply && reply->status == 200) {
      json status = json::parse(reply->body);
      if (status["pending"] == 0 && status["running"] == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // The state in memory says every job has ended; the clock stops once every end record is
  // durable too: ended jobs are listed from the store, which shows only committed rows.
  auto ended_in_store = [&] {
    auto reply = client.Get(fmt::format("/v1/jobs?state=completed,failed,cancelled,timeout&limit={}", jobs), headers);
    return reply && reply->status == 200 ? static_cast<int>(json::parse(reply->body)["jobs"].size()) : -1;
  };
  while (ended_in_store() < jobs) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  int completed = 0;
  if (auto reply = client.Get("/v1/jobs?state=completed&limit=100000", headers); reply && reply->status == 200) {
    completed = static_cast<int>(json::parse(reply->body)["jobs"].size());
  }
  std::printf("%d trivial jobs (1 GPU each, 8 GPUs) submitted in %.2f s, all ended after %.2f s: %.1f jobs/s "
              "end to end (%d completed, %d submits failed)\n",
              jobs, submitted, seconds, jobs / seconds, completed, failed.load());
  server.Stop();
  std::filesystem::remove_all(data);
  return failed == 0 && completed == jobs ? 0 : 1;
}
