// allot: one binary, many subcommands (like `nomad agent -dev` or `flux start`).
//
// Offline, on a config file:
//   allot demo [--config FILE] [--jobs N] [--seed N]   one scheduling pass over the national pool
//   allot schedule SCENARIO                            run a scenario script, print its decisions
//   allot check CONFIG                                 validate a config and summarise it
//   allot sim [--config FILE | --cluster NxG] --trace FILE [--policy A,B] ...
//                                                      simulate a trace under policies
//   allot plan PLAN [--report DIR] [--seeds N] [--jobs N] [--threads N]
//                                                      compare what-if scenarios of a pool
//
// Clients of `allot server` (docs/cli.md); each takes --server URL and --token TOKEN|@FILE, and
// the listings take -o json:
//   allot submit FILE|- [--account A] [--name N]       submit a YAML job spec or #SBATCH script
//   allot queue [--account A] [--user U] [--state S,...]
//   allot show JOB          allot cancel|hold|release JOB...
//   allot nodes [--pool P] [--state S]    allot pools    allot accounts
//   allot usage [--start DATE] [--end DATE] [--period day|week|month|total] [--account A]
//   allot token create --role R [--account A] [--user U]    allot token list|revoke ID
//   allot status            allot whoami
//
// Exit codes: 0 success; 1 the server failed or could not be reached (or an internal error);
// 2 bad input (the message says what to fix); 3 not authenticated or not allowed.
#include <CLI/CLI.hpp>
#include <csignal>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent/agent.h"
#include "agent/nodesim.h"
#include "cli/client.h"
#include "core/server_list.h"
#include "cli/commands.h"
#include "cli/run_step.h"
#include "cli/slurm_commands.h"
#include "core/config.h"
#include "core/generator.h"
#include "sched/scenario.h"
#include "sched/scheduler.h"
#include "server/serve.h"
#include "sim/command.h"
#include "sim/plan.h"
#include "sim/plan_report.h"
#include "sim/report.h"

namespace allot {
namespace {

int Fail(const Status& status) { return ReportError(status, std::cerr); }

int RunAgent(AgentOptions options) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("agent"));
  // SIGINT and SIGTERM stop the agent; its tasks run on under their shims. They go to one thread
  // that waits for them (Stop is not async-signal-safe); every other thread has them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  StatusOr<std::unique_ptr<Agent>> agent = Agent::Create(std::move(options));
  if (!agent.ok()) return Fail(agent.status());
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    if (!done) (*agent)->Stop();
  });
  Status ran = (*agent)->Run();
  // Run ended by itself (the server refused the node): release the waiter.
  done = true;
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (!ran.ok()) return Fail(ran);
  return 0;
}

int RunSchedule(const std::string& path) {
  StatusOr<std::string> log = RunScenarioFile(path);
  if (!log.ok()) return Fail(log.status());
  std::cout << *log;
  return 0;
}

int RunCheck(const std::string& path) {
  StatusOr<Config> config = LoadConfigFile(path);
  if (!config.ok()) return Fail(config.status());
  const Cluster& cluster = config->cluster;
  fmt::print("{}: ok\n", path);
  // GPUs under no quota: the nominal of the root's children (which sum their own children's)
  // against the pool. Unowned GPUs serve only borrowers and are never reclaimed for anyone.
  const AccountTree& tree = config->accounts;
  std::vector<int64_t> owned(cluster.pools().size(), 0);
  for (AccountIndex child : tree.account(tree.root()).children) {
    const std::vector<PoolQuota>& quota = tree.account(child).quota;
    for (PoolIndex pool = 0; pool < quota.size() && pool < owned.size(); ++pool) {
      if (quota[pool].nominal < kUnlimited) owned[pool] += quota[pool].nominal;
    }
  }
  fmt::print("{:<20} {:<18} {:<14} {:>7} {:>8} {:>9}\n", "POOL", "SITE", "MODEL", "NODES", "GPUS", "UNOWNED");
  int64_t unowned_total = 0;
  for (PoolIndex index = 0; index < cluster.pools().size(); ++index) {
    const Pool& pool = cluster.pool(index);
    int64_t unowned = std::max<int64_t>(0, pool.total_gpus - owned[index]);
    unowned_total += unowned;
    fmt::print("{:<20} {:<18} {:<14} {:>7} {:>8} {:>9}\n", pool.name, pool.site, pool.gpu_model,
               pool.nodes.size(), pool.total_gpus, unowned);
  }
  size_t leaves = 0;
  for (const Account& account : config->accounts.accounts()) leaves += account.is_leaf() ? 1 : 0;
  fmt::print("total: {} pools, {} nodes, {} GPUs; {} accounts ({} leaves)\n", cluster.pools().size(),
             cluster.nodes().size(), cluster.total_gpus(), config->accounts.accounts().size() - 1,
             leaves);
  if (unowned_total > 0) {
    fmt::print("{} GPUs are under no quota: they serve only borrowers and are never reclaimed\n", unowned_total);
  } else {
    fmt::print("every GPU is under some quota\n");
  }
  return 0;
}

