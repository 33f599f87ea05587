// The command job's spec (kind "command"): an external program with templated argv and env (the
// placeholders of command/command.h), run without a shell, its results read by a named parser.
// The key holds the templates; the spec also holds them expanded with this job's paths.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/spec/job_spec.h"

namespace upcycle::stages {

struct CommandTemplates {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string results = "{out}";  ///< the parser's file or directory
};

/// The model exported as a Hugging Face checkpoint before the command runs (the {hf} placeholder).
struct HfExportSpec {
  std::string
      format;       ///< "" (no export) | llama | cohere | mixtral | native (resolved at plan time)
  std::string dir;  ///< where: <job dir>/hf
  std::string checkpoint;  ///< the model's checkpoint directory
  std::string tokenizer;   ///< the prepared data's tokenizer.model
};

struct CommandJobSpec {
  static constexpr const char* kKind = "command";
  /// Bump with any change to how command jobs run or how their results are parsed.
  static constexpr int kOutputVersion = 2;  // 2: {hf} exports the model first

  CommandTemplates templates;   ///< as the recipe wrote them (keyed)
  CommandTemplates expanded;    ///< with this job's paths (what runs)
  std::string parser = "none";  ///< none | lm_eval
  std::string model;            ///< the model's stage label, "" for a job without models
  std::string out;              ///< the job's output directory (path)
  HfExportSpec hf;
};

/// The placeholders' values for one job: {out}, {data_dir}, {threads}, and with a model {model},
/// {model_dir}, {checkpoint}, {hf}. Fills `expanded` and `out`; throws core::FieldError on a bad
/// template.
void expand_command(CommandJobSpec& s, const std::map<std::string, std::string>& vars);

void validate(const CommandJobSpec& s);
nlohmann::json to_json(const CommandJobSpec& s);
void read_spec(const SpecReader& r, CommandJobSpec& out);
nlohmann::json key_material(const CommandJobSpec& s, const JobRuntime& rt);

}  // namespace upcycle::stages
