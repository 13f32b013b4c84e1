#include "sim/trace.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <utility>

namespace allot {
namespace {

// Enough to see what is wrong with a file without holding a message per line of a broken one.
constexpr size_t kMaxProblems = 100;
// Times beyond this (about 31,700 years) are corrupt data, and rounding them could overflow.
constexpr double kMaxSeconds = 1e12;
// Job numbers are kept exact only while a double holds them exactly.
constexpr double kMaxJobNumber = 9007199254740992.0;  // 2^53

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsBlank(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsBlank(text.back())) text.remove_suffix(1);
  return text;
}

// Spreadsheets save CSV files with a UTF-8 byte order mark; it is not part of the header.
std::string_view StripByteOrderMark(std::string_view text) {
  constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
  if (text.starts_with(kByteOrderMark)) text.remove_prefix(kByteOrderMark.size());
  return text;
}

// Walks the lines of a text in memory, numbering them from 1. A trailing "\r" (a file saved on
// Windows) is not part of the line.
class LineCursor {
 public:
  explicit LineCursor(std::string_view text) : rest_(text) {}

  // False once every line has been returned.
  bool Next(std::string_view& line) {
    if (rest_.empty()) return false;
    size_t end = rest_.find('\n');
    line = rest_.substr(0, end);
    rest_ = end == std::string_view::npos ? std::string_view() : rest_.substr(end + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    ++number_;
    return true;
  }
  int number() const { return number_; }

 private:
  std::string_view rest_;
  int number_ = 0;
};

// Splits on runs of spaces and tabs. Stores at most fields.size() fields but returns how many
// the line has, so a caller can tell a line that has too many.
size_t SplitWhitespace(std::string_view line, std::span<std::string_view> fields) {
  size_t count = 0;
  size_t i = 0;
  while (true) {
    while (i < line.size() && IsBlank(line[i])) ++i;
    if (i == line.size()) return count;
    size_t start = i;
    while (i < line.size() && !IsBlank(line[i])) ++i;
    if (count < fields.size()) fields[count] = line.substr(start, i - start);
    ++count;
  }
}

// Splits on commas and trims each cell; stores and counts as SplitWhitespace does. Cells are not
// quoted: trace cells are numbers and names, none of which holds a comma.
size_t SplitCells(std::string_view line, std::span<std::string_view> cells) {
  size_t count = 0;
  while (true) {
    size_t comma = line.find(',');
    if (count < cells.size()) cells[count] = Trim(line.substr(0, comma));
    ++count;
    if (comma == std::string_view::npos) return count;
    line.remove_prefix(comma + 1);
  }
}

// A decimal number: "12", "-1", "12.5", "1e3". Not hex, not "inf" or "nan", no leading '+'.
bool ParseNumber(std::string_view text, double& value) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  // Nearly every field of a trace is an integer, and reading one as such is several times faster.
  int64_t whole = 0;
  auto [whole_end, whole_error] = std::from_chars(text.data(), end, whole);
  if (whole_error == std::errc() && whole_end == end) {
    value = static_cast<double>(whole);
    return true;
  }
  auto [number_end, number_error] = std::from_chars(text.data(), end, value);
  return number_error == std::errc() && number_end == end && std::isfinite(value);
}

// Trace times may carry fractions of a second; the simulator counts whole seconds.
bool ToSeconds(double value, int64_t& seconds) {
  if (!(value >= 0 && value <= kMaxSeconds)) return false;
  seconds = std::llround(value);
  return true;
}

// A count written as a number: "16", or "16.0" as some archives write it.
bool ToCount(double value, double min, double max, int64_t& count) {
  if (value != std::floor(value) || value < min || value > max) return false;
  count = static_cast<int64_t>(value);
  return true;
}

bool ParseDigits(std::string_view text, int& value) {
  if (text.empty()) return false;
  value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  return true;
}

// "YYYY-MM-DD HH:MM:SS" in UTC, to seconds since 1970-01-01.
bool ParseTimestamp(std::string_view text, Time& seconds) {
  if (text.size() != 19 || text[4] != '-' || text[7] != '-' || text[10] != ' ' || text[13] != ':' ||
      text[16] != ':') {
    return false;
  }
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!ParseDigits(text.substr(0, 4), year) || !ParseDigits(text.substr(5, 2), month) ||
      !ParseDigits(text.substr(8, 2), day) || !ParseDigits(text.substr(11, 2), hour) ||
      !ParseDigits(text.substr(14, 2), minute) || !ParseDigits(text.substr(17, 2), second)) {
    return false;
  }
  std::chrono::year_month_day date{std::chrono::year(year),
                                   std::chrono::month(static_cast<unsigned>(month)),
                                   std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok() || hour > 23 || minute > 59 || second > 59) return false;
  int64_t days = std::chrono::sys_days(date).time_since_epoch().count();
  seconds = days * 86400 + hour * 3600 + minute * 60 + second;
  return true;
}

