#include "cli/commands.h"

#include <chrono>
#include <thread>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "api/submission.h"
#include "api/submit_request.h"
#include "cli/format.h"

namespace allot {
namespace {

using nlohmann::json;

// Readers of reply fields that never throw: a field that is missing, null or of another type
// reads as empty or zero, so one odd field cannot hide the rest of a listing.
const json& Field(const json& object, const char* key) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto found = object.find(key);
  return found == object.end() ? kNull : *found;
}

std::string Text(const json& object, const char* key) {
  const json& value = Field(object, key);
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  if (value.is_number()) return fmt::format("{}", value.get<double>());
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  return "";
}

int64_t Integer(const json& object, const char* key) {
  const json& value = Field(object, key);
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number()) return static_cast<int64_t>(value.get<double>());
  return 0;
}

double Number(const json& object, const char* key) {
  const json& value = Field(object, key);
  return value.is_number() ? value.get<double>() : 0.0;
}

// "-" stands for "nothing" in a table cell, so columns stay aligned and countable.
std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

std::string Hours(double hours) { return fmt::format("{:.1f}", hours); }

// The server speaks for itself: `-o json` prints its reply as it came (keys sorted), 2-space
// indented.
int PrintJson(const json& reply, std::ostream& out) {
  out << reply.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
  return kExitOk;
}

// A reply without the list a route promises means client and server disagree about the API.
const json* ListField(const json& reply, const char* key) {
  const json& list = Field(reply, key);
  return list.is_array() ? &list : nullptr;
}

Status MissingList(const ApiClient& client, const char* key) {
  return InternalError("the reply from {} has no '{}' list; is it an allot server of this version?",
                       client.server(), key);
}

StatusOr<int64_t> ParseId(std::string_view text, std::string_view what) {
  int64_t id = 0;
  bool digits_only =
      !text.empty() && text.size() <= 18 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits_only) id = std::stoll(std::string(text));
  if (id <= 0) {
    return InvalidArgumentError("'{}' is not a {} id; ids are positive integers such as 12", text,
                                what);
  }
  return id;
}

// YYYY-MM-DD with a month and day that can exist.
Status CheckDate(std::string_view text, std::string_view flag) {
  bool shaped = text.size() == 10 && text[4] == '-' && text[7] == '-';
  for (size_t i = 0; shaped && i < text.size(); ++i) {
    if (i != 4 && i != 7) shaped = text[i] >= '0' && text[i] <= '9';
  }
  int month = shaped ? std::stoi(std::string(text.substr(5, 2))) : 0;
  int day = shaped ? std::stoi(std::string(text.substr(8, 2))) : 0;
  if (month < 1 || month > 12 || day < 1 || day > 31) {
    return InvalidArgumentError("{} '{}' is not a date; write YYYY-MM-DD (UTC)", flag, text);
  }
  return OkStatus();
}

// At most what the server takes in one request (1 MiB): reading stops there, so a device such as
// /dev/zero or a huge file is refused instead of filling memory.
constexpr size_t kMaxSubmitFileBytes = 1 << 20;

}  // namespace

StatusOr<std::string> ReadSubmitFile(const std::string& file, std::istream& in) {
  std::ifstream stream;
  if (file != "-") {
    stream.open(file, std::ios::binary);
    if (!stream) return InvalidArgumentError("cannot read {}: {}", file, std::strerror(errno));
  }
  std::istream& source = file == "-" ? in : stream;
  std::string text(kMaxSubmitFileBytes + 1, '\0');
  source.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(source.gcount()));
  if (text.size() > kMaxSubmitFileBytes) {
    return InvalidArgumentError("{} is over {} KiB; a job spec or batch script is far smaller (is it the right file?)",
                                file == "-" ? "standard input" : file, kMaxSubmitFileBytes >> 10);
  }
  return text;
}

