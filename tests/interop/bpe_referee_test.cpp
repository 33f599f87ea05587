// The byte-level BPE tokenizer (stages/data/bpe_tokenizer.h) against an outside referee: the
// `tokenizers` library (tests/interop/hf_referee.py bpe), token for token, on real vocabularies
// (GPT-2, Llama 3, Qwen2, Command-R; scripts/hf_vocabs.py, which scripts/setup.sh runs) and
// 12,000 lines of the prepare stage's corpora plus a hostile set. Label interop: needs the .venv.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/utf8.h"
#include "stages/data/bpe_pretokenize.h"
#include "stages/data/bpe_tokenizer.h"
#include "stages/data/documents.h"
#include "stages/data/jsonl_tokenize.h"
#include "stages/data/megatron_index.h"
#include "stages/data/prepare.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

using testing::TempDir;

constexpr int kLinesPerDomain = 4000;  // three domains: 12,000 lines
constexpr int kLinesPerFile = 150;     // many files, not the first few
constexpr int kLinesPerText = 4;       // texts keep their newlines

std::string vocab(const std::string& name) {
  return std::string(UPCYCLE_TEST_VOCABS) + "/" + name + "/tokenizer.json";
}

// Texts of kLinesPerText lines each from the general, code and law domains' files.
std::vector<std::string> corpus_texts() {
  std::vector<std::string> texts;
  for (const char* domain : {"general", "code", "law"}) {
    int lines = 0;
    for (const auto& source : default_domain(domain).sources) {
      for (const auto& path : expand_pattern(source.pattern)) {
        for (const auto& doc : read_documents(path, source.split)) {
          std::istringstream in(doc.text);
          std::string line, text;
          for (int n = 0; lines < kLinesPerDomain && n < kLinesPerFile && std::getline(in, line);
               ++n, ++lines) {
            text += line + "\n";
            if ((n + 1) % kLinesPerText == 0) texts.push_back(std::move(text)), text.clear();
          }
          if (!text.empty()) texts.push_back(text);
          if (lines >= kLinesPerDomain) break;
        }
        if (lines >= kLinesPerDomain) break;
      }
    }
    EXPECT_EQ(lines, kLinesPerDomain) << domain << ": its sources are short (scripts/setup.sh)";
  }
  return texts;
}

std::vector<std::string> hostile_texts() {
  std::vector<std::string> t = {
      "",
      " ",
      "   ",
      "\t",
      "\n",
      "\n\n\n",
      "\r\n",
      " \n \n ",
      "\t \t\n  x",
      "trailing   ",
      std::string(1000, ' '),
      std::string(3000, '\n'),
      std::string(20000, 'a'),
      [] {
        std::string s;
        for (int i = 0; i < 500; ++i) s += "supercalifragilistic";
        return s;
      }(),
      "12345678901234567890 3.14159 1,000,000 ٣٤٥ ½ Ⅻ",
      "\xF0\x9F\xA6\x99\xF0\x9F\xA6\x99 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD "
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
      "東京都は日本の首都です。 中文，标点！",
      "مرحبا بالعالم",
      "Привет, мир",
      "नमस्ते दुनिया",
      "e\xCC\x81 caf\xC3\xA9 A\xCC\x8A \xE2\x84\xA6 \xEF\xAC\x81 \xE1\x84\x80\xE1\x85\xA1",
      "a\xE1\xA0\x8E"
      "b a\xC2\x85"
      "b a\xE2\x80\x8B"
      "b a\xC2\xA0"
      "b a\xE2\x80\xA8"
      "b a\x1C"
      "b",
      "\xFF\xFE",
      "\xC0\x80 x",
      "\xED\xA0\x80",
      "abc\xE2\x82",
      "\xF4\x90\x80\x80!",
      "\x80\x80\x80",
      std::string("nul\0byte", 8),
      "<|endoftext|>",
      "a<|endoftext|>b <|endoftext|> c",
      "<|begin_of_text|>hi<|end_of_text|><|eot_id|>",
      "<|im_start|>user\nhi<|im_end|>",
      "<BOS_TOKEN><|START_OF_TURN_TOKEN|>",
      "a  <mask> b<mask>",
      "[SEP]  \n c [SEP]",
      "cafe\xCC\x81! caf\xC3\xA9! x::y::",
      "12 345 6789 x1y22",
      "'S 'LL 'Re 'ſ 'K don't I'M we've",
      "''''' ' '",
      "    def f(x):\n        return x  # comment\n\n\tif (a && b) { c->d(); }",
      "http://example.com/a?b=c&d=e#f",
      "x\r\ny\rz",
      "   leading",
      "a  b   c    d",
      "\xE3\x80\x80ideographic\xE3\x80\x80space",
      "ﬁﬂ ＡＢＣ １２３",
      "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
  };
  return t;
}

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string h;
  for (unsigned char c : s) h += digits[c >> 4], h += digits[c & 15];
  return h;
}

