// Hugging Face interop against an outside referee: transformers (tests/interop/hf_referee.py) loads
// what we export and computes logits from the same weights; models transformers saved are imported
// and compared tensor by tensor. Label interop: needs the project's .venv with transformers.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "stages/data/tokenizer.h"
#include "stages/io/checkpoint.h"
#include "stages/io/hf_export.h"
#include "stages/io/hf_weights.h"
#include "stages/upcycle/surgery.h"
#include "tests/support/model_configs.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tensor_asserts.h"

namespace upcycle::stages {
namespace {

using testing::TempDir;

constexpr double kLogitTolerance = 1e-4;  // the bar: fp32 on CPU
constexpr int64_t kVocab = 512;

std::string referee(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {
      UPCYCLE_TEST_PYTHON, std::string(UPCYCLE_SOURCE_DIR) + "/tests/interop/hf_referee.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = testing::run_binary(argv);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

// A SentencePiece model as the prepare stage trains them, on real documents (Debian's licences).
const std::string& sp_model() {
  static TempDir dir;
  static const std::string path = [] {
    std::ofstream text(dir / "corpus.txt");
    for (const char* f : {"GPL-3", "Apache-2.0", "LGPL-2.1", "MPL-2.0"}) {
      std::ifstream in(std::string("/usr/share/common-licenses/") + f);
      text << in.rdbuf();
    }
    text.close();
    TokenizerTrainOptions o;
    o.vocab = kVocab;
    train_tokenizer(dir / "corpus.txt", dir / "sp", o);
    return dir / "sp.model";
  }();
  return path;
}

ModelConfig tiny(const std::string& block, const std::string& norm, bool tied) {
  ModelConfig c = testing::small_config(kVocab);
  c.seq_len = 32;
  c.block = core::enum_from(kBlockNames, block, "block");
  c.norm = core::enum_from(kNormNames, norm, "norm");
  c.tied_embeddings = tied;
  c.rope_theta = 500.0;
  return c;
}

// Trains `model` a few AdamW steps on random tokens: weights (norms included) move off their init.
void train_briefly(TransformerLm& model, uint64_t seed) {
  torch::manual_seed(seed);
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-2));
  for (int step = 0; step < 8; ++step) {
    auto idx = torch::randint(kVocab, {4, model->config.seq_len + 1}, torch::kInt64);
    auto out = model->forward(idx.narrow(1, 0, model->config.seq_len));
    auto loss =
        torch::nn::functional::cross_entropy(out.logits_BTV.reshape({-1, kVocab}),
                                             idx.narrow(1, 1, model->config.seq_len).reshape(-1)) +
        out.aux_loss;
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
}

std::string trained_checkpoint(const ModelConfig& c, const std::string& dir, uint64_t seed) {
  torch::manual_seed(seed);
  TransformerLm model(c);
  train_briefly(model, seed);
  CheckpointMeta meta;
  meta.model = c;
  save_checkpoint(dir, model, meta);
  return dir;
}

at::Tensor test_tokens(int64_t T) {
  torch::manual_seed(123);
  return torch::randint(kVocab, {2, T}, torch::kInt64);
}

at::Tensor our_logits(const std::string& checkpoint, const at::Tensor& tokens) {
  TransformerLm model = load_model(checkpoint);
  torch::NoGradGuard no_grad;
  return model->forward(tokens).logits_BTV;
}

at::Tensor hf_logits(const std::string& hf_dir, const at::Tensor& tokens, const TempDir& tmp) {
  std::vector<std::vector<int64_t>> rows;
  for (int64_t b = 0; b < tokens.size(0); ++b) {
    auto r = tokens[b].contiguous();
    rows.emplace_back(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
  }
  std::ofstream(tmp / "tokens.json") << nlohmann::json(rows).dump();
  referee({"logits", hf_dir, tmp / "tokens.json", tmp / "logits.safetensors"});
  return read_safetensors(tmp / "logits.safetensors").at("logits");
}

void expect_transformers_agree(const std::string& checkpoint, HfFormat f,
                               uint64_t shard_bytes = uint64_t(5) << 30) {
  TempDir tmp;
  HfExportOptions o;
  o.format = f;
  o.max_shard_bytes = shard_bytes;
  export_hf(checkpoint, sp_model(), tmp / "hf", o);
  const auto tokens = test_tokens(24);
  const auto theirs = hf_logits(tmp / "hf", tokens, tmp), ours = our_logits(checkpoint, tokens);
  std::printf("%s: max |transformers - ours| = %.3g\n", hf_format_name(f),
              (theirs - ours).abs().max().item<double>());
  EXPECT_TRUE(testing::tensors_near(theirs, ours, kLogitTolerance));
}

// How far the logits of `state` computed as `c` are from `checkpoint`'s: an option the test
// switches off must matter, or its referee comparison proves nothing.
double logit_gap(const ModelConfig& c, const TensorMap& state, const std::string& checkpoint) {
  TransformerLm model(c);
  load_state_into(model, state, "changed");
  torch::NoGradGuard no_grad;
  const auto tokens = test_tokens(24);
  return (model->forward(tokens).logits_BTV - our_logits(checkpoint, tokens))
      .abs()
      .max()
      .item<double>();
}

TEST(Interop, DenseSequentialExportsAsLlamaAndTransformersComputesOurLogits) {
  TempDir tmp;
  // Sharded at 16 KB: transformers reads our index and shards.
  expect_transformers_agree(
      trained_checkpoint(tiny("sequential", "rmsnorm", false), tmp / "ckpt", 1), HfFormat::kLlama,
      16 << 10);
}

TEST(Interop, DenseSequentialExportsAsMistralAndPhi3AndTransformersComputesOurLogits) {
  TempDir tmp;
  const std::string ckpt = trained_checkpoint(tiny("sequential", "rmsnorm", true), tmp / "ckpt", 6);
  expect_transformers_agree(ckpt, HfFormat::kMistral);
  expect_transformers_agree(ckpt, HfFormat::kPhi3);  // fused q/k/v and gate/up
}

// q/k/v biases (Qwen2), trained here off zero: exported as qwen2, refused by the formats without
// them; dropping them changes the logits.
TEST(Interop, QkvBiasExportsAsQwen2AndTransformersComputesOurLogits) {
  TempDir tmp;
  ModelConfig c = tiny("sequential", "rmsnorm", true);
  c.qkv_bias = true;
  const std::string ckpt = trained_checkpoint(c, tmp / "ckpt", 8);
  EXPECT_EQ(hf_format_for(c), HfFormat::kQwen2);
  expect_transformers_agree(ckpt, HfFormat::kQwen2);
  EXPECT_NE(hf_export_refusal(c, HfFormat::kLlama).find("export it as qwen2"), std::string::npos);
  CheckpointMeta meta;
  const TensorMap state = load_checkpoint_state(ckpt, &meta);
  EXPECT_GT(state.at("blocks.0.attn.bq").abs().max().item<double>(), 1e-3);  // trained
  c.qkv_bias = false;
  TensorMap without = state;
  for (const char* b : {"bq", "bk", "bv"}) {
    for (int64_t l = 0; l < c.layers; ++l)
      without.erase("blocks." + std::to_string(l) + ".attn." + b);
  }
  EXPECT_GT(logit_gap(c, without, ckpt), 1e-3);
}

// Llama 3.1's RoPE scaling (as in Llama 3.2 and SmolLM2), trained here and exported as llama;
// without the scaling in transformers' config the logits differ, so the test can fail.
TEST(Interop, Llama3RopeScalingExportsAsLlamaAndTransformersComputesOurLogits) {
  TempDir tmp;
  ModelConfig c = tiny("sequential", "rmsnorm", true);
  c.rope_scaling = RopeScaling::kLlama3;
  c.rope_original_context = 32;  // wavelengths kept, blended and divided at head dim 8, theta 500
  const std::string ckpt = trained_checkpoint(c, tmp / "ckpt", 7);
  expect_transformers_agree(ckpt, HfFormat::kLlama);
  c.rope_scaling = RopeScaling::kNone;  // the same weights read without the scaling differ
  CheckpointMeta meta;
  EXPECT_GT(logit_gap(c, load_checkpoint_state(ckpt, &meta), ckpt), 1e-3);
}

TEST(Interop, DenseParallelExportsAsCohereAndTransformersComputesOurLogits) {
  TempDir tmp;  // BAM's block: one LayerNorm feeding attention and FFN; Cohere's interleaved RoPE
  expect_transformers_agree(
      trained_checkpoint(tiny("parallel", "layernorm", true), tmp / "ckpt", 2), HfFormat::kCohere);
}

TEST(Interop, BtxExportsAsMixtralAndTransformersComputesOurLogits) {
  TempDir tmp;
  const ModelConfig dense = tiny("sequential", "rmsnorm", false);
  UpcycleSpec spec;
  spec.method = UpcycleMethod::kBtx;
  for (int i = 0; i < 3; ++i)
    spec.inputs.push_back(trained_checkpoint(dense, tmp / ("expert" + std::to_string(i)), 10 + i));
  spec.mixture.ffn_top_k = 2;
  spec.mixture.ffn_routing =
      FfnRouting::kTopKThenSoftmax;  // = softmax, top-k, renormalise: Mixtral's router
  UpcycleResult btx = upcycle_dense(spec);
  TransformerLm model(btx.config);
  load_state_into(model, btx.state, "btx");
  train_briefly(model, 20);  // routers trained off their random init
  CheckpointMeta meta;
  meta.model = btx.config;
  save_checkpoint(tmp / "btx", model, meta);
  expect_transformers_agree(tmp / "btx", HfFormat::kMixtral);
}

TEST(Interop, ExportRefusesWhatTheFormatCannotComputeAndNativeRoundTripsBam) {
  TempDir tmp;
  ModelConfig bam = tiny("parallel", "layernorm", false);
  bam.attn_experts = 2;
  bam.ffn_experts = 2;
  const std::string ckpt = trained_checkpoint(bam, tmp / "bam", 3);
  HfExportOptions o;
  for (HfFormat f : {HfFormat::kLlama, HfFormat::kCohere, HfFormat::kMixtral}) {
    o.format = f;
    try {
      export_hf(ckpt, sp_model(), tmp / "out", o);
      ADD_FAILURE() << "exported BAM as " << hf_format_name(f);
    } catch (const StageError& e) {
      EXPECT_NE(std::string(e.what()).find("native"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(tmp / "out"));  // nothing written
  }
  ModelConfig moe = tiny("sequential", "rmsnorm", false);
  moe.ffn_experts = 4;
  moe.ffn_top_k = 2;  // softmax then top-k, not renormalised: Mixtral would renormalise
  o.format = HfFormat::kMixtral;
  try {
    export_hf(trained_checkpoint(moe, tmp / "moe", 4), sp_model(), tmp / "out", o);
    ADD_FAILURE() << "exported an unrenormalised router as Mixtral";
  } catch (const StageError& e) {
    EXPECT_NE(std::string(e.what()).find("renormalis"), std::string::npos) << e.what();
  }
  // Native: our layout, re-imported exactly.
  o.format = HfFormat::kNative;
  export_hf(ckpt, sp_model(), tmp / "native", o);
  import_hf(tmp / "native", tmp / "back");
  CheckpointMeta a, b;
  const TensorMap before = load_checkpoint_state(ckpt, &a),
                  after = load_checkpoint_state(tmp / "back", &b);
  EXPECT_EQ(to_json(a.model), to_json(b.model));
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, t] : before) EXPECT_TRUE(torch::equal(t, after.at(name))) << name;
}

// BAM and the other mixtures no Hugging Face class computes, exported as bam (our layout with
// configuration_bam.py and modeling_bam.py): transformers loads them with trust_remote_code and
// computes our logits. Each variant trained a few steps, so routers and biases are off their init.
TEST(Interop, BamExportsLoadInTransformersWithTheirRemoteCodeAndComputeOurLogits) {
  struct Variant {
    const char* name;
    ModelConfig c;
  };
  std::vector<Variant> variants;
  auto add = [&](const char* name, const std::string& block, const std::string& norm, bool tied,
                 auto&& edit) {
    ModelConfig c = tiny(block, norm, tied);
    c.attn_experts = 3;
    c.ffn_experts = 3;
    c.ffn_top_k = 2;
    edit(c);
    variants.push_back({name, c});
  };
  add("bam expert K/V, parallel, layernorm", "parallel", "layernorm", false, [](ModelConfig&) {});
  add("bam shared K/V, tied, renormalised top-2", "parallel", "layernorm", true,
      [](ModelConfig& c) {
        c.attn_kv = KvMode::kShared;
        c.ffn_renormalize = true;
      });
  add("bam top-1 attention, sequential rmsnorm, topk_then_softmax", "sequential", "rmsnorm", false,
      [](ModelConfig& c) {
        c.attn_routing = AttnRouting::kTopK;
        c.attn_top_k = 1;
        c.ffn_routing = FfnRouting::kTopKThenSoftmax;
      });
  add("bam with q/k/v biases and llama3 RoPE, MoE every other layer", "parallel", "rmsnorm", false,
      [](ModelConfig& c) {
        c.qkv_bias = true;
        c.rope_scaling = RopeScaling::kLlama3;
        c.rope_original_context = 32;
        c.moe_every = 2;
      });
  add("fine-grained sparse upcycling (granularity 2), dense attention", "sequential", "rmsnorm",
      false, [](ModelConfig& c) {
        c.attn_experts = 1;
        c.ffn_experts = 4;
        c.ffn_granularity = 2;
      });
  for (size_t i = 0; i < variants.size(); ++i) {
    SCOPED_TRACE(variants[i].name);
    TempDir tmp;
    const std::string ckpt = trained_checkpoint(variants[i].c, tmp / "ckpt", 30 + i);
    HfExportOptions o;
    o.format = hf_format_from("bam");
    export_hf(ckpt, sp_model(), tmp / "hf", o);
    ASSERT_TRUE(std::filesystem::exists(tmp / "hf/modeling_bam.py"));
    const auto tokens = test_tokens(24);
    const auto theirs = hf_logits(tmp / "hf", tokens, tmp), ours = our_logits(ckpt, tokens);
    std::printf("%s: max |transformers - ours| = %.3g\n", variants[i].name,
                (theirs - ours).abs().max().item<double>());
    EXPECT_TRUE(testing::tensors_near(theirs, ours, kLogitTolerance));
  }
}

TEST(Interop, ModelsTransformersSavedImportWithIdenticalWeightsAndLogits) {
  // llama3: Llama 3.1's RoPE scaling and tied embeddings (Llama 3.2 1B, SmolLM2); phi3: fused
  // q/k/v and gate/up tensors; qwen2: q/k/v biases (random, not zero) and tied embeddings.
  for (const char* arch : {"llama", "llama3", "mistral", "phi3", "qwen2", "cohere", "mixtral"}) {
    SCOPED_TRACE(arch);
    TempDir tmp;
    referee({"make", arch, sp_model(), tmp / "hf", "20KB"});  // llama comes sharded
    const HfImportResult r = import_hf(tmp / "hf", tmp / "ours");
    EXPECT_EQ(hf_format_name(r.model.format), std::string(arch) == "llama3" ? "llama" : arch);
    if (std::string(arch) == "llama3") {
      EXPECT_EQ(r.model.model.rope_scaling, RopeScaling::kLlama3);
      EXPECT_TRUE(r.model.model.tied_embeddings);
    }
    EXPECT_EQ(r.model.model.qkv_bias, std::string(arch) == "qwen2");
    // Every tensor transformers wrote is ours, bit for bit, written back in its layout.
    const TensorMap theirs = read_safetensors_dir(tmp / "hf");
    CheckpointMeta meta;
    const TensorMap back = to_hf_tensors(load_checkpoint_state(tmp / "ours", &meta), meta.model,
                                         r.model.format, at::kFloat);
    for (const auto& [name, t] : theirs) {
      ASSERT_TRUE(back.count(name)) << name;
      EXPECT_TRUE(torch::equal(t, back.at(name))) << name;
    }
    const auto tokens = test_tokens(24);
    const auto hf_out = hf_logits(tmp / "hf", tokens, tmp), ours = our_logits(tmp / "ours", tokens);
    std::printf("%s saved by transformers: max |transformers - ours| = %.3g\n", arch,
                (hf_out - ours).abs().max().item<double>());
    EXPECT_TRUE(testing::tensors_near(hf_out, ours, kLogitTolerance));
    EXPECT_EQ(read_checkpoint_file(tmp / "ours", "tokenizer.model"), core::read_file(sp_model()));
  }
}

TEST(Interop, ExportedTokenizerEncodesAsOurs) {
  TempDir tmp;
  HfExportOptions o;
  export_hf(trained_checkpoint(tiny("sequential", "rmsnorm", false), tmp / "ckpt", 5), sp_model(),
            tmp / "hf", o);
  std::vector<std::string> texts = {"Hello world",
                                    " leading space",
                                    "a   b\n\n  c",
                                    "x = 12345 + 6",
                                    "na\xC3\xAFve \xE4\xB8\xAD \xF0\x9F\x98\x80",
                                    "\ttab",
                                    "end. ",
                                    "  "};
  std::ifstream in("/usr/share/common-licenses/GPL-3");
  std::string gpl((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t at = 0; at + 400 < gpl.size() && texts.size() < 60; at += 577)
    texts.push_back(gpl.substr(at, 400));
  std::ofstream(tmp / "texts.json") << nlohmann::json(texts).dump();
  referee({"tokenize", tmp / "hf", tmp / "texts.json", tmp / "ids.json"});
  const auto theirs = nlohmann::json::parse(std::ifstream(tmp / "ids.json"));
  const Tokenizer tok(sp_model());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(theirs.at(i).get<std::vector<uint32_t>>(), tok.encode(texts[i]))
        << "text " << i << ": " << texts[i];
  }
  // Decoding: with trust_remote_code the export's tokenization_upcycle.py gives every text back
  // (transformers' own SentencePieceBackend prints byte pieces as <0x0A> and strips the ends).
  referee({"roundtrip", tmp / "hf", tmp / "texts.json", tmp / "back.json"});
  const auto back = nlohmann::json::parse(std::ifstream(tmp / "back.json"));
  for (size_t i = 0; i < texts.size(); ++i)
    EXPECT_EQ(back.at(i).get<std::string>(), texts[i]) << "text " << i;
}

}  // namespace
}  // namespace upcycle::stages
