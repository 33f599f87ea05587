#include <gtest/gtest.h>

#include "core/utf8.h"

namespace upcycle::core {
namespace {

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_EQ(invalid_utf8_at(""), kValidUtf8);
  EXPECT_EQ(invalid_utf8_at("plain ascii\n\t"), kValidUtf8);
  EXPECT_EQ(invalid_utf8_at("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), kValidUtf8);  // é € 😀
  EXPECT_EQ(invalid_utf8_at("\xf4\x8f\xbf\xbf"), kValidUtf8);                           // U+10FFFF
}

TEST(Utf8Test, FindsTheFirstBadByte) {
  EXPECT_EQ(invalid_utf8_at("ab\xff"), 2u);
  EXPECT_EQ(invalid_utf8_at("caf\xc3"), 3u);               // truncated
  EXPECT_EQ(invalid_utf8_at("x\xc3(y"), 1u);               // a continuation byte missing
  EXPECT_EQ(invalid_utf8_at("\x80"), 0u);                  // a lone continuation byte
  EXPECT_EQ(invalid_utf8_at("\xc0\xaf"), 0u);              // overlong '/'
  EXPECT_EQ(invalid_utf8_at("\xe0\x80\xaf"), 0u);          // overlong, three bytes
  EXPECT_EQ(invalid_utf8_at("\xed\xa0\x80"), 0u);          // a UTF-16 surrogate
  EXPECT_EQ(invalid_utf8_at("ok\xf4\x90\x80\x80"), 2u);    // past U+10FFFF
  EXPECT_EQ(invalid_utf8_at("\xf8\x88\x80\x80\x80"), 0u);  // five-byte forms do not exist
}

// Python's bytes.decode("utf-8", "replace") gives these (one U+FFFD per maximal ill-formed
// subpart).
TEST(Utf8Test, ReplacesEachMaximalIllFormedSubpartAsPythonDoes) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(replace_invalid_utf8("plain \xC3\xA9"), "plain \xC3\xA9");
  EXPECT_EQ(replace_invalid_utf8("\xE2\x82"), r);                      // truncated: one
  EXPECT_EQ(replace_invalid_utf8("\xC0\x80"), r + r);                  // C0 never leads: two
  EXPECT_EQ(replace_invalid_utf8("\xED\xA0\x80"), r + r + r);          // a surrogate: three
  EXPECT_EQ(replace_invalid_utf8("a\xF0\x9F\x98"), "a" + r);           // truncated emoji: one
  EXPECT_EQ(replace_invalid_utf8("\xF4\x90\x80\x80"), r + r + r + r);  // past U+10FFFF: four
  EXPECT_EQ(replace_invalid_utf8("\xFF\xFE"
                                 "A"),
            r + r + "A");
  EXPECT_EQ(replace_invalid_utf8("\xE2\x82\xAC\x80"), "\xE2\x82\xAC" + r);
}

}  // namespace
}  // namespace upcycle::core