int RunDemo(const std::string& path, size_t job_count, uint64_t seed) {
  using Clock = std::chrono::steady_clock;
  auto load_start = Clock::now();
  StatusOr<Config> config = LoadConfigFile(path);
  if (!config.ok()) return Fail(config.status());
  StatusOr<std::unique_ptr<Scheduler>> created = Scheduler::Create(std::move(*config));
  if (!created.ok()) return Fail(created.status());
  Scheduler& scheduler = **created;
  const Model& model = scheduler.model();
  double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - load_start).count();
  fmt::print("loaded {}: {} GPUs on {} nodes in {} pools, {} accounts ({:.0f} ms)\n", path,
             model.cluster().total_gpus(), model.cluster().nodes().size(),
             model.cluster().pools().size(), model.accounts().accounts().size() - 1, load_ms);

  std::vector<JobSpec> jobs = GenerateJobs(model.cluster(), model.accounts(), job_count, {.seed = seed});
  size_t rejected = 0;
  std::string first_rejection;
  for (size_t i = 0; i < jobs.size(); ++i) {
    Status submitted = scheduler.Submit(i + 1, jobs[i], /*now=*/0);
    if (!submitted.ok()) {
      if (first_rejection.empty()) first_rejection = submitted.message();
      ++rejected;
    }
  }
  fmt::print("submitted {} generated jobs (seed {}); {} rejected{}{}\n", jobs.size() - rejected, seed,
             rejected, rejected ? ", e.g.: " : "", first_rejection);

  auto pass_start = Clock::now();
  PassResult pass = scheduler.RunPass(0);
  double pass_ms = std::chrono::duration<double, std::milli>(Clock::now() - pass_start).count();
  fmt::print("one scheduling pass: {} jobs considered, {} started, {} reserved, {} preempted in "
             "{:.0f} ms\n\n", pass.considered, pass.started, pass.reserved, pass.preempted, pass_ms);

  fmt::print("{:<20} {:>8} {:>10} {:>6}\n", "POOL", "GPUS", "ALLOCATED", "USED");
  int64_t total = 0;
  int64_t allocated = 0;
  for (PoolIndex pool = 0; pool < model.cluster().pools().size(); ++pool) {
    const Pool& shape = model.cluster().pool(pool);
    int64_t used = model.accounts().account(model.accounts().root()).allocated[pool];
    total += shape.total_gpus;
    allocated += used;
    fmt::print("{:<20} {:>8} {:>10} {:>5.1f}%\n", shape.name, shape.total_gpus, used,
               100.0 * static_cast<double>(used) / shape.total_gpus);
  }
  fmt::print("{:<20} {:>8} {:>10} {:>5.1f}%\n\n", "all", total, allocated,
             100.0 * static_cast<double>(allocated) / static_cast<double>(total));

  fmt::print("{:<24} {:>10} {:>10}\n", "ACCOUNT", "NOMINAL", "ALLOCATED");
  const AccountTree& tree = model.accounts();
  for (const Account& account : tree.accounts()) {
    if (account.depth == 0 || account.depth > 2) continue;
    int64_t nominal = 0;
    for (const PoolQuota& quota : account.quota) nominal += quota.nominal;
    fmt::print("{:<24} {:>10} {:>10}\n", account.path, nominal, account.allocated_total);
  }

  std::map<ReasonCode, std::pair<size_t, std::string>> reasons;
  for (JobId id : model.pending()) {
    const Job& job = *model.FindJob(id);
    PendingReason reason = scheduler.ReasonOf(job);
    auto& [count, example] = reasons[reason.code];
    if (count++ == 0) example = fmt::format("job {}: {}", id, reason.message);
  }
  fmt::print("\npending jobs by reason ({} pending):\n", model.pending().size());
  for (const auto& [code, entry] : reasons) {
    fmt::print("  {:<10} {:>7}  e.g. {}\n", ReasonCodeName(code), entry.first, entry.second);
  }
  fmt::print("\nnext: try a policy change in {} (policy.backfill, policy.queue_order), or run a "
             "scenario: allot schedule tests/scenarios/reclaim_borrowed.yaml\n", path);
  return 0;
}

// A one-line progress bar on stderr, redrawn in place; only when stderr is a terminal.
void DrawProgress(const std::string& policy, double fraction) {
  constexpr int kWidth = 40;
  int filled = static_cast<int>(fraction * kWidth);
  fmt::print(stderr, "\r{:<14} [{}{}] {:3.0f}%", policy, std::string(static_cast<size_t>(filled), '#'),
             std::string(static_cast<size_t>(kWidth - filled), ' '), fraction * 100);
  if (fraction >= 1.0) fmt::print(stderr, "\n");
  std::fflush(stderr);
}

int RunSim(SimCommand command, bool quiet) {
  if (!quiet && isatty(STDERR_FILENO)) command.progress = DrawProgress;
  StatusOr<std::vector<SimRun>> runs = RunSimCommand(command);
  if (!runs.ok()) return Fail(runs.status());
  std::cout << FormatSummaryTable(*runs);
  for (const std::string& note : runs->front().notes) fmt::print(stderr, "note: {}\n", note);
  const std::vector<std::string>& problems = runs->front().problems;
  if (!problems.empty()) {
    const SimSummary& summary = runs->front().summary;
    fmt::print(stderr, "{} trace lines skipped and {} jobs rejected; the first problems:\n",
               summary.skipped_lines, summary.rejected);
    for (size_t i = 0; i < std::min<size_t>(problems.size(), 5); ++i) fmt::print(stderr, "  {}\n", problems[i]);
  }
  Status written = WriteSimOutputs(command, *runs);
  if (!written.ok()) return Fail(written);
  return 0;
}

// One progress bar per scenario on stderr, redrawn in place; only when stderr is a terminal.
class PlanProgress {
 public:
  explicit PlanProgress(std::vector<std::string> names)
      : names_(std::move(names)), fractions_(names_.size(), 0) {}

  void Update(size_t scenario, double fraction) {
    fractions_.at(scenario) = fraction;
    constexpr int kWidth = 30;
    if (drawn_) fmt::print(stderr, "\x1b[{}A", names_.size());  // back to the first bar
    for (size_t i = 0; i < names_.size(); ++i) {
      int filled = static_cast<int>(fractions_[i] * kWidth);
      fmt::print(stderr, "\r{:<24.24} [{}{}] {:3.0f}%\x1b[K\n", names_[i], std::string(static_cast<size_t>(filled), '#'),
                 std::string(static_cast<size_t>(kWidth - filled), ' '), fractions_[i] * 100);
    }
    drawn_ = true;
    std::fflush(stderr);
  }

