#include "core/input_limits.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace allot {
namespace {

using ::testing::HasSubstr;

TEST(CheckUtf8Test, AcceptsTextInEveryPlane) {
  EXPECT_TRUE(CheckUtf8("plain ascii", "t").ok());
  EXPECT_TRUE(CheckUtf8("caf\xC3\xA9 \xED\x95\x9C\xEA\xB8\x80 \xF0\x9F\x9A\x80", "t").ok());  // é 한글 🚀
}

TEST(CheckUtf8Test, RefusesBytesThatAreNotUtf8AndSaysWhere) {
  Status raw = CheckUtf8("{\"name\": \"a\xFF\"}", "request");
  ASSERT_EQ(raw.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(raw.message(), HasSubstr("request: not valid UTF-8 at byte 11 (line 1)"));
  EXPECT_FALSE(CheckUtf8("\xC0\xAF", "t").ok());          // overlong '/'
  EXPECT_FALSE(CheckUtf8("\xED\xA0\x80", "t").ok());      // a surrogate written out
  EXPECT_FALSE(CheckUtf8("\xF4\x90\x80\x80", "t").ok());  // above U+10FFFF
  EXPECT_FALSE(CheckUtf8("ok\n\xE2\x82", "t").ok());      // cut short
}

TEST(CheckNestingTest, CountsBracketsOutsideStrings) {
  EXPECT_TRUE(CheckNesting(R"({"a": [[1], {"b": "[[[[[["}]})", 3, "t").ok());
  EXPECT_TRUE(CheckNesting("name: it's [x]", 1, "t").ok());
  std::string deep(65, '[');
  Status refused = CheckNesting(deep, kMaxNestingDepth, "body");
  ASSERT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.message(), HasSubstr("nested more than 64 levels deep at byte 64"));
  EXPECT_TRUE(CheckNesting(std::string(64, '{'), kMaxNestingDepth, "body").ok());
}

TEST(CheckUserNameTest, RefusesControlCharactersAndLongNames) {
  EXPECT_TRUE(CheckUserName("kim.lee@snu", "user").ok());
  EXPECT_TRUE(CheckUserName("김민수", "user").ok());
  Status nul = CheckUserName(std::string("a\0b", 3), "user");
  ASSERT_FALSE(nul.ok());
  EXPECT_EQ(nul.message(), "user: a control character (0x00) at byte 1; use a plain user name");
  EXPECT_FALSE(CheckUserName("a\tb", "user").ok());
  EXPECT_FALSE(CheckUserName(std::string(257, 'a'), "user").ok());
}

TEST(CompleteUtf8PrefixTest, DropsOnlyACharacterCutAtTheEnd) {
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xED\x95"), 2u);           // 한 cut after two of three bytes
  EXPECT_EQ(CompleteUtf8Prefix("ab\xED\x95\x9C"), 5u);       // whole
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\x9A"), 0u);
}

TEST(ReplaceInvalidUtf8Test, KeepsTextAndReplacesStrayBytes) {
  EXPECT_EQ(ReplaceInvalidUtf8("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(ReplaceInvalidUtf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(ReplaceInvalidUtf8("\x9C"), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace allot
