#include "core/sha256.h"

#include <gtest/gtest.h>

namespace upcycle::core {
namespace {

// FIPS 180-4 / NIST example vectors.
TEST(Sha256Test, MatchesKnownVectors) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
  };
  for (const auto& c : cases) EXPECT_EQ(sha256_hex(c.in), c.out) << "input: " << c.in;
}

TEST(Sha256Test, IncrementalEqualsOneShot) {
  std::string data(1000003, 'a');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char('a' + i % 26);
  Sha256 h;
  for (size_t i = 0; i < data.size(); i += 77) h.update(data.substr(i, 77));
  EXPECT_EQ(h.hex_digest(), sha256_hex(data));
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

}  // namespace
}  // namespace upcycle::core
