// recipes/README.md's key tables are the field tables' docs: regenerate them with
// scripts/gen_key_docs.sh when a declaration changes.
#include "runner/key_docs.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/atomic_file.h"
#include "core/error.h"

namespace upcycle::runner {
namespace {

TEST(KeyDocsTest, TheReadmeTablesAreGeneratedFromTheDeclarations) {
  const std::string readme = core::read_file(UPCYCLE_SOURCE_DIR "/recipes/README.md");
  for (const auto& section : key_doc_sections()) {
    const std::string open = "<!-- keys: " + section + " -->\n";
    const size_t at = readme.find(open);
    ASSERT_NE(at, std::string::npos) << "recipes/README.md has no " << open;
    const size_t end = readme.find("<!-- /keys -->", at);
    ASSERT_NE(end, std::string::npos);
    EXPECT_EQ(readme.substr(at + open.size(), end - at - open.size()), key_docs(section))
        << "recipes/README.md's " << section << " keys are stale: run scripts/gen_key_docs.sh";
  }
  EXPECT_THROW(key_docs("nope"), ConfigError);
}

// Every recipe key a kind's table declares is a key the recipe parser accepts, and the docs list
// it.
TEST(KeyDocsTest, EveryDocumentedKeyHasARow) {
  for (const auto& section : key_doc_sections()) {
    const std::string table = key_docs(section);
    EXPECT_GT(std::count(table.begin(), table.end(), '\n'), 3) << section;
  }
  EXPECT_NE(key_docs("train").find("| `optim.lr` | `0.001` | number in [0, 10) |"),
            std::string::npos)
      << key_docs("train");
  EXPECT_NE(key_docs("upcycle").find("| `attention.kv` | `expert` | `expert` or `shared` |"),
            std::string::npos)
      << key_docs("upcycle");
}

}  // namespace
}  // namespace upcycle::runner
