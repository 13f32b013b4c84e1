#include "api/submit_request.h"

#include "api/submission.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>

#include "core/cluster.h"
#include "core/config.h"
#include "core/units.h"

namespace allot {
namespace {

constexpr int64_t kMaxTasks = 1000000;        // as a YAML spec allows
constexpr int64_t kMaxCpusPerTask = 1 << 20;  // as a YAML spec allows
constexpr int64_t kMaxGpuCount = 1 << 24;
constexpr int64_t kMaxArrayIndex = std::numeric_limits<int32_t>::max();
constexpr int64_t kMebibyte = int64_t{1} << 20;

// Whole text must be a non-negative decimal integer that fits in int64_t.
bool ParseInteger(std::string_view text, int64_t& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, out);
  return error == std::errc() && ptr == end && out >= 0;
}

bool IsAllDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text = text.substr(at + 1);
  }
}

std::string Lowercase(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// ---------------------------------------------------------------------------------------------
// Values of single options. Messages say what the value should look like; the caller prefixes
// the file, the line and the option.

StatusOr<int64_t> ParseCount(std::string_view text, int64_t max, std::string_view example) {
  int64_t count = 0;
  if (!ParseInteger(text, count) || count < 1) {
    return InvalidArgumentError("'{}' is not a count; write a whole number of at least 1, e.g. {}",
                                text, example);
  }
  if (count > max) {
    return InvalidArgumentError("{} is more than allot accepts (at most {})", count, max);
  }
  return count;
}

// "4", or "4-4": a range is accepted only when both ends agree, since a gang has one size.
StatusOr<int64_t> ParseNodeCount(std::string_view text) {
  size_t dash = text.find('-');
  if (dash == std::string_view::npos) return ParseCount(text, kMaxTasks, "4");
  int64_t low = 0;
  int64_t high = 0;
  if (ParseInteger(text.substr(0, dash), low) && ParseInteger(text.substr(dash + 1), high) &&
      low == high) {
    return ParseCount(text.substr(0, dash), kMaxTasks, "4");
  }
  return InvalidArgumentError(
      "'{}' is not one node count; allot starts a gang on a fixed number of nodes, so give one "
      "number, e.g. 4",
      text);
}

struct GpuCount {
  std::string type;  // "" when the option names none
  int64_t count = 0;
};

constexpr std::string_view kTypedGpuForm = "COUNT or TYPE:COUNT, e.g. 8 or h100:8";
constexpr std::string_view kGresForm = "gpu[:TYPE][:COUNT], e.g. gpu:8 or gpu:h100:8";

// The COUNT part of `text`, a GPU option's value written as `form`.
StatusOr<int64_t> ParseGpuNumber(std::string_view count_text, std::string_view text,
                                 std::string_view form) {
  int64_t count = 0;
  if (!ParseInteger(count_text, count)) {
    return InvalidArgumentError("'{}' is not a GPU count; write {}", text, form);
  }
  if (count < 1) {
    return InvalidArgumentError("'{}' asks for no GPUs; allot jobs use at least one", text);
  }
  if (count > kMaxGpuCount) {
    return InvalidArgumentError("{} GPUs is more than allot accepts (at most {})", count,
                                kMaxGpuCount);
  }
  return count;
}

// --gpus, --gpus-per-node, --gpus-per-task: "[TYPE:]COUNT".
StatusOr<GpuCount> ParseTypedGpuCount(std::string_view text) {
  if (text.find(',') != std::string_view::npos) {
    return InvalidArgumentError(
        "'{}' names several GPU types; allot jobs use one GPU model, so give one TYPE:COUNT", text);
  }
  GpuCount gpus;
  std::string_view count = text;
  if (size_t colon = text.find(':'); colon != std::string_view::npos) {
    gpus.type = std::string(text.substr(0, colon));
    count = text.substr(colon + 1);
    if (gpus.type.empty()) {
      return InvalidArgumentError("'{}' has an empty GPU type; write COUNT or TYPE:COUNT", text);
    }
  }
  ALLOT_ASSIGN_OR_RETURN(gpus.count, ParseGpuNumber(count, text, kTypedGpuForm));
  return gpus;
}

// --gres: "gpu", "gpu:COUNT", "gpu:TYPE" or "gpu:TYPE:COUNT"; COUNT is per node and defaults to 1.
StatusOr<GpuCount> ParseGres(std::string_view text) {
  std::vector<std::string_view> resources = Split(text, ',');
  if (resources.size() > 1) {
    return InvalidArgumentError(
        "'{}' names several resources; allot schedules GPUs only, so write one {}", text,
        kGresForm);
  }
  std::vector<std::string_view> parts = Split(text, ':');
  if (parts[0] != "gpu") {
    return InvalidArgumentError("'{}' is not a GPU resource; allot schedules GPUs only: write {}",
                                text, kGresForm);
  }
  if (parts.size() > 3) {
    return InvalidArgumentError("'{}' has too many parts; write gpu[:TYPE][:COUNT]", text);
  }
  GpuCount gpus;
  gpus.count = 1;
  if (parts.size() == 3 || (parts.size() == 2 && !IsAllDigits(parts[1]))) {
    gpus.type = std::string(parts[1]);
    if (gpus.type.empty()) {
      return InvalidArgumentError("'{}' has an empty GPU type; write gpu[:TYPE][:COUNT]", text);
    }
  }
  if (parts.size() == 3 || (parts.size() == 2 && IsAllDigits(parts[1]))) {
    ALLOT_ASSIGN_OR_RETURN(gpus.count, ParseGpuNumber(parts.back(), text, kGresForm));
  }
  return gpus;
}

// Slurm memory: a bare number is MiB; K, M, G, T (either case) are binary. allot's own forms
// ("64Gi", "64GB") are accepted too.
StatusOr<int64_t> ParseSlurmMemory(std::string_view text) {
  int64_t mebibytes = 0;
  if (ParseInteger(text, mebibytes)) {
    int64_t bytes = 0;
    if (__builtin_mul_overflow(mebibytes, kMebibyte, &bytes)) {
      return InvalidArgumentError("{} MiB is more memory than allot can count", mebibytes);
    }
    return bytes;
  }
  std::string normalized(text);
  if (normalized.size() >= 2 && std::isalpha(static_cast<unsigned char>(normalized.back())) &&
      std::isdigit(static_cast<unsigned char>(normalized[normalized.size() - 2]))) {
    normalized.back() =
        static_cast<char>(std::toupper(static_cast<unsigned char>(normalized.back())));
  }
  StatusOr<int64_t> bytes = ParseMemory(normalized);
  if (!bytes.ok()) {
    return InvalidArgumentError(
        "'{}' is not a memory size; write MiB (4096) or a number with K, M, G or T, e.g. 64G",
        text);
  }
  return bytes;
}

// Slurm time limits: minutes ("30"), MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
StatusOr<Duration> ParseTimeLimit(std::string_view text) {
  std::string lower = Lowercase(text);
  if (lower == "unlimited" || lower == "infinite") {
    return InvalidArgumentError(
        "'{}': allot jobs need a time limit; give one (e.g. 7-00:00:00) or leave out --time for "
        "the scheduler's default",
        text);
  }
  Duration limit = 0;
  if (int64_t minutes = 0; ParseInteger(text, minutes)) {
    if (__builtin_mul_overflow(minutes, int64_t{60}, &limit)) {
      return InvalidArgumentError("'{}' minutes is too long a time limit", text);
    }
  } else {
    StatusOr<Duration> parsed = ParseDuration(text);
    if (!parsed.ok()) {
      return InvalidArgumentError(
          "'{}' is not a time limit; write minutes (90), HH:MM:SS (01:30:00) or D-HH:MM:SS "
          "(2-00:00:00)",
          text);
    }
    limit = *parsed;
  }
  if (limit <= 0) {
    return InvalidArgumentError(
        "'{}' is no time at all; allot jobs need a positive time limit (leave out --time for the "
        "scheduler's default)",
        text);
  }
  return limit;
}

StatusOr<std::vector<std::string>> ParsePoolList(std::string_view text) {
  std::vector<std::string> pools;
  for (std::string_view pool : Split(text, ',')) {
    if (pool.empty()) {
      return InvalidArgumentError("'{}' has an empty pool name; write POOL or POOL,POOL", text);
    }
    pools.emplace_back(pool);
  }
  return pools;
}

// ---------------------------------------------------------------------------------------------
// #SBATCH lines.

struct OptionInfo {
  std::string_view name;  // long form, without "--"
  char short_name;        // 0: none
  bool takes_value;
};

constexpr OptionInfo kOptions[] = {
    {"job-name", 'J', true},  {"account", 'A', true},       {"partition", 'p', true},
    {"nodes", 'N', true},     {"ntasks", 'n', true},        {"ntasks-per-node", 0, true},
    {"gpus", 'G', true},      {"gpus-per-node", 0, true},   {"gpus-per-task", 0, true},
    {"gres", 0, true},        {"cpus-per-task", 'c', true}, {"mem", 0, true},
    {"mem-per-cpu", 0, true}, {"mem-per-gpu", 0, true},     {"time", 't', true},
    {"qos", 'q', true},       {"array", 'a', true},         {"dependency", 'd', true},
    {"output", 'o', true},    {"error", 'e', true},         {"chdir", 'D', true},
    {"exclusive", 0, false},  {"requeue", 0, false},        {"no-requeue", 0, false},
    {"hold", 'H', false},
    // Accepted and ignored: they concern mail and bookkeeping, never where or how a job runs,
    // and real scripts carry them; refusing them would only make users delete lines.
    {"mail-type", 0, true},   {"mail-user", 0, true},       {"comment", 0, true},
    {"open-mode", 0, true},
};

bool IsIgnoredOption(std::string_view name) {
  return name == "mail-type" || name == "mail-user" || name == "comment" || name == "open-mode";
}

const std::string& SupportedOptions() {
  static const std::string list = [] {
    std::string text;
    for (const OptionInfo& option : kOptions) {
      if (!text.empty()) text += ", ";
      text += fmt::format("--{}", option.name);
      if (option.short_name != 0) text += fmt::format("/-{}", option.short_name);
    }
    return text;
  }();
  return list;
}

const OptionInfo* FindLongOption(std::string_view name) {
  for (const OptionInfo& option : kOptions) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

const OptionInfo* FindShortOption(char name) {
  for (const OptionInfo& option : kOptions) {
    if (option.short_name == name) return &option;
  }
  return nullptr;
}

}  // namespace

std::optional<bool> BatchOptionTakesValue(std::string_view option) {
  const OptionInfo* info = option.size() == 1 ? FindShortOption(option[0]) : FindLongOption(option);
  if (info == nullptr) return std::nullopt;
  return info->takes_value;
}

namespace {

// The words of one #SBATCH line, as sbatch splits them: whitespace separates, quotes group,
// a backslash escapes the next character, and a word starting with an unquoted '#' begins a
// comment that runs to the end of the line.
StatusOr<std::vector<std::string>> SplitWords(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        word += c;
      }
    } else if (c == '\\' && i + 1 < text.size()) {
      word += text[++i];
      in_word = true;
    } else if (c == '"' || c == '\'') {
      quote = c;
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else if (c == '#' && !in_word) {
      break;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote != 0) return InvalidArgumentError("a {} quote is not closed", quote);
  if (in_word) words.push_back(std::move(word));
  return words;
}

// An option as the script gave it, with where: "--gres=gpu:8" on line 5.
template <typename T>
struct Given {
  T value;
  int line = 0;
  std::string option;  // long form with its value, for messages
};

// The resource options, kept as given until the whole header is read and they can be mapped to
// allot's model together.
struct ResourceOptions {
  std::optional<Given<int64_t>> nodes;
  std::optional<Given<int64_t>> ntasks;
  std::optional<Given<int64_t>> ntasks_per_node;
  std::optional<Given<int64_t>> cpus_per_task;
  std::optional<Given<GpuCount>> gpus;
  std::optional<Given<GpuCount>> gpus_per_node;
  std::optional<Given<GpuCount>> gres;
  std::optional<Given<GpuCount>> gpus_per_task;
  std::optional<Given<int64_t>> mem;
  std::optional<Given<int64_t>> mem_per_cpu;
  std::optional<Given<int64_t>> mem_per_gpu;
};

class ScriptReader {
 public:
  explicit ScriptReader(std::string_view source) : source_(source) {}

  // Applies the options of one #SBATCH line (the text after "#SBATCH").
  Status ReadDirective(std::string_view text, int line) {
    StatusOr<std::vector<std::string>> words = SplitWords(text);
    if (!words.ok()) return LineError(line, "{}", words.status().message());
    return ReadOptions(*words, line);
  }

  // Applies options given as words; line 0 is sbatch's command line.
  Status ReadOptions(const std::vector<std::string>& words_given, int line) {
    const std::vector<std::string>* words = &words_given;
    for (size_t i = 0; i < words->size(); ++i) {
      const std::string& word = (*words)[i];
      const OptionInfo* option = nullptr;
      std::optional<std::string> value;
      if (word.starts_with("--")) {
        size_t equals = word.find('=');
        std::string_view name = std::string_view(word).substr(
            2, equals == std::string::npos ? std::string::npos : equals - 2);
        option = FindLongOption(name);
        if (option == nullptr) {
          return LineError(line, "unknown #SBATCH option '--{}'; allot supports: {}", name,
                           SupportedOptions());
        }
        if (equals != std::string::npos) value = word.substr(equals + 1);
      } else if (word.size() >= 2 && word[0] == '-') {
        option = FindShortOption(word[1]);
        if (option == nullptr) {
          return LineError(line, "unknown #SBATCH option '-{}'; allot supports: {}", word[1],
                           SupportedOptions());
        }
        if (word.size() > 2) value = word.substr(2);
      } else {
        return LineError(
            line, "'{}' is not an option; #SBATCH lines hold options such as --time=01:00:00",
            word);
      }
      if (!option->takes_value) {
        if (value.has_value()) {
          return LineError(line, "--{} takes no value in allot, got '{}'", option->name, *value);
        }
      } else if (!value.has_value()) {
        if (i + 1 == words->size() || (*words)[i + 1].starts_with("-")) {
          return LineError(line, "--{} needs a value: --{}=VALUE", option->name, option->name);
        }
        value = (*words)[++i];
      }
      ALLOT_RETURN_IF_ERROR(Apply(*option, value.value_or(""), line));
    }
    return OkStatus();
  }

  // Maps the resource options onto the spec, once every line is read.
  StatusOr<SubmitRequest> Finish() && {
    ALLOT_RETURN_IF_ERROR(MapResources());
    return std::move(request_);
  }

 private:
  template <typename... Args>
  Status LineError(int line, fmt::format_string<Args...> format, Args&&... args) const {
    if (line == 0) return InvalidArgumentError("sbatch: {}", fmt::format(format, std::forward<Args>(args)...));
    return InvalidArgumentError("{}:{}: {}", source_, line,
                                fmt::format(format, std::forward<Args>(args)...));
  }

  // Stores a parsed value, or reports why it did not parse: "job.sh:4: --time: '1 hour' is ...".
  template <typename T>
  Status Store(StatusOr<T> parsed, const OptionInfo& option, int line, std::string_view value,
               std::optional<Given<T>>& target) {
    if (!parsed.ok()) return LineError(line, "--{}: {}", option.name, parsed.status().message());
    target = Given<T>{std::move(parsed).value(), line, fmt::format("--{}={}", option.name, value)};
    return OkStatus();
  }

  template <typename T>
  Status Set(StatusOr<T> parsed, const OptionInfo& option, int line, T& target) {
    if (!parsed.ok()) return LineError(line, "--{}: {}", option.name, parsed.status().message());
    target = std::move(parsed).value();
    return OkStatus();
  }

  Status SetText(const OptionInfo& option, int line, std::string_view value, std::string& target) {
    if (value.empty()) return LineError(line, "--{} needs a non-empty value", option.name);
    target = std::string(value);
    return OkStatus();
  }

  Status Apply(const OptionInfo& option, std::string_view value, int line) {
    JobSpec& spec = request_.spec;
    std::string_view name = option.name;
    if (name == "job-name") return SetText(option, line, value, spec.name);
    if (name == "account") return SetText(option, line, value, spec.account);
    if (name == "qos") return SetText(option, line, value, spec.priority_class);
    if (name == "output") return SetText(option, line, value, request_.output);
    if (name == "error") return SetText(option, line, value, request_.error);
    if (name == "chdir") return SetText(option, line, value, request_.chdir);
    if (name == "partition") return Set(ParsePoolList(value), option, line, spec.pools);
    if (name == "time") return Set(ParseTimeLimit(value), option, line, spec.time_limit);
    if (name == "nodes") return Store(ParseNodeCount(value), option, line, value, resources_.nodes);
    if (name == "ntasks") {
      return Store(ParseCount(value, kMaxTasks, "8"), option, line, value, resources_.ntasks);
    }
    if (name == "ntasks-per-node") {
      return Store(ParseCount(value, kMaxTasks, "8"), option, line, value,
                   resources_.ntasks_per_node);
    }
    if (name == "cpus-per-task") {
      return Store(ParseCount(value, kMaxCpusPerTask, "16"), option, line, value,
                   resources_.cpus_per_task);
    }
    if (name == "gpus") {
      return Store(ParseTypedGpuCount(value), option, line, value, resources_.gpus);
    }
    if (name == "gpus-per-node") {
      return Store(ParseTypedGpuCount(value), option, line, value, resources_.gpus_per_node);
    }
    if (name == "gpus-per-task") {
      return Store(ParseTypedGpuCount(value), option, line, value, resources_.gpus_per_task);
    }
    if (name == "gres") return Store(ParseGres(value), option, line, value, resources_.gres);
    if (name == "mem") return Store(ParseSlurmMemory(value), option, line, value, resources_.mem);
    if (name == "mem-per-cpu") {
      return Store(ParseSlurmMemory(value), option, line, value, resources_.mem_per_cpu);
    }
    if (name == "mem-per-gpu") {
      return Store(ParseSlurmMemory(value), option, line, value, resources_.mem_per_gpu);
    }
    if (name == "array") {
      StatusOr<ArraySpec> array = ParseArraySpec(value);
      if (!array.ok()) return LineError(line, "--array: {}", array.status().message());
      request_.array = std::move(array).value();
      return OkStatus();
    }
    if (name == "dependency") {
      return Set(ParseDependencies(value), option, line, request_.dependencies);
    }
    if (name == "exclusive") {
      request_.exclusive = true;
      return OkStatus();
    }
    if (name == "requeue" || name == "no-requeue") {
      spec.requeue = name == "requeue";
      return OkStatus();
    }
    if (name == "hold") {
      request_.hold = true;
      return OkStatus();
    }
    if (IsIgnoredOption(name)) return OkStatus();
    return InternalError("#SBATCH option '--{}' is in the table but not handled", name);
  }

  // One claim about the GPUs each allot task holds, and the option it comes from.
  struct GpuClaim {
    int64_t gpus_per_task;
    int line;
    std::string description;  // "--gres=gpu:8 asks for 8 GPUs per node"
  };

  Status MapResources() {
    const ResourceOptions& given = resources_;
    JobSpec& spec = request_.spec;

    // GPU model: every typed GPU option must name the same one.
    const Given<GpuCount>* typed = nullptr;
    for (const auto* option :
         {&given.gres, &given.gpus_per_node, &given.gpus_per_task, &given.gpus}) {
      if (!option->has_value() || (*option)->value.type.empty()) continue;
      const Given<GpuCount>& current = **option;
      if (typed != nullptr && typed->value.type != current.value.type) {
        return LineError(std::max(typed->line, current.line),
                         "{} asks for GPU type '{}' but {} for '{}'; allot jobs use one GPU model",
                         typed->option, typed->value.type, current.option, current.value.type);
      }
      typed = &current;
    }
    if (typed != nullptr) spec.gpu_model = typed->value.type;

    // Tasks: one allot task per node when the script counts nodes, else one per Slurm task.
    bool by_node =
        given.nodes || given.ntasks_per_node || !given.ntasks || given.ntasks->value == 1;
    int64_t tasks = 1;
    int64_t processes = 1;  // Slurm tasks per allot task
    if (by_node) {
      if (given.nodes && given.ntasks_per_node) {
        tasks = given.nodes->value;
        processes = given.ntasks_per_node->value;
        if (given.ntasks && given.ntasks->value != tasks * processes) {
          return LineError(given.ntasks->line,
                           "{} contradicts {} with {} ({} tasks); give two of the three",
                           given.ntasks->option, given.nodes->option, given.ntasks_per_node->option,
                           tasks * processes);
        }
      } else if (given.nodes) {
        tasks = given.nodes->value;
        if (given.ntasks) {
          if (given.ntasks->value % tasks != 0) {
            return LineError(given.ntasks->line,
                             "{} does not split evenly over {} nodes ({}); allot gives every node "
                             "the same number of tasks, so use a multiple of {}",
                             given.ntasks->option, tasks, given.nodes->option, tasks);
          }
          processes = given.ntasks->value / tasks;
        }
      } else if (given.ntasks_per_node) {
        processes = given.ntasks_per_node->value;
        if (given.ntasks) {
          if (given.ntasks->value % processes != 0) {
            return LineError(
                given.ntasks->line,
                "{} is not a multiple of {}; allot gives every node the same number of tasks",
                given.ntasks->option, given.ntasks_per_node->option);
          }
          tasks = given.ntasks->value / processes;
        }
      }
    } else {
      tasks = given.ntasks->value;
      for (const auto* option : {&given.gres, &given.gpus_per_node}) {
        if (!option->has_value()) continue;
        return LineError((*option)->line,
                         "{} counts GPUs per node, but with {} and no --nodes the number of nodes "
                         "is open; add --nodes or --ntasks-per-node, or use --gpus-per-task",
                         (*option)->option, given.ntasks->option);
      }
      if (given.mem) {
        return LineError(
            given.mem->line,
            "{} is memory per node, but with {} and no --nodes the number of nodes is open; add "
            "--nodes or --ntasks-per-node, or use --mem-per-cpu or --mem-per-gpu",
            given.mem->option, given.ntasks->option);
      }
    }

    // GPUs per allot task: every option that counts them must agree.
    std::string_view unit = by_node ? "node" : "task";
    std::vector<GpuClaim> claims;
    for (const auto* option : {&given.gres, &given.gpus_per_node}) {
      if (!option->has_value()) continue;
      const Given<GpuCount>& per_node = **option;
      claims.push_back(
          {per_node.value.count, per_node.line,
           fmt::format("{} asks for {} GPUs per node", per_node.option, per_node.value.count)});
    }
    if (given.gpus_per_task) {
      const Given<GpuCount>& per_task = *given.gpus_per_task;
      int64_t count = per_task.value.count * processes;
      claims.push_back(
          {count, per_task.line,
           processes == 1 ? fmt::format("{} asks for {} GPUs per {}", per_task.option, count, unit)
                          : fmt::format("{} with {} tasks per node asks for {} GPUs per node",
                                        per_task.option, processes, count)});
    }
    if (given.gpus) {
      const Given<GpuCount>& total = *given.gpus;
      if (total.value.count % tasks != 0) {
        return LineError(total.line,
                         "{} does not split evenly over {} {}s; allot gives every {} the same "
                         "number of GPUs, so use a multiple of {} or {}",
                         total.option, tasks, unit, unit, tasks,
                         by_node ? "--gpus-per-node" : "--gpus-per-task");
      }
      int64_t count = total.value.count / tasks;
      claims.push_back({count, total.line,
                        tasks == 1 ? fmt::format("{} asks for {} GPUs", total.option, count)
                                   : fmt::format("{} over {} {}s asks for {} GPUs per {}",
                                                 total.option, tasks, unit, count, unit)});
    }
    for (const GpuClaim& claim : claims) {
      if (claim.gpus_per_task != claims.front().gpus_per_task) {
        return LineError(std::max(claim.line, claims.front().line),
                         "{} but {}; make them agree or give only one", claims.front().description,
                         claim.description);
      }
    }
    int64_t gpus_per_task = claims.empty() ? 1 : claims.front().gpus_per_task;
    if (gpus_per_task > kMaxGpusPerNode) {
      return LineError(claims.front().line,
                       "{}, but a node holds at most {} GPUs; spread the job over more nodes, e.g. "
                       "--nodes={} --gpus-per-node=8",
                       claims.front().description, kMaxGpusPerNode,
                       (gpus_per_task * tasks + 7) / 8);
    }

    // CPUs: Slurm counts them per Slurm task.
    int64_t cpus_per_task = 0;
    if (given.cpus_per_task) {
      cpus_per_task = given.cpus_per_task->value * processes;
      if (cpus_per_task > kMaxCpusPerTask) {
        return LineError(given.cpus_per_task->line,
                         "{} with {} tasks per node asks for {} CPUs per node, more than allot "
                         "accepts (at most {})",
                         given.cpus_per_task->option, processes, cpus_per_task, kMaxCpusPerTask);
      }
    }

    // Memory: per node, per CPU or per GPU, one of them.
    const Given<int64_t>* memory = nullptr;
    int64_t memory_multiplier = 1;  // what the option's amount is per, in one allot task
    struct MemoryOption {
      const std::optional<Given<int64_t>>* option;
      int64_t multiplier;
    };
    for (MemoryOption candidate :
         {MemoryOption{&given.mem, 1},
          MemoryOption{&given.mem_per_cpu, given.cpus_per_task ? cpus_per_task : processes},
          MemoryOption{&given.mem_per_gpu, gpus_per_task}}) {
      if (!candidate.option->has_value()) continue;
      const Given<int64_t>& current = **candidate.option;
      if (memory != nullptr) {
        return LineError(std::max(memory->line, current.line),
                         "{} and {} exclude each other, as in Slurm; give one", memory->option,
                         current.option);
      }
      memory = &current;
      memory_multiplier = candidate.multiplier;
    }
    int64_t memory_per_task = 0;
    if (memory != nullptr &&
        __builtin_mul_overflow(memory->value, memory_multiplier, &memory_per_task)) {
      return LineError(memory->line, "{} adds up to more memory per {} than allot can count",
                       memory->option, unit);
    }

    spec.tasks = static_cast<int>(tasks);
    // Counted in nodes, the job's tasks are nodes: Slurm's --nodes=N is N distinct nodes, and an
    // --exclusive job has its nodes to itself.
    spec.one_task_per_node = (by_node && (given.nodes || given.ntasks_per_node)) || request_.exclusive;
    spec.gpus_per_task = static_cast<int>(gpus_per_task);
    spec.cpus_per_task = static_cast<int>(cpus_per_task);
    spec.memory_per_task = memory_per_task;
    request_.processes_per_task = static_cast<int>(processes);
    return OkStatus();
  }

  std::string_view source_;
  SubmitRequest request_;
  ResourceOptions resources_;
};

bool StartsWithDirective(std::string_view line) { return line.starts_with("#SBATCH"); }

bool LooksLikeBatchScript(std::string_view text) {
  if (text.starts_with("#!")) return true;
  for (std::string_view line : Split(text, '\n')) {
    if (StartsWithDirective(line)) return true;
  }
  return false;
}

}  // namespace

