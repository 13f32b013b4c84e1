#include "server/auth.h"

#include <gtest/gtest.h>

#include <set>

namespace allot {
namespace {

TEST(AuthTest, TokensAreLongRandomAndDistinct) {
  std::set<std::string> tokens;
  for (int i = 0; i < 100; ++i) {
    std::string token = NewToken();
    EXPECT_EQ(token.size(), 6u + 64u);
    EXPECT_EQ(token.rfind("allot_", 0), 0u);
    tokens.insert(token);
  }
  EXPECT_EQ(tokens.size(), 100u);
}

TEST(AuthTest, HashIsSha256Hex) {
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  EXPECT_EQ(HashToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(HashToken("a"), HashToken("b"));
}

TEST(AuthTest, BearerTokenParsing) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer abc "), "abc");
  EXPECT_EQ(BearerToken("Basic abc"), "");
  EXPECT_EQ(BearerToken("Bearer "), "");
  EXPECT_EQ(BearerToken(""), "");
}

TEST(AuthTest, Roles) {
  EXPECT_EQ(*ParseRole("operator"), Role::kOperator);
  EXPECT_EQ(*ParseRole("tenant"), Role::kTenant);
  EXPECT_EQ(*ParseRole("agent"), Role::kAgent);
  EXPECT_FALSE(ParseRole("admin").ok());
}

}  // namespace
}  // namespace allot