// The referee's ids for each text (sent as hex: a text may be ill-formed UTF-8).
std::vector<std::vector<uint32_t>> referee_ids(const std::string& tokenizer,
                                               const std::vector<std::string>& texts,
                                               const TempDir& tmp) {
  nlohmann::json h = nlohmann::json::array();
  for (const auto& t : texts) h.push_back(hex(t));
  std::ofstream(tmp / "texts.json") << h.dump();
  auto r = testing::run_binary({UPCYCLE_TEST_PYTHON,
                                std::string(UPCYCLE_SOURCE_DIR) + "/tests/interop/hf_referee.py",
                                "bpe", tokenizer, tmp / "texts.json", tmp / "ids.json"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return nlohmann::json::parse(std::ifstream(tmp / "ids.json"))
      .get<std::vector<std::vector<uint32_t>>>();
}

// Every text encodes as the referee encodes it, and (`decodes_back`) decodes to itself.
void expect_encodes_as_tokenizers(const std::string& path, const std::string& name, bool nfc,
                                  bool decodes_back = true) {
  std::vector<std::string> texts = corpus_texts();
  const size_t corpus = texts.size();
  for (auto& h : hostile_texts()) texts.push_back(std::move(h));
  TempDir tmp;
  const auto theirs = referee_ids(path, texts, tmp);
  ASSERT_EQ(theirs.size(), texts.size());
  const BpeTokenizer ours(path);
  int differ = 0;
  size_t tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<uint32_t> ids = ours.encode(texts[i]);
    tokens += ids.size();
    if (ids != theirs[i] && ++differ <= 5) {
      ADD_FAILURE() << name << (i < corpus ? " corpus" : " hostile") << " text " << i << " ("
                    << texts[i].size() << " bytes: " << texts[i].substr(0, 200)
                    << "): " << ids.size() << " tokens, tokenizers " << theirs[i].size();
    }
    // Decoding gives the text back, once made well-formed (and NFC, where the tokenizer is).
    const std::string valid = core::replace_invalid_utf8(texts[i]);
    if (decodes_back) {
      EXPECT_EQ(ours.decode(ids), nfc ? bpe::nfc(valid) : valid) << name << " text " << i;
    }
  }
  EXPECT_EQ(differ, 0) << name << ": " << differ << " of " << texts.size() << " texts differ";
  std::printf("%s: %zu texts (%zu corpus, %zu hostile), %zu tokens, %d differ\n", name.c_str(),
              texts.size(), corpus, texts.size() - corpus, tokens, differ);
}

class BpeReferee : public ::testing::TestWithParam<const char*> {};

TEST_P(BpeReferee, EncodesAsTokenizersOnCorporaAndHostileText) {
  const std::string path = vocab(GetParam()), name = GetParam();
  ASSERT_TRUE(std::filesystem::exists(path)) << path << ": run scripts/setup.sh";
  expect_encodes_as_tokenizers(path, name, name == "qwen2" || name == "command-r");
}

// The options no real vocabulary above uses, on GPT-2's vocabulary: add_prefix_space, a literal
// Split that removes its matches, contiguous Digits, added tokens with lstrip and rstrip, an added
// token that is matched after NFC.
TEST(BpeReferee, OptionsTheRealVocabulariesDoNotUseEncodeAsTokenizers) {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(vocab("gpt2")));
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"},
                           {"pattern", {{"String", "::"}}},
                           {"behavior", "Removed"},
                           {"invert", false}},
                          {{"type", "Digits"}, {"individual_digits", false}},
                          {{"type", "ByteLevel"},
                           {"add_prefix_space", true},
                           {"trim_offsets", true},
                           {"use_regex", true}}}}};
  auto added = [](int id, const std::string& content, bool lstrip, bool rstrip, bool normalized) {
    return nlohmann::json{
        {"id", id},         {"content", content},       {"single_word", false},  {"lstrip", lstrip},
        {"rstrip", rstrip}, {"normalized", normalized}, {"special", !normalized}};
  };
  j["added_tokens"].push_back(added(50257, "<mask>", true, false, false));
  j["added_tokens"].push_back(added(50258, "[SEP]", false, true, false));
  j["added_tokens"].push_back(added(50259, "caf\xC3\xA9!", true, true, true));
  TempDir tmp;
  std::ofstream(tmp / "tokenizer.json") << j.dump();
  // These options change the text (a space added, "::" and whitespace dropped): no round trip.
  expect_encodes_as_tokenizers(tmp / "tokenizer.json", "gpt2-options", true, false);
  const BpeTokenizer ours(tmp / "tokenizer.json");
  // The options did something: the added tokens absorb their whitespace, "::" is gone.
  EXPECT_EQ(ours.encode("a  <mask>"), ours.encode("a<mask>"));
  EXPECT_EQ(ours.encode("[SEP] \n b"), ours.encode("[SEP]b"));
  EXPECT_EQ(ours.encode("x::y"), ours.encode("x y"));
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, BpeReferee,
                         ::testing::Values("gpt2", "llama3", "qwen2", "command-r"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// JSONL text tokenized with a tokenizer.json (data.tokenizer.path) into a Megatron dataset: each
// document is the referee's ids and Llama 3's <|end_of_text|> (int32: the vocabulary passes 65536).
TEST(BpeTokenizer, TokenizesJsonlIntoMegatronDatasetsAsTokenizersDoes) {
  std::vector<std::string> texts = corpus_texts();
  texts.resize(300);
  texts.push_back("a<|end_of_text|>b");
  TempDir tmp;
  {
    std::ofstream out(tmp / "docs.jsonl");
    for (const auto& t : texts) out << nlohmann::json({{"text", t}}).dump() << "\n";
  }
  const Tokenizer tok(vocab("llama3"));
  ASSERT_EQ(tok.eos_id(), 128001u);  // <|end_of_text|>
  const auto done = tokenize_jsonl(tmp / "docs.jsonl", "text", tok, tmp / "docs");
  EXPECT_EQ(done.documents, static_cast<int64_t>(texts.size()));
  const MegatronIndex idx(tmp / "docs");
  ASSERT_EQ(idx.dtype(), "int32");
  std::ifstream bin(tmp / "docs.bin", std::ios::binary);
  std::vector<int32_t> ids(static_cast<size_t>(idx.tokens()));
  bin.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(ids.size() * 4));
  const auto theirs = referee_ids(vocab("llama3"), texts, tmp);
  for (int64_t d = 0; d < idx.documents(); ++d) {
    std::vector<uint32_t> want = theirs[static_cast<size_t>(d)];
    want.push_back(128001);
    const std::vector<uint32_t> got(ids.begin() + idx.doc_start(d),
                                    ids.begin() + idx.doc_start(d + 1));
    EXPECT_EQ(got, want) << "document " << d;
  }
}

