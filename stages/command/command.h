// The `command` stage: an external program (for example lm-evaluation-harness) run on a model, with
// templated arguments, and its results ingested through a named parser. No shell is involved: the
// argv is exec'd as given, so user strings are never interpreted.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace upcycle::stages {

/// Placeholders a command's argv and env may use; the runner fills them per job.
///   {checkpoint} the model's checkpoint directory   {model_dir} the model's job directory
///   {model}      the model's stage label            {out}       this job's output directory
///   {hf}         the model exported as a Hugging Face checkpoint (the job writes it first)
///   {data_dir}   the prepared data directory        {threads}   threads per job
const std::vector<std::string>& command_placeholders();

/// Replaces each {name} with vars.at(name); "{{" and "}}" are literal braces. Throws
/// std::invalid_argument naming an unknown placeholder or an unclosed brace.
std::string expand_template(const std::string& text,
                            const std::map<std::string, std::string>& vars);

struct CommandSpec {
  std::vector<std::string> argv;           ///< argv[0] is looked up on PATH
  std::map<std::string, std::string> env;  ///< added to the inherited environment
  std::string cwd;
};

/// Runs the command to completion, its stdout and stderr going to ours. Returns its exit code
/// (128 + signal when killed). Throws StageError when it cannot be started.
int run_command(const CommandSpec& spec);

}  // namespace upcycle::stages
