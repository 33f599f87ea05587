#include "runner/rehearsal.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "runner/compose.h"
#include "runner/job_binary.h"
#include "runner/kinds/train.h"
#include "runner/run.h"
#include "stages/arch/memory.h"
#include "stages/data/prepare.h"

namespace upcycle::runner {
namespace {

namespace fs = std::filesystem;

// What a rehearsal sets per stage: the training settings it lowers (and the user may lower
// further) and an eval stage's windows and examples.
const std::vector<std::string> kLowerable = {"batch_size",   "micro_batch",
                                             "eval_windows", "final_optimizer_state",
                                             "max_windows",  "max_examples"};
// ... and what it sets on its own: the budget and when to log, validate and checkpoint.
const std::vector<std::string> kScheduled = {"budget", "log_every", "eval_every",
                                             "checkpoint_every"};

constexpr int64_t kWindows = 2;   // validation windows per domain, and eval windows
constexpr int64_t kExamples = 4;  // downstream examples per task

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string key_of(const std::string& override_text) {
  return override_text.substr(0, override_key_end(override_text));
}

// "train.F" or "stages.S.F": F, else "".
std::string setting_of(const std::string& key) {
  const size_t dots = size_t(std::count(key.begin(), key.end(), '.'));
  if ((key.rfind("train.", 0) == 0 && dots == 1) || (key.rfind("stages.", 0) == 0 && dots == 2))
    return key.substr(key.rfind('.') + 1);
  return "";
}

// A flattened key a rehearsal may differ in from its recipe ("stages.seed.budget.tokens").
bool rehearsal_may_change(const std::string& flat) {
  if (is_execution_key(flat) || flat == "model.seq_len" || flat.rfind("data.", 0) == 0) return true;
  const size_t dots = size_t(std::count(flat.begin(), flat.end(), '.'));
  if (flat.rfind("stages.", 0) == 0 && dots >= 2) {
    const size_t at = flat.find('.', 7) + 1;
    const std::string field = flat.substr(at, flat.find('.', at) - at);
    return contains(kLowerable, field) || contains(kScheduled, field);
  }
  return contains(kLowerable, setting_of(flat)) || contains(kScheduled, setting_of(flat));
}

void check_user_overrides(const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    const std::string key = key_of(o);
    if (is_execution_key(key) || key == "model.seq_len" || key == "data" ||
        key.rfind("data.", 0) == 0 || contains(kLowerable, setting_of(key)))
      continue;
    throw ConfigError(
        "--rehearse: override '" + o + "' is not one a rehearsal allows",
        "a rehearsal runs the recipe's own model, surgery and eval; it may lower model.seq_len, "
        "train.micro_batch, train.batch_size, train.eval_windows and an eval stage's "
        "max_windows and max_examples (also per stage: stages.NAME.micro_batch), keep the final "
        "optimizer state (train.final_optimizer_state=true), and say where it runs (executor, "
        "root, store, threads, resources, slurm) and where the data is (data...)");
  }
}

bool user_sets(const std::vector<std::string>& keys, const std::string& stage,
               const std::string& field) {
  return contains(keys, "train." + field) || contains(keys, "stages." + stage + "." + field);
}

std::string value_of(const std::vector<std::string>& overrides, const std::string& key) {
  std::string v;
  for (const auto& o : overrides) {
    if (key_of(o) == key) v = o.substr(override_key_end(o) + 1);
  }
  return v;
}

// Whether every pre-tokenized shard the recipe names is on this machine; the first missing one
// in `missing`.
bool data_present(const stages::PrepareJobSpec& data, std::string& missing) {
  for (const auto& d : data.domains) {
    try {
      if (d.jsonl.files.empty())
        stages::plan_shards(d.shards);  // every file, glob and directory is here
      else
        stages::expand_jsonl(d.jsonl.files);
    } catch (const Error& e) {
      missing = d.name + " (" + e.what() + ")";
      return false;
    }
  }
  return true;
}

// The mini corpora in place of data that is not here: the built-in sources of the recipe's
// domains, a 4096-piece tokenizer, and the recipe's vocabulary (every id below it).
std::string stand_in_data(const Recipe& r) {
  std::string names;
  for (const auto& d : r.data.domains) {
    const stages::DomainSpec builtin = stages::default_domain(d.name);
    if (builtin.sources.empty() && builtin.generator.empty()) {
      throw ConfigError("--rehearse: the recipe's data is not on this machine and domain '" +
                            d.name + "' has no built-in sources to stand in for it",
                        "point data: at the recipe's corpora, or name domains general, code, "
                        "law or math");
    }
    names += (names.empty() ? "" : ", ") + d.name;
  }
  const int64_t vocab = r.data.tokenizer.vocab;
  return "{domains: [" + names +
         "], max_bytes: 1M, task_examples: 0, tokenizer: {vocab: " + std::to_string(vocab) +
         ", pieces: " + std::to_string(std::min(vocab, kRehearsalPieces)) +
         ", model_type: bpe, sample_bytes: 200000}}";
}

const TrainDef* train_def(const StageDef& s) {
  if (const auto* t = s.as<TrainStage>()) return &t->train;
  if (const auto* b = s.as<BranchStage>()) return &b->train;
  return nullptr;
}

std::string format_ratio(double x) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%.3f", x);
  return buf;
}

