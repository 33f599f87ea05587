#include "stages/data/documents.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/sha256.h"

namespace fs = std::filesystem;

namespace upcycle::stages {
namespace {

bool valid_utf8_text(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;  // binary
    int extra = c < 0x80           ? 0
                : (c >> 5) == 0x6  ? 1
                : (c >> 4) == 0xe  ? 2
                : (c >> 3) == 0x1e ? 3
                                   : -1;
    if (extra < 0 || i + extra >= s.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace

std::vector<std::string> expand_pattern(const std::string& pattern) {
  std::vector<std::string> out;
  std::error_code ec;
  size_t star = pattern.find_first_of("*?[");
  if (star == std::string::npos) {
    if (fs::is_regular_file(pattern, ec)) out.push_back(pattern);
    return out;
  }
  size_t slash = pattern.rfind('/', star);
  std::string root = slash == std::string::npos ? "." : pattern.substr(0, slash);
  std::string rest = slash == std::string::npos ? pattern : pattern.substr(slash + 1);
  bool recursive = rest.rfind("**/", 0) == 0;
  std::string name_glob = recursive ? rest.substr(3) : rest;
  if (!fs::is_directory(root, ec)) return out;
  auto consider = [&](const fs::directory_entry& e) {
    if (!e.is_regular_file(ec) || e.is_symlink(ec)) return;
    if (fnmatch(name_glob.c_str(), e.path().filename().c_str(), 0) == 0)
      out.push_back(e.path().string());
  };
  if (recursive) {
    for (auto it = fs::recursive_directory_iterator(
             root, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      consider(*it);
    }
  } else {
    for (const auto& e : fs::directory_iterator(root, ec)) consider(e);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string trim_space(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool jsonl_text(const std::string& line, const std::string& text_field, const std::string& path,
                int64_t n, std::string& text) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) return false;
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    throw StageError(path + ":" + std::to_string(n) + ": not a JSON object");
  }
  auto it = j.find(text_field);
  if (it == j.end() || !it->is_string()) {
    throw StageError(path + ":" + std::to_string(n) + ": no string field '" + text_field + "'",
                     "set the source's text_field to the field that holds the text");
  }
  text = it->get<std::string>();
  return true;
}

std::vector<Document> read_documents(const std::string& path, DocSplit split,
                                     const std::string& text_field) {
  std::ifstream in(path, std::ios::binary);
  std::vector<Document> docs;
  if (!in) return docs;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (!valid_utf8_text(text)) return docs;
  std::vector<std::string> parts;
  if (split == DocSplit::kFortune) {
    std::string cur, line;
    std::istringstream lines(text);
    while (std::getline(lines, line)) {
      if (line == "%") {
        parts.push_back(cur);
        cur.clear();
      } else {
        cur += line + "\n";
      }
    }
    parts.push_back(cur);
  } else if (split == DocSplit::kJsonl) {
    std::string line;
    std::istringstream lines(text);
    for (int64_t n = 1; std::getline(lines, line); ++n) {
      std::string doc;
      if (jsonl_text(line, text_field, path, n, doc)) parts.push_back(std::move(doc));
    }
  } else {
    parts.push_back(text);
  }
  for (auto& p : parts) {
    std::string t = trim_space(p);
    if (t.empty()) continue;
    docs.push_back({t, path, core::sha256_hex(t)});
  }
  return docs;
}

DpkgIndex::DpkgIndex(const std::string& root) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root + "/info", ec)) {
    std::string name = e.path().filename().string();
    if (name.size() < 6 || name.substr(name.size() - 5) != ".list") continue;
    std::string pkg = name.substr(0, name.size() - 5);
    pkg = pkg.substr(0, pkg.find(':'));  // strip ":amd64"
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) file_to_package_.emplace(line, pkg);
  }
  std::ifstream status(root + "/status");
  std::string line, pkg;
  while (std::getline(status, line)) {
    if (line.rfind("Package: ", 0) == 0) pkg = line.substr(9);
    if (line.rfind("Version: ", 0) == 0 && !pkg.empty()) package_version_[pkg] = line.substr(9);
  }
}

std::pair<std::string, std::string> DpkgIndex::owner(const std::string& path) const {
  auto it = file_to_package_.find(path);
  if (it == file_to_package_.end()) return {"", ""};
  auto v = package_version_.find(it->second);
  return {it->second, v == package_version_.end() ? "" : v->second};
}

}  // namespace upcycle::stages
