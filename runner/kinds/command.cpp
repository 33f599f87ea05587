// The recipe side of `command`: an external program, one job per model (or one without models:).
#include <filesystem>
#include <optional>

#include "core/strings.h"
#include "runner/kinds/stage_kind.h"
#include "runner/planner.h"
#include "stages/arch/hf_config.h"
#include "stages/command/command.h"
#include "stages/data/data_layout.h"
#include "stages/spec/command.h"

namespace upcycle::runner {
namespace {

// The tokenizer an {hf} export ships: the data's SentencePiece model or an import's byte-level BPE
// tokenizer.json (which tokenized the text), or the tokenizer a pre-tokenized recipe names
// (data.tokenizer.path).
std::string hf_tokenizer(const StageDef& s, const Planner& p) {
  const auto& data = p.recipe().data;
  if (!data.pretokenized) {
    for (const auto& st : p.recipe().stages) {
      if (core::ends_with(st.kind->tokenizer(st), ".json"))
        return stages::tokenizer_json_path(p.data_dir());
    }
    return stages::tokenizer_path(p.data_dir());
  }
  if (data.tokenizer_path.empty()) {
    throw stage_error(s, "run",
                      "{hf} exports the model with its tokenizer, and the recipe's pre-tokenized "
                      "data names none",
                      "set data.tokenizer.path to the corpus's tokenizer.json or .model");
  }
  return core::ends_with(data.tokenizer_path, ".json") ? stages::tokenizer_json_path(p.data_dir())
                                                       : stages::tokenizer_path(p.data_dir());
}

struct CommandStage : StageParams {
  std::vector<std::string> models;
  stages::CommandTemplates templates;
  std::string parser = "none";
  std::string hf_format =
      "auto";            ///< how {hf} exports the model: auto picks its Hugging Face class
  bool uses_hf = false;  ///< a template names {hf}
};

// Placeholders are checked when the recipe is read, not when the job runs: {checkpoint} and friends
// need models:.
void check_placeholders(const YamlReader& r, const CommandStage& c) {
  std::map<std::string, std::string> vars;
  for (const auto& p : stages::command_placeholders()) vars[p] = "";
  if (c.models.empty()) {
    for (const char* p : {"checkpoint", "model_dir", "model", "hf"}) vars.erase(p);
  }
  auto check = [&](const YamlReader& node) {
    try {
      stages::expand_template(node.str(), vars);
    } catch (const std::invalid_argument& e) {
      throw node.error(
          std::string(e.what()) + (c.models.empty() ? " (model placeholders need models:)" : ""),
          "placeholders: {checkpoint} {model_dir} {model} {hf} {out} {data_dir} {threads}");
    }
  };
  YamlReader argv = r.child("argv");
  for (size_t i = 0; i < argv.size(); ++i) check(argv.at(i));
  for (const auto& k : c.templates.env) check(r.child("env").child(k.first));
  if (r.has("results")) check(r.child("results"));
}

// argv entries that are relative paths to files here (`.venv/bin/python`, `scripts/x.py`: a '/'
// and no leading '-') become absolute against the directory `upcycle run` started in, as an
// import's path does: the command runs in its job directory, where they would not resolve. Only
// what runs changes; the key holds the templates as written.
void absolute_local_paths(std::vector<std::string>& argv) {
  std::error_code ec;
  for (auto& a : argv) {
    if (a.empty() || a[0] == '/' || a[0] == '-' || a.find('/') == std::string::npos) continue;
    if (std::filesystem::exists(a, ec))
      a = std::filesystem::absolute(a, ec).lexically_normal().string();
  }
}

class CommandKind : public StageKind {
 public:
  std::string name() const override { return "command"; }
  std::vector<std::string> keys() const override {
    return {"models", "argv", "env", "parser", "results", "hf_format"};
  }

