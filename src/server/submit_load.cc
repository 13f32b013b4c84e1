// submit_load: an open-loop stream of submits at a fixed rate, for bench/national_scale.sh. The
// n-th submit is due at start + n / RATE whether or not earlier ones have been answered, and its
// latency counts from when it was due, so a server that falls behind shows it in full (no
// coordinated omission: a late start is latency too). While CONNECTIONS submits are waiting for
// answers, the next one waits for a free connection: its wait is counted in its latency. CONNECTIONS threads, each with its own
// keep-alive connection, send them; one process instead of a curl per submit keeps the load
// generator's own CPU out of the way of the server it measures on a two-core machine.
//
//   submit_load --server URL --token TOKEN|@FILE [--rate 50] [--duration 600] [--connections 32]
//
// The mix is the national workload's classes (docs/performance.md): single-GPU and 8-GPU
// university and startup jobs, 64-512-GPU industry fine-tunes, 1,024-4,096-GPU foundation-model
// gangs. Prints one summary line of KEY=VALUE pairs; exits 1 if any submit was not accepted.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using Clock = std::chrono::steady_clock;

struct JobClass {
  const char* account;
  int tasks;
  int gpus_per_task;
};

// Weighted by repetition, as the national pool's submit stream is: many small jobs, few gangs.
constexpr JobClass kMix[] = {
    {"univ-snu", 1, 1},         {"univ-kaist", 1, 1},      {"univ-postech", 1, 8},     {"univ-yonsei", 1, 4},
    {"gov-institutes", 1, 1},   {"startup-001", 1, 1},     {"startup-002", 1, 8},      {"startup-003", 1, 2},
    {"univ-korea", 1, 8},       {"science-fm", 2, 8},      {"samsung-robotics", 8, 8}, {"sk-telecom-llm", 16, 8},
    {"hyundai-autonomous", 32, 8}, {"naver-cloud", 64, 8}, {"sfm-posttrain", 128, 8},  {"sfm-pretrain", 256, 8},
    {"sfm-pretrain", 512, 8},
};

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  size_t at = std::min(values.size() - 1, static_cast<size_t>(p * static_cast<double>(values.size())));
  std::nth_element(values.begin(), values.begin() + static_cast<long>(at), values.end());
  return values[at];
}

int Usage(const char* program) {
  std::fprintf(stderr, "usage: %s --server URL --token TOKEN|@FILE [--rate SUBMITS_PER_S] [--duration SECONDS] "
                       "[--connections N]\n", program);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server;
  std::string token;
  double rate = 50;
  double duration = 600;
  int connections = 32;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 >= argc) return Usage(argv[0]);
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    try {
      if (flag == "--server") server = value;
      else if (flag == "--token") token = value;
      else if (flag == "--rate") rate = std::stod(value);
      else if (flag == "--duration") duration = std::stod(value);
      else if (flag == "--connections") connections = std::stoi(value);
      else return Usage(argv[0]);
    } catch (const std::exception&) {
      std::fprintf(stderr, "submit_load: %s takes a number, not '%s'\n", flag.c_str(), value.c_str());
      return 2;
    }
  }
  if (server.empty() || token.empty() || rate <= 0 || duration <= 0 || connections < 1) return Usage(argv[0]);
  if (token[0] == '@') {
    const std::string path = token.substr(1);
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    token = text.str();
    token.erase(token.find_last_not_of(" \t\r\n") + 1);
    if (token.empty()) {
      std::fprintf(stderr, "submit_load: no token in %s: give the token, or @FILE of a file that holds it\n",
                   path.c_str());
      return 2;
    }
  }

  const size_t total = static_cast<size_t>(rate * duration);
  std::atomic<size_t> next{0};
  std::mutex results_mutex;
  std::vector<double> latencies_ms;
  std::map<int, size_t> codes;  // HTTP status (0: no reply) -> count
  latencies_ms.reserve(total);
  const Clock::time_point begin = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&] {
      httplib::Client client(server);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);  // as `allot` does: no 40 ms wait for a delayed ACK per submit
      client.set_connection_timeout(5, 0);
      client.set_read_timeout(60, 0);
      const httplib::Headers headers = {{"Authorization", "Bearer " + token}};
      for (size_t n = next++; n < total; n = next++) {
        const Clock::time_point due = begin + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(static_cast<double>(n) / rate));
        std::this_thread::sleep_until(due);
        const JobClass& job = kMix[n % std::size(kMix)];
        nlohmann::json spec = {{"account", job.account}, {"tasks", job.tasks}, {"gpus_per_task", job.gpus_per_task},
                               {"time_limit", "1h"}, {"command", {"true"}}};
        httplib::Result reply = client.Post("/v1/jobs", headers, spec.dump(), "application/json");
        const double latency = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
        std::lock_guard lock(results_mutex);
        latencies_ms.push_back(latency);
        const int code = reply ? reply->status : 0;
        // The first refusal of each kind says why (the server's message, or the client's error).
        if (code != 201 && codes[code]++ == 0) {
          std::fprintf(stderr, "submit_load: submit %zu: %s\n", n,
                       reply ? (std::to_string(code) + " " + reply->body).c_str() : httplib::to_string(reply.error()).c_str());
        }
        if (code == 201) ++codes[code];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  size_t accepted = codes.count(201) ? codes[201] : 0;
  std::string others;
  for (const auto& [code, count] : codes) {
    if (code != 201) others += (others.empty() ? "" : ",") + std::to_string(code) + ":" + std::to_string(count);
  }
  std::printf("submits=%zu accepted=%zu refused=%zu p50_ms=%.1f p99_ms=%.1f max_ms=%.1f refused_codes=%s\n", total,
              accepted, total - accepted, Percentile(latencies_ms, 0.50), Percentile(latencies_ms, 0.99),
              Percentile(latencies_ms, 1.0), others.empty() ? "none" : others.c_str());
  return accepted == total ? 0 : 1;
}