TEST(BpeTokenizer, RefusesWhatItDoesNotImplementNamingTheKey) {
  TempDir tmp;
  auto refused = [&](const std::string& edit_key, const nlohmann::json& value) {
    nlohmann::json j = nlohmann::json::parse(std::ifstream(vocab("gpt2")));
    j[nlohmann::json::json_pointer(edit_key)] = value;
    std::ofstream(tmp / "t.json") << j.dump();
    try {
      BpeTokenizer t(tmp / "t.json");
    } catch (const StageError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(refused("/model/type", "WordPiece").find("model.type: WordPiece"), std::string::npos);
  EXPECT_NE(refused("/model/dropout", 0.1).find("model.dropout"), std::string::npos);
  EXPECT_NE(refused("/model/byte_fallback", true).find("model.byte_fallback"), std::string::npos);
  EXPECT_NE(refused("/normalizer", {{"type", "NFKC"}}).find("normalizer: type NFKC"),
            std::string::npos);
  EXPECT_NE(
      refused("/pre_tokenizer", {{"type", "Metaspace"}}).find("pre_tokenizer.type: Metaspace"),
      std::string::npos);
  EXPECT_NE(refused("/added_tokens/0/single_word", true).find("added_tokens[0].single_word"),
            std::string::npos);
  EXPECT_NE(refused("/model/merges/7", "Ġ nosuchtoken").find("model.merges[7]"), std::string::npos);
  EXPECT_NE(refused("/model/vocab/!", -1).find("model.vocab[!]"), std::string::npos);
  EXPECT_NE(
      refused("/pre_tokenizer",
              {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}})
          .find("pre_tokenizer.pattern"),
      std::string::npos);
}

}  // namespace
}  // namespace upcycle::stages