 private:
  std::vector<std::string> names_;
  std::vector<double> fractions_;
  bool drawn_ = false;
};

struct PlanCommand {
  std::string plan_path;
  std::string report_dir;
  std::string json_path;
  size_t seeds = 0;    // > 0: seeds 1..N instead of the plan's
  size_t jobs = 0;     // > 0: instead of the plan's
  size_t threads = 0;  // 0: one per core
  bool quiet = false;
};

int RunPlanCommand(const PlanCommand& command) {
  StatusOr<Plan> plan = LoadPlanFile(command.plan_path);
  if (!plan.ok()) return Fail(plan.status());
  if (command.seeds > 0) {
    plan->seeds.clear();
    for (uint64_t seed = 1; seed <= command.seeds; ++seed) plan->seeds.push_back(seed);
  }
  if (command.jobs > 0) plan->jobs = command.jobs;
  // Output paths are checked before minutes of simulation, not after.
  if (!command.report_dir.empty() && std::filesystem::exists(command.report_dir) &&
      !std::filesystem::is_directory(command.report_dir)) {
    return Fail(InvalidArgumentError("--report {}: exists and is not a directory", command.report_dir));
  }
  PlanOptions options;
  // Each simulation is single-threaded: one per core, memory allowing (about 0.5 GB per
  // million jobs each).
  options.threads = command.threads > 0 ? command.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::string> names;
  for (const PlanScenario& scenario : plan->scenarios) names.push_back(scenario.name);
  PlanProgress progress(names);
  if (!command.quiet && isatty(STDERR_FILENO)) {
    options.progress = [&progress](size_t scenario, double fraction) { progress.Update(scenario, fraction); };
  }
  auto started = std::chrono::steady_clock::now();
  StatusOr<std::vector<ScenarioResult>> results = RunPlan(*plan, options);
  if (!results.ok()) return Fail(results.status());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << FormatPlanTable(*results);
  fmt::print(stderr, "{} scenarios x {} seeds in {:.1f} s on {} threads\n", results->size(), plan->seeds.size(),
             seconds, options.threads);
  if (!command.json_path.empty()) {
    Status written = report::WriteWholeFile(command.json_path, PlanJson(*plan, *results).dump(2) + "\n");
    if (!written.ok()) return Fail(written);
  }
  if (!command.report_dir.empty()) {
    Status written = WritePlanReport(command.report_dir, *plan, *results);
    if (!written.ok()) return Fail(written);
    fmt::print(stderr, "report: {}/index.html\n", command.report_dir);
  }
  return 0;
}

// The client subcommands' parsed options, and the one the command line chose.
struct ClientCommandLine {
  ClientFlags flags;
  SubmitOptions submit;
  QueueOptions queue;
  NodesOptions nodes;
  UsageOptions usage;
  TokenCreateOptions token_create;
  AuditOptions audit;
  HistoryOptions history;
  std::string job;                             // show
  std::vector<std::string> jobs;               // cancel, hold, release
  std::string token_id;                        // token revoke
  LogsOptions logs;
  StepOptions step;
  std::string step_mpi = "none";  // srun --mpi
  OutputFormat output = OutputFormat::kTable;  // for commands without an options struct

  using Runner = std::function<int(ApiClient&, const CommandEnv&)>;
  std::vector<std::pair<CLI::App*, Runner>> commands;
};