namespace {

// The names of the nodes a job holds: `nodes`, or those of `allocation` when the server left
// `nodes` empty.
std::vector<std::string> JobNodes(const json& job) {
  std::vector<std::string> nodes;
  for (const json& node : Field(job, "nodes")) {
    if (node.is_string()) nodes.push_back(node.get<std::string>());
  }
  if (nodes.empty()) {
    for (const json& slot : Field(job, "allocation")) {
      std::string node = Text(slot, "node");
      if (!node.empty() && std::find(nodes.begin(), nodes.end(), node) == nodes.end()) {
        nodes.push_back(std::move(node));
      }
    }
  }
  return nodes;
}

// squeue's TIME: how long the job has run (0:00 while pending; frozen once it ended).
std::string JobElapsed(const json& job, Time now) {
  Time start = Integer(job, "start_time");
  if (start == 0) return FormatElapsed(0);
  Time end = Integer(job, "end_time");
  return FormatElapsed((end != 0 ? end : now) - start);
}

int64_t JobGpus(const json& job) {
  int64_t gpus = Integer(job, "gpus");
  return gpus != 0 ? gpus : Integer(job, "tasks") * Integer(job, "gpus_per_task");
}

// "n1(0-7),n2(0-3)": which GPU indexes the job holds on each node.
std::string JobGpuAllocation(const json& job) {
  std::string text;
  for (const json& slot : Field(job, "allocation")) {
    std::vector<int64_t> gpus;
    for (const json& gpu : Field(slot, "gpus")) {
      if (gpu.is_number_integer()) gpus.push_back(gpu.get<int64_t>());
    }
    if (!text.empty()) text += ',';
    text += fmt::format("{}({})", Text(slot, "node"), CompressIndexes(std::move(gpus)));
  }
  return text;
}

// Key=Value pairs, as scontrol writes them: several to a line, empty values left out.
class KeyValueLines {
 public:
  explicit KeyValueLines(std::ostream& out) : out_(out) {}
  ~KeyValueLines() { Flush(); }

  KeyValueLines& Add(std::string_view key, const std::string& value) {
    if (!value.empty()) line_ += fmt::format("{}{}={}", line_.empty() ? "" : " ", key, value);
    return *this;
  }
  // Ends the current line; the first is flush left, later ones indented.
  void Flush() {
    if (line_.empty()) return;
    out_ << (first_ ? "" : "   ") << line_ << '\n';
    line_.clear();
    first_ = false;
  }