// Collects one trace's jobs and applies the bad-line policy: in strict mode the first bad line
// ends the read; otherwise the line is skipped, counted and (the first kMaxProblems) described.
class TraceBuilder {
 public:
  TraceBuilder(std::string_view source, bool strict) : strict_(strict) {
    trace_.source = std::string(source);
  }

  // `problem` says what is wrong with line `line`. Returns the error that ends the read in
  // strict mode, else OK.
  Status Reject(int line, const Status& problem) {
    std::string message = fmt::format("{}:{}: {}", trace_.source, line, problem.message());
    if (strict_) return Status(StatusCode::kInvalidArgument, std::move(message));
    ++trace_.skipped;
    if (trace_.problems.size() < kMaxProblems) trace_.problems.push_back(std::move(message));
    return OkStatus();
  }

  // A problem with the whole file, such as its header: an error in every mode, since no line
  // of it can be read.
  Status FileError(int line, const Status& problem) const {
    return InvalidArgumentError("{}:{}: {}", trace_.source, line, problem.message());
  }

  void Reserve(size_t jobs) { trace_.jobs.reserve(jobs); }
  void Add(TraceJob job) { trace_.jobs.push_back(std::move(job)); }
  std::vector<TraceJob>& jobs() { return trace_.jobs; }

  Trace Finish() && {
    const auto by_submit = [](const TraceJob& a, const TraceJob& b) { return a.submit < b.submit; };
    // Traces are nearly always in submit order already; checking is far cheaper than sorting.
    if (!std::is_sorted(trace_.jobs.begin(), trace_.jobs.end(), by_submit)) {
      std::stable_sort(trace_.jobs.begin(), trace_.jobs.end(), by_submit);
    }
    return std::move(trace_);
  }

 private:
  bool strict_;
  Trace trace_;
};

// ---- swf ----

constexpr size_t kSwfFieldCount = 18;

// A field as the SWF definition numbers (from 1) and names it, for messages.
struct SwfField {
  size_t number;
  std::string_view name;
};
constexpr SwfField kJobNumber{1, "job number"};
constexpr SwfField kSubmitTime{2, "submit time"};
constexpr SwfField kRunTime{4, "run time"};
constexpr SwfField kAllocatedProcessors{5, "allocated processors"};
constexpr SwfField kRequestedProcessors{8, "requested processors"};
constexpr SwfField kRequestedTime{9, "requested time"};
constexpr SwfField kUserId{12, "user id"};