// Registers the subcommands that talk to `allot server`; the logic lives in cli/commands.cc.
void AddClientCommands(CLI::App& app, ClientCommandLine& line) {
  auto add = [&line](CLI::App& parent, const char* name, const char* description,
                     ClientCommandLine::Runner runner) {
    CLI::App* command = parent.add_subcommand(name, description);
    command
        ->add_option("--server", line.flags.server,
                     "Server URL (else ALLOT_SERVER, the config file, http://127.0.0.1:8080)")
        ->type_name("URL");
    command->add_option("--ca-file", line.flags.ca_file, "https: CA certificates (PEM) to verify the server with "
                        "(else ALLOT_CA_FILE, the system's)")->type_name("FILE");
    command
        ->add_option("--token", line.flags.token,
                     "Bearer token, or @FILE to read it from a file (else ALLOT_TOKEN, the "
                     "config file)")
        ->type_name("TOKEN");
    line.commands.emplace_back(command, std::move(runner));
    return command;
  };
  auto add_output = [](CLI::App* command, OutputFormat& output) {
    command
        ->add_option_function<std::string>(
            "-o,--output",
            [&output](const std::string& name) {
              output = name == "json" ? OutputFormat::kJson : OutputFormat::kTable;
            },
            "table (default), or json: the server's reply as it came")
        ->type_name("FORMAT")
        ->check(CLI::IsMember({"table", "json"}));
  };

  CLI::App* submit = add(app, "submit", "Submit a YAML job spec or an #SBATCH batch script",
                         [&line](ApiClient& client, const CommandEnv& env) {
                           return RunSubmit(client, line.submit, env);
                         });
  submit
      ->add_option("file", line.submit.file,
                   "Job spec (YAML) or batch script; - reads standard input")
      ->required();
  submit->add_option("-A,--account", line.submit.account,
                     "Charge this account instead of the file's or the token's");
  submit->add_option("-J,--name", line.submit.name, "Job name instead of the file's");
  add_output(submit, line.submit.output);

  CLI::App* queue = add(app, "queue", "List jobs, like squeue",
                        [&line](ApiClient& client, const CommandEnv& env) {
                          return RunQueue(client, line.queue, env);
                        });
  queue->add_option("-A,--account", line.queue.account, "Only this account's subtree");
  queue->add_option("-u,--user", line.queue.user, "Only this user's jobs");
  queue->add_option(
      "-t,--state", line.queue.states,
      "States, comma-separated (default pending,running): pending, running, completed, failed, "
      "cancelled, timeout, node_fail");
  add_output(queue, line.queue.output);

  CLI::App* history = add(app, "history", "Ended jobs, newest first, a page at a time (like sacct)",
                          [&line](ApiClient& client, const CommandEnv& env) { return RunHistory(client, line.history, env); });
  history->add_option("-A,--account", line.history.account, "Only this account's subtree");
  history->add_option("-u,--user", line.history.user, "Only this user's jobs");
  history->add_option("-t,--state", line.history.states,
                      "ended (default), or some of completed, failed, cancelled, timeout, node_fail, preempted");
  history->add_option("-S,--since", line.history.since, "Submitted at or after: Unix seconds or YYYY-MM-DD (UTC)");
  history->add_option("-E,--until", line.history.until, "Submitted before: Unix seconds or YYYY-MM-DD (UTC)");
  history->add_option("--before", line.history.before, "Jobs with ids below this only: the next page");
  history->add_option("-n,--limit", line.history.limit, "Jobs per page")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  add_output(history, line.history.output);

  CLI::App* show = add(app, "show", "Show one job in detail, with why it is pending",
                       [&line](ApiClient& client, const CommandEnv& env) {
                         return RunShow(client, line.job, line.output, env);
                       });
  show->add_option("job", line.job, "Job id")->required();
  add_output(show, line.output);

  const std::pair<const char*, JobAction> actions[] = {
      {"cancel", JobAction::kCancel}, {"hold", JobAction::kHold}, {"release", JobAction::kRelease}};
  const char* descriptions[] = {"Cancel pending or running jobs",
                                "Hold pending jobs: they stay queued but do not start",
                                "Release held jobs"};
  for (size_t i = 0; i < std::size(actions); ++i) {
    JobAction action = actions[i].second;
    CLI::App* command = add(app, actions[i].first, descriptions[i],
                            [&line, action](ApiClient& client, const CommandEnv& env) {
                              return RunJobAction(client, action, line.jobs, env);
                            });
    command->add_option("jobs", line.jobs, "Job ids")->required();
  }

  CLI::App* nodes = add(app, "nodes", "List nodes with their GPUs and jobs",
                        [&line](ApiClient& client, const CommandEnv& env) {
                          return RunNodes(client, line.nodes, env);
                        });
  nodes->add_option("-p,--pool", line.nodes.pool, "Only this pool's nodes");
  nodes->add_option("-t,--state", line.nodes.state, "Only nodes in this state");
  add_output(nodes, line.nodes.output);

  add_output(add(app, "pools", "List pools with their GPUs in use",
                 [&line](ApiClient& client, const CommandEnv& env) {
                   return RunPools(client, line.output, env);
                 }),
             line.output);
  add_output(add(app, "accounts", "Show the account tree: quotas per pool, allocations and grants",
                 [&line](ApiClient& client, const CommandEnv& env) {
                   return RunAccounts(client, line.output, env);
                 }),
             line.output);

  CLI::App* usage = add(app, "usage", "Report GPU-hours per account, like sreport",
                        [&line](ApiClient& client, const CommandEnv& env) {
                          return RunUsage(client, line.usage, env);
                        });
  usage->add_option("--start", line.usage.start,
                    "First day, YYYY-MM-DD UTC (default: 30 days ago)");
  usage->add_option("--end", line.usage.end, "End, YYYY-MM-DD UTC (default: now)");
  usage->add_option("--period", line.usage.period, "day, week, month or total (default total)");
  usage->add_option("-A,--account", line.usage.account,
                    "This account's subtree (default: all you may see)");
  add_output(usage, line.usage.output);

  CLI::App* logs = add(app, "logs", "Print a task's output; --follow until the job ends",
                       [&line](ApiClient& client, const CommandEnv& env) {
                         return RunLogs(client, line.logs, env);
                       });
  logs->add_option("job", line.logs.job, "Job id")->required();
  logs->add_option("--task", line.logs.task, "Task index (default 0)")->check(CLI::NonNegativeNumber);
  logs->add_option("--stream", line.logs.stream, "out (default) or err")->check(CLI::IsMember({"out", "err"}));
  logs->add_flag("-f,--follow", line.logs.follow, "Keep printing new output until the job ends");

  // `allot run`, and `srun` (the same program under Slurm's name): options as srun spells them;
  // everything from the command on is the command's.
  CLI::App* run = add(app, "run", "Start a step (tasks) inside a running job's allocation, like srun",
                      [&line](ApiClient& client, const CommandEnv& env) {
                        if (line.step_mpi != "none") {
                          return ReportError(InvalidArgumentError(
                                                 "--mpi={}: allot provides no PMI server; start MPI programs with "
                                                 "--mpi=none and the MPI's own launcher (mpirun) or its "
                                                 "environment bootstrap", line.step_mpi),
                                             env.err);
                        }
                        line.step.environment = ProcessEnvironment();
                        return RunStep(client, line.step, env);
                      });
  run->prefix_command();
  run->add_option("--jobid", line.step.job, "The job (default: ALLOT_JOB_ID, SLURM_JOB_ID: the job this runs in)");
  run->add_option("-n,--ntasks", line.step.ntasks, "Tasks to start (default: the job's tasks per node on each node)")
      ->check(CLI::Range(1, 65536));
  run->add_option("-N,--nodes", line.step.nodes, "How many of the job's nodes to use (default: all)")->check(CLI::Range(1, 65536));
  run->add_option("--ntasks-per-node", line.step.ntasks_per_node, "Tasks on each node")->check(CLI::Range(1, 65536));
  run->add_option("--gpus-per-task", line.step.gpus_per_task,
                  "GPUs of the node's share each task gets, distinct (default: every task sees all)")
      ->check(CLI::Range(1, 64));
  run->add_flag("-l,--label", line.step.label, "Prefix each output line with its task's rank");
  run->add_option("--export", line.step.export_variables,
                  "Variables passed to the tasks: ALL (default), NONE, or NAME[=VALUE],... (with ALL to add to it)");
  run->add_option("-D,--chdir", line.step.working_directory, "The tasks' working directory (default: this one)");
  run->add_option("--mpi", line.step_mpi, "none (the only one: allot has no PMI server)");
  // Accepted for scripts that pass them; they change nothing allot does.
  bool ignored_flag = false;
  std::string ignored_value;
  run->add_flag("-u,--unbuffered", ignored_flag, "Output is passed on as it comes anyway");
  run->add_option("-J,--job-name", ignored_value, "Accepted; a step has no name of its own");
  run->add_option("--cpu-bind", ignored_value, "Accepted; tasks get the job's CPUs on their node");
  run->add_flag("--overlap,--exact", ignored_flag, "Accepted; steps always share the job's resources");

  CLI::App* audit = add(app, "audit", "The audit log of privileged actions, newest first (operators)",
                        [&line](ApiClient& client, const CommandEnv& env) { return RunAudit(client, line.audit, env); });
  audit->add_option("--since", line.audit.since, "From this time: Unix seconds or YYYY-MM-DD (UTC)");
  audit->add_option("--until", line.audit.until, "Before this time");
  audit->add_option("--action", line.audit.action, "One action (token.create), or a prefix ending in '.' (token.)");
  audit->add_option("-u,--user", line.audit.user, "Actions of this user only");
  audit->add_option("-n,--limit", line.audit.limit, "At most this many entries")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  add_output(audit, line.audit.output);

  CLI::App* token = app.add_subcommand("token", "Create, list and revoke API tokens (operators)");
  token->require_subcommand(1);
  CLI::App* create =
      add(*token, "create", "Create a token; prints it once, alone on standard output",
          [&line](ApiClient& client, const CommandEnv& env) {
            return RunTokenCreate(client, line.token_create, env);
          });
  create->add_option("--role", line.token_create.role, "operator, tenant, agent (with --node) or bootstrap (enrols nodes)")->required();
  create->add_option("-A,--account", line.token_create.account, "The tenant's account");
  create->add_option("-u,--user", line.token_create.user, "The tenant's user name");
  create->add_option("--node", line.token_create.node, "The node an agent token speaks for (required for agents)");
  add_output(create, line.token_create.output);
  add_output(add(*token, "list", "List tokens (never the secrets)",
                 [&line](ApiClient& client, const CommandEnv& env) {
                   return RunTokenList(client, line.output, env);
                 }),
             line.output);
  add(*token, "revoke", "Revoke a token",
      [&line](ApiClient& client, const CommandEnv& env) {
        return RunTokenRevoke(client, line.token_id, env);
      })
      ->add_option("id", line.token_id, "Token id")
      ->required();

  add_output(add(app, "status", "Show the scheduler's status",
                 [&line](ApiClient& client, const CommandEnv& env) {
                   return RunStatus(client, line.output, env);
                 }),
             line.output);
  add_output(add(app, "whoami", "Show the token's user, role and account",
                 [&line](ApiClient& client, const CommandEnv& env) {
                   return RunWhoami(client, line.output, env);
                 }),
             line.output);
}