std::string format_seconds(double s) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), s >= 100 ? "%.0f s" : s >= 1 ? "%.1f s" : "%.3f s", s);
  return buf;
}

std::string pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + " " : s + std::string(width - s.size(), ' ');
}

}  // namespace

Rehearsal plan_rehearsal(const std::string& path, const std::vector<std::string>& overrides,
                         int64_t steps) {
  check_user_overrides(overrides);
  std::vector<std::string> user_keys;
  Rehearsal out;
  for (const auto& o : overrides) {
    user_keys.push_back(key_of(o));
    if (is_execution_key(key_of(o))) out.baseline.push_back(o);
  }
  const Recipe r = load_recipe(path, overrides);
  if (!r.sweep.empty()) {
    throw ConfigError("--rehearse: " + path + " has a sweep",
                      "rehearse one point: set the swept keys on the command line");
  }
  out.steps = steps;
  // What a change does, and the stages it does it in (in order), to print each change once.
  std::vector<std::pair<std::string, std::string>> per_stage;
  auto set = [&](const std::string& key, const std::string& value, const std::string& why,
                 const std::string& stage = "") {
    out.overrides.push_back(key + "=" + value);
    if (why.empty()) return;
    if (stage.empty()) {
      out.changes.push_back(why);
      return;
    }
    auto it = std::find_if(per_stage.begin(), per_stage.end(),
                           [&](const auto& p) { return p.first == why; });
    if (it == per_stage.end())
      per_stage.emplace_back(why, stage);
    else
      it->second += ", " + stage;
  };
  const std::string root =
      contains(user_keys, "root") ? value_of(overrides, "root") : std::string(kRehearsalRoot);
  if (!contains(user_keys, "root")) set("root", root, "root: " + root + " (never a real run's)");
  if (!contains(user_keys, "store"))
    set("store", root + "/store.sqlite", "store: " + root + "/store.sqlite");
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (r.executor == "local") {
    if (!contains(user_keys, "max_parallel"))
      set("max_parallel", "1", "one job at a time (each may need most of this machine's memory)");
    if (!contains(user_keys, "threads") && r.threads > cores)
      set("threads", std::to_string(cores),
          "threads " + std::to_string(r.threads) + " -> " + std::to_string(cores) +
              " (this machine's cores)");
  }
  std::string missing;
  if (r.data.pretokenized && !data_present(r.data, missing)) {
    set("data", stand_in_data(r), "");
    out.warnings.push_back(
        "the recipe's data is not on this machine (" + missing +
        "): the rehearsal trains and evaluates on the mini corpora's tokens instead (the "
        "built-in sources of each domain, 1 MB of text each, a " +
        std::to_string(std::min(r.data.tokenizer.vocab, kRehearsalPieces)) +
        "-piece tokenizer, every id below the vocabulary of " +
        std::to_string(r.data.tokenizer.vocab) +
        "); its losses mean nothing, its shapes, memory, checkpoints and surgery are the recipe's");
  }
  for (const auto& s : r.stages) {
    const TrainDef* t = train_def(s);
    if (!t) {
      if (s.kind_name() != "eval") continue;
      for (const auto& [field, n] :
           {std::pair{"max_windows", kWindows}, {"max_examples", kExamples}})
        if (!user_sets(user_keys, s.name, field))
          set("stages." + s.name + "." + field, std::to_string(n), "");
      continue;
    }
    const stages::TrainSettings& ts = t->settings;
    const std::string at = "stages." + s.name + ".";
    int64_t batch = ts.batch_size;
    if (!user_sets(user_keys, s.name, "batch_size")) {
      batch = ts.micro_batch > 0 ? ts.micro_batch : ts.batch_size;
      if (batch != ts.batch_size)
        set(at + "batch_size", std::to_string(batch),
            "batch_size " + std::to_string(ts.batch_size) + " -> " + std::to_string(batch) +
                " (one micro-batch per step)",
            s.name);
    }
    if (s.processes > 1 && !contains(user_keys, at + "resources.processes"))
      set(at + "resources.processes", "1",
          "resources.processes " + std::to_string(s.processes) + " -> 1", s.name);
    const int64_t tokens = steps * batch * r.model.seq_len;
    set(at + "budget", "{tokens: " + std::to_string(tokens) + "}", "");
    if (!user_sets(user_keys, s.name, "eval_windows") && ts.eval_windows > kWindows)
      set(at + "eval_windows", std::to_string(kWindows), "");
    if (!user_sets(user_keys, s.name, "final_optimizer_state"))
      set(at + "final_optimizer_state", "false", "");
    for (const char* k : {"log_every", "eval_every", "checkpoint_every"})
      set(at + k, std::string(k) == "log_every" ? "1" : "0", "");
  }
  for (const auto& [why, stages] : per_stage) out.changes.push_back(why + ": " + stages);
  out.changes.push_back(
      "every train stage: " + std::to_string(steps) +
      " optimizer step(s) (budget.tokens = steps x batch_size x seq_len), validation on " +
      std::to_string(kWindows) +
      " windows per domain at the end, weights alone in its final "
      "checkpoint (train.final_optimizer_state=true keeps the AdamW state)");
  out.changes.push_back("eval stages: " + std::to_string(kWindows) + " windows per domain, " +
                        std::to_string(kExamples) + " examples per task");
  out.overrides.insert(out.overrides.end(), overrides.begin(), overrides.end());
  return out;
}