Status ParseSwfLine(std::string_view line, TraceJob& job) {
  std::array<std::string_view, kSwfFieldCount> texts;
  size_t count = SplitWhitespace(line, texts);
  if (count != kSwfFieldCount) {
    return InvalidArgumentError("has {} fields; an SWF line has {}, separated by spaces", count,
                                kSwfFieldCount);
  }
  std::array<double, kSwfFieldCount> values{};
  for (size_t i = 0; i < kSwfFieldCount; ++i) {
    if (!ParseNumber(texts[i], values[i])) {
      return InvalidArgumentError(
          "field {} is '{}', not a number; SWF fields are numbers (-1: unknown)", i + 1, texts[i]);
    }
  }
  const auto value = [&](const SwfField& field) { return values[field.number - 1]; };
  const auto wrong = [&](const SwfField& field, std::string_view requirement) {
    return InvalidArgumentError("field {} ({}) is {}; {}", field.number, field.name,
                                texts[field.number - 1], requirement);
  };

  int64_t id = 0;
  if (!ToCount(value(kJobNumber), 0, kMaxJobNumber, id)) {
    return wrong(kJobNumber, "it must be a whole number, 0 or more");
  }
  job.id = static_cast<JobId>(id);
  if (!ToSeconds(value(kSubmitTime), job.submit)) {
    return wrong(kSubmitTime, "it must be seconds since the start of the trace, 0 or more");
  }
  // Archives keep jobs cancelled before they started, with run time -1: nothing to replay.
  if (value(kRunTime) == -1) return wrong(kRunTime, "the job never ran, so it cannot be replayed");
  if (!ToSeconds(value(kRunTime), job.runtime)) {
    return wrong(kRunTime, "it must be seconds, 0 or more");
  }

  const SwfField& processors_field =
      value(kAllocatedProcessors) == -1 ? kRequestedProcessors : kAllocatedProcessors;
  int64_t processors = 0;
  if (!ToCount(value(processors_field), 1, INT_MAX, processors)) {
    if (value(kAllocatedProcessors) == -1 && value(kRequestedProcessors) == -1) {
      return InvalidArgumentError(
          "fields 5 and 8 (allocated and requested processors) are both -1; "
          "one of them must give the job's size");
    }
    return wrong(processors_field, "it must be a whole number, at least 1");
  }
  job.tasks = static_cast<int>(processors);
  job.gpus_per_task = 1;

  // -1 is "unknown"; 0 cannot be meant either (the job would be killed at once), so both fall
  // back to the run time, as if the owner had asked for exactly what the job used.
  Duration requested = 0;
  if (value(kRequestedTime) != -1 && !ToSeconds(value(kRequestedTime), requested)) {
    return wrong(kRequestedTime, "it must be seconds, 0 or more (-1: unknown)");
  }
  job.time_limit = std::max<Duration>(1, requested > 0 ? requested : job.runtime);

  int64_t user = 0;
  if (value(kUserId) == -1) {
    job.account = "default";
  } else if (ToCount(value(kUserId), 0, kMaxJobNumber, user)) {
    job.account = fmt::format("user{}", user);
  } else {
    return wrong(kUserId, "it must be a whole number, 0 or more (-1: unknown)");
  }
  return OkStatus();
}

Status ReadSwf(std::string_view text, TraceBuilder& builder) {
  LineCursor lines(text);
  std::string_view line;
  while (lines.Next(line)) {
    std::string_view content = Trim(line);
    if (content.empty() || content.front() == ';') continue;
    TraceJob job;
    job.line = lines.number();
    if (Status status = ParseSwfLine(content, job); !status.ok()) {
      ALLOT_RETURN_IF_ERROR(builder.Reject(job.line, status));
      continue;
    }
    builder.Add(std::move(job));
  }
  return OkStatus();
}

// ---- philly ----

constexpr std::string_view kPhillyHeader = "timestamp,duration,num_gpus,gpu_time,cluster";
constexpr size_t kPhillyCellCount = 5;

// Leaves job.submit as Unix seconds; ReadPhilly makes it relative once it knows the earliest.
Status ParsePhillyRow(std::string_view line, const TraceReadOptions& options, TraceJob& job) {
  std::array<std::string_view, kPhillyCellCount> cells;
  size_t count = SplitCells(line, cells);
  if (count != kPhillyCellCount) {
    return InvalidArgumentError("has {} cells; a philly row has {}: {}", count, kPhillyCellCount,
                                kPhillyHeader);
  }
  const auto& [timestamp, duration, num_gpus, gpu_time, cluster] = cells;
  (void)gpu_time;  // duration x num_gpus: nothing the simulator needs
  if (!ParseTimestamp(timestamp, job.submit)) {
    return InvalidArgumentError("timestamp is '{}'; write it as YYYY-MM-DD HH:MM:SS (UTC)",
                                timestamp);
  }
  double seconds = 0;
  if (!ParseNumber(duration, seconds) || !ToSeconds(seconds, job.runtime)) {
    return InvalidArgumentError("duration is '{}'; it must be seconds, 0 or more", duration);
  }
  double gpus = 0;
  int64_t gpu_count = 0;
  if (!ParseNumber(num_gpus, gpus) || !ToCount(gpus, 1, INT_MAX, gpu_count)) {
    return InvalidArgumentError("num_gpus is {}; a job needs a whole number of GPUs, at least 1",
                                num_gpus);
  }
  if (cluster.empty()) {
    return InvalidArgumentError(
        "cluster is empty; it names the job's virtual cluster, its account");
  }
  // Philly records no requested time: the owner is taken to have asked for what the job used.
  job.time_limit = std::max<Duration>(1, job.runtime);
  SplitGpus(gpu_count, options.gpus_per_node, job.tasks, job.gpus_per_task);
  job.account = std::string(cluster);
  return OkStatus();
}

