#include "core/hostlist.h"

#include <gtest/gtest.h>

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

TEST(CompressHostListTest, KeepsTheOrderGiven) {
  EXPECT_EQ(CompressHostList({"n3", "n1", "n2"}), "n[3,1-2]");
  EXPECT_EQ(CompressHostList({"b7", "a1", "a2", "b8"}), "b7,a[1-2],b8");
  EXPECT_EQ(CompressHostList({"n2", "n1", "n2"}), "n[2,1]");
  EXPECT_EQ(CompressHostList({}), "");
}

TEST(CompressHostListTest, ExpandsBackToTheSameNamesInTheSameOrder) {
  std::vector<std::string> names = {"samsung-b200-527", "samsung-b200-528", "samsung-b200-529", "nacc-gb200-0007",
                                    "nacc-gb200-0008", "samsung-b200-3", "login", "nacc-gb200-0010"};
  StatusOr<std::vector<std::string>> expanded = ExpandHostList(CompressHostList(names));
  ASSERT_TRUE(expanded.ok()) << expanded.status().message();
  EXPECT_EQ(*expanded, names);
}

TEST(ExpandHostListTest, ExpandsRangesAndPlainNames) {
  StatusOr<std::vector<std::string>> hosts = ExpandHostList("gpu[01-03,10],login,n[9-11]");
  ASSERT_TRUE(hosts.ok());
  EXPECT_EQ(*hosts, (std::vector<std::string>{"gpu01", "gpu02", "gpu03", "gpu10", "login", "n9", "n10", "n11"}));
}

TEST(ExpandHostListTest, MalformedListsAreErrorsThatSayWhy) {
  EXPECT_EQ(ExpandHostList("a[1-").status().message(), "'a[1-' is not a host list: a '[' is not closed");
  EXPECT_FALSE(ExpandHostList("a[3-1]").ok());
  EXPECT_FALSE(ExpandHostList("a[x-2]").ok());
  // Too many names, or numbers too long to count: refused, never a crash or a huge list.
  EXPECT_FALSE(ExpandHostList("a[0-999999]").ok());
  EXPECT_FALSE(ExpandHostList("a[1-99999999999999999999999]").ok());
}

}  // namespace
}  // namespace allot