StatusOr<ArraySpec> ParseArraySpec(std::string_view text) {
  auto malformed = [&](std::string_view why) {
    return InvalidArgumentError(
        "'{}' is not an array spec ({}); write indexes and ranges such as 0-15, 1,3,5-7, 0-15:4 or "
        "0-99%10",
        text, why);
  };
  auto too_many = [&] {
    return InvalidArgumentError(
        "'{}' has more than {} elements; split the work into fewer, "
        "larger elements or several arrays",
        text, kMaxArrayElements);
  };
  ArraySpec array;
  std::string_view list = text;
  if (size_t percent = text.find('%'); percent != std::string_view::npos) {
    int64_t limit = 0;
    if (!ParseInteger(text.substr(percent + 1), limit) || limit < 1 || limit > kMaxArrayIndex) {
      return malformed("after '%' comes how many elements may run at once, at least 1");
    }
    array.max_concurrent = static_cast<int>(limit);
    list = text.substr(0, percent);
  }
  std::set<int> indexes;
  for (std::string_view item : Split(list, ',')) {
    if (item.empty()) return malformed("an empty item");
    int64_t step = 1;
    std::string_view range = item;
    if (size_t colon = item.find(':'); colon != std::string_view::npos) {
      if (!ParseInteger(item.substr(colon + 1), step) || step < 1) {
        return malformed(fmt::format("'{}' needs a step of at least 1 after ':'", item));
      }
      range = item.substr(0, colon);
      if (range.find('-') == std::string_view::npos) {
        return malformed(fmt::format("'{}' has a step but no range", item));
      }
    }
    int64_t first = 0;
    int64_t last = 0;
    size_t dash = range.find('-');
    if (!ParseInteger(range.substr(0, dash), first) ||
        (dash != std::string_view::npos && !ParseInteger(range.substr(dash + 1), last))) {
      return malformed(fmt::format("'{}' is not an index or a range FIRST-LAST", item));
    }
    if (dash == std::string_view::npos) last = first;
    if (last < first) return malformed(fmt::format("'{}' runs backwards", item));
    if (last > kMaxArrayIndex) {
      return malformed(fmt::format("indexes go up to {}", kMaxArrayIndex));
    }
    if ((last - first) / step + 1 > kMaxArrayElements) {
      return too_many();
    }
    for (int64_t index = first; index <= last; index += step) {
      indexes.insert(static_cast<int>(index));
    }
    if (indexes.size() > static_cast<size_t>(kMaxArrayElements)) {
      return too_many();
    }
  }
  array.indexes.assign(indexes.begin(), indexes.end());
  return array;
}

