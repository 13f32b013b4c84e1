#include "sim/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

namespace allot {
namespace {

// ---------------------------------------------------------------------------------------------
// Writing files. stdio rather than iostreams so that a failure can say why (errno), and so that
// the CSV of a million jobs goes out in a few large writes.

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using FilePointer = std::unique_ptr<std::FILE, FileCloser>;

StatusCode CodeForErrno(int error_number) {
  switch (error_number) {
    case ENOENT:
    case ENOTDIR:
      return StatusCode::kNotFound;
    case EACCES:
    case EPERM:
    case EROFS:
      return StatusCode::kPermissionDenied;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return StatusCode::kResourceExhausted;
    default:
      return StatusCode::kUnavailable;
  }
}

Status WriteError(const std::string& path, int error_number) {
  return Status(CodeForErrno(error_number),
                fmt::format("cannot write '{}': {}", path, std::strerror(error_number)));
}

// One output file. Close() must be called to learn whether everything reached the disk (a full
// disk often shows only when the last buffer is flushed); destruction without Close() discards
// the error, which is what an early return on another error wants.
class OutputFile {
 public:
  Status Open(const std::string& path) {
    path_ = path;
    file_.reset(std::fopen(path.c_str(), "wb"));
    if (file_ == nullptr) return WriteError(path_, errno);
    return OkStatus();
  }

  Status Append(std::string_view bytes) {
    if (bytes.empty()) return OkStatus();
    if (std::fwrite(bytes.data(), 1, bytes.size(), file_.get()) != bytes.size()) {
      return WriteError(path_, errno);
    }
    return OkStatus();
  }

  Status Close() {
    std::FILE* file = file_.release();
    if (std::fclose(file) != 0) return WriteError(path_, errno);
    return OkStatus();
  }