 private:
  std::ostream& out_;
  std::string line_;
  bool first_ = true;
};

void PrintJob(const json& job, Time now, std::ostream& out) {
  const std::string state = Text(job, "state");
  const json& spec = Field(job, "spec");
  KeyValueLines lines(out);
  lines.Add("JobId", Text(job, "id")).Add("JobName", Text(job, "name")).Flush();
  if (Integer(job, "array_job_id") != 0) {
    lines.Add("ArrayJobId", Text(job, "array_job_id"))
        .Add("ArrayTaskId", Text(job, "array_index"))
        .Flush();
  }
  lines.Add("UserId", Text(job, "user"))
      .Add("Account", Text(job, "account"))
      .Add("PriorityClass", Text(job, "priority_class"))
      .Flush();
  lines.Add("JobState", Upper(state));
  const json& reason = Field(job, "reason");
  if (state == "pending") lines.Add("Reason", OrDash(Text(reason, "code")));
  lines.Add("Held", Field(job, "held").is_boolean() ? Text(job, "held") : "")
      .Add("Restarts", Text(job, "restarts"))
      .Add("ExitCode", OrDash(Text(job, "exit_code")))
      .Flush();
  if (state == "pending") lines.Add("ReasonMessage", Text(reason, "message")).Flush();
  lines.Add("RunTime", JobElapsed(job, now))
      .Add("TimeLimit",
           Integer(job, "time_limit") > 0 ? FormatElapsed(Integer(job, "time_limit")) : "-")
      .Flush();
  lines.Add("SubmitTime", FormatTimestamp(Integer(job, "submit_time")))
      .Add("StartTime", FormatTimestamp(Integer(job, "start_time")))
      .Add("EndTime", FormatTimestamp(Integer(job, "end_time")))
      .Flush();
  lines.Add("Tasks", Text(job, "tasks"))
      .Add("GpusPerTask", Text(job, "gpus_per_task"))
      .Add("Gpus", std::to_string(JobGpus(job)))
      .Add("Pool", OrDash(Text(job, "pool")))
      .Flush();
  std::vector<std::string> nodes = JobNodes(job);
  lines.Add("NodeList", OrDash(CompressNodeList(nodes)))
      .Add("NumNodes", std::to_string(nodes.size()))
      .Flush();
  lines.Add("GpuAllocation", JobGpuAllocation(job)).Flush();
  std::string command;
  for (const json& word : Field(spec, "command")) {
    if (word.is_string()) command += (command.empty() ? "" : " ") + word.get<std::string>();
  }
  if (command.empty() && !Text(spec, "script").empty()) command = "(batch script)";
  lines.Add("Command", command).Flush();
  lines.Add("Array", Text(spec, "array")).Add("Dependency", Text(spec, "dependency")).Flush();
  // As `scontrol show job` prints them: the working directory and the output files with their
  // patterns expanded for this job.
  std::string work_dir = Text(spec, "chdir");
  const std::string submit_dir = Text(spec, "submit_dir");
  if (!submit_dir.empty() && (work_dir.empty() || work_dir.front() != '/')) {
    work_dir = work_dir.empty() ? submit_dir : submit_dir + "/" + work_dir;
  }
  lines.Add("WorkDir", work_dir).Flush();
  const bool batch = Field(spec, "batch").is_boolean() && Field(spec, "batch").get<bool>();
  std::string output = Text(spec, "output");
  if (output.empty() && batch) output = Field(job, "array_index").is_number() ? "slurm-%A_%a.out" : "slurm-%j.out";
  auto expand = [&](const std::string& pattern) {
    if (pattern.empty()) return pattern;
    std::string path;
    for (size_t i = 0; i < pattern.size(); ++i) {
      if (pattern[i] != '%' || i + 1 == pattern.size()) {
        path += pattern[i];
        continue;
      }
      switch (char code = pattern[++i]) {
        case 'j': path += Text(job, "id"); break;
        case 'A': path += Integer(job, "array_job_id") > 0 ? Text(job, "array_job_id") : Text(job, "id"); break;
        case 'a': path += Field(job, "array_index").is_number() ? Text(job, "array_index") : "0"; break;
        case 'x': path += Text(job, "name"); break;
        case 'u': path += Text(job, "user"); break;
        case '%': path += '%'; break;
        default: path += '%'; path += code;
      }
    }
    return path.front() == '/' || work_dir.empty() ? path : work_dir + "/" + path;
  };
  const std::string stdout_path = expand(output);
  const std::string error = Text(spec, "error");
  lines.Add("StdOut", stdout_path).Add("StdErr", error.empty() ? stdout_path : expand(error)).Flush();
}

std::string_view ActionPath(JobAction action) {
  switch (action) {
    case JobAction::kCancel:
      return "cancel";
    case JobAction::kHold:
      return "hold";
    case JobAction::kRelease:
      break;
  }
  return "release";
}

std::string_view ActionDone(JobAction action) {
  switch (action) {
    case JobAction::kCancel:
      return "Cancelled";
    case JobAction::kHold:
      return "Held";
    case JobAction::kRelease:
      break;
  }
  return "Released";
}

std::string Limit(const json& quota, const char* key) {
  const json& value = Field(quota, key);
  return value.is_number() ? Text(quota, key) : "-";
}

// The parent's path: "public/nacc" for "public/nacc/lab-a", "" for a root.
std::string ParentPath(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

// The accounts in tree order (each parent before its children, siblings in the server's order),
// with their depth below the shallowest account listed. A tenant sees its subtree, so its own
// account is the top.
std::vector<std::pair<const json*, int>> AccountsInTreeOrder(const json& accounts) {
  std::map<std::string, std::vector<const json*>> children;
  std::map<std::string, const json*> by_path;
  for (const json& account : accounts) by_path[Text(account, "path")] = &account;
  std::vector<const json*> roots;
  for (const json& account : accounts) {
    std::string parent = ParentPath(Text(account, "path"));
    if (by_path.contains(parent)) {
      children[parent].push_back(&account);
    } else {
      roots.push_back(&account);
    }
  }
  std::vector<std::pair<const json*, int>> ordered;
  auto visit = [&](auto& self, const json* account, int depth) -> void {
    ordered.emplace_back(account, depth);
    auto found = children.find(Text(*account, "path"));
    if (found == children.end()) return;
    for (const json* child : found->second) self(self, child, depth + 1);
  };
  for (const json* root : roots) visit(visit, root, 0);
  return ordered;
}

// Aligned "label: value" lines.
void PrintFields(const std::vector<std::pair<std::string, std::string>>& fields,
                 std::ostream& out) {
  size_t width = 0;
  for (const auto& [label, value] : fields) width = std::max(width, label.size());
  for (const auto& [label, value] : fields) {
    out << label << ':' << std::string(width - label.size() + 1, ' ') << value << '\n';
  }
}

}  // namespace

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kResourceExhausted:
      return kExitBadInput;
    case StatusCode::kUnauthenticated:
    case StatusCode::kPermissionDenied:
      return kExitNotAllowed;
    case StatusCode::kUnavailable:
    case StatusCode::kTooManyRequests:
    case StatusCode::kInternal:
      break;
  }
  return kExitServerError;
}