std::string_view DependencyTypeName(DependencyType type) {
  switch (type) {
    case DependencyType::kAfter:
      return "after";
    case DependencyType::kAfterAny:
      return "afterany";
    case DependencyType::kAfterOk:
      return "afterok";
    case DependencyType::kAfterNotOk:
      return "afternotok";
    case DependencyType::kSingleton:
      return "singleton";
  }
  return "unknown";
}

StatusOr<std::vector<Dependency>> ParseDependencies(std::string_view text) {
  if (text.find('?') != std::string_view::npos) {
    return InvalidArgumentError(
        "'{}' uses '?' (any of), which allot does not support: a job waits for all its "
        "dependencies, separated by ','",
        text);
  }
  static constexpr DependencyType kTypes[] = {DependencyType::kAfter, DependencyType::kAfterAny,
                                              DependencyType::kAfterOk, DependencyType::kAfterNotOk,
                                              DependencyType::kSingleton};
  std::vector<Dependency> dependencies;
  for (std::string_view item : Split(text, ',')) {
    std::vector<std::string_view> parts = Split(item, ':');
    if (IsAllDigits(parts[0])) {
      return InvalidArgumentError(
          "'{}' has no dependency type; write TYPE:JOB[:JOB...], e.g. afterok:123:124", item);
    }
    const DependencyType* type = std::find_if(std::begin(kTypes), std::end(kTypes), [&](auto t) {
      return DependencyTypeName(t) == parts[0];
    });
    if (type == std::end(kTypes)) {
      return InvalidArgumentError(
          "'{}' is not a dependency type allot supports; use after, afterany, afterok, afternotok "
          "or singleton",
          parts[0]);
    }
    if (*type == DependencyType::kSingleton) {
      if (parts.size() > 1) {
        return InvalidArgumentError("'{}': singleton names no jobs; write just singleton", item);
      }
      dependencies.push_back({DependencyType::kSingleton, 0});
      continue;
    }
    if (parts.size() == 1) {
      return InvalidArgumentError("'{}' names no job; write {}:JOB[:JOB...], e.g. {}:123", item,
                                  parts[0], parts[0]);
    }
    for (size_t i = 1; i < parts.size(); ++i) {
      std::string_view job_text = parts[i];
      if (job_text.find('+') != std::string_view::npos) {
        return InvalidArgumentError("'{}': delays after a job ('+MINUTES') are not supported",
                                    item);
      }
      if (job_text.find('_') != std::string_view::npos) {
        return InvalidArgumentError(
            "'{}' names an array element; allot dependencies name whole jobs", job_text);
      }
      JobId job = 0;
      const char* end = job_text.data() + job_text.size();
      auto [ptr, error] = std::from_chars(job_text.data(), end, job);
      if (job_text.empty() || error != std::errc() || ptr != end || job == 0) {
        return InvalidArgumentError("'{}' in '{}' is not a job id (a number from 1)", job_text,
                                    item);
      }
      dependencies.push_back({*type, job});
    }
  }
  return dependencies;
}

