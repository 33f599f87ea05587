// The command job: an external program, its results in through the named parser.
#include <filesystem>

#include "core/log.h"
#include "core/sha256.h"
#include "stages/command/command.h"
#include "stages/command/lm_eval_results.h"
#include "stages/io/hf_export.h"
#include "stages/jobs/job_kinds.h"
#include "stages/spec/command.h"

namespace upcycle::stages {
namespace {

bool run_command_job(const SpecReader& s, const JobContext& ctx, core::JobResult& r) {
  CommandJobSpec spec;
  read_spec(s, spec);
  CommandSpec c{spec.expanded.argv, spec.expanded.env, ctx.dir};
  std::filesystem::remove_all(spec.out);  // a retry starts from an empty output directory
  std::filesystem::create_directories(spec.out);
  if (!spec.hf.format.empty()) {
    HfExportOptions o;
    o.format = hf_format_from(spec.hf.format);
    o.out.force = true;  // a retry replaces its own earlier export (upcycle's marker; nothing else)
    export_hf(spec.hf.checkpoint, spec.hf.tokenizer, spec.hf.dir, o);
    core::log_info("command: " + spec.model + " exported as " + spec.hf.format + " to " +
                   spec.hf.dir);
  }
  std::string line;
  for (const auto& a : c.argv) line += (line.empty() ? "" : " ") + a;
  core::log_info("command: " + line);
  int code = run_command(c);
  if (code != 0) throw StageError("command exited with code " + std::to_string(code) + ": " + line);
  r.outputs["out"] = spec.out;
  if (spec.parser != "lm_eval") return true;
  std::string path = find_lm_eval_results(spec.expanded.results);
  r.evals = parse_lm_eval_results(core::read_json_file(path), spec.model, path);
  if (r.evals.empty())
    throw StageError(path + ": lm-evaluation-harness results hold no numeric metric");
  r.artifacts.push_back({path, "results", core::sha256_file(path),
                         static_cast<int64_t>(std::filesystem::file_size(path))});
  core::log_info("command: " + std::to_string(r.evals.size()) + " results from " + path);
  return true;
}

}  // namespace

JobKind command_job_kind() {
  return {CommandJobSpec::kKind, CommandJobSpec::kOutputVersion, check_spec<CommandJobSpec>,
          run_command_job};
}

}  // namespace upcycle::stages