int ReportError(const Status& status, std::ostream& err) {
  err << "allot: " << status.message() << '\n';
  return ExitCodeFor(status);
}

int RunWithClient(const ClientFlags& flags, std::ostream& err,
                  const std::function<int(ApiClient&)>& command) {
  StatusOr<ClientSettings> settings = ResolveClientSettings(flags);
  if (!settings.ok()) return ReportError(settings.status(), err);
  StatusOr<ApiClient> client = ApiClient::Create(*settings);
  if (!client.ok()) return ReportError(client.status(), err);
  return command(*client);
}

int RunSubmit(ApiClient& client, const SubmitOptions& options, const CommandEnv& env) {
  StatusOr<std::string> text = ReadSubmitFile(options.file, env.in);
  if (!text.ok()) return ReportError(text.status(), env.err);
  const std::string source = options.file == "-" ? "<stdin>" : options.file;
  StatusOr<SubmitRequest> request = ParseSubmitFile(*text, source);
  if (!request.ok()) return ReportError(request.status(), env.err);
  if (!options.account.empty()) request->spec.account = options.account;
  if (!options.name.empty()) request->spec.name = options.name;
  // sbatch names a job after its script when the script does not.
  if (request->spec.name.empty() && !request->script.empty() && options.file != "-") {
    request->spec.name = std::filesystem::path(options.file).filename().string();
  }
  // A batch script runs where sbatch was called, as under Slurm (SLURM_SUBMIT_DIR).
  if (request->batch) {
    std::error_code error;
    request->submit_dir = std::filesystem::current_path(error).string();
  }

  StatusOr<json> reply = client.PostOnce("/v1/jobs", SubmissionToJson(*request));
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (options.output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  std::vector<int64_t> ids;
  if (const json* listed = ListField(*reply, "ids")) {
    for (const json& id : *listed) {
      if (id.is_number_integer()) ids.push_back(id.get<int64_t>());
    }
  }
  if (ids.empty()) return ReportError(MissingList(client, "ids"), env.err);
  if (!request->array.has_value() && ids.size() == 1) {
    env.out << "Submitted job " << ids.front() << '\n';
  } else {
    env.out << fmt::format("Submitted job array {} ({} job{}: {})\n", ids.front(), ids.size(),
                           ids.size() == 1 ? "" : "s", CompressIndexes(ids));
  }
  return kExitOk;
}

int RunQueue(ApiClient& client, const QueueOptions& options, const CommandEnv& env) {
  ApiClient::Query query;
  if (!options.states.empty()) query.emplace_back("state", options.states);
  if (!options.account.empty()) query.emplace_back("account", options.account);
  if (!options.user.empty()) query.emplace_back("user", options.user);
  StatusOr<json> reply = client.Get("/v1/jobs", query);
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (options.output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  const json* jobs = ListField(*reply, "jobs");
  if (jobs == nullptr) return ReportError(MissingList(client, "jobs"), env.err);

  Table table({{"JOBID", Align::kRight},
               {"NAME"},
               {"ACCOUNT"},
               {"USER"},
               {"STATE"},
               {"TIME", Align::kRight},
               {"GPUS", Align::kRight},
               {"NODES", Align::kRight},
               {"REASON/NODELIST"}});
  for (const json& job : *jobs) {
    const std::string state = Text(job, "state");
    std::vector<std::string> nodes = JobNodes(job);
    std::string where;
    if (state == "pending") {
      where = "(" + OrDash(Text(Field(job, "reason"), "code")) + ")";
    } else {
      where = OrDash(CompressNodeList(nodes));
    }
    table.AddRow({Text(job, "id"), OrDash(Text(job, "name")), Text(job, "account"),
                  Text(job, "user"), Upper(state), JobElapsed(job, env.now),
                  std::to_string(JobGpus(job)), nodes.empty() ? "-" : std::to_string(nodes.size()),
                  where});
  }
  table.Print(env.out);
  return kExitOk;
}

int RunHistory(ApiClient& client, const HistoryOptions& options, const CommandEnv& env) {
  ApiClient::Query query = {{"state", options.states}, {"limit", std::to_string(options.limit)}};
  for (const auto& [name, value] : {std::pair{"account", &options.account}, std::pair{"user", &options.user},
                                    std::pair{"since", &options.since}, std::pair{"until", &options.until},
                                    std::pair{"before", &options.before}}) {
    if (!value->empty()) query.emplace_back(name, *value);
  }
  StatusOr<json> reply = client.Get("/v1/jobs", query);
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (options.output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  const json* jobs = ListField(*reply, "jobs");
  if (jobs == nullptr) return ReportError(MissingList(client, "jobs"), env.err);
  Table table({{"JOBID", Align::kRight}, {"NAME"}, {"ACCOUNT"}, {"USER"}, {"STATE"}, {"SUBMIT"}, {"END"},
               {"GPUS", Align::kRight}, {"EXIT", Align::kRight}});
  // Newest first, as pages come.
  for (auto job = jobs->rbegin(); job != jobs->rend(); ++job) {
    const json& exit_code = Field(*job, "exit_code");
    table.AddRow({Text(*job, "id"), OrDash(Text(*job, "name")), Text(*job, "account"), Text(*job, "user"),
                  Upper(Text(*job, "state")), FormatTimestamp(Integer(*job, "submit_time")),
                  FormatTimestamp(Integer(*job, "end_time")), std::to_string(JobGpus(*job)),
                  exit_code.is_number_integer() ? std::to_string(exit_code.get<int64_t>()) : "-"});
  }
  table.Print(env.out);
  if (reply->contains("next_before") && (*reply)["next_before"].is_number_integer()) {
    env.err << fmt::format("more: add --before {}\n", (*reply)["next_before"].get<int64_t>());
  }
  return kExitOk;
}

int RunShow(ApiClient& client, std::string_view job, OutputFormat output, const CommandEnv& env) {
  StatusOr<int64_t> id = ParseId(job, "job");
  if (!id.ok()) return ReportError(id.status(), env.err);
  StatusOr<json> reply = client.Get(fmt::format("/v1/jobs/{}", *id));
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  PrintJob(*reply, env.now, env.out);
  return kExitOk;
}

int RunJobAction(ApiClient& client, JobAction action, const std::vector<std::string>& jobs,
                 const CommandEnv& env) {
  int exit_code = kExitOk;
  for (size_t i = 0; i < jobs.size(); ++i) {
    StatusOr<int64_t> id = ParseId(jobs[i], "job");
    if (!id.ok()) {
      exit_code = std::max(exit_code, ReportError(id.status(), env.err));
      continue;
    }
    StatusOr<json> reply = client.Post(fmt::format("/v1/jobs/{}/{}", *id, ActionPath(action)));
    if (reply.ok()) {
      env.out << ActionDone(action) << " job " << *id << '\n';
      continue;
    }
    Status status = reply.status();
    exit_code = std::max(
        exit_code,
        ReportError(status.WithContext(fmt::format("cannot {} job {}", ActionPath(action), *id)),
                    env.err));
    // Every later request would fail the same way; say so once instead of once per job.
    bool hopeless =
        status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kUnauthenticated;
    if (hopeless && i + 1 < jobs.size()) {
      env.err << fmt::format("allot: {} more job{} not tried\n", jobs.size() - i - 1,
                             jobs.size() - i - 1 == 1 ? "" : "s");
      break;
    }
  }
  return exit_code;
}

int RunNodes(ApiClient& client, const NodesOptions& options, const CommandEnv& env) {
  ApiClient::Query query;
  if (!options.pool.empty()) query.emplace_back("pool", options.pool);
  if (!options.state.empty()) query.emplace_back("state", options.state);
  StatusOr<json> reply = client.Get("/v1/nodes", query);
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (options.output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  const json* nodes = ListField(*reply, "nodes");
  if (nodes == nullptr) return ReportError(MissingList(client, "nodes"), env.err);

  Table table({{"NODE"},
               {"POOL"},
               {"MODEL"},
               {"GPUS", Align::kRight},
               {"ALLOC", Align::kRight},
               {"STATE"},
               {"JOBS"}});
  for (const json& node : *nodes) {
    std::vector<int64_t> jobs;
    for (const json& job : Field(node, "jobs")) {
      if (job.is_number_integer()) jobs.push_back(job.get<int64_t>());
    }
    std::string job_list;
    for (int64_t job : jobs) job_list += (job_list.empty() ? "" : ",") + std::to_string(job);
    table.AddRow({Text(node, "name"), Text(node, "pool"), Text(node, "gpu_model"),
                  Text(node, "gpus"), Text(node, "gpus_allocated"), Text(node, "state"),
                  OrDash(job_list)});
  }
  table.Print(env.out);
  return kExitOk;
}

int RunPools(ApiClient& client, OutputFormat output, const CommandEnv& env) {
  StatusOr<json> reply = client.Get("/v1/pools");
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  const json* pools = ListField(*reply, "pools");
  if (pools == nullptr) return ReportError(MissingList(client, "pools"), env.err);

  Table table({{"POOL"},
               {"SITE"},
               {"MODEL"},
               {"NODES", Align::kRight},
               {"UP", Align::kRight},
               {"GPUS", Align::kRight},
               {"ALLOC", Align::kRight},
               {"USED", Align::kRight}});
  for (const json& pool : *pools) {
    double gpus = Number(pool, "gpus");
    double used = gpus > 0 ? 100.0 * Number(pool, "gpus_allocated") / gpus : 0.0;
    table.AddRow({Text(pool, "name"), Text(pool, "site"), Text(pool, "gpu_model"),
                  Text(pool, "nodes"), Text(pool, "nodes_up"), Text(pool, "gpus"),
                  Text(pool, "gpus_allocated"), fmt::format("{:.1f}%", used)});
  }
  table.Print(env.out);
  return kExitOk;
}

int RunAccounts(ApiClient& client, OutputFormat output, const CommandEnv& env) {
  StatusOr<json> reply = client.Get("/v1/accounts");
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  const json* accounts = ListField(*reply, "accounts");
  if (accounts == nullptr) return ReportError(MissingList(client, "accounts"), env.err);

  Table quotas({{"ACCOUNT"},
                {"POOL"},
                {"NOMINAL", Align::kRight},
                {"BORROW_LIMIT", Align::kRight},
                {"LEND_LIMIT", Align::kRight},
                {"ALLOCATED", Align::kRight}});
  Table grants({{"ACCOUNT"},
                {"GRANT"},
                {"GPU_HOURS", Align::kRight},
                {"USED", Align::kRight},
                {"START"},
                {"END"}});
  for (const auto& [account, depth] : AccountsInTreeOrder(*accounts)) {
    std::string name = std::string(2 * static_cast<size_t>(depth), ' ') + Text(*account, "name");
    const json& pools = Field(*account, "quotas");
    if (!pools.is_object() || pools.empty()) {
      quotas.AddRow({name, "-", "-", "-", "-", Text(*account, "allocated_gpus")});
    } else {
      for (const auto& [pool, quota] : pools.items()) {
        quotas.AddRow({name, pool, Limit(quota, "nominal"), Limit(quota, "borrow_limit"),
                       Limit(quota, "lend_limit"), Text(quota, "allocated")});
      }
    }
    for (const json& grant : Field(*account, "grants")) {
      grants.AddRow({Text(*account, "name"), Text(grant, "name"), Hours(Number(grant, "gpu_hours")),
                     Hours(Number(grant, "used_gpu_hours")),
                     FormatTimestamp(Integer(grant, "start")),
                     FormatTimestamp(Integer(grant, "end"))});
    }
  }
  quotas.Print(env.out);
  if (grants.row_count() > 0) {
    env.out << '\n';
    grants.Print(env.out);
  }
  return kExitOk;
}

int RunUsage(ApiClient& client, const UsageOptions& options, const CommandEnv& env) {
  if (!options.start.empty()) {
    if (Status valid = CheckDate(options.start, "--start"); !valid.ok()) {
      return ReportError(valid, env.err);
    }
  }
  if (!options.end.empty()) {
    if (Status valid = CheckDate(options.end, "--end"); !valid.ok()) {
      return ReportError(valid, env.err);
    }
  }
  if (!options.start.empty() && !options.end.empty() && options.start > options.end) {
    return ReportError(
        InvalidArgumentError("--start {} is after --end {}", options.start, options.end), env.err);
  }
  const std::vector<std::string_view> periods = {"day", "week", "month", "total"};
  if (!options.period.empty() &&
      std::find(periods.begin(), periods.end(), options.period) == periods.end()) {
    return ReportError(
        InvalidArgumentError("--period '{}': write day, week, month or total", options.period),
        env.err);
  }
  ApiClient::Query query;
  if (!options.start.empty()) query.emplace_back("start", options.start);
  if (!options.end.empty()) query.emplace_back("end", options.end);
  if (!options.period.empty()) query.emplace_back("period", options.period);
  if (!options.account.empty()) query.emplace_back("account", options.account);
  StatusOr<json> reply = client.Get("/v1/usage", query);
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (options.output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  const json* rows = ListField(*reply, "rows");
  if (rows == nullptr) return ReportError(MissingList(client, "rows"), env.err);

  const std::string period = OrDash(Text(*reply, "period"));
  env.out << fmt::format(
      "GPU-hours from {} to {} UTC, per {}\n\n", FormatTimestamp(Integer(*reply, "start")),
      FormatTimestamp(Integer(*reply, "end")), period == "total" ? "account" : period);
  size_t top_depth = SIZE_MAX;
  for (const json& row : *rows) {
    std::string path = Text(row, "path");
    top_depth = std::min<size_t>(top_depth, std::count(path.begin(), path.end(), '/'));
  }
  Table table({{"ACCOUNT"}, {"PERIOD"}, {"GPU_HOURS", Align::kRight}});
  for (const json& row : *rows) {
    std::string path = Text(row, "path");
    size_t depth = static_cast<size_t>(std::count(path.begin(), path.end(), '/')) - top_depth;
    Time period_start = Integer(row, "period_start");
    std::string when = period == "total"   ? "total"
                       : period == "month" ? FormatDate(period_start).substr(0, 7)
                                           : FormatDate(period_start);
    table.AddRow({std::string(2 * depth, ' ') + Text(row, "account"), when,
                  Hours(Number(row, "gpu_hours"))});
  }
  table.Print(env.out);
  return kExitOk;
}

int RunTokenCreate(ApiClient& client, const TokenCreateOptions& options, const CommandEnv& env) {
  if (options.role != "operator" && options.role != "tenant" && options.role != "agent" && options.role != "bootstrap") {
    return ReportError(
        InvalidArgumentError("--role '{}': write operator, tenant, agent or bootstrap", options.role),
        env.err);
  }
  json body = {{"role", options.role}};
  if (!options.account.empty()) body["account"] = options.account;
  if (!options.user.empty()) body["user"] = options.user;
  if (!options.node.empty()) body["node"] = options.node;
  StatusOr<json> reply = client.Post("/v1/tokens", body);
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  const std::string token = Text(*reply, "token");
  if (token.empty()) {
    return ReportError(InternalError("the reply from {} holds no token", client.server()), env.err);
  }
  if (options.output == OutputFormat::kJson) {
    PrintJson(*reply, env.out);
  } else {
    env.out << token << '\n';
  }
  std::string scope;
  if (!Text(*reply, "account").empty()) scope += ", account " + Text(*reply, "account");
  if (!Text(*reply, "user").empty()) scope += ", user " + Text(*reply, "user");
  if (!Text(*reply, "node").empty()) scope += ", node " + Text(*reply, "node");
  env.err << fmt::format(
      "Created token {} (role {}{}). It is shown only this once: store it now; `allot token "
      "revoke {}` disables it.\n",
      Text(*reply, "id"), OrDash(Text(*reply, "role")), scope, Text(*reply, "id"));
  return kExitOk;
}

int RunTokenList(ApiClient& client, OutputFormat output, const CommandEnv& env) {
  StatusOr<json> reply = client.Get("/v1/tokens");
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  const json* tokens = ListField(*reply, "tokens");
  if (tokens == nullptr) return ReportError(MissingList(client, "tokens"), env.err);
  Table table({{"ID", Align::kRight}, {"ROLE"}, {"ACCOUNT"}, {"USER"}, {"CREATED"}});
  for (const json& token : *tokens) {
    table.AddRow({Text(token, "id"), Text(token, "role"), OrDash(Text(token, "account")),
                  OrDash(Text(token, "user")), FormatTimestamp(Integer(token, "created"))});
  }
  table.Print(env.out);
  return kExitOk;
}

int RunAudit(ApiClient& client, const AuditOptions& options, const CommandEnv& env) {
  ApiClient::Query query = {{"limit", std::to_string(options.limit)}};
  for (const auto& [name, value] : {std::pair{"since", &options.since}, std::pair{"until", &options.until},
                                    std::pair{"action", &options.action}, std::pair{"user", &options.user}}) {
    if (!value->empty()) query.emplace_back(name, *value);
  }
  StatusOr<json> reply = client.Get("/v1/audit", query);
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (options.output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  const json* entries = ListField(*reply, "entries");
  if (entries == nullptr) return ReportError(MissingList(client, "entries"), env.err);
  Table table({{"TIME"}, {"USER"}, {"ROLE"}, {"ACTION"}, {"TARGET"}, {"FROM"}, {"DETAIL"}});
  for (const json& entry : *entries) {
    const json& detail = Field(entry, "detail");
    table.AddRow({FormatTimestamp(Integer(entry, "time")), Text(entry, "user"), Text(entry, "role"),
                  Text(entry, "action"), Text(entry, "target"), OrDash(Text(entry, "remote")),
                  detail.is_null() ? "-" : detail.is_string() ? detail.get<std::string>() : detail.dump()});
  }
  table.Print(env.out);
  return kExitOk;
}

int RunTokenRevoke(ApiClient& client, std::string_view id, const CommandEnv& env) {
  StatusOr<int64_t> token = ParseId(id, "token");
  if (!token.ok()) return ReportError(token.status(), env.err);
  StatusOr<json> reply = client.Delete(fmt::format("/v1/tokens/{}", *token));
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  env.out << "Revoked token " << *token << '\n';
  return kExitOk;
}

int RunStatus(ApiClient& client, OutputFormat output, const CommandEnv& env) {
  StatusOr<json> reply = client.Get("/v1/scheduler");
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  const json& status = *reply;
  std::vector<std::pair<std::string, std::string>> fields;
  fields.emplace_back("server", client.server());
  fields.emplace_back("scheduling passes", Text(status, "passes"));
  std::string last_pass = FormatTimestamp(Integer(status, "last_pass_time"));
  if (Integer(status, "last_pass_time") != 0) {
    last_pass += fmt::format(" UTC, took {:.3f} s", Number(status, "last_pass_seconds"));
  }
  fields.emplace_back("last pass", last_pass);
  fields.emplace_back("pass interval", Text(status, "pass_interval") + " s");
  fields.emplace_back("pending jobs",
                      fmt::format("{} ({} held)", Text(status, "pending"), Text(status, "held")));
  fields.emplace_back("running jobs", Text(status, "running"));
  double gpus = Number(status, "gpus");
  fields.emplace_back(
      "GPUs allocated",
      fmt::format("{} of {} ({:.1f}%)", Text(status, "gpus_allocated"), Text(status, "gpus"),
                  gpus > 0 ? 100.0 * Number(status, "gpus_allocated") / gpus : 0.0));
  // Whatever a newer server adds, under its own name.
  static const std::vector<std::string> kShown = {
      "passes",  "last_pass_time", "last_pass_seconds", "pass_interval", "pending", "held",
      "running", "gpus",           "gpus_allocated"};
  if (status.is_object()) {
    for (const auto& [key, value] : status.items()) {
      if (std::find(kShown.begin(), kShown.end(), key) != kShown.end()) continue;
      fields.emplace_back(key, value.is_string() ? value.get<std::string>() : value.dump());
    }
  }
  PrintFields(fields, env.out);
  return kExitOk;
}

int RunWhoami(ApiClient& client, OutputFormat output, const CommandEnv& env) {
  StatusOr<json> reply = client.Get("/v1/whoami");
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  if (output == OutputFormat::kJson) return PrintJson(*reply, env.out);
  PrintFields({{"user", OrDash(Text(*reply, "user"))},
               {"role", OrDash(Text(*reply, "role"))},
               {"account", OrDash(Text(*reply, "account"))},
               {"server", client.server()}},
              env.out);
  return kExitOk;
}

int RunLogs(ApiClient& client, const LogsOptions& options, const CommandEnv& env) {
  StatusOr<int64_t> id = ParseId(options.job, "job");
  if (!id.ok()) return ReportError(id.status(), env.err);
  if (options.stream != "out" && options.stream != "err") {
    return ReportError(InvalidArgumentError("--stream must be out or err"), env.err);
  }
  int64_t offset = 0;
  while (true) {
    StatusOr<json> chunk = client.Get(fmt::format("/v1/jobs/{}/logs", *id),
                                      {{"task", std::to_string(options.task)}, {"stream", options.stream},
                                       {"offset", std::to_string(offset)}});
    if (!chunk.ok()) return ReportError(chunk.status(), env.err);
    std::string data = chunk->value("data", "");
    env.out << data;
    env.out.flush();
    offset = chunk->value("next_offset", offset);
    if (!data.empty()) continue;  // there may be more right away
    if (!options.follow || chunk->value("complete", true)) return kExitOk;
    std::this_thread::sleep_for(std::chrono::duration<double>(options.poll_seconds));
  }
}

}  // namespace allot
