// Fuzzes the byte-level BPE tokenizer (stages/data/bpe_tokenizer.h) both ways an input reaches it:
// as a tokenizer.json (import, data.tokenizer.path), where bad input must end in upcycle::Error
// and an accepted tokenizer must encode text into ids it has and decode them; and as text, encoded
// with a fixed tokenizer of the Llama 3 kind (its regex, ignore_merges, an added token), where
// decode(encode(text)) must give the text back, made well-formed UTF-8.
#include <string>

#include "core/error.h"
#include "core/utf8.h"
#include "stages/data/bpe_tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

using namespace upcycle;

namespace {

void check_ids(const stages::BpeTokenizer& t, const std::string& text) {
  const std::vector<uint32_t> ids = t.encode(text);
  for (uint32_t id : ids) {
    if (static_cast<int64_t>(id) >= t.vocab_size()) fuzz::fail("an id outside the vocabulary");
  }
  (void)t.decode(ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const stages::BpeTokenizer fixed(std::string(UPCYCLE_SOURCE_DIR) +
                                          "/tests/fuzz/seeds/tokenizer/llama3-style.json");
  const std::string input(reinterpret_cast<const char*>(data), size);
  // As text.
  if (fixed.decode(fixed.encode(input)) != core::replace_invalid_utf8(input))
    fuzz::fail("decode(encode(text)) is not the text");
  // As a tokenizer.json.
  static const std::string path = fuzz::scratch_dir() + "/tokenizer.json";
  fuzz::write_text(path, input);
  try {
    const stages::BpeTokenizer t(path);
    for (const char* text : {"Hello, world! 12345 don't\n\n  x", "\xF0\x9F\xA6\x99 caf\xC3\xA9",
                             "\xFF\xFE bad", "<|endoftext|>a<mask>b", ""}) {
      check_ids(t, text);
    }
    check_ids(t, input);
  } catch (const Error&) {
    return 0;
  }
  return 0;
}
