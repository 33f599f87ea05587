#include "stages/spec/command.h"

#include "stages/command/command.h"

namespace upcycle::stages {
namespace {

nlohmann::json templates_json(const CommandTemplates& t) {
  return {{"argv", t.argv}, {"env", t.env}, {"results", t.results}};
}

CommandTemplates read_templates(const SpecReader& r) {
  r.expect_only({"argv", "env", "results"});
  return {r.value<std::vector<std::string>>("argv"),
          r.value<std::map<std::string, std::string>>("env", {}),
          r.value<std::string>("results", "{out}")};
}

}  // namespace

void expand_command(CommandJobSpec& s, const std::map<std::string, std::string>& vars) {
  auto expand = [&](const std::string& text, const std::string& field) {
    try {
      return expand_template(text, vars);
    } catch (const std::invalid_argument& e) {
      throw core::FieldError(field, e.what());
    }
  };
  s.expanded = {};
  for (size_t i = 0; i < s.templates.argv.size(); ++i) {
    s.expanded.argv.push_back(expand(s.templates.argv[i], "argv[" + std::to_string(i) + "]"));
  }
  for (const auto& [k, v] : s.templates.env) s.expanded.env[k] = expand(v, "env." + k);
  s.expanded.results = expand(s.templates.results, "results");
  s.out = vars.count("out") ? vars.at("out") : "";
}

void validate(const CommandJobSpec& s) {
  check(!s.templates.argv.empty(), "argv", "expected a non-empty list of arguments");
  check(s.expanded.argv.size() == s.templates.argv.size(), "expanded.argv",
        "does not match the templates");
  check_choice(s.parser, "parser", {"none", "lm_eval"});
  check(!s.out.empty(), "out", "missing");
  check_choice(s.hf.format, "hf.format", {"", "llama", "cohere", "mixtral", "native"});
  check(s.hf.format.empty() ||
            (!s.hf.dir.empty() && !s.hf.checkpoint.empty() && !s.hf.tokenizer.empty()),
        "hf", "an export needs dir, checkpoint and tokenizer");
  for (const auto& [k, v] : s.templates.env) {
    bool ok = !k.empty() && !std::isdigit(static_cast<unsigned char>(k[0]));
    for (char c : k) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    check(ok, "env." + k, "is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
  }
}

nlohmann::json to_json(const CommandJobSpec& s) {
  return {{"template", templates_json(s.templates)},
          {"expanded", templates_json(s.expanded)},
          {"parser", s.parser},
          {"model", s.model},
          {"out", s.out},
          {"hf",
           {{"format", s.hf.format},
            {"dir", s.hf.dir},
            {"checkpoint", s.hf.checkpoint},
            {"tokenizer", s.hf.tokenizer}}}};
}

void read_spec(const SpecReader& r, CommandJobSpec& c) {
  expect_fields(r, {"template", "expanded", "parser", "model", "out", "hf"});
  c.templates = read_templates(r.object("template"));
  c.expanded = read_templates(r.object("expanded"));
  c.parser = r.value("parser", c.parser);
  c.model = r.value("model", c.model);
  c.out = r.value<std::string>("out");
  if (r.has("hf")) {
    SpecReader h = r.object("hf");
    h.expect_only({"format", "dir", "checkpoint", "tokenizer"});
    c.hf = {h.value<std::string>("format", ""), h.value<std::string>("dir", ""),
            h.value<std::string>("checkpoint", ""), h.value<std::string>("tokenizer", "")};
  }
  validate(c);
}

nlohmann::json key_material(const CommandJobSpec& s, const JobRuntime&) {
  return {{"template", templates_json(s.templates)},
          {"parser", s.parser},
          {"model", s.model},
          {"hf_format", s.hf.format}};
}

}  // namespace upcycle::stages
