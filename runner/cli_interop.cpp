// `upcycle export` and `upcycle import`: Hugging Face checkpoints out of and into upcycle. The
// conversion runs in upcycle-job (LibTorch; stages/io/hf_export.h); here the store resolves
// RUN/STAGE to its checkpoint and the run's tokenizer.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/job_files.h"
#include "core/output_dir.h"
#include "core/process.h"
#include "core/strings.h"
#include "runner/cli_common.h"
#include "runner/job_binary.h"
#include "runner/recipe.h"
#include "runner/yaml_reader.h"
#include "stages/arch/accounting.h"
#include "stages/arch/hf_config.h"
#include "stages/data/data_layout.h"

namespace upcycle::runner::cli {
namespace {

// The CLI's check of --out, with the paths only it knows (the store); upcycle-job checks again.
void check_output(const std::string& out, const core::OutputRules& rules) {
  if (std::string why = core::output_dir_refusal(out, rules); !why.empty()) {
    throw ConfigError("--out: " + why, rules.force ? "" : "choose a new or empty directory");
  }
}

struct ModelJob {
  std::string checkpoint;  ///< the job's checkpoint directory
  std::string tokenizer;   ///< the run's tokenizer: tokenizer.model, or a corpus's tokenizer.json
  std::string data_dir;    ///< the run's prepared data
};

// The tokenizer an export ships: --tokenizer, else the run's (its SentencePiece model, or the
// tokenizer.json a pre-tokenized recipe named in data.tokenizer.path).
std::string export_tokenizer(const ModelJob& m, const std::string& given, const std::string& path) {
  std::error_code ec;
  if (!given.empty()) {
    if (!std::filesystem::is_regular_file(given, ec))
      throw ConfigError("--tokenizer: " + given + ": no such file");
    if (!core::ends_with(given, ".json") && !core::ends_with(given, ".model"))
      throw ConfigError("--tokenizer: " + given +
                        ": expected a tokenizer.json or a SentencePiece .model");
    return std::filesystem::absolute(given).string();
  }
  for (const std::string& t :
       {stages::tokenizer_path(m.data_dir), stages::tokenizer_json_path(m.data_dir)}) {
    if (std::filesystem::is_regular_file(t, ec)) return t;
  }
  throw ConfigError("'" + path +
                        "': the run's data is pre-tokenized and its recipe names no "
                        "tokenizer",
                    "give --tokenizer PATH (a tokenizer.json or SentencePiece .model), or set "
                    "data.tokenizer.path in the recipe");
}

// RUN/STAGE, where run names and stage labels may both hold '/': the first split naming a run that
// has that stage.
ModelJob resolve_model(tracking::Store& store, const std::string& path,
                       const std::string& store_path) {
  for (size_t at = path.find('/'); at != std::string::npos; at = path.find('/', at + 1)) {
    const std::string run = path.substr(0, at), stage = path.substr(at + 1);
    auto rows = store.select(
        "SELECT j.dir, j.status, (SELECT d.dir FROM run_jobs rd JOIN jobs d ON d.id = rd.job_id "
        "WHERE rd.run_id = r.id AND d.kind = 'prepare') FROM runs r JOIN run_jobs rj ON rj.run_id "
        "= r.id "
        "JOIN jobs j ON j.id = rj.job_id WHERE r.name = ? AND rj.stage = ? ORDER BY r.id DESC "
        "LIMIT 1",
        {run, stage});
    if (rows.rows.empty()) continue;
    const auto& row = rows.rows[0];
    if (tracking::text_of(row[1]) != "done") {
      throw ConfigError("'" + path + "': job is " + tracking::text_of(row[1]) + ", not done",
                        "`upcycle status " + run + "`");
    }
    ModelJob m{tracking::text_of(row[0]) + "/checkpoint", "", tracking::text_of(row[2]) + "/data"};
    if (!std::filesystem::exists(m.checkpoint + "/config.json")) {
      throw ConfigError("'" + path + "' has no model (" + m.checkpoint + " holds no checkpoint)",
                        "export a stage that trains, branches or upcycles");
    }
    return m;
  }
  throw ConfigError("'" + path + "' names no RUN/STAGE in " + store_path,
                    "`upcycle status --all` lists the runs, `upcycle status RUN` their stages");
}

}  // namespace

int cmd_export(const std::vector<std::string>& args) {
  po::options_description desc("export options");
  desc.add_options()("help,h", "show this help")(
      "store", po::value<std::string>()->default_value(""),
      "SQLite store (default: the --recipe's store, else runs/store.sqlite)")(
      "recipe", po::value<std::string>()->default_value(""), "take the store from this recipe")(
      "model", po::value<std::string>(), "RUN/STAGE")(
      "format", po::value<std::string>()->default_value("auto"),
      "auto | llama | mistral | phi3 | qwen2 | cohere | mixtral | bam (= native)")(
      "out", po::value<std::string>(),
      "output directory: new, empty, or an earlier export with --force")(
      "force", "replace --out when it is an earlier upcycle output")(
      "dtype", po::value<std::string>()->default_value("float32"), "float32 | bfloat16 | float16")(
      "shard-size", po::value<std::string>()->default_value("5G"),
      "largest safetensors shard, bytes (5G, 500M)")(
      "tokenizer", po::value<std::string>()->default_value(""),
      "the tokenizer to ship (tokenizer.json or SentencePiece .model); default: the run's");
  po::positional_options_description pos;
  pos.add("model", 1);
  auto vm = parse("export", args, desc, pos);
  if (wants_help(vm, "export",
                 "RUN/STAGE --format auto|llama|mistral|phi3|qwen2|cohere|mixtral|bam --out DIR "
                 "[--dtype D]",
                 desc))
    return 0;
  if (!vm.count("model")) throw ConfigError("upcycle export: missing RUN/STAGE");
  if (!vm.count("out")) throw ConfigError("upcycle export: missing --out DIR");
  const std::string path = store_path(vm);
  check_output(vm["out"].as<std::string>(),
               {vm.count("force") > 0, {{"the store", path}}});  // before any lookup
  auto store = open_store_ro(path);
  ModelJob m = resolve_model(store, vm["model"].as<std::string>(), path);
  m.tokenizer =
      export_tokenizer(m, vm["tokenizer"].as<std::string>(), vm["model"].as<std::string>());
  std::string format = vm["format"].as<std::string>();
  if (format != "auto") {
    try {
      stages::hf_format_from(format);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(std::string("--format: ") + e.what());
    }
  } else {
    const auto cfg = core::read_json_file(m.checkpoint + "/config.json");
    const auto f = stages::hf_format_for(stages::model_config_from_json(cfg.at("model")));
    format = f ? stages::hf_format_name(*f) : "native";
  }
  const int64_t shard = integer_option(vm, "shard-size", {1});
  // upcycle-job checks --out again with the checkpoint it exports (and so its job directory)
  // protected.
  const std::string out = vm["out"].as<std::string>();
  run_job_tool({"export", m.checkpoint, m.tokenizer, format, vm["dtype"].as<std::string>(),
                std::to_string(shard), out, vm.count("force") ? "force" : "keep"});
  std::cout << vm["model"].as<std::string>() << " exported as " << format << " to " << out << "\n";
  return 0;
}

int cmd_import(const std::vector<std::string>& args) {
  po::options_description desc("import options");
  desc.add_options()("help,h", "show this help")("hf-dir", po::value<std::string>(),
                                                 "Hugging Face checkpoint directory")(
      "out", po::value<std::string>(),
      "upcycle checkpoint directory to write: new, empty, or an earlier import with --force")(
      "force", "replace --out when it is an earlier upcycle output")(
      "seq-len", po::value<std::string>(), "training context (default: max_position_embeddings)");
  po::positional_options_description pos;
  pos.add("hf-dir", 1);
  auto vm = parse("import", args, desc, pos);
  if (wants_help(vm, "import", "HF_DIR --out DIR [--seq-len N]", desc)) return 0;
  if (!vm.count("hf-dir")) throw ConfigError("upcycle import: missing HF_DIR");
  if (!vm.count("out")) throw ConfigError("upcycle import: missing --out DIR");
  std::vector<std::string> a = {"import", vm["hf-dir"].as<std::string>(),
                                vm["out"].as<std::string>(), vm.count("force") ? "force" : "keep"};
  check_output(a[2], {vm.count("force") > 0,
                      {{"the checkpoint it imports", a[1]}, {"the default store", kDefaultStore}}});
  if (vm.count("seq-len"))
    a.push_back(std::to_string(integer_option(vm, "seq-len", {1, int64_t(1) << 24})));
  const auto r = nlohmann::json::parse(run_job_tool(a));
  const stages::ModelConfig m = stages::model_config_from_json(r.at("model"));
  std::cout << "imported " << a[1] << " (" << r.at("format").get<std::string>() << ") to " << a[2]
            << ": " << m.layers << " layers, d_model " << m.d_model << ", " << m.heads << " heads ("
            << m.kv_heads << " KV), vocab " << m.vocab << ", "
            << core::enum_name(stages::kBlockNames, m.block) << " blocks, "
            << core::enum_name(stages::kNormNames, m.norm) << ", " << stages::count_params(m).total
            << " parameters\n";
  for (const auto& n : r.at("notes")) std::cout << "note: " << n.get<std::string>() << "\n";
  return 0;
}

}  // namespace upcycle::runner::cli