void check_rehearsed(const Recipe& recipe, const Recipe& rehearsed) {
  std::set<std::string> keys;
  for (const auto& [k, v] : recipe.flat) keys.insert(k);
  for (const auto& [k, v] : rehearsed.flat) keys.insert(k);
  for (const auto& k : keys) {
    if (rehearsal_may_change(k)) continue;
    const auto a = recipe.flat.find(k), b = rehearsed.flat.find(k);
    const std::string was = a == recipe.flat.end() ? "(unset)" : a->second;
    const std::string now = b == rehearsed.flat.end() ? "(unset)" : b->second;
    if (was != now) {
      throw ConfigError("--rehearse: the rehearsal would change " + k + " from " + was + " to " +
                        now + "; a rehearsal keeps the recipe's model, surgery and evaluation");
    }
  }
  nlohmann::json a = stages::to_json(recipe.model), b = stages::to_json(rehearsed.model);
  a.erase("seq_len");
  b.erase("seq_len");
  for (const auto& [k, was] : a.items()) {
    const std::string now = b.contains(k) ? b.at(k).dump() : "(unset)";
    if (now != was.dump()) {
      throw ConfigError("--rehearse: the rehearsal would change model." + k + " from " +
                        was.dump() + " to " + now + "; it may lower model.seq_len alone");
    }
  }

  auto not_above = [](const std::string& what, int64_t now, int64_t was) {
    if (now > was) {
      throw ConfigError("--rehearse: " + what + " " + std::to_string(now) +
                        " is larger than the recipe's " + std::to_string(was) +
                        "; a rehearsal lowers, never raises");
    }
  };
  not_above("model.seq_len", rehearsed.model.seq_len, recipe.model.seq_len);
  for (const auto& s : rehearsed.stages) {
    const StageDef* o = recipe.find_stage(s.name);
    const TrainDef *now = train_def(s), *was = o ? train_def(*o) : nullptr;
    if (!now || !was) continue;
    auto micro = [](const stages::TrainSettings& t) {
      return t.micro_batch > 0 ? t.micro_batch : t.batch_size;
    };
    not_above("stages." + s.name + ".micro_batch", micro(now->settings), micro(was->settings));
    not_above("stages." + s.name + ".batch_size", now->settings.batch_size,
              was->settings.batch_size);
  }
}

int64_t disk_usage(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  int64_t bytes = 0;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) bytes += int64_t(it->file_size(ec));
  }
  return bytes;
}

