#include "cli/slurm_commands.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "api/submission.h"
#include "api/submit_request.h"
#include "cli/format.h"

namespace allot {

using nlohmann::json;

namespace {

constexpr std::string_view kSlurmCommands[] = {"sbatch", "squeue", "scancel", "sinfo", "sacct", "scontrol"};

// ---- Reading Slurm's command lines ------------------------------------------------------------

// Slurm's flags in all their spellings: "-u kim", "-ukim", "--user kim", "--user=kim". Flags are
// declared with whether they take a value; anything else is an error naming it.
class SlurmFlags {
 public:
  SlurmFlags(std::string command, std::vector<std::string> args) : command_(std::move(command)), args_(std::move(args)) {}

  // Declares a flag: its letter (0 for none), its long name, and whether it takes a value.
  void Declare(char letter, std::string name, bool takes_value) { declared_.push_back({letter, std::move(name), takes_value}); }

  // Reads the arguments: flags into values(), the rest into positional().
  Status Parse() {
    for (size_t i = 0; i < args_.size(); ++i) {
      const std::string& word = args_[i];
      if (word == "--") {
        positional_.insert(positional_.end(), args_.begin() + static_cast<long>(i) + 1, args_.end());
        break;
      }
      if (word.size() < 2 || word[0] != '-') {
        positional_.push_back(word);
        continue;
      }
      const Flag* flag = nullptr;
      std::optional<std::string> value;
      if (word.starts_with("--")) {
        size_t equals = word.find('=');
        std::string name = word.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
        flag = Find(name);
        if (flag == nullptr) return Unknown(word.substr(0, equals));
        if (equals != std::string::npos) value = word.substr(equals + 1);
      } else {
        flag = Find(word[1]);
        if (flag == nullptr) return Unknown(word.substr(0, 2));
        if (word.size() > 2) {
          if (!flag->takes_value) return InvalidArgumentError("{}: -{} takes no value", command_, word[1]);
          value = word.substr(2);
        }
      }
      if (flag->takes_value && !value) {
        if (i + 1 == args_.size()) return InvalidArgumentError("{}: --{} needs a value", command_, flag->name);
        value = args_[++i];
      }
      if (!flag->takes_value && value) return InvalidArgumentError("{}: --{} takes no value", command_, flag->name);
      values_[flag->name].push_back(value.value_or(""));
    }
    return OkStatus();
  }

