// How the `allot` client prints what the server returns: aligned text tables, and Slurm's ways of
// writing node lists, elapsed times and dates, so the output reads like squeue, scontrol and
// sreport to people who know those.
//
//   Table table({{"JOBID", Align::kRight}, {"NAME"}, {"NODELIST"}});
//   table.AddRow({"12", "train", CompressNodeList({"n1", "n2", "n3", "n7"})});  // "n[1-3,7]"
//   table.Print(std::cout);
//
//   FormatElapsed(3723)           -> "1:02:03"
//   FormatTimestamp(1796000000)   -> "2026-11-30T00:53:20" (UTC), and "-" for 0 (never)
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "core/hostlist.h"  // CompressNodeList, for the NODELIST columns
#include "core/units.h"

namespace allot {

// "0-7", "0-3,6": ascending, duplicates dropped; "" for none. For GPU indexes and job ids.
std::string CompressIndexes(std::vector<int64_t> indexes);

// Slurm's elapsed-time form, as squeue's TIME column: "M:SS" under an hour, "H:MM:SS" under a day,
// else "D-HH:MM:SS". Negative durations (clock skew between client and server) print as "0:00".
std::string FormatElapsed(Duration seconds);

// UTC "YYYY-MM-DDTHH:MM:SS"; "-" for 0, which the API uses for "not yet" or "never".
std::string FormatTimestamp(Time unix_seconds);

// UTC "YYYY-MM-DD".
std::string FormatDate(Time unix_seconds);

enum class Align : uint8_t { kLeft, kRight };

struct Column {
  std::string header;
  Align align = Align::kLeft;
};

// A text table whose columns are as wide as their widest cell, separated by two spaces, with no
// trailing blanks. Widths count UTF-8 code points, so accented names stay aligned
// (wide CJK characters, two columns each, do not).
class Table {
 public:
  explicit Table(std::vector<Column> columns);

  // A row has one cell per column; missing cells print empty, extra cells are a programmer error.
  void AddRow(std::vector<std::string> cells);
  size_t row_count() const { return rows_.size(); }

  // The header line, then the rows in the order they were added.
  void Print(std::ostream& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace allot