 private:
  std::string path_;
  FilePointer file_;
};

Status WriteWholeFile(const std::string& path, std::string_view contents) {
  OutputFile file;
  ALLOT_RETURN_IF_ERROR(file.Open(path));
  ALLOT_RETURN_IF_ERROR(file.Append(contents));
  return file.Close();
}

// ---------------------------------------------------------------------------------------------
// Numbers for people. Averages are fractional and the exact form of FormatDuration ("1h23m17s")
// is noise in a table, so durations are rounded to two units: "4.2 s", "12m 05s", "1h 23m",
// "3d 04h".

std::string FormatApproxSeconds(double seconds) {
  if (!std::isfinite(seconds)) return "-";
  if (seconds < 0) return "-" + FormatApproxSeconds(-seconds);
  if (std::round(seconds * 10) < 600) return fmt::format("{:.1f} s", seconds);
  int64_t whole_seconds = std::llround(seconds);
  if (whole_seconds < 3600) {
    return fmt::format("{}m {:02}s", whole_seconds / 60, whole_seconds % 60);
  }
  int64_t minutes = std::llround(seconds / 60);
  if (minutes < int64_t{24} * 60) return fmt::format("{}h {:02}m", minutes / 60, minutes % 60);
  int64_t hours = std::llround(seconds / 3600);
  return fmt::format("{}d {:02}h", hours / 24, hours % 24);
}

// "1234567.25" with `decimals` 1 -> "1,234,567.3".
std::string FormatNumber(double value, int decimals = 0) {
  if (!std::isfinite(value)) return "-";
  std::string plain = fmt::format("{:.{}f}", value, decimals);
  size_t digits_begin = plain[0] == '-' ? 1 : 0;
  size_t digits_end = plain.find('.');
  if (digits_end == std::string::npos) digits_end = plain.size();
  std::string grouped = plain.substr(0, digits_begin);
  for (size_t i = digits_begin; i < digits_end; ++i) {
    grouped += plain[i];
    size_t remaining = digits_end - i - 1;
    if (remaining > 0 && remaining % 3 == 0) grouped += ',';
  }
  grouped += plain.substr(digits_end);
  return grouped;
}

std::string FormatCount(size_t count) { return FormatNumber(static_cast<double>(count)); }

std::string FormatPercent(double fraction) {
  if (!std::isfinite(fraction)) return "-";
  return fmt::format("{:.1f}%", fraction * 100);
}

std::string FormatBytes(size_t bytes) {
  if (bytes == 0) return "-";
  double mebibytes = static_cast<double>(bytes) / (1024.0 * 1024.0);
  if (mebibytes < 1024) return fmt::format("{:.0f} MiB", mebibytes);
  return fmt::format("{:.1f} GiB", mebibytes / 1024);
}

// ---------------------------------------------------------------------------------------------
// Tables: built once as cells, rendered as fixed-width text for the terminal or as HTML.

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  // Columns before this one hold names and are left-aligned; the rest hold numbers.
  size_t name_columns = 1;
};

// Columns a UTF-8 string takes in a terminal, near enough: one per code point.
size_t DisplayWidth(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string RenderText(const Table& table) {
  std::vector<size_t> widths(table.header.size(), 0);
  auto widen = [&widths](const std::vector<std::string>& cells) {
    for (size_t column = 0; column < cells.size() && column < widths.size(); ++column) {
      widths[column] = std::max(widths[column], DisplayWidth(cells[column]));
    }
  };
  widen(table.header);
  for (const std::vector<std::string>& row : table.rows) widen(row);

  std::string text;
  auto append_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t column = 0; column < widths.size(); ++column) {
      std::string_view cell = column < cells.size() ? std::string_view(cells[column]) : "";
      std::string padding(widths[column] - DisplayWidth(cell), ' ');
      if (column > 0) line += "  ";
      if (column < table.name_columns) {
        line += cell;
        line += padding;
      } else {
        line += padding;
        line += cell;
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    text += line;
    text += '\n';
  };
  append_row(table.header);
  size_t total_width = 0;
  for (size_t width : widths) total_width += width;
  total_width += 2 * (widths.empty() ? 0 : widths.size() - 1);
  text += std::string(total_width, '-');
  text += '\n';
  for (const std::vector<std::string>& row : table.rows) append_row(row);
  return text;
}

std::string EscapeHtml(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

std::string RenderHtml(const Table& table) {
  std::string html = "<table>\n<thead><tr>";
  for (size_t column = 0; column < table.header.size(); ++column) {
    html += column < table.name_columns ? "<th class=\"name\">" : "<th>";
    html += EscapeHtml(table.header[column]);
    html += "</th>";
  }
  html += "</tr></thead>\n<tbody>\n";
  for (const std::vector<std::string>& row : table.rows) {
    html += "<tr>";
    for (size_t column = 0; column < row.size(); ++column) {
      html += column < table.name_columns ? "<td class=\"name\">" : "<td>";
      html += EscapeHtml(row[column]);
      html += "</td>";
    }
    html += "</tr>\n";
  }
  html += "</tbody>\n</table>\n";
  return html;
}

// The summary rows, shared by the terminal table and the HTML page.
struct MetricRow {
  std::string_view label;
  std::string (*format)(const SimSummary&);
};

constexpr MetricRow kMetricRows[] = {
    {"GPUs", [](const SimSummary& s) { return FormatNumber(static_cast<double>(s.total_gpus)); }},
    {"trace jobs", [](const SimSummary& s) { return FormatCount(s.trace_jobs); }},
    {"jobs (ran to end)", [](const SimSummary& s) { return FormatCount(s.jobs); }},
    {"completed", [](const SimSummary& s) { return FormatCount(s.completed); }},
    {"timed out", [](const SimSummary& s) { return FormatCount(s.timed_out); }},
    {"cancelled", [](const SimSummary& s) { return FormatCount(s.cancelled); }},
    {"failed", [](const SimSummary& s) { return FormatCount(s.failed); }},
    {"rejected (never placeable)", [](const SimSummary& s) { return FormatCount(s.rejected); }},
    {"unfinished", [](const SimSummary& s) { return FormatCount(s.unfinished); }},
    {"skipped trace lines", [](const SimSummary& s) { return FormatCount(s.skipped_lines); }},
    {"avg wait", [](const SimSummary& s) { return FormatApproxSeconds(s.avg_wait_s); }},
    {"p50 wait", [](const SimSummary& s) { return FormatApproxSeconds(s.p50_wait_s); }},
    {"p95 wait", [](const SimSummary& s) { return FormatApproxSeconds(s.p95_wait_s); }},
    {"p99 wait", [](const SimSummary& s) { return FormatApproxSeconds(s.p99_wait_s); }},
    {"max wait", [](const SimSummary& s) { return FormatApproxSeconds(s.max_wait_s); }},
    {"avg JCT", [](const SimSummary& s) { return FormatApproxSeconds(s.avg_jct_s); }},
    {"avg bounded slowdown", [](const SimSummary& s) { return FormatNumber(s.avg_bsld, 2); }},
    {"utilisation", [](const SimSummary& s) { return FormatPercent(s.utilization); }},
    {"makespan",
     [](const SimSummary& s) { return FormatApproxSeconds(static_cast<double>(s.makespan_s)); }},
    {"GPU-hours", [](const SimSummary& s) { return FormatNumber(s.gpu_hours, 1); }},
    {"GPU-hours lost", [](const SimSummary& s) { return FormatNumber(s.gpu_hours_lost, 1); }},
    {"preemptions", [](const SimSummary& s) { return FormatCount(s.preemptions); }},
    {"node failures", [](const SimSummary& s) { return FormatCount(s.node_failures); }},
    {"scheduling passes", [](const SimSummary& s) { return FormatCount(s.passes); }},
    {"Jain fairness", [](const SimSummary& s) { return FormatNumber(s.jain_fairness, 3); }},
    {"sim wall time", [](const SimSummary& s) { return FormatApproxSeconds(s.sim_wall_s); }},
    {"peak memory", [](const SimSummary& s) { return FormatBytes(s.peak_rss_bytes); }},
};

Table SummaryTable(const std::vector<SimRun>& runs) {
  Table table;
  table.header.emplace_back();
  for (const SimRun& run : runs) table.header.push_back(run.summary.policy);
  for (const MetricRow& metric : kMetricRows) {
    std::vector<std::string> row{std::string(metric.label)};
    for (const SimRun& run : runs) row.push_back(metric.format(run.summary));
    table.rows.push_back(std::move(row));
  }
  return table;
}

// A national run has hundreds of accounts; a table people read stops at the biggest users.
constexpr size_t kMaxAccountRows = 20;

// The accounts of one run, most GPU-hours first (ties by name, so output is stable), at most
// kMaxAccountRows of them; `hidden` receives how many were left out.
Table AccountTable(const SimSummary& summary, size_t& hidden) {
  std::vector<const AccountSummary*> accounts;
  accounts.reserve(summary.per_account.size());
  for (const AccountSummary& account : summary.per_account) accounts.push_back(&account);
  std::sort(accounts.begin(), accounts.end(), [](const AccountSummary* a, const AccountSummary* b) {
    if (a->gpu_hours != b->gpu_hours) return a->gpu_hours > b->gpu_hours;
    return a->name < b->name;
  });
  hidden = accounts.size() > kMaxAccountRows ? accounts.size() - kMaxAccountRows : 0;
  accounts.resize(accounts.size() - hidden);

  Table table;
  table.header = {"account",  "jobs",     "GPU-hours",    "avg wait",
                  "p95 wait", "avg bsld", "nominal GPUs", "share of nominal"};
  for (const AccountSummary* account : accounts) {
    bool has_nominal = account->nominal_gpus > 0;
    table.rows.push_back({
        account->name,
        FormatCount(account->jobs),
        FormatNumber(account->gpu_hours, 1),
        FormatApproxSeconds(account->avg_wait_s),
        FormatApproxSeconds(account->p95_wait_s),
        FormatNumber(account->avg_bsld, 2),
        has_nominal ? FormatNumber(static_cast<double>(account->nominal_gpus)) : "-",
        has_nominal ? fmt::format("{:.0f}%", account->share_of_nominal * 100) : "-",
    });
  }
  return table;
}

std::string HiddenAccountsNote(size_t hidden) {
  return fmt::format("... and {} more accounts (see --json)", hidden);
}

// ---------------------------------------------------------------------------------------------
// SVG line plots.

struct Point {
  double x = 0;
  double y = 0;
};

struct Line {
  std::string label;
  std::string color;
  bool dashed = false;
  std::vector<Point> points;
};

struct Tick {
  double value = 0;
  std::string label;
};

struct Axis {
  std::string title;
  double min = 0;
  double max = 1;
  bool logarithmic = false;
  std::vector<Tick> ticks;

  // Where `value` falls between min (0) and max (1).
  double Fraction(double value) const {
    if (logarithmic) {
      double low = std::log10(min);
      return (std::log10(std::max(value, min)) - low) / (std::log10(max) - low);
    }
    return (value - min) / (max - min);
  }
};

// 1, 2, 2.5 or 5 times a power of ten, so that about `target` steps cover `span`.
double NiceStep(double span, int target) {
  double raw = span / target;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double normalized = raw / magnitude;
  double nice = normalized <= 1     ? 1
                : normalized <= 2   ? 2
                : normalized <= 2.5 ? 2.5
                : normalized <= 5   ? 5
                                    : 10;
  return nice * magnitude;
}

// "0", "2.5", "40k", "1.2M": as many decimals as the step needs, thousands abbreviated.
std::string FormatTickValue(double value, double step, double axis_max) {
  double divisor = 1;
  std::string_view suffix;
  if (axis_max >= 1e6) {
    divisor = 1e6;
    suffix = "M";
  } else if (axis_max >= 1e4) {
    divisor = 1e3;
    suffix = "k";
  }
  double scaled_step = step / divisor;
  int decimals = 0;
  while (decimals < 3) {
    double shifted = scaled_step * std::pow(10.0, decimals);
    if (std::abs(shifted - std::round(shifted)) < 1e-6 * std::max(1.0, shifted)) break;
    ++decimals;
  }
  double scaled = value / divisor;
  if (std::abs(scaled) < scaled_step * 1e-9) scaled = 0;  // no "-0"
  return fmt::format("{:.{}f}{}", scaled, decimals, suffix);
}

// A linear axis over [data_min, data_max], widened to whole steps, with about five ticks.
Axis LinearAxis(std::string title, double data_min, double data_max) {
  if (!std::isfinite(data_min) || !std::isfinite(data_max)) data_min = data_max = 0;
  if (data_max <= data_min) data_max = data_min + 1;
  double step = NiceStep(data_max - data_min, 5);
  Axis axis;
  axis.title = std::move(title);
  axis.min = std::floor(data_min / step) * step;
  axis.max = std::ceil(data_max / step - 1e-9) * step;
  int steps = static_cast<int>(std::llround((axis.max - axis.min) / step));
  for (int i = 0; i <= steps; ++i) {
    double value = axis.min + i * step;
    axis.ticks.push_back({value, FormatTickValue(value, step, axis.max)});
  }
  return axis;
}

// A log axis for durations in seconds, ticked at lengths people think in rather than at powers
// of ten ("1h", not "3.6k s"). The range is widened to the nearest ticks around the data.
Axis LogDurationAxis(std::string title, double data_min, double data_max) {
  static const Tick kDurationTicks[] = {
      {1, "1s"},        {10, "10s"},      {60, "1m"},         {600, "10m"},
      {3600, "1h"},     {36000, "10h"},   {86400, "1d"},      {604800, "1w"},
      {2592000, "30d"}, {31536000, "1y"}, {315360000, "10y"},
  };
  data_min = std::max(data_min, 1.0);
  data_max = std::max(data_max, data_min);
  Axis axis;
  axis.title = std::move(title);
  axis.logarithmic = true;
  axis.min = 1;
  for (const Tick& tick : kDurationTicks) {
    if (tick.value <= data_min) axis.min = tick.value;
  }
  axis.max = 0;
  for (const Tick& tick : kDurationTicks) {
    if (tick.value >= data_max && tick.value > axis.min) {
      axis.max = tick.value;
      break;
    }
  }
  if (axis.max == 0) axis.max = data_max > axis.min ? data_max : axis.min * 10;
  for (const Tick& tick : kDurationTicks) {
    if (tick.value >= axis.min && tick.value <= axis.max) axis.ticks.push_back(tick);
  }
  return axis;
}

// One plot: a frame with ticks and grid, axis titles, a legend above the frame, and a polyline
// per line. Sizes are in SVG user units (pixels at 100% zoom).
struct LinePlot {
  std::string title;
  Axis x;
  Axis y;
  std::vector<Line> lines;
  double width = 760;
  double height = 320;

  std::string ToSvg() const;
};

// Approximate width of 11px sans-serif text; used only to lay out the legend.
double TextWidth(std::string_view text) { return 6.5 * static_cast<double>(DisplayWidth(text)); }

std::string LinePlot::ToSvg() const {
  constexpr double kLeft = 58;
  constexpr double kRight = 16;
  constexpr double kBottom = 42;
  constexpr double kTitleHeight = 22;
  constexpr double kLegendRowHeight = 16;
  constexpr double kLegendSwatch = 22;

  // Lay out the legend first: it decides how far down the frame starts.
  struct LegendEntry {
    const Line* line;
    double x;
    int row;
  };
  std::vector<LegendEntry> legend;
  double legend_x = kLeft;
  int legend_row = 0;
  for (const Line& line : lines) {
    double entry_width = kLegendSwatch + 4 + TextWidth(line.label) + 14;
    if (legend_x > kLeft && legend_x + entry_width > width - kRight) {
      legend_x = kLeft;
      ++legend_row;
    }
    legend.push_back({&line, legend_x, legend_row});
    legend_x += entry_width;
  }
  int legend_rows = lines.empty() ? 0 : legend_row + 1;
  double top = kTitleHeight + legend_rows * kLegendRowHeight + 8;
  double plot_width = width - kLeft - kRight;
  double plot_height = std::max(height - top - kBottom, 40.0);
  double total_height = top + plot_height + kBottom;
  auto pixel_x = [&](double value) { return kLeft + x.Fraction(value) * plot_width; };
  auto pixel_y = [&](double value) { return top + (1 - y.Fraction(value)) * plot_height; };

  auto out = fmt::memory_buffer();
  auto it = std::back_inserter(out);
  fmt::format_to(it,
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
                 "viewBox=\"0 0 {0:.0f} {1:.0f}\" role=\"img\" aria-label=\"{2}\">\n",
                 width, total_height, EscapeHtml(title));
  fmt::format_to(it, "<text class=\"plot-title\" x=\"{:.1f}\" y=\"15\">{}</text>\n", kLeft,
                 EscapeHtml(title));
  for (const LegendEntry& entry : legend) {
    double row_y = kTitleHeight + entry.row * kLegendRowHeight + 8;
    fmt::format_to(it,
                   "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
                   "stroke-width=\"2\"{}/>",
                   entry.x, row_y - 4, entry.x + kLegendSwatch, row_y - 4, entry.line->color,
                   entry.line->dashed ? " stroke-dasharray=\"5 3\"" : "");
    fmt::format_to(it, "<text class=\"legend\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
                   entry.x + kLegendSwatch + 4, row_y, EscapeHtml(entry.line->label));
  }

  // Grid, ticks and tick labels.
  for (const Tick& tick : y.ticks) {
    double py = pixel_y(tick.value);
    fmt::format_to(it,
                   "<line class=\"grid\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>"
                   "<line class=\"axis\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>"
                   "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
                   kLeft, py, kLeft + plot_width, py, kLeft - 4, py, kLeft, py, kLeft - 6, py + 4,
                   EscapeHtml(tick.label));
  }
  for (const Tick& tick : x.ticks) {
    double px = pixel_x(tick.value);
    double bottom = top + plot_height;
    fmt::format_to(it,
                   "<line class=\"grid\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>"
                   "<line class=\"axis\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>"
                   "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" "
                   "text-anchor=\"middle\">{}</text>\n",
                   px, top, px, bottom, px, bottom, px, bottom + 4, px, bottom + 16,
                   EscapeHtml(tick.label));
  }
  fmt::format_to(it,
                 "<rect class=\"frame\" fill=\"none\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" "
                 "height=\"{:.1f}\"/>\n",
                 kLeft, top, plot_width, plot_height);
  fmt::format_to(it,
                 "<text class=\"axis-title\" x=\"{:.1f}\" y=\"{:.1f}\" "
                 "text-anchor=\"middle\">{}</text>\n",
                 kLeft + plot_width / 2, top + plot_height + 34, EscapeHtml(x.title));
  double y_title_x = 14;
  double y_title_y = top + plot_height / 2;
  fmt::format_to(it,
                 "<text class=\"axis-title\" x=\"{0:.1f}\" y=\"{1:.1f}\" text-anchor=\"middle\" "
                 "transform=\"rotate(-90 {0:.1f} {1:.1f})\">{2}</text>\n",
                 y_title_x, y_title_y, EscapeHtml(y.title));

  bool any_points = false;
  for (const Line& line : lines) {
    if (line.points.empty()) continue;
    any_points = true;
    fmt::format_to(it, "<polyline class=\"series\" fill=\"none\" stroke=\"{}\"{} points=\"", line.color,
                   line.dashed ? " stroke-dasharray=\"5 3\"" : "");
    bool first = true;
    for (const Point& point : line.points) {
      if (!std::isfinite(point.x) || !std::isfinite(point.y)) continue;
      fmt::format_to(it, "{}{:.1f},{:.1f}", first ? "" : " ", pixel_x(point.x), pixel_y(point.y));
      first = false;
    }
    fmt::format_to(it, "\"><title>{}</title></polyline>\n", EscapeHtml(line.label));
  }
  if (!any_points) {
    fmt::format_to(it,
                   "<text class=\"no-data\" x=\"{:.1f}\" y=\"{:.1f}\" "
                   "text-anchor=\"middle\">no data</text>\n",
                   kLeft + plot_width / 2, top + plot_height / 2);
  }
  fmt::format_to(it, "</svg>\n");
  return fmt::to_string(out);
}

// ---------------------------------------------------------------------------------------------
// From simulation results to plot lines.

// Colour-blind-friendly (Tableau 10); run i always gets colour i, in every plot.
constexpr std::string_view kRunColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
constexpr std::string_view kNominalColor = "#444444";

std::string RunColor(size_t run_index) {
  return std::string(kRunColors[run_index % std::size(kRunColors)]);
}

// Enough points to look continuous at any plot width; a year of minute buckets would otherwise
// put half a million points per line into the page.
constexpr size_t kMaxPointsPerLine = 1000;
constexpr size_t kCdfQuantiles = 200;

// The time unit of the x axis, chosen by how long the series span.
struct TimeUnit {
  double seconds;
  std::string_view name;
};

TimeUnit TimeUnitFor(double span_seconds) {
  if (span_seconds <= 3 * 3600) return {60, "minutes"};
  if (span_seconds <= 3 * 86400) return {3600, "hours"};
  return {86400, "days"};
}

// Buckets as points at the middle of each bucket, averaging runs of consecutive buckets so that
// at most kMaxPointsPerLine remain. `first_x` is where bucket 0 starts; `step_x` its width.
std::vector<Point> BucketsToPoints(const std::vector<double>& values, double first_x, double step_x,
                                   double scale) {
  size_t merge = std::max<size_t>(1, (values.size() + kMaxPointsPerLine - 1) / kMaxPointsPerLine);
  std::vector<Point> points;
  points.reserve(values.size() / merge + 1);
  for (size_t begin = 0; begin < values.size(); begin += merge) {
    size_t end = std::min(values.size(), begin + merge);
    double sum = 0;
    for (size_t i = begin; i < end; ++i) sum += values[i];
    double middle = (static_cast<double>(begin) + static_cast<double>(end)) / 2;
    points.push_back({first_x + middle * step_x, sum / static_cast<double>(end - begin) * scale});
  }
  return points;
}

// The time axis shared by the time-series plots: every run is placed relative to the earliest
// series origin, in a unit that suits the longest series.
struct TimeFrame {
  Time origin = 0;
  TimeUnit unit{3600, "hours"};
  double span = 0;  // in `unit`

  double BucketStart(const TimeSeries& series) const {
    return static_cast<double>(series.origin - origin) / unit.seconds;
  }
  double BucketWidth(const TimeSeries& series) const {
    return static_cast<double>(series.step) / unit.seconds;
  }
};

TimeFrame MakeTimeFrame(const std::vector<SimRun>& runs) {
  TimeFrame frame;
  bool first = true;
  for (const SimRun& run : runs) {
    if (first || run.series.origin < frame.origin) frame.origin = run.series.origin;
    first = false;
  }
  double end_seconds = 0;
  for (const SimRun& run : runs) {
    size_t buckets = std::max(run.series.allocated_gpus.size(), run.series.pending_jobs.size());
    double end = static_cast<double>(run.series.origin - frame.origin) +
                 static_cast<double>(buckets) * static_cast<double>(run.series.step);
    end_seconds = std::max(end_seconds, end);
  }
  frame.unit = TimeUnitFor(end_seconds);
  frame.span = end_seconds / frame.unit.seconds;
  return frame;
}

double MaxY(const std::vector<Line>& lines) {
  double max = 0;
  for (const Line& line : lines) {
    for (const Point& point : line.points) {
      if (std::isfinite(point.y)) max = std::max(max, point.y);
    }
  }
  return max;
}

std::string TimeAxisTitle(const TimeFrame& frame) {
  return fmt::format("time since start ({})", frame.unit.name);
}

LinePlot UtilisationPlot(const std::vector<SimRun>& runs, const TimeFrame& frame) {
  LinePlot plot;
  plot.title = "GPU utilisation";
  for (size_t i = 0; i < runs.size(); ++i) {
    const SimRun& run = runs[i];
    double scale =
        run.summary.total_gpus > 0 ? 100.0 / static_cast<double>(run.summary.total_gpus) : 0.0;
    plot.lines.push_back({run.summary.policy, RunColor(i), false,
                          BucketsToPoints(run.series.allocated_gpus, frame.BucketStart(run.series),
                                          frame.BucketWidth(run.series), scale)});
  }
  plot.x = LinearAxis(TimeAxisTitle(frame), 0, frame.span);
  plot.y = LinearAxis("allocated GPUs (% of pool)", 0, std::max(100.0, MaxY(plot.lines)));
  return plot;
}

LinePlot QueuePlot(const std::vector<SimRun>& runs, const TimeFrame& frame) {
  LinePlot plot;
  plot.title = "Queue length";
  for (size_t i = 0; i < runs.size(); ++i) {
    const SimRun& run = runs[i];
    plot.lines.push_back({run.summary.policy, RunColor(i), false,
                          BucketsToPoints(run.series.pending_jobs, frame.BucketStart(run.series),
                                          frame.BucketWidth(run.series), 1.0)});
  }
  plot.x = LinearAxis(TimeAxisTitle(frame), 0, frame.span);
  plot.y = LinearAxis("pending jobs", 0, MaxY(plot.lines));
  return plot;
}

// One small plot per tracked account (matched by name across runs, in order of first
// appearance): its GPUs under each run, and its nominal as a dashed line.
std::vector<LinePlot> TrackedAccountPlots(const std::vector<SimRun>& runs, const TimeFrame& frame) {
  std::vector<std::string> names;
  for (const SimRun& run : runs) {
    for (const TrackedAccount& tracked : run.tracked) {
      if (std::find(names.begin(), names.end(), tracked.name) == names.end()) {
        names.push_back(tracked.name);
      }
    }
  }
  std::vector<LinePlot> plots;
  for (const std::string& name : names) {
    LinePlot plot;
    plot.title = name;
    plot.width = 372;
    plot.height = 240;
    int64_t nominal_gpus = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      const SimRun& run = runs[i];
      for (size_t t = 0; t < run.tracked.size(); ++t) {
        if (run.tracked[t].name != name) continue;
        if (nominal_gpus == 0) nominal_gpus = run.tracked[t].nominal_gpus;
        std::vector<Point> points;
        if (t < run.series.tracked_gpus.size()) {
          points = BucketsToPoints(run.series.tracked_gpus[t], frame.BucketStart(run.series),
                                   frame.BucketWidth(run.series), 1.0);
        }
        plot.lines.push_back({run.summary.policy, RunColor(i), false, std::move(points)});
      }
    }
    if (nominal_gpus > 0) {
      double nominal = static_cast<double>(nominal_gpus);
      plot.lines.push_back({fmt::format("nominal ({})", nominal_gpus),
                            std::string(kNominalColor),
                            true,
                            {{0, nominal}, {frame.span, nominal}}});
    }
    plot.x = LinearAxis(TimeAxisTitle(frame), 0, frame.span);
    plot.y = LinearAxis("GPUs", 0, MaxY(plot.lines));
    plots.push_back(std::move(plot));
  }
  return plots;
}

// Job completion time (submit to end) of jobs that ran to their end, as a cumulative
// distribution sampled at kCdfQuantiles ranks from the fastest to the slowest job.
LinePlot JctCdfPlot(const std::vector<SimRun>& runs) {
  LinePlot plot;
  plot.title = "Job completion time (CDF)";
  double min_jct = 0;
  double max_jct = 0;
  bool any = false;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::vector<Duration> jcts;
    for (const JobRecord& job : runs[i].jobs) {
      bool ran_to_end = job.outcome == Outcome::kCompleted || job.outcome == Outcome::kTimedOut;
      if (ran_to_end && job.end >= job.submit) jcts.push_back(job.end - job.submit);
    }
    std::sort(jcts.begin(), jcts.end());
    std::vector<Point> points;
    size_t samples = std::min(jcts.size(), kCdfQuantiles);
    for (size_t s = 0; s < samples; ++s) {
      size_t rank = samples == 1 ? jcts.size() - 1 : s * (jcts.size() - 1) / (samples - 1);
      // The log axis starts at one second; a zero-length job sits on its left edge.
      double jct = std::max<double>(1.0, static_cast<double>(jcts[rank]));
      points.push_back(
          {jct, 100.0 * static_cast<double>(rank + 1) / static_cast<double>(jcts.size())});
    }
    if (!points.empty()) {
      min_jct = any ? std::min(min_jct, points.front().x) : points.front().x;
      max_jct = any ? std::max(max_jct, points.back().x) : points.back().x;
      any = true;
    }
    plot.lines.push_back({runs[i].summary.policy, RunColor(i), false, std::move(points)});
  }
  plot.x =
      LogDurationAxis("job completion time (log scale)", any ? min_jct : 1, any ? max_jct : 3600);
  plot.y = LinearAxis("jobs completed within (%)", 0, 100);
  return plot;
}

constexpr std::string_view kPageStyle = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px;
       color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; } h3 { font-size: 14px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: right;
         font-variant-numeric: tabular-nums; }