// Runs the client subcommand the command line chose; nullopt when it chose an offline one.
void OnStepSignal(int signal) { step_interrupt.store(signal); }

std::optional<int> RunClientCommand(ClientCommandLine& line) {
  for (const auto& [command, runner] : line.commands) {
    if (!command->parsed()) continue;
    CommandEnv env{.in = std::cin, .out = std::cout, .err = std::cerr, .now = std::time(nullptr)};
    const ClientCommandLine::Runner& run = runner;  // clang before 16 cannot capture bindings
    ClientFlags flags = line.flags;
    if (command->get_name() == "run") {
      line.step.argv = command->remaining();
      // Inside a job, its own credential starts its steps (unless a token is given).
      const char* job_token = std::getenv("ALLOT_JOB_TOKEN");
      if (flags.token.empty() && job_token != nullptr && *job_token != '\0') flags.token = job_token;
      // The step is cancelled, not abandoned, when this process is interrupted or told to stop.
      ::signal(SIGINT, OnStepSignal);
      ::signal(SIGTERM, OnStepSignal);
    }
    return RunWithClient(flags, std::cerr,
                         [&run, &env](ApiClient& client) { return run(client, env); });
  }
  return std::nullopt;
}

}  // namespace
}  // namespace allot

int main(int argc, char** argv) {
  // A peer that closes its end makes a write fail with EPIPE instead of killing the process (TLS
  // writes through OpenSSL do not pass MSG_NOSIGNAL). Tasks get every signal at its default again
  // (allot-shim).
  ::signal(SIGPIPE, SIG_IGN);
  // Slurm's names for commands, installed as links to allot (cmake --install), run the allot
  // command that does their job: `srun ARGS` is `allot run ARGS`.
  std::vector<char*> arguments(argv, argv + argc);
  static char kAllot[] = "allot";
  static char kRun[] = "run";
  const std::string_view called = std::string_view(argv[0]).substr(std::string_view(argv[0]).rfind('/') + 1);
  if (allot::IsSlurmCommand(called)) {
    std::vector<std::string> args = {std::string(called)};
    args.insert(args.end(), argv + 1, argv + argc);
    allot::CommandEnv env{.in = std::cin, .out = std::cout, .err = std::cerr, .now = std::time(nullptr)};
    return allot::RunSlurmCommandFromEnvironment(args, env);
  }
  if (called == "srun") {
    arguments[0] = kAllot;
    arguments.insert(arguments.begin() + 1, kRun);
  }
  argc = static_cast<int>(arguments.size());
  argv = arguments.data();
  CLI::App app{"allot: a workload manager for a national GPU pool"};
  app.require_subcommand(1);

  std::string demo_config = "examples/national-pool.yaml";
  size_t demo_jobs = 100000;
  uint64_t demo_seed = 1;
  CLI::App* demo = app.add_subcommand("demo", "Generate a day's job mix for a pool and run one scheduling pass");
  demo->add_option("--config", demo_config, "Pool config (YAML)")->check(CLI::ExistingFile);
  demo->add_option("--jobs", demo_jobs, "Pending jobs to generate")->check(CLI::Range(1, 10000000));
  demo->add_option("--seed", demo_seed, "Seed of the job generator");

  std::string scenario;
  CLI::App* schedule = app.add_subcommand("schedule", "Run a scenario script and print the decision log");
  schedule->add_option("scenario", scenario, "Scenario file (YAML: config + script)")->required();

  std::string check_config;
  CLI::App* check = app.add_subcommand("check", "Validate a pool config and summarise it");
  check->add_option("config", check_config, "Pool config (YAML)")->required();

  allot::SimCommand sim_command;
  std::string sim_policies = "config";
  std::string sim_format;
  std::string sim_interval;
  std::string sim_horizon;
  std::string sim_checkpoint;
  bool sim_quiet = false;
  CLI::App* sim = app.add_subcommand("sim", "Simulate a workload trace on a pool under one or more policies");
  sim->add_option("--config", sim_command.config, "Pool config (YAML)")->check(CLI::ExistingFile);
  sim->add_option("--cluster", sim_command.cluster, "A flat cluster NODESxGPUS instead, e.g. 256x1, or mixed groups, e.g. 812x8,1x4");
  sim->add_option("--trace", sim_command.trace, "Trace file (for --format national: the workload YAML; default the config)");
  sim->add_option("--format", sim_format, "swf, philly, csv or national (default: from the file name)");
  sim->add_option("--policy", sim_policies, "Policies, comma-separated: fcfs, easy, conservative, fair-share, first-fit, sjf, "
                  "sjf-first-fit, predicted, predicted-first-fit, las, las-first-fit, config");
  sim->add_option("--json", sim_command.json_path, "Write the summary as JSON here");
  sim->add_option("--jobs-csv", sim_command.jobs_csv_path, "Write one CSV row per job here");
  sim->add_option("--report", sim_command.report_dir, "Write an HTML report with plots into this directory");
  sim->add_option("--seed", sim_command.seed, "Seed of the national workload generator");
  sim->add_option("--jobs", sim_command.national_jobs,
                  "National workload: generate this many jobs instead of the model's count; a trace: "
                  "replay only its first N jobs (after --skip)")
      ->check(CLI::Range(1, 100000000));
  sim->add_option("--skip", sim_command.skip_jobs, "A trace: leave out its first N jobs (with --jobs: a window)")
      ->check(CLI::Range(0, 100000000));
  sim->add_option("--failures", sim_command.failures_path, "Node schedule CSV: time,node,state");
  sim->add_option("--pass-interval", sim_interval, "Least time between scheduling passes (default: policy.pass_interval)");
  sim->add_option("--horizon", sim_horizon, "Stop the simulation at this time (default: when every job is done)");
  sim->add_option("--las-thresholds", sim_command.las_thresholds,
                  "The las order's queues: attained GPU-hours, ascending, comma-separated (default: the config's, "
                  "0.25,1,4,16,64,256)")
      ->delimiter(',');
  sim->add_option("--las-promote", sim_command.las_promote,
                  "las: a requeued job that has waited this many times as long as it ran goes back to the first "
                  "queue; 0: never (default: the config's, 1)")
      ->check(CLI::Range(0.0, 1e6));
  sim->add_option("--checkpoint", sim_checkpoint,
                  "A trace's jobs save their progress this often (e.g. 10m), so a preempted or failed job resumes "
                  "from its last checkpoint (default: it starts over)");
  sim->add_option("--gpus-per-node", sim_command.gpus_per_node, "GPUs per task when a trace gives only a GPU count")
      ->check(CLI::Range(1, 16));
  sim->add_flag("--strict", sim_command.strict, "Fail on the first bad trace line or rejected job instead of skipping it");
  sim->add_flag("--quiet", sim_quiet, "No progress bar");

  allot::PlanCommand plan_command;
  CLI::App* plan = app.add_subcommand("plan", "Compare what-if scenarios of a pool (splits, purchases, policies) side by side");
  plan->add_option("plan", plan_command.plan_path, "Plan file (YAML: the config, the seeds, the scenarios)")
      ->required()->check(CLI::ExistingFile);
  plan->add_option("--report", plan_command.report_dir, "Write the planner's report (HTML, CSV, JSON) into this directory");
  plan->add_option("--json", plan_command.json_path, "Write every run's summary as JSON here");
  plan->add_option("--seeds", plan_command.seeds, "Run seeds 1..N instead of the plan's")->check(CLI::Range(1, 100));
  plan->add_option("--jobs", plan_command.jobs, "Generate this many jobs instead of the plan's or the model's count")
      ->check(CLI::Range(1, 100000000));
  plan->add_option("--threads", plan_command.threads, "Simulations at once (default: one per core)")->check(CLI::Range(1, 256));
  plan->add_flag("--quiet", plan_command.quiet, "No progress bars");

  allot::ServeCommand serve_command;
  CLI::App* server = app.add_subcommand("server", "Run the allot server: the API, the scheduling loop and the durable store");
  server->add_option("--config", serve_command.config, "Pool config (YAML); with --dev, optional")->check(CLI::ExistingFile);
  server->add_flag("--dev", serve_command.dev,
                   "A one-machine cluster: this host with 8 emulated GPUs and an agent inside the server, "
                   "state under ./.allot");
  server->add_option("--data", serve_command.data_dir, "Directory for the store and the operator token (default: "
                     "allot-data, with --dev .allot)");
  server->add_option("--store", serve_command.store,
                     "Where the durable state is: sqlite:DIR, or postgresql://[USER@]HOST[:PORT]/DATABASE (production; "
                     "keep the password in ~/.pgpass or PGPASSFILE, not on the command line). Default: "
                     "the SQLite file in --data")
      ->envname("ALLOT_STORE");
  server->add_option("--advertise", serve_command.advertise,
                     "This server's URL as clients reach it, recorded while it leads so that standbys can name it "
                     "(PostgreSQL store; default: from --listen)");
  server->add_option("--history-retention", serve_command.history_retention_days,
                     "Days an ended job stays in the store (allot history) before it is deleted; usage per account "
                     "and day is kept apart. Default: for ever")
      ->check(CLI::Range(1.0, 36500.0));
  server->add_option("--reports", serve_command.reports_dir,
                     "A directory of reports written by `allot sim --report DIR/NAME` or `allot plan --report DIR/NAME`, "
                     "which the dashboard's Simulation view shows to operators");
  server->add_option("--listen", serve_command.listen, "HOST:PORT to serve the API on (port 0: any free port)")
      ->capture_default_str();
  server->add_option("--heartbeat", serve_command.heartbeat_seconds, "Seconds between an agent's syncs")
      ->check(CLI::Range(0.05, 3600.0))->capture_default_str();
  server->add_option("--missed-heartbeats", serve_command.missed_heartbeats,
                     "Syncs an agent may miss before its node is marked down and its jobs requeued")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  server->add_option("--kill-grace", serve_command.kill_grace_seconds,
                     "Seconds between SIGTERM and SIGKILL when a task is cancelled, preempted or out of time")
      ->check(CLI::Range(0.0, 3600.0))->capture_default_str();
  server->add_option("--submit-rate", serve_command.submit_rate,
                     "Submit requests a tenant's token may make per second (0: no limit); over it, 429")
      ->check(CLI::Range(0.0, 1e9))->capture_default_str();
  server->add_option("--submit-burst", serve_command.submit_burst, "Submits a tenant's token may make at once above the rate")
      ->check(CLI::Range(1.0, 1e9))->capture_default_str();
  server->add_option("--max-connections", serve_command.max_connections,
                     "Client and agent connections at once; more are answered 503 with Retry-After")
      ->check(CLI::Range(1, 10000000))->capture_default_str();
  server->add_option("--tls-cert", serve_command.tls_certificate_file,
                     "PEM certificate chain: TLS on the same port as plain HTTP (clients pass --ca-file)")
      ->check(CLI::ExistingFile);
  server->add_option("--tls-key", serve_command.tls_key_file, "PEM private key for --tls-cert")->check(CLI::ExistingFile);
  server->add_flag("--static-nodes", serve_command.static_nodes,
                   "Nodes count as up without an agent (job ends are reported with POST /v1/jobs/{id}/finish); "
                   "by default a node is down until its agent registers, as Slurm keeps it unknown until slurmd does");
  server->add_option("--threads", serve_command.threads, "Requests served at once")->check(CLI::Range(1, 4096))
      ->capture_default_str();
  server->add_option("--log-level", serve_command.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();

  allot::AgentOptions agent_options;
  std::string agent_server;
  std::string agent_token;
  allot::NodeSimOptions nodesim_options;
  std::string nodesim_token, nodesim_server, nodesim_duration;
  CLI::App* nodesim = app.add_subcommand("nodesim", "Hollow agents for scale tests: thousands of nodes of a config in one process, on the real protocol");
  nodesim->add_option("--server", nodesim_server, "Server URL, http:// (else ALLOT_SERVER)");
  nodesim->add_option("--token", nodesim_token, "An operator token, or @FILE (else ALLOT_TOKEN): it speaks for many nodes");
  nodesim->add_option("--config", nodesim_options.config, "The pool config whose nodes to emulate")->required()->check(CLI::ExistingFile);
  nodesim->add_option("--nodes", nodesim_options.nodes, "The first N nodes of the config (default: all)");
  nodesim->add_option("--runtime", nodesim_options.runtime, "How long each task runs: a duration, or exp:MEAN")->capture_default_str();
  nodesim->add_option("--duration", nodesim_duration, "Stop after this long (default: at SIGINT or SIGTERM)");
  nodesim->add_option("--wait", nodesim_options.wait_seconds, "The long poll each node asks for, in seconds")->capture_default_str();
  nodesim->add_option("--threads", nodesim_options.threads, "Event-loop threads the hollow nodes share")
      ->capture_default_str()->check(CLI::Range(1, 64));

  CLI::App* agent = app.add_subcommand("agent", "Run the node agent: it runs the tasks the server assigns to this node");
  agent->add_option("--server", agent_server, "Server URL (else ALLOT_SERVER, the config file)");
  agent->add_option("--token", agent_token, "The node's agent token, or @FILE (else ALLOT_TOKEN, the config file)");
  std::string agent_bootstrap;
  std::string agent_ca_file;
  agent->add_option("--ca-file", agent_ca_file, "https: CA certificates (PEM) to verify the server with (else ALLOT_CA_FILE)");
  agent->add_option("--bootstrap-token", agent_bootstrap,
                    "Instead: a bootstrap token, or @FILE, that enrols this node once; the node's own token is "
                    "kept in STATE/node.token and used from then on");
  agent->add_option("--node", agent_options.node, "The node's name in the server's config (default: the host name)");
  agent->add_option("--address", agent_options.address, "Address other nodes reach this one at (default: the node name)");
  agent->add_option("--state", agent_options.state_dir, "Directory for task state and output")->capture_default_str();
  agent->add_option("--gpus", agent_options.gpus.count, "Emulate this many GPUs instead of asking NVML")
      ->check(CLI::Range(1, 16));
  agent->add_option("--gpu-model", agent_options.gpus.model, "The model of the emulated GPUs, e.g. H200");
  agent->add_option("--run-as", agent_options.run_as,
                    "Run every task as this unprivileged Unix user (the agent must run as root)");
  agent->add_option("--user-map", agent_options.user_map,
                    "Run each job's tasks as the Unix user this YAML file maps its user or account to (docs/agents.md)");
  agent->add_option("--shim", agent_options.shim, "The allot-shim program (default: next to allot)");
  bool no_cgroups = false;
  agent->add_flag("--no-cgroups", no_cgroups,
                  "Run tasks without cgroups (by default each task gets a cgroup v2 with its job's memory and CPU "
                  "limits, where the machine allows it)");

  allot::ClientCommandLine client_line;
  allot::AddClientCommands(app, client_line);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error);
    return code == 0 ? 0 : allot::kExitBadInput;
  }
  if (std::optional<int> exit_code = allot::RunClientCommand(client_line)) return *exit_code;
  if (*server) {
    if (serve_command.config.empty() && !serve_command.dev) {
      return allot::Fail(allot::InvalidArgumentError("allot server needs --config FILE (or --dev for a one-machine cluster)"));
    }
    if (!server->count("--data")) serve_command.data_dir = serve_command.dev ? ".allot" : "allot-data";
    return allot::RunServe(serve_command);
  }
  if (*nodesim) {
    allot::StatusOr<allot::ClientSettings> settings = allot::ResolveClientSettings({nodesim_server, nodesim_token});
    if (!settings.ok()) return allot::Fail(settings.status());
    if (allot::SplitServerList(settings->server).size() != 1) {
      return allot::Fail(allot::InvalidArgumentError("nodesim talks to one server; give --server one URL, not '{}'",
                                                     settings->server));
    }
    nodesim_options.server = settings->server;
    nodesim_options.token = settings->token;
    if (!nodesim_duration.empty()) {
      allot::StatusOr<allot::Duration> duration = allot::ParseDuration(nodesim_duration);
      if (!duration.ok()) return allot::Fail(duration.status());
      nodesim_options.duration_seconds = static_cast<double>(*duration);
    }
    return allot::RunNodeSim(nodesim_options);
  }
  if (*agent) {
    if (!agent_bootstrap.empty() && !agent_token.empty()) {
      return allot::Fail(allot::InvalidArgumentError("give --token or --bootstrap-token, not both"));
    }
    agent_options.enrol = !agent_bootstrap.empty();
    allot::StatusOr<allot::ClientSettings> settings =
        allot::ResolveClientSettings({agent_server, agent_options.enrol ? agent_bootstrap : agent_token, agent_ca_file});
    if (!settings.ok()) return allot::Fail(settings.status());
    agent_options.server = settings->server;
    agent_options.token = settings->token;
    agent_options.ca_file = settings->ca_file;
    agent_options.cgroups = !no_cgroups;
    return allot::RunAgent(std::move(agent_options));
  }
  if (*demo) return allot::RunDemo(demo_config, demo_jobs, demo_seed);
  if (*schedule) return allot::RunSchedule(scenario);
  if (*check) return allot::RunCheck(check_config);
  if (*plan) return allot::RunPlanCommand(plan_command);
  if (*sim) {
    auto bad = [](const allot::Status& status) { return allot::Fail(status); };
    if (!sim_format.empty()) {
      allot::StatusOr<allot::TraceFormat> format = allot::ParseTraceFormat(sim_format);
      if (!format.ok()) return bad(format.status());
      sim_command.format = *format;
    }
    sim_command.policies.clear();
    for (size_t start = 0; start <= sim_policies.size();) {
      size_t comma = std::min(sim_policies.find(',', start), sim_policies.size());
      sim_command.policies.push_back(sim_policies.substr(start, comma - start));
      start = comma + 1;
    }
    if (!sim_interval.empty()) {
      allot::StatusOr<allot::Duration> interval = allot::ParseDuration(sim_interval);
      if (!interval.ok()) return bad(allot::InvalidArgumentError("--pass-interval: {}", interval.status().message()));
      sim_command.pass_interval = *interval;
    }
    if (!sim_horizon.empty()) {
      allot::StatusOr<allot::Duration> horizon = allot::ParseDuration(sim_horizon);
      if (!horizon.ok()) return bad(allot::InvalidArgumentError("--horizon: {}", horizon.status().message()));
      sim_command.horizon = *horizon;
    }
    if (!sim_checkpoint.empty()) {
      allot::StatusOr<allot::Duration> checkpoint = allot::ParseDuration(sim_checkpoint);
      if (!checkpoint.ok() || *checkpoint <= 0) {
        return bad(allot::InvalidArgumentError("--checkpoint {}: expected a positive duration, e.g. 10m",
                                               sim_checkpoint));
      }
      sim_command.checkpoint_interval = *checkpoint;
    }
    return allot::RunSim(std::move(sim_command), sim_quiet);
  }
  return allot::kExitBadInput;
}
