// submit_benchmark: durable submits per second over HTTP, and the server's memory with the
// jobs pending. Starts `allot server` on a fresh data directory, then CLIENTS threads, each with
// its own keep-alive connection, submit JOBS jobs in all as fast as the server acknowledges them
// (each acknowledgement means the job's commit is on disk). Reports the rate, the latency
// percentiles, how many submits each commit carried, and the server's resident memory once all
// jobs are in (most of them pending: the test pool has 36 GPUs).
//
//   ./build/src/server/submit_benchmark [--clients 32] [--jobs 100000] [--config FILE] [--store LOCATION]
//
// --store is passed to the server (sqlite:DIR, postgresql://...); the default is SQLite in the
// fresh data directory. With ALLOT_TEST_STORE=postgresql under scripts/with-postgresql.sh, the
// server gets a scratch PostgreSQL database instead (docs/performance.md runs both in turn).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/server_process.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  size_t at = std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(at), values.end());
  return values[at];
}

double MetricValue(const std::string& text, const std::string& name) {
  size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + name.size() + 2));
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 32;
  int jobs = 100000;
  std::string config = std::string(ALLOT_SOURCE_DIR) + "/tests/server/pool.yaml";
  std::string store;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--clients")) clients = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--jobs")) jobs = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--config")) config = argv[i + 1];
    else if (!std::strcmp(argv[i], "--store")) store = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: %s [--clients N] [--jobs N] [--config FILE] [--store LOCATION]\n", argv[0]);
      return 2;
    }
  }
  std::string data_dir = (std::filesystem::temp_directory_path() / fmt::format("allot-bench-{}", getpid())).string();
  std::filesystem::remove_all(data_dir);
  // No agents here: the pool's nodes take jobs without one, as before agents registered nodes.
  std::vector<std::string> server_args = {"--static-nodes"};
  if (!store.empty()) server_args.insert(server_args.end(), {"--store", store});
  allot::ServerProcess server(ALLOT_BINARY, config, data_dir, server_args);
  if (allot::Status started = server.Start(); !started.ok()) {
    std::fprintf(stderr, "%s\n", started.message().c_str());
    return 1;
  }
  const std::string token = server.OperatorToken();
  std::printf("server pid %d on %s; %d clients, %d jobs\n", server.pid(), server.url().c_str(), clients, jobs);
  std::printf("%s", server.output().c_str());  // its "listening on" line, which names a --store
  size_t rss_idle = server.ResidentBytes();

  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  std::atomic<int> retries{0};
  std::mutex failed_mutex;
  std::vector<std::string> failed_names;
  std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
  auto begin = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client = server.Client();
      httplib::Headers headers = {{"Authorization", "Bearer " + token}};
      for (int i = next++; i < jobs; i = next++) {
        json spec = {{"name", fmt::format("bench-{}", i)}, {"account", i % 2 ? "lab-a" : "lab-b"},
                     {"gpus", 1 + i % 8}, {"time_limit", "1d"}, {"command", {"python", "train.py", "--seed", std::to_string(i)}}};
        auto sent = Clock::now();
        // As `allot submit` does: an idempotency key, and a retry with it when a reply is lost.
        httplib::Headers with_key = headers;
        with_key.emplace("Idempotency-Key", fmt::format("bench-{}", i));
        auto result = client.Post("/v1/jobs", with_key, spec.dump(), "application/json");
        for (int attempt = 1; !result && attempt < 4; ++attempt) {
          retries++;
          result = client.Post("/v1/jobs", with_key, spec.dump(), "application/json");
        }
        latencies[static_cast<size_t>(c)].push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
        if (!result || result->status != 201) {
          {
            std::lock_guard lock(failed_mutex);
            failed_names.push_back(spec["name"]);
          }
          if (failures++ == 0) {
            std::fprintf(stderr, "first failure: %s\n",
                         result ? result->body.c_str() : httplib::to_string(result.error()).c_str());
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  double seconds = std::chrono::duration<double>(Clock::now() - begin).count();

  std::vector<double> all;
  for (auto& list : latencies) all.insert(all.end(), list.begin(), list.end());
  httplib::Client client = server.Client();
  httplib::Headers headers = {{"Authorization", "Bearer " + token}};
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let the loop's passes settle
  auto status = client.Get("/v1/scheduler", headers);
  auto metrics = client.Get("/metrics", headers);
  json scheduler = status ? json::parse(status->body) : json::object();
  double commits = metrics ? MetricValue(metrics->body, "allot_store_commits_total") : -1;
  size_t rss = server.ResidentBytes();
  // Every job once: no submit lost, none made twice by a retry.
  auto listed = client.Get("/v1/jobs?limit=100000&state=pending,running", headers);
  json on_server = listed ? json::parse(listed->body)["jobs"] : json::array();
  std::set<std::string> names;
  for (const json& job : on_server) names.insert(job["name"].get<std::string>());
  int present = 0;
  for (const std::string& name : failed_names) present += names.count(name) ? 1 : 0;
  std::printf("submits: %d in %.2f s = %.0f durable submits/s (%d failed, %d retried after a lost reply)\n", jobs,
              seconds, jobs / seconds, failures.load(), retries.load());
  std::printf("latency ms: p50 %.2f  p95 %.2f  p99 %.2f  max %.2f\n", Percentile(all, 0.50), Percentile(all, 0.95),
              Percentile(all, 0.99), Percentile(all, 1.0));
  std::printf("jobs on the server: %zu, distinct names %zu (failed submits present anyway: %d of %zu)\n",
              on_server.size(), names.size(), present, failed_names.size());
  std::printf("store commits: %.0f (%.1f submits per commit)\n", commits, commits > 0 ? jobs / commits : 0);
  std::printf("server: %s pending, %s running, %s passes (last %.3f s); RSS %.0f MiB (idle %.0f MiB)\n",
              scheduler.value("pending", json(0)).dump().c_str(), scheduler.value("running", json(0)).dump().c_str(),
              scheduler.value("passes", json(0)).dump().c_str(), scheduler.value("last_pass_seconds", 0.0),
              static_cast<double>(rss) / (1 << 20), static_cast<double>(rss_idle) / (1 << 20));
  server.Stop();
  std::filesystem::remove_all(data_dir);
  bool exact = on_server.size() == static_cast<size_t>(jobs) - failed_names.size() + static_cast<size_t>(present) &&
               names.size() == on_server.size();
  return failures.load() == 0 && exact ? 0 : 1;
}