th.name, td.name { text-align: left; }
thead th { border-bottom: 2px solid #999; }
.note { color: #666; font-size: 13px; }
.multiples { display: flex; flex-wrap: wrap; gap: 8px; }
svg { font-size: 11px; margin: 6px 0; }
svg text { fill: #333; }
.plot-title { font-size: 13px; font-weight: 600; }
.axis-title { font-size: 11px; fill: #555; }
.grid { stroke: #ececec; }
.axis { stroke: #888; }
.frame { fill: none; stroke: #888; }
.series { fill: none; stroke-width: 1.6; stroke-linejoin: round; }
.no-data { fill: #999; }
)";

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string FormatSummaryTable(const std::vector<SimRun>& runs) {
  if (runs.empty()) return "no simulation runs\n";
  std::string text = RenderText(SummaryTable(runs));
  for (const SimRun& run : runs) {
    if (run.summary.per_account.empty()) continue;
    size_t hidden = 0;
    Table accounts = AccountTable(run.summary, hidden);
    text += fmt::format("\nAccounts under {}, most GPU-hours first\n", run.summary.policy);
    text += RenderText(accounts);
    if (hidden > 0) text += HiddenAccountsNote(hidden) + "\n";
  }
  return text;
}

nlohmann::json SummaryJson(const SimSummary& summary) {
  nlohmann::json per_account = nlohmann::json::object();
  for (const AccountSummary& account : summary.per_account) {
    per_account[account.name] = {
        {"jobs", account.jobs},
        {"gpu_hours", account.gpu_hours},
        {"avg_wait_s", account.avg_wait_s},
        {"p50_wait_s", account.p50_wait_s},
        {"p95_wait_s", account.p95_wait_s},
        {"p99_wait_s", account.p99_wait_s},
        {"avg_bsld", account.avg_bsld},
        {"nominal_gpus", account.nominal_gpus},
        {"avg_gpus", account.avg_gpus},
        {"share_of_nominal", account.share_of_nominal},
    };
  }
  return {
      {"policy", summary.policy},
      {"total_gpus", summary.total_gpus},
      {"trace_jobs", summary.trace_jobs},
      {"skipped_lines", summary.skipped_lines},
      {"jobs", summary.jobs},
      {"completed", summary.completed},
      {"timed_out", summary.timed_out},
      {"cancelled", summary.cancelled},
      {"failed", summary.failed},
      {"rejected", summary.rejected},
      {"unfinished", summary.unfinished},
      {"avg_wait_s", summary.avg_wait_s},
      {"p50_wait_s", summary.p50_wait_s},
      {"p95_wait_s", summary.p95_wait_s},
      {"p99_wait_s", summary.p99_wait_s},
      {"max_wait_s", summary.max_wait_s},
      {"avg_jct_s", summary.avg_jct_s},
      {"avg_bsld", summary.avg_bsld},
      {"utilization", summary.utilization},
      {"makespan_s", summary.makespan_s},
      {"gpu_hours", summary.gpu_hours},
      {"gpu_hours_lost", summary.gpu_hours_lost},
      {"preemptions", summary.preemptions},
      {"node_failures", summary.node_failures},
      {"passes", summary.passes},
      {"jain_fairness", summary.jain_fairness},
      {"sim_wall_s", summary.sim_wall_s},
      {"peak_rss_bytes", summary.peak_rss_bytes},
      {"per_account", std::move(per_account)},
  };
}

nlohmann::json RunsJson(const std::vector<SimRun>& runs) {
  if (runs.size() == 1) return SummaryJson(runs.front().summary);
  nlohmann::json keyed = nlohmann::json::object();
  for (const SimRun& run : runs) {
    // Two runs of one policy (different options) must not overwrite each other.
    std::string key = run.summary.policy;
    for (int copy = 2; keyed.contains(key); ++copy) {
      key = fmt::format("{}#{}", run.summary.policy, copy);
    }
    keyed[key] = SummaryJson(run.summary);
  }
  return keyed;
}

Status WriteSummaryJson(const std::string& path, const std::vector<SimRun>& runs) {
  return WriteWholeFile(path, RunsJson(runs).dump(2) + "\n");
}

namespace {

// A CSV field, quoted only when it must be (RFC 4180).
std::string CsvField(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::vector<std::string> CsvFields(const std::vector<std::string>& names) {
  std::vector<std::string> fields;
  fields.reserve(names.size());
  for (const std::string& name : names) fields.push_back(CsvField(name));
  return fields;
}

// Indexes come from the simulator and are always valid; an empty cell beats a crash if not.
std::string_view NameAt(const std::vector<std::string>& names, int64_t index) {
  if (index < 0 || static_cast<size_t>(index) >= names.size()) return "";
  return names[static_cast<size_t>(index)];
}

constexpr size_t kCsvFlushBytes = 1 << 20;

}  // namespace

Status WriteJobsCsv(const std::string& path, const std::vector<SimRun>& runs) {
  OutputFile file;
  ALLOT_RETURN_IF_ERROR(file.Open(path));
  fmt::memory_buffer buffer;
  auto out = std::back_inserter(buffer);
  fmt::format_to(out,
                 "policy,job,account,pool,gpus,submit,start,end,wait_s,run_s,bsld,outcome,"
                 "restarts,lost_gpu_s\n");
  for (const SimRun& run : runs) {
    std::string policy = CsvField(run.summary.policy);
    std::vector<std::string> accounts = CsvFields(run.account_names);
    std::vector<std::string> pools = CsvFields(run.pool_names);
    for (const JobRecord& job : run.jobs) {
      fmt::format_to(out, "{},{},{},{},{},{},", policy, job.id, NameAt(accounts, job.account),
                     NameAt(pools, job.pool), job.gpus, job.submit);
      bool started = job.start >= 0;
      bool ended = started && job.end >= 0;
      bool ran_to_end = job.outcome == Outcome::kCompleted || job.outcome == Outcome::kTimedOut;
      if (!started) {
        fmt::format_to(out, ",,,,,");
      } else if (!ended) {
        fmt::format_to(out, "{},,{},,,", job.start, job.wait());
      } else if (!ran_to_end) {
        fmt::format_to(out, "{},{},{},{},,", job.start, job.end, job.wait(), job.run());
      } else {
        // Bounded slowdown: runs under ten seconds count as ten, so tiny jobs do not dominate.
        double wait = static_cast<double>(job.wait());
        double run_time = static_cast<double>(job.run());
        double bounded_slowdown = std::max((wait + run_time) / std::max(run_time, 10.0), 1.0);
        fmt::format_to(out, "{},{},{},{},{:.3f},", job.start, job.end, job.wait(), job.run(),
                       bounded_slowdown);
      }
      fmt::format_to(out, "{},{},{}\n", OutcomeName(job.outcome), job.restarts,
                     job.lost_gpu_seconds);
      if (buffer.size() >= kCsvFlushBytes) {
        ALLOT_RETURN_IF_ERROR(file.Append(std::string_view(buffer.data(), buffer.size())));
        buffer.clear();
      }
    }
  }
  ALLOT_RETURN_IF_ERROR(file.Append(std::string_view(buffer.data(), buffer.size())));
  return file.Close();
}

Status WriteHtmlReport(const std::string& dir, const std::vector<SimRun>& runs,
                       const std::string& title) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return Status(CodeForErrno(error.value()),
                  fmt::format("cannot create directory '{}': {}", dir, error.message()));
  }

  std::string html;
  html += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += fmt::format("<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n", EscapeHtml(title),
                      kPageStyle);
  html += fmt::format("<h1>{}</h1>\n", EscapeHtml(title));

  html += "<h2>Summary</h2>\n";
  html += RenderHtml(SummaryTable(runs));

  TimeFrame frame = MakeTimeFrame(runs);
  html += "<h2>Utilisation and queue</h2>\n";
  html += UtilisationPlot(runs, frame).ToSvg();
  html += QueuePlot(runs, frame).ToSvg();

  std::vector<LinePlot> tracked = TrackedAccountPlots(runs, frame);
  if (!tracked.empty()) {
    html += "<h2>Tracked accounts: GPUs against nominal</h2>\n<div class=\"multiples\">\n";
    for (const LinePlot& plot : tracked) html += plot.ToSvg();
    html += "</div>\n";
  }

  html += "<h2>Job completion time</h2>\n";
  html += JctCdfPlot(runs).ToSvg();

  html += "<h2>Accounts</h2>\n";
  for (const SimRun& run : runs) {
    size_t hidden = 0;
    Table accounts = AccountTable(run.summary, hidden);
    html += fmt::format("<h3>{}</h3>\n", EscapeHtml(run.summary.policy));
    html += RenderHtml(accounts);
    if (hidden > 0) html += fmt::format("<p class=\"note\">{}</p>\n", HiddenAccountsNote(hidden));
  }

  for (const SimRun& run : runs) {
    if (run.problems.empty()) continue;
    html += fmt::format(
        "<details><summary class=\"note\">Trace and submit problems under {} (first {})"
        "</summary>\n<ul>\n",
        EscapeHtml(run.summary.policy), run.problems.size());
    for (const std::string& problem : run.problems) {
      html += fmt::format("<li>{}</li>\n", EscapeHtml(problem));
    }
    html += "</ul></details>\n";
  }
  html += "</body>\n</html>\n";

  std::string path = (std::filesystem::path(dir) / "index.html").string();
  return WriteWholeFile(path, html);
}

}  // namespace allot
