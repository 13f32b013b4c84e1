#include "cli/format.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace allot {
namespace {

TEST(CompressNodeListTest, RunsOfOneNumberedPrefixShareABracket) {
  EXPECT_EQ(CompressNodeList({"n1", "n2", "n3", "n7"}), "n[1-3,7]");
  EXPECT_EQ(CompressNodeList({"n7", "n3", "n1", "n2"}), "n[1-3,7]");
  EXPECT_EQ(CompressNodeList({"n9", "n10", "n11"}), "n[9-11]");
}

TEST(CompressNodeListTest, ASingleNodeHasNoBrackets) {
  EXPECT_EQ(CompressNodeList({"n7"}), "n7");
  EXPECT_EQ(CompressNodeList({}), "");
}

TEST(CompressNodeListTest, DuplicatesAreDropped) {
  EXPECT_EQ(CompressNodeList({"n2", "n1", "n2", "n1"}), "n[1-2]");
}

TEST(CompressNodeListTest, PrefixesAreGroupedSeparately) {
  EXPECT_EQ(CompressNodeList({"gpu-b2", "gpu-a1", "gpu-a2", "gpu-b1", "gpu-b3"}),
            "gpu-a[1-2],gpu-b[1-3]");
  EXPECT_EQ(CompressNodeList({"rack1-n4", "rack2-n4"}), "rack1-n4,rack2-n4");
}

TEST(CompressNodeListTest, ZeroPaddingIsKept) {
  EXPECT_EQ(CompressNodeList({"gpu001", "gpu002", "gpu003", "gpu010"}), "gpu[001-003,010]");
  EXPECT_EQ(CompressNodeList({"n09", "n10"}), "n[09-10]");
  // A padded and an unpadded number are different names, never one range.
  EXPECT_EQ(CompressNodeList({"n09", "n010"}), "n[09,010]");
}

TEST(CompressNodeListTest, NamesWithoutANumberAreListedAsTheyAre) {
  EXPECT_EQ(CompressNodeList({"login", "n2", "n1"}), "login,n[1-2]");
  EXPECT_EQ(CompressNodeList({"n", "n1", "n2"}), "n[1-2],n");
}

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