Status ReadPhilly(std::string_view text, const TraceReadOptions& options, TraceBuilder& builder) {
  LineCursor lines(text);
  std::string_view line;
  bool header_seen = false;
  JobId row = 0;
  Time earliest = kForever;
  while (lines.Next(line)) {
    if (Trim(line).empty()) continue;
    if (!header_seen) {
      if (Trim(line) != kPhillyHeader) {
        return builder.FileError(
            lines.number(),
            InvalidArgumentError("the header is '{}'; a philly trace starts with '{}' (for "
                                 "other columns use the csv format)",
                                 line, kPhillyHeader));
      }
      header_seen = true;
      continue;
    }
    TraceJob job;
    job.line = lines.number();
    job.id = ++row;
    if (Status status = ParsePhillyRow(line, options, job); !status.ok()) {
      ALLOT_RETURN_IF_ERROR(builder.Reject(job.line, status));
      continue;
    }
    earliest = std::min(earliest, job.submit);
    builder.Add(std::move(job));
  }
  for (TraceJob& job : builder.jobs()) job.submit -= earliest;
  return OkStatus();
}

// ---- csv ----

enum class Column : uint8_t {
  kSubmitTime,
  kDuration,
  kGpus,
  kAccount,
  kTimeLimit,
  kPriority,
  kGpusPerTask,
  kPool,
  kCancelAfter,
};
// Indexed by Column; the first kRequiredColumns are required.
constexpr std::array<std::string_view, 9> kColumnNames = {
    "submit_time", "duration",      "gpus", "account",      "time_limit",
    "priority",    "gpus_per_task", "pool", "cancel_after",
};
constexpr size_t kColumnCount = kColumnNames.size();
constexpr size_t kRequiredColumns = 4;

// Where each column sits in a row of one file.
struct CsvLayout {
  std::array<int, kColumnCount> position;  // -1: the file has no such column
  size_t width = 0;                        // cells per row
};

StatusOr<CsvLayout> ParseCsvHeader(std::string_view line) {
  std::vector<std::string_view> names(SplitCells(line, {}));  // first only counted
  SplitCells(line, names);
  CsvLayout layout;
  layout.position.fill(-1);
  layout.width = names.size();
  for (size_t i = 0; i < names.size(); ++i) {
    auto known = std::find(kColumnNames.begin(), kColumnNames.end(), names[i]);
    if (known == kColumnNames.end()) {
      return InvalidArgumentError(
          "unknown column '{}'; the first line must name the columns, from: {} (required) and "
          "{} (optional)",
          names[i], fmt::join(kColumnNames.begin(), kColumnNames.begin() + kRequiredColumns, ", "),
          fmt::join(kColumnNames.begin() + kRequiredColumns, kColumnNames.end(), ", "));
    }
    int& position = layout.position[known - kColumnNames.begin()];
    if (position != -1) return InvalidArgumentError("column '{}' appears twice", names[i]);
    position = static_cast<int>(i);
  }
  for (size_t column = 0; column < kRequiredColumns; ++column) {
    if (layout.position[column] == -1) {
      return InvalidArgumentError(
          "the header has no '{}' column; a csv trace needs {}", kColumnNames[column],
          fmt::join(kColumnNames.begin(), kColumnNames.begin() + kRequiredColumns, ", "));
    }
  }
  return layout;
}

// A time cell: seconds, maybe with a fraction ("3600", "12.5"), or a duration ("90m", "1h30m").
StatusOr<Duration> ParseTimeCell(std::string_view column, std::string_view text) {
  double number = 0;
  Duration seconds = 0;
  if (ParseNumber(text, number)) {
    if (ToSeconds(number, seconds)) return seconds;
  } else if (StatusOr<Duration> duration = ParseDuration(text);
             duration.ok() && *duration <= kMaxSeconds) {
    return duration;
  }
  return InvalidArgumentError(
      "column '{}' is '{}'; write seconds (3600, 12.5) or a duration (90m, 1h30m), 0 or more",
      column, text);
}

StatusOr<int64_t> ParseCountCell(std::string_view column, std::string_view text) {
  double number = 0;
  int64_t count = 0;
  if (!ParseNumber(text, number) || !ToCount(number, 1, INT_MAX, count)) {
    return InvalidArgumentError("column '{}' is '{}'; it must be a whole number, at least 1",
                                column, text);
  }
  return count;
}