std::vector<RehearsalRow> rehearsal_rows(tracking::Store& store, const std::string& run) {
  auto metric = [](const char* key) {
    return std::string("(SELECT value FROM metrics m WHERE m.job_id = j.id AND m.key = '") + key +
           "' ORDER BY m.step DESC LIMIT 1)";
  };
  const auto rs = store.select(
      "SELECT rj.stage, j.kind, j.dir, j.wall_s, " + metric("memory/estimate_bytes") + ", " +
          metric("memory/peak_bytes") + ", " + metric("tokens") + ", " + metric("tokens_per_s") +
          ", (SELECT MAX(m.step) FROM metrics m WHERE m.job_id = j.id AND m.key = 'tokens') "
          "FROM run_jobs rj JOIN jobs j ON j.id = rj.job_id "
          "WHERE rj.run_id = (SELECT MAX(id) FROM runs WHERE name = ?) ORDER BY j.id",
      {run});
  std::vector<RehearsalRow> rows;
  for (const auto& c : rs.rows) {
    RehearsalRow r;
    r.stage = tracking::text_of(c[0]);
    r.kind = tracking::text_of(c[1]);
    auto num = [&](size_t i) {
      const double x = tracking::number_of(c[i]);
      return std::isnan(x) ? 0.0 : x;
    };
    r.wall_s = num(3);
    r.estimate_bytes = num(4);
    r.peak_bytes = num(5);
    if (num(7) > 0 && num(8) > 0) r.step_s = num(6) / num(8) / num(7);
    r.disk_bytes = disk_usage(tracking::text_of(c[2]));
    rows.push_back(r);
  }
  return rows;
}

std::string describe_rehearsal(const std::vector<RehearsalRow>& rows) {
  std::ostringstream out;
  out << pad("stage", 16) << pad("kind", 9) << pad("estimate", 11) << pad("peak", 11)
      << pad("est/peak", 10) << pad("wall", 9) << pad("s/step", 9) << "disk\n";
  int64_t disk = 0;
  int outside = 0;
  for (const auto& r : rows) {
    const bool measured = r.estimate_bytes > 0 && r.peak_bytes > 0;
    const double ratio = measured ? r.estimate_bytes / r.peak_bytes : 0;
    const bool off = measured && (ratio < 0.9 || ratio > 1.1);
    outside += off;
    out << pad(r.stage, 16) << pad(r.kind, 9)
        << pad(measured ? stages::format_bytes(r.estimate_bytes) : "-", 11)
        << pad(measured ? stages::format_bytes(r.peak_bytes) : "-", 11)
        << pad(measured ? format_ratio(ratio) : "-", 10) << pad(format_seconds(r.wall_s), 9)
        << pad(r.step_s > 0 ? format_seconds(r.step_s) : "-", 9)
        << stages::format_bytes(double(r.disk_bytes)) << (off ? "   <- not within 10%" : "")
        << "\n";
    disk += r.disk_bytes;
  }
  out << "disk: " << stages::format_bytes(double(disk)) << " in the jobs' directories; "
      << (outside == 0 ? "every estimate within 10% of its measured peak"
                       : std::to_string(outside) + " estimate(s) not within 10%")
      << "\n";
  return out.str();
}

std::string check_rehearsal_export(const Plan& plan, const std::string& root, int64_t* disk_bytes) {
  const PlannedJob* bam = nullptr;
  const PlannedJob* data = nullptr;
  for (const auto& j : plan.jobs) {
    if (j.kind == "prepare") data = &j;
    const bool expert_kv =
        j.produces_model && j.model.attn_experts > 1 && j.model.attn_kv == stages::KvMode::kExpert;
    if (expert_kv && (!bam || (bam->kind != "train" && j.kind == "train"))) bam = &j;
  }
  if (!bam) return "no export: the recipe has no BAM model with expert K/V";
  // The tokenizer the text was tokenized with: tokenizer.model, or an import's tokenizer.json.
  const std::string tokenizer = data ? stages::text_tokenizer(data->dir + "/data") : "";
  if (tokenizer.empty()) return "no export: the run's data has no tokenizer (pre-tokenized data)";
  const std::string out = root + "/export/" + bam->stage, back = out + ".reloaded";
  const std::string ckpt = bam->dir + "/checkpoint";
  run_job_tool({"export", ckpt, tokenizer, "native", "float32", "5000000000", out, "force"});
  run_job_tool({"import", out, back, "force"});
  const auto cmp = nlohmann::json::parse(run_job_tool({"compare", ckpt, back}));
  if (disk_bytes) *disk_bytes = disk_usage(out) + disk_usage(back);
  if (!cmp.at("equal").get<bool>()) {
    throw StageError(
        "rehearsal export: " + bam->stage + " exported to " + out +
        " and reloaded is not the model trained: " + cmp.at("first_difference").get<std::string>());
  }
  return bam->stage + " exported (native, expert K/V) to " + out + ", reloaded into " + back +
         ": " + std::to_string(cmp.at("tensors").get<int64_t>()) +
         " tensors equal to the checkpoint's";
}

}  // namespace upcycle::runner