  bool Has(const std::string& name) const { return values_.contains(name); }
  // The last value given (Slurm's rule when a flag repeats), or "".
  std::string Value(const std::string& name) const {
    auto found = values_.find(name);
    return found == values_.end() ? "" : found->second.back();
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  struct Flag {
    char letter;
    std::string name;
    bool takes_value;
  };
  const Flag* Find(const std::string& name) const {
    for (const Flag& flag : declared_) {
      if (flag.name == name) return &flag;
    }
    return nullptr;
  }
  const Flag* Find(char letter) const {
    for (const Flag& flag : declared_) {
      if (flag.letter == letter) return &flag;
    }
    return nullptr;
  }
  Status Unknown(std::string_view word) const {
    std::vector<std::string> known;
    for (const Flag& flag : declared_) {
      known.push_back(flag.letter != 0 ? fmt::format("-{}/--{}", flag.letter, flag.name) : "--" + flag.name);
    }
    return InvalidArgumentError("{}: {} is not supported by allot's {}; it supports {} (docs/slurm.md)", command_, word,
                                command_, fmt::join(known, ", "));
  }

  std::string command_;
  std::vector<std::string> args_;
  std::vector<Flag> declared_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> items;
  for (size_t start = 0; start <= text.size();) {
    size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) items.emplace_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return items;
}

std::string Upper(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

// ---- Jobs as Slurm shows them ------------------------------------------------------------------

// allot's job states and Slurm's names and two-letter codes for them.
struct StateName {
  std::string_view allot;
  std::string_view slurm;
  std::string_view code;
};
constexpr StateName kStates[] = {
    {"pending", "PENDING", "PD"},     {"running", "RUNNING", "R"},   {"completed", "COMPLETED", "CD"},
    {"failed", "FAILED", "F"},        {"cancelled", "CANCELLED", "CA"}, {"timeout", "TIMEOUT", "TO"},
    {"node_fail", "NODE_FAIL", "NF"},
};

const StateName* FindState(std::string_view allot_state) {
  for (const StateName& state : kStates) {
    if (state.allot == allot_state) return &state;
  }
  return nullptr;
}

// "PD,R" or "pending,RUNNING" or "all" -> allot's "pending,running,...".
StatusOr<std::string> AllotStates(std::string_view command, std::string_view text) {
  std::vector<std::string> states;
  for (const std::string& item : SplitList(text)) {
    std::string upper = Upper(item);
    if (upper == "ALL") {
      for (const StateName& state : kStates) states.emplace_back(state.allot);
      continue;
    }
    const StateName* found = nullptr;
    for (const StateName& state : kStates) {
      if (upper == state.slurm || upper == state.code) found = &state;
    }
    if (found == nullptr) {
      return InvalidArgumentError("{}: unknown job state '{}'; use PD, R, CD, F, CA, TO, NF (or their names) or all",
                                  command, item);
    }
    states.emplace_back(found->allot);
  }
  return fmt::format("{}", fmt::join(states, ","));
}

// Slurm's reason names for allot's pending reasons, as squeue shows them.
std::string SlurmReason(const json& job) {
  if (job.value("user_held", false)) return "JobHeldUser";
  std::string code = job.contains("reason") && job["reason"].is_object() ? job["reason"].value("code", "") : "";
  static const std::map<std::string, std::string> kReasons = {
      {"held", "JobHeldUser"},     {"dependency", "Dependency"},   {"priority", "Priority"},
      {"quota", "AssocGrpGRES"},   {"grant", "AssocGrpGRESMinutes"}, {"resources", "Resources"},
      {"topology", "Resources"},   {"reserved", "Resources"},      {"backfill", "Priority"},
      {"preempted", "BeginTime"},  {"array_limit", "JobArrayTaskLimit"}, {"none", "None"}};
  auto found = kReasons.find(code);
  return found != kReasons.end() ? found->second : "None";
}

std::string JobIdText(const json& job) {
  if (job.contains("array_index") && job["array_index"].is_number_integer()) {
    return fmt::format("{}_{}", job.value("array_job_id", int64_t{0}), job["array_index"].get<int64_t>());
  }
  return std::to_string(job.value("id", int64_t{0}));
}

std::vector<std::string> NodesOf(const json& job) {
  std::vector<std::string> nodes;
  if (job.contains("nodes") && job["nodes"].is_array()) {
    for (const json& node : job["nodes"]) {
      if (node.is_string()) nodes.push_back(node.get<std::string>());
    }
  }
  return nodes;
}

std::string Partition(const json& job) {
  std::string pool = job.value("pool", "");
  if (!pool.empty()) return pool;
  if (job.contains("spec") && job["spec"].contains("pools")) return fmt::format("{}", fmt::join(job["spec"]["pools"].get<std::vector<std::string>>(), ","));
  return "";
}

std::string TimeLimit(const json& job) {
  int64_t limit = job.value("time_limit", int64_t{0});
  return limit > 0 ? FormatElapsed(limit) : "UNLIMITED";
}

Duration Elapsed(const json& job, Time now) {
  Time start = job.value("start_time", Time{0});
  if (start == 0) return 0;
  Time end = job.value("end_time", Time{0});
  return (end > 0 ? end : now) - start;
}

// One field of squeue's -o format for a job.
std::string SqueueField(const json& job, char field, Time now) {
  const std::string state = job.value("state", "");
  const StateName* names = FindState(state);
  switch (field) {
    case 'i': return JobIdText(job);
    case 'A': return std::to_string(job.value("id", int64_t{0}));
    case 'F': return std::to_string(job.value("array_job_id", int64_t{0}) > 0 ? job.value("array_job_id", int64_t{0}) : job.value("id", int64_t{0}));
    case 'K': return job.contains("array_index") && job["array_index"].is_number_integer() ? std::to_string(job["array_index"].get<int64_t>()) : "N/A";
    case 'P': return Partition(job);
    case 'j': return job.value("name", "");
    case 'u': return job.value("user", "");
    case 'a': return job.value("account", "");
    case 't': return names ? std::string(names->code) : Upper(state);
    case 'T': return names ? std::string(names->slurm) : Upper(state);
    case 'M': return FormatElapsed(Elapsed(job, now));
    case 'l': return TimeLimit(job);
    case 'D': return std::to_string(state == "pending" ? job.value("tasks", 0) : static_cast<int>(NodesOf(job).size()));
    case 'N': return CompressNodeList(NodesOf(job));
    case 'r': return SlurmReason(job);
    case 'R': return state == "pending" ? "(" + SlurmReason(job) + ")" : CompressNodeList(NodesOf(job));
    case 'b': return fmt::format("gres/gpu:{}", job.value("gpus_per_task", 0));
    case 'q': return job.value("priority_class", "");
    case 'V': return FormatTimestamp(job.value("submit_time", Time{0}));
    case 'S': return job.value("start_time", Time{0}) > 0 ? FormatTimestamp(job.value("start_time", Time{0})) : "N/A";
    case 'e': return job.value("end_time", Time{0}) > 0 ? FormatTimestamp(job.value("end_time", Time{0})) : "N/A";
    case 'C': return std::to_string(std::max(1, job.contains("spec") ? job["spec"].value("cpus_per_task", 0) : 0) * job.value("tasks", 1));
    case 'Z': return job.contains("spec") ? job["spec"].value("chdir", job["spec"].value("submit_dir", "")) : "";
    default: return "";
  }
}

constexpr std::string_view kSqueueFields = "iAFKPjuatTMlDNrRbqVSeCZ";

// squeue's format: text with %[.][width]LETTER fields; '.' right-justifies, a width pads and
// truncates.
struct FormatPiece {
  std::string text;  // literal text, when field is 0
  char field = 0;
  int width = 0;
  bool right = false;
};

StatusOr<std::vector<FormatPiece>> ParseFormat(std::string_view command, std::string_view format) {
  std::vector<FormatPiece> pieces;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      if (pieces.empty() || pieces.back().field != 0) pieces.push_back({});
      pieces.back().text += format[i];
      continue;
    }
    FormatPiece piece;
    if (++i < format.size() && format[i] == '%') {
      pieces.push_back({.text = "%"});
      continue;
    }
    if (i < format.size() && format[i] == '.') {
      piece.right = true;
      ++i;
    }
    while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) piece.width = piece.width * 10 + (format[i++] - '0');
    if (i == format.size() || kSqueueFields.find(format[i]) == std::string_view::npos) {
      return InvalidArgumentError("{}: the format '{}' has a field allot does not know{}; it knows %{}", command, format,
                                  i < format.size() ? fmt::format(" (%{})", format[i]) : "", fmt::join(kSqueueFields, " %"));
    }
    piece.field = format[i];
    pieces.push_back(piece);
  }
  return pieces;
}

std::string Fit(const std::string& value, int width, bool right) {
  if (width <= 0) return value;
  std::string text = value.substr(0, static_cast<size_t>(width));
  std::string pad(static_cast<size_t>(width) - text.size(), ' ');
  return right ? pad + text : text + pad;
}

std::string Render(const std::vector<FormatPiece>& pieces, const std::function<std::string(char)>& field) {
  std::string line;
  for (const FormatPiece& piece : pieces) line += piece.field == 0 ? piece.text : Fit(field(piece.field), piece.width, piece.right);
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

std::string SqueueHeader(char field) {
  static const std::map<char, std::string> kHeaders = {
      {'i', "JOBID"}, {'A', "JOBID"}, {'F', "ARRAY_JOB_ID"}, {'K', "ARRAY_TASK_ID"}, {'P', "PARTITION"},
      {'j', "NAME"}, {'u', "USER"}, {'a', "ACCOUNT"}, {'t', "ST"}, {'T', "STATE"}, {'M', "TIME"},
      {'l', "TIME_LIMIT"}, {'D', "NODES"}, {'N', "NODELIST"}, {'r', "REASON"}, {'R', "NODELIST(REASON)"},
      {'b', "TRES_PER_NODE"}, {'q', "QOS"}, {'V', "SUBMIT_TIME"}, {'S', "START_TIME"}, {'e', "END_TIME"},
      {'C', "CPUS"}, {'Z', "WORK_DIR"}};
  return kHeaders.at(field);
}

StatusOr<std::string> WhoAmI(ApiClient& client) {
  ALLOT_ASSIGN_OR_RETURN(json me, client.Get("/v1/whoami"));
  return me.value("user", "");
}

StatusOr<std::vector<json>> ListJobs(ApiClient& client, const std::string& states, const std::string& account,
                                     const std::string& user, bool with_steps = false) {
  ApiClient::Query query;
  if (with_steps) query.emplace_back("steps", "true");
  if (!states.empty()) query.emplace_back("state", states);
  if (!account.empty()) query.emplace_back("account", account);
  if (!user.empty()) query.emplace_back("user", user);
  query.emplace_back("limit", "100000");
  ALLOT_ASSIGN_OR_RETURN(json reply, client.Get("/v1/jobs", query));
  std::vector<json> jobs;
  if (reply.contains("jobs") && reply["jobs"].is_array()) {
    for (json& job : reply["jobs"]) jobs.push_back(std::move(job));
  }
  std::sort(jobs.begin(), jobs.end(), [](const json& a, const json& b) { return a.value("id", 0) < b.value("id", 0); });
  return jobs;
}

// What a listing filters on: the user (--me: the caller) and the states (-t, in allot's names).
struct JobFilter {
  std::string user;
  std::string states;
};

StatusOr<JobFilter> ReadJobFilter(ApiClient& client, const SlurmFlags& flags, std::string_view command,
                                  const std::string& state_flag, std::string default_states) {
  JobFilter filter{flags.Value("user"), std::move(default_states)};
  if (flags.Has("me")) {
    ALLOT_ASSIGN_OR_RETURN(filter.user, WhoAmI(client));
  }
  if (flags.Has(state_flag)) {
    ALLOT_ASSIGN_OR_RETURN(filter.states, AllotStates(command, flags.Value(state_flag)));
  }
  return filter;
}

// Job ids as Slurm users write them: "12", "12_3" (an array element), "12_[1-3]" is not taken.
bool MatchesJobId(const json& job, const std::set<std::string>& wanted) {
  if (wanted.empty()) return true;
  const std::string id = std::to_string(job.value("id", int64_t{0}));
  if (wanted.contains(id) || wanted.contains(JobIdText(job))) return true;
  // An array's id names all its elements.
  return job.value("array_job_id", int64_t{0}) > 0 && wanted.contains(std::to_string(job.value("array_job_id", int64_t{0})));
}

// ---- sbatch -------------------------------------------------------------------------------------

int RunSbatch(ApiClient& client, const std::vector<std::string>& args, const CommandEnv& env) {
  bool parsable = false;
  std::optional<std::string> wrap;
  std::vector<std::string> options;
  std::string script_path;
  std::vector<std::string> script_args;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (!script_path.empty() || word.empty() || word[0] != '-' || word == "-") {
      if (script_path.empty()) {
        script_path = word;
      } else {
        script_args.push_back(word);
      }
      continue;
    }
    if (word == "--parsable") {
      parsable = true;
      continue;
    }
    if (word.starts_with("--wrap")) {
      if (word.size() > 6 && word[6] == '=') {
        wrap = word.substr(7);
      } else if (word == "--wrap" && i + 1 < args.size()) {
        wrap = args[++i];
      } else {
        return ReportError(InvalidArgumentError("sbatch: --wrap needs a command: --wrap=\"python train.py\""), env.err);
      }
      continue;
    }
    for (std::string_view unsupported : {"--wait", "-W", "--test-only", "--export", "--begin", "--signal", "--constraint"}) {
      if (word == unsupported || word.starts_with(std::string(unsupported) + "=")) {
        return ReportError(InvalidArgumentError("sbatch: {} is not supported by allot (docs/slurm.md, \"Differences from "
                                                "Slurm\")", unsupported), env.err);
      }
    }
    // One of the #SBATCH options: its value may be the next word.
    std::string_view name = word.starts_with("--") ? std::string_view(word).substr(2, word.find('=') - 2)
                                                   : std::string_view(word).substr(1, 1);
    std::optional<bool> takes_value = BatchOptionTakesValue(name);
    options.push_back(word);
    bool inline_value = word.starts_with("--") ? word.find('=') != std::string::npos : word.size() > 2;
    if (takes_value.value_or(false) && !inline_value && i + 1 < args.size()) options.push_back(args[++i]);
  }
  std::string text;
  std::string source;
  if (wrap) {
    if (!script_path.empty()) return ReportError(InvalidArgumentError("sbatch: give a script or --wrap, not both"), env.err);
    text = "#!/bin/sh\n" + *wrap + "\n";
    source = "--wrap";
  } else {
    StatusOr<std::string> read = ReadSubmitFile(script_path.empty() ? "-" : script_path, env.in);
    if (!read.ok()) return ReportError(read.status().WithContext("sbatch"), env.err);
    text = std::move(*read);
    source = script_path.empty() ? "<stdin>" : script_path;
  }
  StatusOr<SubmitRequest> request = ParseBatchScript(text, source, options);
  if (!request.ok()) return ReportError(request.status(), env.err);
  request->script_args = std::move(script_args);
  if (request->spec.name.empty()) {
    request->spec.name = wrap ? "wrap" : script_path.empty() ? "sbatch" : std::filesystem::path(script_path).filename().string();
  }
  std::error_code error;
  request->submit_dir = std::filesystem::current_path(error).string();
  StatusOr<json> reply = client.PostOnce("/v1/jobs", SubmissionToJson(*request));
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  int64_t id = 0;
  if (reply->contains("ids") && (*reply)["ids"].is_array() && !(*reply)["ids"].empty()) id = (*reply)["ids"][0].get<int64_t>();
  if (parsable) {
    env.out << id << '\n';
  } else {
    env.out << "Submitted batch job " << id << '\n';
  }
  return kExitOk;
}

// ---- squeue -------------------------------------------------------------------------------------

int RunSqueue(ApiClient& client, const std::vector<std::string>& args, const CommandEnv& env) {
  SlurmFlags flags("squeue", {args.begin() + 1, args.end()});
  flags.Declare('u', "user", true);
  flags.Declare('A', "account", true);
  flags.Declare('t', "states", true);
  flags.Declare(0, "me", false);
  flags.Declare('o', "format", true);
  flags.Declare('h', "noheader", false);
  flags.Declare('j', "jobs", true);
  flags.Declare('p', "partition", true);
  flags.Declare('r', "array", false);
  flags.Declare('a', "all", false);
  if (Status parsed = flags.Parse(); !parsed.ok()) return ReportError(parsed, env.err);
  if (!flags.positional().empty()) {
    return ReportError(InvalidArgumentError("squeue: unexpected '{}'; filter with -j, -u, -A, -t or -p", flags.positional()[0]), env.err);
  }
  StatusOr<JobFilter> filter = ReadJobFilter(client, flags, "squeue", "states", "pending,running");
  if (!filter.ok()) return ReportError(filter.status(), env.err);
  const std::string& user = filter->user;
  StatusOr<std::vector<FormatPiece>> format =
      ParseFormat("squeue", flags.Has("format") ? flags.Value("format") : "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R");
  if (!format.ok()) return ReportError(format.status(), env.err);
  std::set<std::string> users;
  for (const std::string& name : SplitList(user)) users.insert(name);
  std::set<std::string> partitions;
  for (const std::string& name : SplitList(flags.Value("partition"))) partitions.insert(name);
  std::set<std::string> ids;
  for (const std::string& id : SplitList(flags.Value("jobs"))) ids.insert(id);
  // The server filters one user; several are filtered here.
  StatusOr<std::vector<json>> jobs =
      ListJobs(client, filter->states, flags.Value("account"), users.size() == 1 ? *users.begin() : "");
  if (!jobs.ok()) return ReportError(jobs.status(), env.err);
  if (!flags.Has("noheader")) env.out << Render(*format, SqueueHeader) << '\n';
  for (const json& job : *jobs) {
    if (!users.empty() && !users.contains(job.value("user", ""))) continue;
    if (!partitions.empty() && !partitions.contains(Partition(job))) continue;
    if (!MatchesJobId(job, ids)) continue;
    env.out << Render(*format, [&](char field) { return SqueueField(job, field, env.now); }) << '\n';
  }
  return kExitOk;
}

// ---- scancel ------------------------------------------------------------------------------------

int RunScancel(ApiClient& client, const std::vector<std::string>& args, const CommandEnv& env) {
  SlurmFlags flags("scancel", {args.begin() + 1, args.end()});
  flags.Declare('u', "user", true);
  flags.Declare('A', "account", true);
  flags.Declare('n', "name", true);
  flags.Declare('t', "state", true);
  flags.Declare(0, "me", false);
  flags.Declare('q', "quiet", false);
  if (Status parsed = flags.Parse(); !parsed.ok()) return ReportError(parsed, env.err);
  std::set<std::string> ids(flags.positional().begin(), flags.positional().end());
  bool filtered = flags.Has("user") || flags.Has("account") || flags.Has("name") || flags.Has("state") || flags.Has("me");
  if (ids.empty() && !filtered) {
    return ReportError(InvalidArgumentError("scancel: name jobs (scancel 12 13_2) or filter them (-u USER, -n NAME, --me)"),
                       env.err);
  }
  StatusOr<JobFilter> filter = ReadJobFilter(client, flags, "scancel", "state", "pending,running");
  if (!filter.ok()) return ReportError(filter.status(), env.err);
  StatusOr<std::vector<json>> jobs = ListJobs(client, filter->states, flags.Value("account"), filter->user);
  if (!jobs.ok()) return ReportError(jobs.status(), env.err);
  int code = kExitOk;
  std::set<std::string> found;
  for (const json& job : *jobs) {
    if (!MatchesJobId(job, ids)) continue;
    if (flags.Has("name") && job.value("name", "") != flags.Value("name")) continue;
    found.insert(std::to_string(job.value("id", int64_t{0})));
    found.insert(JobIdText(job));
    if (job.value("array_job_id", int64_t{0}) > 0) found.insert(std::to_string(job.value("array_job_id", int64_t{0})));
    StatusOr<json> cancelled = client.Post(fmt::format("/v1/jobs/{}/cancel", job.value("id", int64_t{0})), json::object());
    if (!cancelled.ok()) code = std::max(code, ReportError(cancelled.status().WithContext("scancel"), env.err));
  }
  // Slurm's message for an id that names no live job; scancel's exit status says so too.
  for (const std::string& id : ids) {
    if (found.contains(id)) continue;
    if (!flags.Has("quiet")) env.err << fmt::format("scancel: error: Kill job error on job id {}: Invalid job id specified\n", id);
    code = std::max(code, kExitServerError);
  }
  return code;
}

// ---- sinfo --------------------------------------------------------------------------------------

// Slurm's node states for allot's: idle, mixed, allocated, draining/drained, down.
std::string NodeState(const json& node) {
  const std::string state = node.value("state", "up");
  const int allocated = node.value("gpus_allocated", 0);
  if (state == "down") return "down";
  if (state == "draining") return allocated > 0 ? "drng" : "drain";
  if (allocated == 0) return "idle";
  return allocated >= node.value("gpus", 0) ? "alloc" : "mix";
}

int RunSinfo(ApiClient& client, const std::vector<std::string>& args, const CommandEnv& env) {
  SlurmFlags flags("sinfo", {args.begin() + 1, args.end()});
  flags.Declare('p', "partition", true);
  flags.Declare('N', "Node", false);
  flags.Declare('h', "noheader", false);
  flags.Declare('t', "states", true);
  if (Status parsed = flags.Parse(); !parsed.ok()) return ReportError(parsed, env.err);
  ApiClient::Query query;
  if (flags.Has("partition")) query.emplace_back("pool", flags.Value("partition"));
  StatusOr<json> reply = client.Get("/v1/nodes", query);
  if (!reply.ok()) return ReportError(reply.status(), env.err);
  std::set<std::string> states;
  for (const std::string& state : SplitList(flags.Value("states"))) states.insert(state);
  std::vector<json> nodes;
  for (const json& node : reply->value("nodes", json::array())) {
    if (states.empty() || states.contains(NodeState(node))) nodes.push_back(node);
  }
  const bool header = !flags.Has("noheader");
  if (flags.Has("Node")) {
    if (header) env.out << "NODELIST   NODES PARTITION STATE\n";
    for (const json& node : nodes) {
      env.out << fmt::format("{:<10} {:>5} {:<9} {:>5}\n", node.value("name", ""), 1, node.value("pool", ""), NodeState(node));
    }
    return kExitOk;
  }
  // One line per partition and state, as sinfo's default summary.
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> groups;
  std::vector<std::string> pools;
  for (const json& node : nodes) {
    std::string pool = node.value("pool", "");
    if (std::find(pools.begin(), pools.end(), pool) == pools.end()) pools.push_back(pool);
    groups[{pool, NodeState(node)}].push_back(node.value("name", ""));
  }
  if (header) env.out << fmt::format("{:<9} {:>5} {:>10} {:>6} {:>6} {}\n", "PARTITION", "AVAIL", "TIMELIMIT", "NODES", "STATE", "NODELIST");
  for (const std::string& pool : pools) {
    for (const auto& [key, names] : groups) {
      if (key.first != pool) continue;
      env.out << fmt::format("{:<9} {:>5} {:>10} {:>6} {:>6} {}\n", pool, "up", "infinite", names.size(), key.second,
                             CompressNodeList(names));
    }
  }
  return kExitOk;
}

// ---- sacct --------------------------------------------------------------------------------------

struct SacctField {
  std::string_view name;
  int width;
};
constexpr SacctField kSacctFields[] = {
    {"JobID", 12},  {"JobIDRaw", 12}, {"JobName", 10}, {"Partition", 10}, {"Account", 10}, {"User", 9},
    {"AllocCPUS", 10}, {"AllocGPUS", 10}, {"State", 10}, {"ExitCode", 8}, {"Elapsed", 10}, {"Start", 19},
    {"End", 19}, {"Submit", 19}, {"Timelimit", 10}, {"NNodes", 8}, {"NodeList", 15}, {"NTasks", 8},
    {"QOS", 10}, {"Reason", 20}, {"WorkDir", 20},
};

std::string SacctValue(std::string_view field, const json& job, const json* step, Time now) {
  const std::string state = step ? step->value("state", "") : job.value("state", "");
  const StateName* names = FindState(state);
  if (field == "JobID") return step ? JobIdText(job) + "." + step->value("id", "") : JobIdText(job);
  if (field == "JobIDRaw") return step ? std::to_string(job.value("id", 0)) + "." + step->value("id", "") : std::to_string(job.value("id", 0));
  if (field == "JobName") return step ? step->value("name", "") : job.value("name", "");
  if (field == "Partition") return step ? "" : Partition(job);
  if (field == "Account") return job.value("account", "");
  if (field == "User") return step ? "" : job.value("user", "");
  if (field == "AllocCPUS") return SqueueField(job, 'C', now);
  if (field == "AllocGPUS") return std::to_string(job.value("gpus", 0));
  if (field == "State") return names ? std::string(names->slurm) : Upper(state);
  if (field == "ExitCode") {
    const json& code = step ? (*step)["exit_code"] : job["exit_code"];
    return fmt::format("{}:0", code.is_number_integer() ? code.get<int>() : 0);
  }
  if (field == "Elapsed") return FormatElapsed(Elapsed(job, now));
  if (field == "Start") return job.value("start_time", Time{0}) > 0 ? FormatTimestamp(job.value("start_time", Time{0})) : "Unknown";
  if (field == "End") return job.value("end_time", Time{0}) > 0 ? FormatTimestamp(job.value("end_time", Time{0})) : "Unknown";
  if (field == "Submit") return FormatTimestamp(job.value("submit_time", Time{0}));
  if (field == "Timelimit") return step ? "" : TimeLimit(job);
  if (field == "NNodes") return step ? std::to_string(step->value("nodes", 1)) : SqueueField(job, 'D', now);
  if (field == "NodeList") return CompressNodeList(NodesOf(job));
  if (field == "NTasks") return step ? std::to_string(step->value("ntasks", 1)) : "";
  if (field == "QOS") return step ? "" : job.value("priority_class", "");
  if (field == "Reason") return state == "pending" ? SlurmReason(job) : "None";
  if (field == "WorkDir") return SqueueField(job, 'Z', now);
  return "";
}

// Slurm's date forms for -S/-E: YYYY-MM-DD[THH:MM[:SS]], or "now".
StatusOr<Time> ParseSacctTime(std::string_view text, Time now) {
  if (text == "now") return now;
  std::tm parts{};
  std::string copy(text);
  const char* end = strptime(copy.c_str(), "%Y-%m-%dT%H:%M:%S", &parts);
  if (end == nullptr || *end != '\0') {
    parts = {};
    end = strptime(copy.c_str(), "%Y-%m-%dT%H:%M", &parts);
  }
  if (end == nullptr || *end != '\0') {
    parts = {};
    end = strptime(copy.c_str(), "%Y-%m-%d", &parts);
  }
  if (end == nullptr || *end != '\0') return InvalidArgumentError("sacct: '{}' is not a time; use YYYY-MM-DD[THH:MM[:SS]]", text);
  return static_cast<Time>(timegm(&parts));
}

int RunSacct(ApiClient& client, const std::vector<std::string>& args, const CommandEnv& env) {
  SlurmFlags flags("sacct", {args.begin() + 1, args.end()});
  flags.Declare('j', "jobs", true);
  flags.Declare('u', "user", true);
  flags.Declare('A', "accounts", true);
  flags.Declare('S', "starttime", true);
  flags.Declare('E', "endtime", true);
  flags.Declare('s', "state", true);
  flags.Declare('o', "format", true);
  flags.Declare('X', "allocations", false);
  flags.Declare('n', "noheader", false);
  flags.Declare('p', "parsable", false);
  flags.Declare('P', "parsable2", false);
  flags.Declare('a', "allusers", false);
  if (Status parsed = flags.Parse(); !parsed.ok()) return ReportError(parsed, env.err);
  std::vector<SacctField> fields;
  const std::string format = flags.Has("format") ? flags.Value("format") : "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode";
  for (const std::string& item : SplitList(format)) {
    std::string name = item;
    int width = -1;
    if (size_t percent = item.find('%'); percent != std::string::npos) {
      name = item.substr(0, percent);
      width = std::atoi(item.c_str() + percent + 1);
    }
    const SacctField* known = nullptr;
    for (const SacctField& field : kSacctFields) {
      if (Upper(std::string(field.name)) == Upper(name)) known = &field;
    }
    if (known == nullptr) {
      std::vector<std::string_view> names;
      for (const SacctField& field : kSacctFields) names.push_back(field.name);
      return ReportError(InvalidArgumentError("sacct: unknown field '{}'; allot's sacct knows {}", name, fmt::join(names, ",")), env.err);
    }
    fields.push_back({known->name, width >= 0 ? width : known->width});
  }
  std::set<std::string> ids;
  for (const std::string& id : SplitList(flags.Value("jobs"))) ids.insert(id);
  // As sacct: by default the caller's own jobs since midnight; with -j, those jobs whenever.
  std::string user = flags.Value("user");
  if (user.empty() && !flags.Has("allusers") && ids.empty()) {
    StatusOr<std::string> me = WhoAmI(client);
    if (!me.ok()) return ReportError(me.status(), env.err);
    user = *me;
  }
  Time start = ids.empty() ? env.now - env.now % 86400 : 0;
  Time end = env.now + 1;
  for (auto [flag, target] : {std::pair{"starttime", &start}, std::pair{"endtime", &end}}) {
    if (!flags.Has(flag)) continue;
    StatusOr<Time> parsed = ParseSacctTime(flags.Value(flag), env.now);
    if (!parsed.ok()) return ReportError(parsed.status(), env.err);
    *target = *parsed;
  }
  StatusOr<JobFilter> filter =
      ReadJobFilter(client, flags, "sacct", "state", "pending,running,completed,failed,cancelled,timeout,node_fail");
  if (!filter.ok()) return ReportError(filter.status(), env.err);
  StatusOr<std::vector<json>> jobs =
      ListJobs(client, filter->states, flags.Value("accounts"), user, !flags.Has("allocations"));
  if (!jobs.ok()) return ReportError(jobs.status(), env.err);
  const bool parsable = flags.Has("parsable") || flags.Has("parsable2");
  auto print_row = [&](const std::vector<std::string>& values) {
    std::string line;
    for (size_t i = 0; i < fields.size(); ++i) {
      if (parsable) {
        line += values[i];
        if (i + 1 < fields.size() || flags.Has("parsable")) line += '|';
      } else {
        line += Fit(values[i], fields[i].width, fields[i].name != "JobID" && fields[i].name != "JobIDRaw" && fields[i].name != "NodeList") + ' ';
      }
    }
    env.out << line << '\n';
  };
  if (!flags.Has("noheader")) {
    std::vector<std::string> names;
    std::vector<std::string> rules;
    for (const SacctField& field : fields) {
      names.emplace_back(field.name);
      rules.emplace_back(static_cast<size_t>(field.width), '-');
    }
    print_row(names);
    if (!parsable) print_row(rules);
  }
  for (const json& job : *jobs) {
    if (!MatchesJobId(job, ids)) continue;
    // A job counts when it was eligible in the window: submitted before its end, not ended before its start.
    Time ended = job.value("end_time", Time{0});
    if (job.value("submit_time", Time{0}) >= end || (ended > 0 && ended < start)) continue;
    auto row = [&](const json* step) {
      std::vector<std::string> values;
      for (const SacctField& field : fields) values.push_back(SacctValue(field.name, job, step, env.now));
      print_row(values);
    };
    row(nullptr);
    if (flags.Has("allocations") || job.value("state", "") == "pending") continue;
    // Slurm's steps: the batch step of a batch job, then each srun.
    const bool batch = job.contains("spec") && job["spec"].value("batch", false);
    if (batch) {
      json step = {{"id", "batch"}, {"name", "batch"}, {"state", job.value("state", "")}, {"exit_code", job["exit_code"]},
                   {"nodes", 1}, {"ntasks", 1}};
      row(&step);
    }
    // Each srun, named after its program as Slurm names steps.
    for (const json& step : job.value("steps", json::array())) {
      json shown = step;
      shown["id"] = std::to_string(step.value("step", 0));
      const json argv = step.value("argv", json::array());
      shown["name"] = argv.empty() || !argv[0].is_string() ? "" : std::filesystem::path(argv[0].get<std::string>()).filename().string();
      row(&shown);
    }
  }
  return kExitOk;
}

// ---- scontrol -----------------------------------------------------------------------------------

int RunScontrol(ApiClient* client, const std::vector<std::string>& args, const CommandEnv& env) {
  const std::vector<std::string> words(args.begin() + 1, args.end());
  auto usage = [&] {
    return ReportError(InvalidArgumentError("scontrol: allot supports show job ID, show node NAME, show hostnames [LIST], "
                                            "show hostlist LIST, hold ID, release ID (docs/slurm.md)"),
                       env.err);
  };
  if (words.empty()) return usage();
  const std::string verb = words[0];
  if (verb == "show" && words.size() >= 2 && (words[1] == "hostnames" || words[1] == "hostlist")) {
    std::string list = words.size() > 2 ? words[2] : "";
    if (list.empty()) {
      const char* from_job = std::getenv("SLURM_JOB_NODELIST");
      if (from_job == nullptr) return ReportError(InvalidArgumentError("scontrol: give a host list, or run inside a job"), env.err);
      list = from_job;
    }
    StatusOr<std::vector<std::string>> hosts = ExpandHostList(list);
    if (!hosts.ok()) return ReportError(hosts.status(), env.err);
    if (words[1] == "hostlist") {
      env.out << CompressNodeList(*hosts) << '\n';
    } else {
      for (const std::string& host : *hosts) env.out << host << '\n';
    }
    return kExitOk;
  }
  if (client == nullptr) return kExitServerError;
  if (verb == "show" && words.size() == 3 && (words[1] == "job" || words[1] == "jobid")) {
    return RunShow(*client, words[2], OutputFormat::kTable, env);
  }
  if (verb == "show" && words.size() >= 2 && (words[1] == "node" || words[1] == "nodes")) {
    StatusOr<json> reply = client->Get("/v1/nodes");
    if (!reply.ok()) return ReportError(reply.status(), env.err);
    bool any = false;
    for (const json& node : reply->value("nodes", json::array())) {
      if (words.size() > 2 && node.value("name", "") != words[2]) continue;
      any = true;
      env.out << fmt::format("NodeName={} State={} Partitions={}\n   Gres=gpu:{}:{} GresUsed=gpu:{}:{} CPUTot={} RealMemory={}\n",
                             node.value("name", ""), Upper(NodeState(node)), node.value("pool", ""),
                             node.value("gpu_model", ""), node.value("gpus", 0), node.value("gpu_model", ""),
                             node.value("gpus_allocated", 0), node.value("cpus", 0), node.value("memory", int64_t{0}) >> 20);
      if (!node.value("reason", "").empty()) env.out << "   Reason=" << node.value("reason", "") << '\n';
      env.out << '\n';
    }
    if (!any && words.size() > 2) return ReportError(NotFoundError("scontrol: node {} not found", words[2]), env.err);
    return kExitOk;
  }
  if ((verb == "hold" || verb == "release") && words.size() >= 2) {
    return RunJobAction(*client, verb == "hold" ? JobAction::kHold : JobAction::kRelease,
                        std::vector<std::string>(words.begin() + 1, words.end()), env);
  }
  return usage();
}

}  // namespace

