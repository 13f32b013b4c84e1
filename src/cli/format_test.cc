#include "cli/format.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace allot {
namespace {

TEST(CompressIndexesTest, ConsecutiveIndexesBecomeRanges) {
  EXPECT_EQ(CompressIndexes({0, 1, 2, 3, 4, 5, 6, 7}), "0-7");
  EXPECT_EQ(CompressIndexes({6, 0, 1, 2, 3}), "0-3,6");
  EXPECT_EQ(CompressIndexes({5}), "5");
  EXPECT_EQ(CompressIndexes({}), "");
}

TEST(FormatElapsedTest, WritesSlurmsForms) {
  EXPECT_EQ(FormatElapsed(0), "0:00");
  EXPECT_EQ(FormatElapsed(59), "0:59");
  EXPECT_EQ(FormatElapsed(307), "5:07");
  EXPECT_EQ(FormatElapsed(3600), "1:00:00");
  EXPECT_EQ(FormatElapsed(3723), "1:02:03");
  EXPECT_EQ(FormatElapsed(86399), "23:59:59");
  EXPECT_EQ(FormatElapsed(86400), "1-00:00:00");
  EXPECT_EQ(FormatElapsed(2 * 86400 + 3 * 3600 + 4 * 60 + 5), "2-03:04:05");
  EXPECT_EQ(FormatElapsed(-30), "0:00");
}

TEST(FormatTimestampTest, WritesUtcAndDashForZero) {
  EXPECT_EQ(FormatTimestamp(0), "-");
  EXPECT_EQ(FormatTimestamp(1), "1970-01-01T00:00:01");
  EXPECT_EQ(FormatTimestamp(1796000000), "2026-11-30T00:53:20");
  EXPECT_EQ(FormatDate(1796000000), "2026-11-30");
}

TEST(TableTest, AlignsColumnsWithoutTrailingBlanks) {
  Table table({{"ID", Align::kRight}, {"NAME"}, {"STATE"}});
  table.AddRow({"7", "train", "RUNNING"});
  table.AddRow({"1234", "x", ""});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(),
            "  ID  NAME   STATE\n"
            "   7  train  RUNNING\n"
            "1234  x\n");
  EXPECT_EQ(table.row_count(), 2u);
}

TEST(TableTest, CountsCodePointsNotBytes) {
  Table table({{"NAME"}, {"N", Align::kRight}});
  table.AddRow({"café", "1"});
  table.AddRow({"lab-a", "22"});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(),
            "NAME    N\n"
            "café    1\n"
            "lab-a  22\n");
}

TEST(TableTest, AnEmptyTablePrintsItsHeader) {
  Table table({{"JOBID", Align::kRight}, {"NAME"}});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(), "JOBID  NAME\n");
}

}  // namespace
}  // namespace allot