Status ParseCsvRow(std::string_view line, const CsvLayout& layout, const TraceReadOptions& options,
                   TraceJob& job) {
  std::array<std::string_view, kColumnCount> cells;
  size_t count = SplitCells(line, cells);
  if (count != layout.width) {
    return InvalidArgumentError("has {} cells; the header names {} columns", count, layout.width);
  }
  // An empty cell (or a column the file lacks) is "not given".
  const auto cell = [&](Column column) -> std::optional<std::string_view> {
    int position = layout.position[static_cast<size_t>(column)];
    if (position < 0 || cells[position].empty()) return std::nullopt;
    return cells[position];
  };
  const auto required = [&](Column column) -> StatusOr<std::string_view> {
    std::optional<std::string_view> text = cell(column);
    if (!text) {
      return InvalidArgumentError("column '{}' is empty; every row needs it",
                                  kColumnNames[static_cast<size_t>(column)]);
    }
    return *text;
  };

  ALLOT_ASSIGN_OR_RETURN(std::string_view submit, required(Column::kSubmitTime));
  ALLOT_ASSIGN_OR_RETURN(job.submit, ParseTimeCell("submit_time", submit));
  ALLOT_ASSIGN_OR_RETURN(std::string_view duration, required(Column::kDuration));
  ALLOT_ASSIGN_OR_RETURN(job.runtime, ParseTimeCell("duration", duration));
  ALLOT_ASSIGN_OR_RETURN(std::string_view gpus_text, required(Column::kGpus));
  ALLOT_ASSIGN_OR_RETURN(int64_t gpus, ParseCountCell("gpus", gpus_text));
  ALLOT_ASSIGN_OR_RETURN(std::string_view account, required(Column::kAccount));
  job.account = std::string(account);

  if (std::optional<std::string_view> text = cell(Column::kGpusPerTask)) {
    ALLOT_ASSIGN_OR_RETURN(int64_t gpus_per_task, ParseCountCell("gpus_per_task", *text));
    if (gpus % gpus_per_task != 0) {
      return InvalidArgumentError(
          "gpus is {}, not a multiple of gpus_per_task {}; a job is tasks x gpus_per_task GPUs",
          gpus, gpus_per_task);
    }
    job.tasks = static_cast<int>(gpus / gpus_per_task);
    job.gpus_per_task = static_cast<int>(gpus_per_task);
  } else {
    SplitGpus(gpus, options.gpus_per_node, job.tasks, job.gpus_per_task);
  }

  job.time_limit = std::max<Duration>(1, job.runtime);
  if (std::optional<std::string_view> text = cell(Column::kTimeLimit)) {
    ALLOT_ASSIGN_OR_RETURN(job.time_limit, ParseTimeCell("time_limit", *text));
    if (job.time_limit < 1) {
      return InvalidArgumentError("column 'time_limit' is '{}'; it must be at least 1 second",
                                  *text);
    }
  }
  if (std::optional<std::string_view> text = cell(Column::kCancelAfter)) {
    ALLOT_ASSIGN_OR_RETURN(job.cancel_after, ParseTimeCell("cancel_after", *text));
  }
  if (std::optional<std::string_view> text = cell(Column::kPriority)) {
    job.priority_class = std::string(*text);
  }
  if (std::optional<std::string_view> text = cell(Column::kPool)) job.pool = std::string(*text);
  return OkStatus();
}

Status ReadCsv(std::string_view text, const TraceReadOptions& options, TraceBuilder& builder) {
  LineCursor lines(text);
  std::string_view line;
  std::optional<CsvLayout> layout;
  JobId row = 0;
  while (lines.Next(line)) {
    if (Trim(line).empty()) continue;
    if (!layout) {
      StatusOr<CsvLayout> header = ParseCsvHeader(line);
      if (!header.ok()) return builder.FileError(lines.number(), header.status());
      layout = std::move(*header);
      continue;
    }
    TraceJob job;
    job.line = lines.number();
    job.id = ++row;
    if (Status status = ParseCsvRow(line, *layout, options, job); !status.ok()) {
      ALLOT_RETURN_IF_ERROR(builder.Reject(job.line, status));
      continue;
    }
    builder.Add(std::move(job));
  }
  return OkStatus();
}

