#include <limits>
#include "core/units.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace allot {
namespace {

using ::testing::HasSubstr;

// Parses text that must be a valid duration; fails the test (and returns -1) otherwise.
Duration MustParseDuration(const std::string& text) {
  StatusOr<Duration> parsed = ParseDuration(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << parsed.status().ToString();
  return parsed.ok() ? *parsed : -1;
}

int64_t MustParseMemory(const std::string& text) {
  StatusOr<int64_t> parsed = ParseMemory(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << parsed.status().ToString();
  return parsed.ok() ? *parsed : -1;
}

TEST(ParseDurationTest, PlainSecondsAreSeconds) {
  EXPECT_EQ(MustParseDuration("3600"), 3600);
  EXPECT_EQ(MustParseDuration("0"), 0);
}

TEST(ParseDurationTest, UnitSuffixes) {
  EXPECT_EQ(MustParseDuration("45s"), 45);
  EXPECT_EQ(MustParseDuration("90m"), 90 * 60);
  EXPECT_EQ(MustParseDuration("2h"), 2 * 3600);
  EXPECT_EQ(MustParseDuration("7d"), 7 * 86400);
  EXPECT_EQ(MustParseDuration("2w"), 14 * 86400);
}

TEST(ParseDurationTest, CombinedUnitsAdd) {
  EXPECT_EQ(MustParseDuration("1h30m"), 5400);
  EXPECT_EQ(MustParseDuration("2d3h4m5s"), 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
  EXPECT_EQ(MustParseDuration("1w1d"), 8 * 86400);
}

TEST(ParseDurationTest, SlurmClockForms) {
  EXPECT_EQ(MustParseDuration("05:30"), 5 * 60 + 30);                         // MM:SS
  EXPECT_EQ(MustParseDuration("02:03:04"), 2 * 3600 + 3 * 60 + 4);            // HH:MM:SS
  EXPECT_EQ(MustParseDuration("3-12"), 3 * 86400 + 12 * 3600);                // D-HH
  EXPECT_EQ(MustParseDuration("1-02:30"), 86400 + 2 * 3600 + 30 * 60);        // D-HH:MM
  EXPECT_EQ(MustParseDuration("2-01:02:03"), 2 * 86400 + 3600 + 2 * 60 + 3);  // D-HH:MM:SS
}

TEST(ParseDurationTest, RejectsMalformedText) {
  for (const char* text : {"", "-5", "5x", "1h30", "h", "1:2:3:4", "1-", "-1-02", "1.5h"}) {
    StatusOr<Duration> parsed = ParseDuration(text);
    ASSERT_FALSE(parsed.ok()) << "'" << text << "' parsed as " << *parsed;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(parsed.status().message(), HasSubstr("is not a duration")) << text;
  }
}

TEST(ParseDurationTest, RejectsValuesThatOverflowInsteadOfWrapping) {
  for (const char* text : {"99999999999999999w", "9223372036854775807m", "999999999999999-00",
                           "2562047788015216:00:00", "9223372036854775807s1s"}) {
    StatusOr<Duration> parsed = ParseDuration(text);
    ASSERT_FALSE(parsed.ok()) << "'" << text << "' parsed as " << *parsed;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << text;
  }
  // Large but representable values still parse.
  EXPECT_EQ(MustParseDuration("100000w"), int64_t{100000} * 7 * 86400);
  EXPECT_EQ(MustParseDuration("9223372036854775807"), INT64_MAX);
}

TEST(ParseDurationTest, ErrorQuotesTheInputAndTheAcceptedForms) {
  StatusOr<Duration> parsed = ParseDuration("5x");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("'5x'"));
  EXPECT_THAT(parsed.status().message(), HasSubstr("1h30m"));
  EXPECT_THAT(parsed.status().message(), HasSubstr("D-HH:MM:SS"));
}

TEST(ParseMemoryTest, PlainBytes) {
  EXPECT_EQ(MustParseMemory("1024"), 1024);
  EXPECT_EQ(MustParseMemory("0"), 0);
  EXPECT_EQ(MustParseMemory("17B"), 17);
}

TEST(ParseMemoryTest, BareLetterIsBinary) {
  EXPECT_EQ(MustParseMemory("4K"), 4 * 1024);
  EXPECT_EQ(MustParseMemory("64G"), int64_t{64} << 30);
  EXPECT_EQ(MustParseMemory("3T"), int64_t{3} << 40);
}

TEST(ParseMemoryTest, BinarySuffixes) {
  EXPECT_EQ(MustParseMemory("512Mi"), int64_t{512} << 20);
  EXPECT_EQ(MustParseMemory("512MiB"), int64_t{512} << 20);
  EXPECT_EQ(MustParseMemory("2TiB"), int64_t{1} << 41);
  EXPECT_EQ(MustParseMemory("1Pi"), int64_t{1} << 50);
}

TEST(ParseMemoryTest, ByteSuffixWithoutIIsDecimal) {
  EXPECT_EQ(MustParseMemory("1GB"), 1'000'000'000);
  EXPECT_EQ(MustParseMemory("5MB"), 5'000'000);
  EXPECT_EQ(MustParseMemory("2TB"), 2'000'000'000'000);
}

TEST(ParseMemoryTest, RejectsUnknownUnitsAndGarbage) {
  for (const char* text : {"12Q", "", "G", "-5G", "1.5G", "64Gx", "64GiBB", "64iB"}) {
    StatusOr<int64_t> parsed = ParseMemory(text);
    ASSERT_FALSE(parsed.ok()) << "'" << text << "' parsed as " << *parsed;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(parsed.status().message(), HasSubstr("is not a memory size")) << text;
  }
}

TEST(ParseMemoryTest, RejectsSizesThatOverflowInsteadOfWrapping) {
  for (const char* text : {"99999999T", "9999999999P", "1099511627776Ti", "8192PiB"}) {
    StatusOr<int64_t> parsed = ParseMemory(text);
    ASSERT_FALSE(parsed.ok()) << "'" << text << "' parsed as " << *parsed;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << text;
  }
  EXPECT_EQ(MustParseMemory("8191Pi"), int64_t{8191} << 50);
}

TEST(FormatDurationTest, ShortestExactForm) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(45), "45s");
  EXPECT_EQ(FormatDuration(5400), "1h30m");
  EXPECT_EQ(FormatDuration(86400), "1d");
  EXPECT_EQ(FormatDuration(2 * 86400 + 3 * 3600), "2d3h");
  EXPECT_EQ(FormatDuration(90061), "1d1h1m1s");
  EXPECT_EQ(FormatDuration(-90), "-1m30s");
  EXPECT_EQ(FormatDuration(std::numeric_limits<Duration>::min()), "-106751991167300d15h30m8s");
}

TEST(FormatDurationTest, RoundTripsThroughParseDuration) {
  for (Duration seconds : {Duration{0}, Duration{1}, Duration{59}, Duration{60}, Duration{3599},
                           Duration{5400}, Duration{86400}, Duration{604800}, Duration{1234567}}) {
    EXPECT_EQ(MustParseDuration(FormatDuration(seconds)), seconds) << FormatDuration(seconds);
  }
  for (const char* text : {"1h30m", "2d3h", "45s", "1d1h1m1s"}) {
    EXPECT_EQ(FormatDuration(MustParseDuration(text)), text);
  }
}

}  // namespace
}  // namespace allot
