#include "stages/io/hf_export.h"

#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/output_dir.h"
#include "stages/data/hf_tokenizer.h"
#include "stages/io/checkpoint.h"
#include "stages/io/hf_remote_code.h"
#include "stages/io/hf_weights.h"

namespace upcycle::stages {
namespace {

struct DtypeName {
  at::ScalarType type;
  const char* name;
};
constexpr DtypeName kExportDtypes[] = {
    {at::kFloat, "float32"}, {at::kBFloat16, "bfloat16"}, {at::kHalf, "float16"}};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kExportDtypes) {
    if (d.type == t) return d.name;
  }
  throw InternalError("export: unsupported dtype");
}

}  // namespace

at::ScalarType hf_dtype_from(const std::string& name) {
  for (const auto& d : kExportDtypes) {
    if (name == d.name) return d.type;
  }
  throw std::invalid_argument("unknown dtype '" + name + "' (float32, bfloat16, float16)");
}

void export_hf(const std::string& checkpoint_dir, const std::string& sp_model,
               const std::string& out_dir, const HfExportOptions& o) {
  try {
    core::OutputDir out(out_dir, o.out);  // refuses a target it may not replace, before any work
    CheckpointMeta meta;
    const TensorMap ours = load_checkpoint_state(checkpoint_dir, &meta);
    const std::string why = hf_export_refusal(meta.model, o.format);
    if (!why.empty())
      throw StageError(std::string("cannot export as ") + hf_format_name(o.format) + ": " + why);
    const std::string& tmp = out.path();
    const SpecialTokens st = write_hf_tokenizer(sp_model, tmp, meta.model.seq_len, kTokenizationPy);
    const nlohmann::json config =
        hf_config_for(meta.model, o.format, dtype_name(o.dtype), {st.bos, st.eos, st.pad});
    write_safetensors_dir(tmp, to_hf_tensors(ours, meta.model, o.format, o.dtype),
                          {{"format", "pt"}}, o.max_shard_bytes);
    core::write_file_atomic(tmp + "/config.json", config.dump(2) + "\n");
    if (o.format == HfFormat::kNative) {  // config.json's auto_map names these
      core::write_file_atomic(tmp + "/configuration_bam.py", kBamConfigurationPy);
      core::write_file_atomic(tmp + "/modeling_bam.py", kBamModelingPy);
    }
    nlohmann::json gen = {{"bos_token_id", config.at("bos_token_id")},
                          {"eos_token_id", config.at("eos_token_id")},
                          {"do_sample", false}};
    core::write_file_atomic(tmp + "/generation_config.json", gen.dump(2) + "\n");
    out.commit();
  } catch (const StageError&) {
    throw;
  } catch (const Error& e) {
    throw StageError(e.what(), e.hint());
  }
}

HfImportResult import_hf(const std::string& hf_dir, const std::string& checkpoint_dir,
                         std::optional<int64_t> seq_len) {
  HfImportResult r;
  r.model = read_hf_model(hf_dir, seq_len);
  const std::string tokenizer = hf_tokenizer_file(hf_dir);
  const Tokenizer tok(tokenizer);
  if (tok.vocab_size() > r.model.model.vocab) {
    throw StageError(tokenizer + ": " + std::to_string(tok.vocab_size()) +
                     " token ids, but config.json's vocab_size is " +
                     std::to_string(r.model.model.vocab));
  }
  TensorMap state = from_hf_tensors(read_safetensors_dir(hf_dir), r.model, hf_dir);
  if (r.model.format ==
      HfFormat::kNative) {  // names and shapes checked against the model they build
    TransformerLm model(r.model.model);
    load_state_into(model, state, hf_dir);
  }
  for (const auto& n : r.model.notes) core::log_info("import " + hf_dir + ": " + n);
  CheckpointMeta meta;
  meta.model = r.model.model;
  meta.extra = {{"imported_from", std::filesystem::absolute(hf_dir).string()},
                {"format", hf_format_name(r.model.format)},
                {"notes", r.model.notes}};
  std::string tokenizer_bytes;
  try {
    tokenizer_bytes = core::read_file(tokenizer);
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  r.weights_sha256 =
      save_checkpoint(checkpoint_dir, state, meta,
                      {{std::filesystem::path(tokenizer).filename().string(), tokenizer_bytes}});
  return r;
}

}  // namespace upcycle::stages