bool IsSlurmCommand(std::string_view name) {
  return std::find(std::begin(kSlurmCommands), std::end(kSlurmCommands), name) != std::end(kSlurmCommands);
}

int RunSlurmCommand(ApiClient& client, const std::vector<std::string>& args, const CommandEnv& env) {
  const std::string& name = args.at(0);
  if (name == "sbatch") return RunSbatch(client, args, env);
  if (name == "squeue") return RunSqueue(client, args, env);
  if (name == "scancel") return RunScancel(client, args, env);
  if (name == "sinfo") return RunSinfo(client, args, env);
  if (name == "sacct") return RunSacct(client, args, env);
  if (name == "scontrol") return RunScontrol(&client, args, env);
  return ReportError(InvalidArgumentError("'{}' is not one of the Slurm commands allot provides", name), env.err);
}

int RunSlurmCommandFromEnvironment(const std::vector<std::string>& args, const CommandEnv& env) {
  // Host lists need no server (scripts call them on nodes before anything else).
  if (args.size() >= 3 && args[0] == "scontrol" && args[1] == "show" && (args[2] == "hostnames" || args[2] == "hostlist")) {
    return RunScontrol(nullptr, args, env);
  }
  return RunWithClient({}, env.err, [&](ApiClient& client) { return RunSlurmCommand(client, args, env); });
}

}  // namespace allot
