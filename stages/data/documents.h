// Real documents from files installed by Debian packages: source patterns, the dpkg owner of each
// file (for the data manifest), and splitting files into documents. No LibTorch.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace upcycle::stages {

struct Document {
  std::string text;
  std::string origin;  ///< file path, or "generator:<name>"
  std::string sha256;  ///< of text; the dedup and split key
};

/// One source file as the manifest records it.
struct SourceFile {
  std::string path;
  std::string package;  ///< dpkg package owning the file, or "" if none
  std::string version;
  std::string sha256;
  int64_t bytes = 0;
};

/// `s` without leading and trailing spaces, tabs and newlines.
std::string trim_space(const std::string& s);

/// Expands a source pattern into sorted regular files. Forms: "/dir/**/*.h" (recursive),
/// "/dir/*.txt" (one level), "/dir/file". A pattern matching nothing yields an empty list.
std::vector<std::string> expand_pattern(const std::string& pattern);

/// How a file becomes documents: one per file, split on lines holding only "%" (fortune files), or
/// one per line of a JSONL file (the string field `text_field` of each object).
enum class DocSplit { kWholeFile, kFortune, kJsonl };

/// The string field `text_field` of one JSONL line (line `n` of `path`) into `text`; false for a
/// blank line. Throws StageError naming path:n for a line that is not a JSON object with that
/// string field.
bool jsonl_text(const std::string& line, const std::string& text_field, const std::string& path,
                int64_t n, std::string& text);

/// Reads `path` into documents. Skips empty documents and files that are not valid UTF-8 text. For
/// JSONL, a line that is not a JSON object with a string `text_field` is a StageError naming
/// path:line (user corpora fail loudly rather than train on less data than they think).
std::vector<Document> read_documents(const std::string& path, DocSplit split,
                                     const std::string& text_field = "text");

/// Maps installed files to their Debian package and version, from /var/lib/dpkg.
class DpkgIndex {
 public:
  /// Loads /var/lib/dpkg/info/*.list and /var/lib/dpkg/status (or `root` for tests).
  explicit DpkgIndex(const std::string& root = "/var/lib/dpkg");
  /// Package owning `path` ("" when none), and its version.
  std::pair<std::string, std::string> owner(const std::string& path) const;

 private:
  std::map<std::string, std::string> file_to_package_;
  std::map<std::string, std::string> package_version_;
};

}  // namespace upcycle::stages
