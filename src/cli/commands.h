// The client subcommands of `allot` (submit, queue, show, cancel, nodes, usage, ...): each sends
// one or a few requests to `allot server` and prints the reply as a table in the manner of squeue,
// scontrol and sreport, or, with `-o json`, as the server's JSON. docs/cli.md describes them.
//
//   StatusOr<ApiClient> client = ApiClient::Create({.server = url, .token = token});
//   CommandEnv env{.in = std::cin, .out = std::cout, .err = std::cerr, .now = std::time(nullptr)};
//   int exit_code = RunQueue(*client, {.states = "pending"}, env);
//
// Every Run* function returns the process exit code, prints results on env.out and problems on
// env.err as "allot: MESSAGE", and maps a failed request to a code only here, at the edge:
//   kExitOk (0)          success
//   kExitServerError (1) the server failed (5xx, a reply that is not JSON) or could not be reached
//   kExitBadInput (2)    bad input: a local parse error, or the server answered 400/404/409/413
//   kExitNotAllowed (3)  not authenticated or not allowed: no token, or a 401/403 reply
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/client.h"
#include "core/status.h"
#include "core/units.h"

namespace allot {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitNotAllowed = 3;

// The exit code for a failed request or input (see the file comment); kExitOk for an ok status.
int ExitCodeFor(const Status& status);

// Prints "allot: MESSAGE" on `err` and returns ExitCodeFor(status).
int ReportError(const Status& status, std::ostream& err);

// What a command reads and writes besides the server: the process's streams and clock in `allot`,
// string streams and a fixed time in tests.
struct CommandEnv {
  std::istream& in;   // `allot submit -` reads the submit file here
  std::ostream& out;  // results
  std::ostream& err;  // "allot: ..." messages and notes
  Time now = 0;       // Unix seconds, for the elapsed time of running jobs
};

enum class OutputFormat : uint8_t {
  kTable,  // aligned columns for people
  kJson,   // the server's reply, pretty-printed, for scripts
};

// Resolves the settings (ResolveClientSettings), creates the client and runs `command` with it; a
// settings error is reported on `err` with its exit code and `command` does not run.
int RunWithClient(const ClientFlags& flags, std::ostream& err,
                  const std::function<int(ApiClient&)>& command);

// `allot submit FILE`: reads a YAML job spec or an #SBATCH batch script ("-": env.in), applies the
// overrides, and POSTs it to /v1/jobs. Prints "Submitted job 12", or for an array "Submitted job
// array 12 (16 jobs: 12-27)". A batch script without a job name is named after its file, as sbatch
// does.
struct SubmitOptions {
  std::string file;
  std::string account;  // "": the file's, else the token's account (chosen by the server)
  std::string name;     // "": the file's
  OutputFormat output = OutputFormat::kTable;
};
int RunSubmit(ApiClient& client, const SubmitOptions& options, const CommandEnv& env);
// A submit file's text ("-": `in`), refused over 1 MiB.
StatusOr<std::string> ReadSubmitFile(const std::string& file, std::istream& in);

// `allot queue`: GET /v1/jobs as squeue's table: JOBID NAME ACCOUNT USER STATE TIME GPUS NODES
// REASON/NODELIST. Empty filters are left to the server's defaults (pending and running jobs the
// token may see).
struct QueueOptions {
  std::string account;
  std::string user;
  std::string states;  // comma-separated: "pending,running"
  OutputFormat output = OutputFormat::kTable;
};
int RunQueue(ApiClient& client, const QueueOptions& options, const CommandEnv& env);

// `allot history`: ended jobs from the store, newest first, a page at a time:
// GET /v1/jobs?state=ended&since=...&until=...&before=... as JOBID NAME ACCOUNT USER STATE
// SUBMIT END GPUS EXIT. A full page says on stderr how to ask for the next one (--before ID).
struct HistoryOptions {
  std::string account;
  std::string user;
  std::string states = "ended";  // or some of completed, failed, cancelled, timeout, node_fail, preempted
  std::string since;             // submitted at or after: Unix seconds or YYYY-MM-DD (UTC)
  std::string until;             // submitted before
  std::string before;            // job ids below this only (the next page)
  int limit = 100;
  OutputFormat output = OutputFormat::kTable;
};
int RunHistory(ApiClient& client, const HistoryOptions& options, const CommandEnv& env);

// `allot show JOB`: GET /v1/jobs/{id} as scontrol's Key=Value block.
int RunShow(ApiClient& client, std::string_view job, OutputFormat output, const CommandEnv& env);

enum class JobAction : uint8_t { kCancel, kHold, kRelease };

// `allot cancel|hold|release JOB...`: POST /v1/jobs/{id}/cancel|hold|release for each job in turn,
// printing "Cancelled job 12" for each success and an error for each failure. Returns the highest
// exit code of all the jobs. Stops early when the server cannot be reached or refuses the token,
// since every later job would fail the same way.
int RunJobAction(ApiClient& client, JobAction action, const std::vector<std::string>& jobs,
                 const CommandEnv& env);

// `allot nodes`: GET /v1/nodes as NODE POOL MODEL GPUS ALLOC STATE JOBS.
struct NodesOptions {
  std::string pool;
  std::string state;
  OutputFormat output = OutputFormat::kTable;
};
int RunNodes(ApiClient& client, const NodesOptions& options, const CommandEnv& env);

// `allot pools`: GET /v1/pools as POOL SITE MODEL NODES UP GPUS ALLOC USED.
int RunPools(ApiClient& client, OutputFormat output, const CommandEnv& env);

// `allot accounts`: GET /v1/accounts as a tree (children indented under their parent) of quotas
// per pool: ACCOUNT POOL NOMINAL BORROW_LIMIT LEND_LIMIT ALLOCATED ("-": unlimited), then the
// accounts' grants: ACCOUNT GRANT GPU_HOURS USED START END.
int RunAccounts(ApiClient& client, OutputFormat output, const CommandEnv& env);

// `allot usage`: GET /v1/usage as sreport's table ACCOUNT PERIOD GPU_HOURS, accounts indented by
// depth. Dates are checked here (YYYY-MM-DD) so a typo fails before any request.
struct UsageOptions {
  std::string start;   // YYYY-MM-DD, UTC; "": the server's default (30 days ago)
  std::string end;     // YYYY-MM-DD, UTC; "": now
  std::string period;  // day, week, month or total; "": total
  std::string account;
  OutputFormat output = OutputFormat::kTable;
};
int RunUsage(ApiClient& client, const UsageOptions& options, const CommandEnv& env);

// `allot token create`: POST /v1/tokens. Prints the token alone on env.out, so that
// `TOKEN=$(allot token create ...)` captures it, and on env.err a note that it is shown only once.
struct TokenCreateOptions {
  std::string role;  // operator, tenant or agent
  std::string account;
  std::string user;
  std::string node;  // agent tokens: the node it speaks for
  OutputFormat output = OutputFormat::kTable;
};
int RunTokenCreate(ApiClient& client, const TokenCreateOptions& options, const CommandEnv& env);

// `allot audit`: GET /v1/audit as TIME USER ROLE ACTION TARGET FROM DETAIL, newest first.
struct AuditOptions {
  std::string since;   // Unix seconds or YYYY-MM-DD
  std::string until;
  std::string action;  // e.g. token.create, or a prefix ending in '.' (token.)
  std::string user;
  int limit = 100;
  OutputFormat output = OutputFormat::kTable;
};
int RunAudit(ApiClient& client, const AuditOptions& options, const CommandEnv& env);

// `allot token list`: GET /v1/tokens as ID ROLE ACCOUNT USER CREATED.
int RunTokenList(ApiClient& client, OutputFormat output, const CommandEnv& env);

// `allot token revoke ID`: DELETE /v1/tokens/{id}.
int RunTokenRevoke(ApiClient& client, std::string_view id, const CommandEnv& env);

// `allot status`: GET /v1/scheduler as "key: value" lines.
int RunStatus(ApiClient& client, OutputFormat output, const CommandEnv& env);

// `allot whoami`: GET /v1/whoami: the token's user, role and account, and the server asked.
int RunWhoami(ApiClient& client, OutputFormat output, const CommandEnv& env);

// `allot logs JOB [--task N] [--stream out|err] [--follow]`: a task's output as the agents
// shipped it; with --follow, keeps printing new output until the job has ended.
struct LogsOptions {
  std::string job;
  int task = 0;
  std::string stream = "out";
  bool follow = false;
  double poll_seconds = 0.5;
};
int RunLogs(ApiClient& client, const LogsOptions& options, const CommandEnv& env);

}  // namespace allot
