#include "sim/report_kit.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <system_error>
#include <utility>

namespace allot::report {

// ---------------------------------------------------------------------------------------------
// Writing files. stdio rather than iostreams so that a failure can say why (errno), and so that
// the CSV of a million jobs goes out in a few large writes.


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
std::string FormatNumber(double value, int decimals) {
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

// ---------------------------------------------------------------------------------------------
// SVG line plots.





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

std::string RunColor(size_t run_index) {
  return std::string(kRunColors[run_index % std::size(kRunColors)]);
}



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

std::vector<Point> Smooth(const std::vector<Point>& points, size_t window) {
  if (window < 3 || points.size() < 3) return points;
  size_t half = window / 2;
  std::vector<Point> smoothed;
  smoothed.reserve(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    size_t begin = i >= half ? i - half : 0;
    size_t end = std::min(points.size(), i + half + 1);
    double sum = 0;
    for (size_t j = begin; j < end; ++j) sum += points[j].y;
    smoothed.push_back({points[i].x, sum / static_cast<double>(end - begin)});
  }
  return smoothed;
}

std::string Caption(std::string_view text) {
  return fmt::format("<p class=\"caption\">{}</p>\n", EscapeHtml(text));
}

Status MakeDirectory(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return Status(CodeForErrno(error.value()),
                  fmt::format("cannot create directory '{}': {}", dir, error.message()));
  }
  return OkStatus();
}

const std::string_view kPageStyle = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px;
       color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; } h3 { font-size: 14px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: right;
         font-variant-numeric: tabular-nums; }
th.name, td.name { text-align: left; }
thead th { border-bottom: 2px solid #999; }
.note { color: #666; font-size: 13px; }
.caption { color: #444; font-size: 13px; max-width: 760px; margin: 2px 0 14px; }
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

}  // namespace allot::report