StatusOr<SubmitRequest> ParseBatchScript(std::string_view text, std::string_view source,
                                         const std::vector<std::string>& command_line) {
  if (text.empty()) {
    return InvalidArgumentError(
        "{}: the file is empty; a batch script starts with a line such as #!/bin/bash", source);
  }
  if (!text.starts_with("#!")) {
    return InvalidArgumentError(
        "{}:1: a batch script must start with an interpreter line such as #!/bin/bash; allot runs "
        "the script with it",
        source);
  }
  ScriptReader reader(source);
  bool in_header = true;  // sbatch reads #SBATCH lines only until the first command
  int line_number = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_number;
    if (line.ends_with('\r')) {
      return InvalidArgumentError(
          "{}:{}: the script has Windows line endings (\\r\\n), which the shell would choke on; "
          "convert it, e.g. with dos2unix",
          source, line_number);
    }
    if (!in_header) continue;
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos) continue;
    if (line[first] != '#') {
      in_header = false;
      continue;
    }
    if (StartsWithDirective(line)) {
      ALLOT_RETURN_IF_ERROR(reader.ReadDirective(line.substr(7), line_number));
    }
  }
  // sbatch's own options come after the script's, so they win, as in Slurm.
  ALLOT_RETURN_IF_ERROR(reader.ReadOptions(command_line, 0));
  ALLOT_ASSIGN_OR_RETURN(SubmitRequest request, std::move(reader).Finish());
  request.script = std::string(text);
  request.batch = true;
  return request;
}

StatusOr<SubmitRequest> ParseSubmitFile(std::string_view text, std::string_view source) {
  if (LooksLikeBatchScript(text)) return ParseBatchScript(text, source);
  return ParseSubmission(text, source);
}

}  // namespace allot