  std::shared_ptr<const StageParams> parse(const YamlReader& r, const Recipe&) const override {
    auto c = std::make_shared<CommandStage>();
    if (r.has("models")) c->models = r.child("models").strings();
    YamlReader argv = r.child("argv");
    if (!argv.is_sequence() || argv.size() == 0)
      throw argv.error("expected a non-empty list of arguments");
    c->templates.argv = argv.strings();
    if (r.has("env")) {
      YamlReader env = r.child("env");
      env.expect_map(env.keys());
      for (const auto& k : env.keys()) c->templates.env[k] = env.child(k).str();
    }
    c->parser = r.get_choice("parser", c->parser, {"none", "lm_eval"});
    c->templates.results = r.get_str("results", c->templates.results);
    std::vector<std::string> formats = stages::hf_format_names();
    formats.insert(formats.begin(), "auto");
    c->hf_format = r.get_choice("hf_format", c->hf_format, formats);
    check_placeholders(r, *c);
    auto names_hf = [](const std::string& t) { return t.find("{hf}") != std::string::npos; };
    for (const auto& a : c->templates.argv) c->uses_hf = c->uses_hf || names_hf(a);
    for (const auto& [k, v] : c->templates.env) c->uses_hf = c->uses_hf || names_hf(v);
    return c;
  }

  std::vector<StageInput> inputs(const StageDef& s) const override {
    std::vector<StageInput> in;
    for (const auto& m : s.as<CommandStage>()->models) in.push_back({"models", m});
    return in;
  }

  // The key holds the templates; the spec holds them expanded with this job's paths.
  void plan(const StageDef& s, Planner& p) const override {
    const auto& c = *s.as<CommandStage>();
    std::vector<size_t> models;
    for (const auto& name : c.models) {
      for (size_t id : p.models_of(s, "models", name)) models.push_back(id);
    }
    if (models.empty()) {
      add_job(s, p, c, std::nullopt);
      return;
    }
    for (size_t id : models) add_job(s, p, c, id);
  }

 private:
  // The Hugging Face format {hf} exports `model` in, checked here so that a recipe asking for a
  // layout its model lacks fails at plan time.
  static std::string hf_format(const StageDef& s, const CommandStage& c, const PlannedJob& model) {
    if (c.hf_format == "auto") {
      auto f = stages::hf_format_for(model.model);
      if (!f) {
        throw stage_error(s, "hf_format",
                          "'" + model.stage + "' has no Hugging Face class (" +
                              stages::hf_no_format_reason(model.model) +
                              "); set hf_format: bam (upcycle's layout with its modeling code, "
                              "which transformers loads with trust_remote_code)");
      }
      return stages::hf_format_name(*f);
    }
    const std::string why =
        stages::hf_export_refusal(model.model, stages::hf_format_from(c.hf_format));
    if (!why.empty())
      throw stage_error(s, "hf_format",
                        "'" + model.stage + "' cannot be exported as " + c.hf_format + ": " + why);
    return stages::hf_format_name(stages::hf_format_from(c.hf_format));  // bam is native
  }

  static void add_job(const StageDef& s, Planner& p, const CommandStage& c,
                      std::optional<size_t> model) {
    stages::CommandJobSpec spec;
    spec.templates = c.templates;
    spec.parser = c.parser;
    spec.model = model ? p.job(*model).stage : "";
    std::vector<size_t> deps{p.data_job()};
    if (model) deps.push_back(*model);
    const stages::JobRuntime rt = p.runtime(s);
    if (model && c.uses_hf)
      spec.hf.format = hf_format(s, c, p.job(*model));  // keyed: the format is part of the job
    const std::string dir =
        p.dir_of(p.key_of({spec.kKind, spec.kOutputVersion, {}, key_material(spec, rt), rt}, deps));
    std::map<std::string, std::string> vars = {
        {"out", dir + "/out"}, {"data_dir", p.data_dir()}, {"threads", std::to_string(rt.threads)}};
    if (model) {
      vars["model"] = spec.model;
      vars["model_dir"] = p.job(*model).dir;
      vars["checkpoint"] = p.job(*model).dir + "/checkpoint";
      vars["hf"] = dir + "/hf";
      if (c.uses_hf)
        spec.hf = {spec.hf.format, dir + "/hf", vars["checkpoint"], hf_tokenizer(s, p)};
    }
    try {
      stages::expand_command(spec, vars);
    } catch (const core::FieldError& e) {
      throw stage_error(s, e.path(), e.reason());
    }
    absolute_local_paths(spec.expanded.argv);
    p.add(s, model ? s.name + "/" + spec.model : s.name, draft(spec, rt), deps);
  }
};

}  // namespace

const StageKind& command_kind() {
  static const CommandKind kKind;
  return kKind;
}

}  // namespace upcycle::runner
