#include "core/output_dir.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <limits>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/integer.h"
#include "core/utf8.h"

namespace upcycle::core {
namespace {

namespace fs = std::filesystem;

fs::path canonical_of(const std::string& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  fs::path c = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal() : c;
}

// Whether `inner` is `outer` or lies under it, both canonical.
bool within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

bool alive(int64_t pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  if (pid == ::getpid()) return false;  // ours from an earlier step of this process: stale too
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

bool is_empty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_empty(p, ec) && !ec;
}

std::string pid_suffix() { return std::to_string(::getpid()); }

}  // namespace

std::string path_text_problem(const std::string& path) {
  if (path.empty()) return "is empty";
  for (unsigned char c : path) {
    if (c < 0x20 || c == 0x7f) return "holds a control character (a newline, a tab, ...)";
  }
  if (invalid_utf8_at(path) != kValidUtf8) return "is not valid UTF-8";
  return "";
}

std::string output_dir_refusal(const std::string& target, const OutputRules& rules) {
  if (std::string why = path_text_problem(target); !why.empty()) return "the output path " + why;
  const fs::path t = canonical_of(target);
  if (t == t.root_path()) return target + ": refusing to write over a file system root";
  for (const auto& [what, p] : rules.protect) {
    if (p.empty()) continue;
    if (within(canonical_of(p), t)) {
      return target + ": refusing to write here: it " + (canonical_of(p) == t ? "is " : "holds ") +
             what + " (" + p + ")";
    }
  }
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(target, ec);
  if (ec || st.type() == fs::file_type::not_found) return "";
  if (st.type() == fs::file_type::symlink)
    return target + ": is a symbolic link; give the directory itself";
  if (st.type() != fs::file_type::directory) return target + ": exists and is not a directory";
  if (is_empty_dir(target)) return "";
  if (!fs::exists(fs::path(target) / kOutputMarker, ec)) {
    return target + ": exists, is not empty and was not written by upcycle; refusing to replace it";
  }
  if (!rules.force)
    return target + ": exists (an earlier upcycle output); give --force to replace it";
  return "";
}

OutputDir::OutputDir(std::string target, OutputRules rules)
    : target_(std::move(target)), rules_(std::move(rules)) {
  if (std::string why = output_dir_refusal(target_, rules_); !why.empty()) {
    throw Error(why, "choose a new directory, or an empty one");
  }
  fs::path t = fs::path(target_).lexically_normal();
  if (t.filename().empty()) t = t.parent_path();  // "out/" names "out"
  if (t.filename() == "." || t.filename() == "..")
    t = canonical_of(target_);  // an empty "." is renamed by name
  target_ = t.string();
  const std::string parent = t.parent_path().empty() ? "." : t.parent_path().string();
  make_dirs(parent);
  sweep_stale_temps(target_, ".tmp.");
  sweep_stale_temps(target_, ".old.");
  tmp_ = parent + "/." + t.filename().string() + ".tmp." + pid_suffix();
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  make_dirs(tmp_);
}

OutputDir::~OutputDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void OutputDir::commit() {
  write_file_atomic(tmp_ + "/" + kOutputMarker, "written by upcycle (pid " + pid_suffix() + ")\n");
  // The target may have changed while we wrote: check it again.
  if (std::string why = output_dir_refusal(target_, rules_); !why.empty()) throw Error(why);
  const fs::path t(target_);
  const std::string old = (t.parent_path().empty() ? std::string(".") : t.parent_path().string()) +
                          "/." + t.filename().string() + ".old." + pid_suffix();
  std::error_code ec;
  const bool had = fs::exists(target_, ec) && !is_empty_dir(target_);
  if (had) {
    fs::rename(target_, old, ec);
    if (ec) throw Error(target_ + ": cannot move the old output aside: " + ec.message());
  }
  fs::rename(tmp_, target_, ec);
  if (ec) {
    if (had) fs::rename(old, target_);
    throw Error(target_ + ": cannot put the new output in place: " + ec.message());
  }
  committed_ = true;
  if (had) fs::remove_all(old, ec);
}

void check_output_collection(const std::string& dir, const OutputRules& rules) {
  OutputRules r = rules;
  r.force = true;  // adding to a collection this tool made replaces nothing of the user's
  if (std::string why = output_dir_refusal(dir, r); !why.empty())
    throw Error(why, "choose a new directory, or an empty one");
}

void claim_output_collection(const std::string& dir, const OutputRules& rules) {
  check_output_collection(dir, rules);
  make_dirs(dir);
  if (!file_exists(dir + "/" + kOutputMarker))
    write_file_atomic(dir + "/" + kOutputMarker, "written by upcycle\n");
}

int sweep_stale_temps(const std::string& path, const std::string& infix) {
  const fs::path p = fs::path(path).lexically_normal();
  const std::string name = p.filename().string();
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string entry = it->path().filename().string();
    for (const std::string& prefix : {name + infix, "." + name + infix}) {
      if (entry.size() <= prefix.size() || entry.compare(0, prefix.size(), prefix) != 0) continue;
      try {
        if (!alive(parse_integer(entry.substr(prefix.size()), {1}, false)))
          stale.push_back(it->path());
      } catch (const std::logic_error&) {  // not a pid: not ours
      }
    }
  }
  int removed = 0;
  for (const auto& s : stale) {
    std::error_code rm;
    if (fs::remove_all(s, rm) > 0 && !rm) ++removed;
  }
  return removed;
}

}  // namespace upcycle::core
