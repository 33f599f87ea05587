// Writing directories that belong to the user (design.md, "Writing files that belong to the user"):
// `export --out`, `import --out`, `bench --dir`, `plot --out`, `report --out`. One rule for all of
// them: a directory is written into a fresh temp sibling and renamed into place; an existing target
// is replaced only when it is empty, or carries kOutputMarker (which only this tool writes) and the
// user said --force. The store, the runs root, the command's source and any ancestor of them are
// never a target. Everything else is refused, naming the path.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace upcycle::core {

/// The marker file in every directory this tool wrote whole.
inline constexpr const char* kOutputMarker = ".upcycle-output";

struct OutputRules {
  bool force = false;  ///< replace a directory that carries the marker
  /// (what, path) pairs that neither the target nor anything under it may be: {"the store",
  /// "runs/store.sqlite"}.
  std::vector<std::pair<std::string, std::string>> protect;
};

/// "" when `path` is usable as a path given on a command line or in a recipe, else why not (empty,
/// a control character such as a newline, not UTF-8).
std::string path_text_problem(const std::string& path);

/// Why `target` may not be (re)written as a whole directory under `rules`, or "" when it may.
std::string output_dir_refusal(const std::string& target, const OutputRules& rules);

/// A directory written whole. The constructor checks the target (upcycle::Error with the refusal),
/// sweeps temp siblings that dead processes left, and creates the temp sibling; write into path();
/// commit() puts it in place. On every other exit (an exception, an early return) the temp is
/// removed.
class OutputDir {
 public:
  OutputDir(std::string target, OutputRules rules);
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  const std::string& path() const { return tmp_; }
  const std::string& target() const { return target_; }
  /// Writes the marker into the temp, then renames it over the target (an old one is moved aside
  /// first and removed last). Throws upcycle::Error naming the target; the old target is then
  /// intact.
  void commit();

 private:
  std::string target_, tmp_;
  OutputRules rules_;
  bool committed_ = false;
};

/// A directory that collects outputs file by file (plots, the report): created with the marker when
/// absent or empty; refused (upcycle::Error) when it holds anything without the marker, or is
/// protected. The caller writes its files with write_file_atomic.
void claim_output_collection(const std::string& dir, const OutputRules& rules);

/// claim_output_collection's check alone, creating nothing: to refuse a target before the work.
void check_output_collection(const std::string& dir, const OutputRules& rules);

/// Removes siblings of `path` named "<name><infix><pid>" or ".<name><infix><pid>" whose process is
/// gone (temp files and directories an earlier, killed or failed, attempt left). Returns how many.
int sweep_stale_temps(const std::string& path, const std::string& infix = ".tmp.");

}  // namespace upcycle::core