Status NationalIsGenerated() {
  return InvalidArgumentError(
      "the national workload is generated, not read; give its YAML description to the "
      "simulator as a workload, not as a trace to parse");
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

StatusOr<File> OpenTrace(const std::string& path) {
  File file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) {
    int error = errno;
    StatusCode code =
        error == EACCES || error == EPERM ? StatusCode::kPermissionDenied : StatusCode::kNotFound;
    return Status(code, fmt::format("cannot open trace '{}': {}", path,
                                    std::generic_category().message(error)));
  }
  return file;
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  ALLOT_ASSIGN_OR_RETURN(File file, OpenTrace(path));
  // One read straight into the string when the size is known; then chunks, for what has no
  // size (a pipe) or grew meanwhile.
  std::error_code size_error;
  uintmax_t size = std::filesystem::file_size(path, size_error);
  std::string text(size_error ? 0 : size, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), file.get()));
  std::array<char, 1 << 16> buffer;
  size_t read = 0;
  while ((read = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) {
    text.append(buffer.data(), read);
  }
  if (std::ferror(file.get())) {
    return InvalidArgumentError("cannot read trace '{}': {}", path,
                                std::generic_category().message(errno));
  }
  return text;
}

}  // namespace

std::string_view TraceFormatName(TraceFormat format) {
  switch (format) {
    case TraceFormat::kSwf:
      return "swf";
    case TraceFormat::kPhilly:
      return "philly";
    case TraceFormat::kCsv:
      return "csv";
    case TraceFormat::kNational:
      return "national";
  }
  return "unknown";
}

StatusOr<TraceFormat> ParseTraceFormat(std::string_view name) {
  for (TraceFormat format :
       {TraceFormat::kSwf, TraceFormat::kPhilly, TraceFormat::kCsv, TraceFormat::kNational}) {
    if (name == TraceFormatName(format)) return format;
  }
  return InvalidArgumentError(
      "unknown trace format '{}'; expected one of: swf, philly, csv, national", name);
}

StatusOr<TraceFormat> GuessTraceFormat(const std::string& path) {
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (extension == ".swf") return TraceFormat::kSwf;
  if (extension == ".yaml" || extension == ".yml") return TraceFormat::kNational;
  if (extension == ".csv") {
    ALLOT_ASSIGN_OR_RETURN(File file, OpenTrace(path));
    std::array<char, 256> start;
    size_t read = std::fread(start.data(), 1, start.size(), file.get());
    std::string_view header = StripByteOrderMark(std::string_view(start.data(), read));
    constexpr std::string_view kPhillyStart = "timestamp,duration,num_gpus";
    return header.starts_with(kPhillyStart) ? TraceFormat::kPhilly : TraceFormat::kCsv;
  }
  return InvalidArgumentError(
      "cannot tell the format of trace '{}' from its name (.swf, .csv, .yaml); "
      "pass --format swf, philly, csv or national",
      path);
}

void SplitGpus(int64_t gpus, int gpus_per_node, int& tasks, int& gpus_per_task) {
  assert(gpus >= 1 && gpus <= INT_MAX && gpus_per_node >= 1);
  if (gpus <= gpus_per_node) {
    tasks = 1;
    gpus_per_task = static_cast<int>(gpus);
  } else if (gpus % gpus_per_node == 0) {
    tasks = static_cast<int>(gpus / gpus_per_node);
    gpus_per_task = gpus_per_node;
  } else {
    // No whole-node shape fits; 1-GPU tasks can still spread over partly free nodes.
    tasks = static_cast<int>(gpus);
    gpus_per_task = 1;
  }
}

StatusOr<Trace> ParseTrace(std::string_view text, std::string_view source, TraceFormat format,
                           const TraceReadOptions& options) {
  if (format == TraceFormat::kNational) return NationalIsGenerated();
  if (options.gpus_per_node < 1) {
    return InvalidArgumentError("gpus_per_node is {}; it must be at least 1",
                                options.gpus_per_node);
  }
  text = StripByteOrderMark(text);
  TraceBuilder builder(source, options.strict);
  builder.Reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
  switch (format) {
    case TraceFormat::kSwf:
      ALLOT_RETURN_IF_ERROR(ReadSwf(text, builder));
      break;
    case TraceFormat::kPhilly:
      ALLOT_RETURN_IF_ERROR(ReadPhilly(text, options, builder));
      break;
    case TraceFormat::kCsv:
      ALLOT_RETURN_IF_ERROR(ReadCsv(text, options, builder));
      break;
    case TraceFormat::kNational:
      break;  // handled above
  }
  return std::move(builder).Finish();
}

StatusOr<Trace> ReadTrace(const std::string& path, TraceFormat format,
                          const TraceReadOptions& options) {
  if (format == TraceFormat::kNational) return NationalIsGenerated();
  ALLOT_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  return ParseTrace(text, path, format, options);
}

}  // namespace allot
