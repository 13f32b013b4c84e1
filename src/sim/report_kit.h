// The parts reports are made of: files written with errors that say why, numbers for people,
// tables rendered as text, HTML and CSV, and SVG line plots that need no script. sim/report.cc
// (one simulation) and sim/plan_report.cc (a what-if comparison) build their pages from these.
//
//   report::Table table;
//   table.header = {"pool", "utilisation"};
//   table.rows.push_back({"nacc-b200", report::FormatPercent(0.81)});
//   std::string html = report::RenderHtml(table);
#pragma once

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/units.h"
#include "sim/result.h"

namespace allot::report {

// ---- Files -----------------------------------------------------------------------------------

StatusCode CodeForErrno(int error_number);
Status WriteError(const std::string& path, int error_number);

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using FilePointer = std::unique_ptr<std::FILE, FileCloser>;

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


Status WriteWholeFile(const std::string& path, std::string_view contents);
// Creates `dir` and its parents; says why not.
Status MakeDirectory(const std::string& dir);

// ---- Numbers for people ----------------------------------------------------------------------

// Durations rounded to two units: "4.2 s", "12m 05s", "1h 23m", "3d 04h".
std::string FormatApproxSeconds(double seconds);
// "1234567.25" with `decimals` 1 -> "1,234,567.3".
std::string FormatNumber(double value, int decimals = 0);
std::string FormatCount(size_t count);
std::string FormatPercent(double fraction);
std::string FormatBytes(size_t bytes);

// ---- Tables ----------------------------------------------------------------------------------

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  // Columns before this one hold names and are left-aligned; the rest hold numbers.
  size_t name_columns = 1;
};


// Columns a UTF-8 string takes in a terminal, near enough: one per code point.
size_t DisplayWidth(std::string_view text);
std::string RenderText(const Table& table);
std::string EscapeHtml(std::string_view text);
std::string RenderHtml(const Table& table);
// A paragraph under a plot or table saying what it shows and why it matters.
std::string Caption(std::string_view text);
// A CSV field, quoted only when it must be (RFC 4180).
std::string CsvField(std::string_view text);

// ---- SVG line plots --------------------------------------------------------------------------

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


// 1, 2, 2.5 or 5 times a power of ten, so that about `target` steps cover `span`.
double NiceStep(double span, int target);
// A linear axis over [data_min, data_max], widened to whole steps, with about five ticks.
Axis LinearAxis(std::string title, double data_min, double data_max);
// A log axis for durations in seconds, ticked at lengths people think in ("1h", not "3.6k s").
Axis LogDurationAxis(std::string title, double data_min, double data_max);
double MaxY(const std::vector<Line>& lines);

// Colour-blind-friendly (Tableau 10); run i always gets colour i, in every plot.
std::string RunColor(size_t run_index);
inline constexpr std::string_view kNominalColor = "#444444";

// Enough points to look continuous at any plot width; a year of minute buckets would otherwise
// put half a million points per line into the page.
inline constexpr size_t kMaxPointsPerLine = 1000;
inline constexpr size_t kCdfQuantiles = 200;

// ---- Time series -----------------------------------------------------------------------------

// The time unit of the x axis, chosen by how long the series span.
struct TimeUnit {
  double seconds;
  std::string_view name;
};

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

TimeUnit TimeUnitFor(double span_seconds);
TimeFrame MakeTimeFrame(const std::vector<SimRun>& runs);
std::string TimeAxisTitle(const TimeFrame& frame);
// Buckets as points at the middle of each bucket, averaging runs of consecutive buckets so that
// at most kMaxPointsPerLine remain. `first_x` is where bucket 0 starts; `step_x` its width.
std::vector<Point> BucketsToPoints(const std::vector<double>& values, double first_x, double step_x,
                                   double scale);
// A centred moving average over `window` points (odd; shorter at the ends).
std::vector<Point> Smooth(const std::vector<Point>& points, size_t window);

// The style sheet every report page uses.
extern const std::string_view kPageStyle;

}  // namespace allot::report
