"""The outside referee for the interop tests: transformers, which nobody here wrote.

  hf_referee.py logits HF_DIR TOKENS_JSON OUT      logits of AutoModelForCausalLM (fp32, CPU; remote
                                                   code trusted, for bam exports) on the
                                                   token rows of TOKENS_JSON, saved as OUT (safetensors)
  hf_referee.py tokenize HF_DIR TEXTS_JSON OUT     AutoTokenizer's ids of each text, as JSON
  hf_referee.py roundtrip HF_DIR TEXTS_JSON OUT    AutoTokenizer's decode(encode(text)) of each text
                                                   (remote code trusted: an export's own decoder)
  hf_referee.py bpe TOKENIZER_JSON HEX_TEXTS_JSON OUT
                                                   the tokenizers library's ids of each text (hex
                                                   bytes, decoded as Python does with errors="replace"),
                                                   no special tokens added, as JSON
  hf_referee.py make ARCH TOKENIZER OUT [SHARD]     a small random ARCH (llama | llama3 | mistral |
                                                   phi3 | qwen2 | cohere | mixtral) model
                                                   saved by save_pretrained with TOKENIZER (a
                                                   SentencePiece .model, or a tokenizer.json whose ids
                                                   set the vocabulary)
"""
import json
import shutil
import sys

import torch
from safetensors.torch import save_file


def logits(hf_dir, tokens_json, out):
    from transformers import AutoModelForCausalLM

    # trust_remote_code: a bam export's own modeling_bam.py (the others load transformers' classes)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, trust_remote_code=True).eval()
    with torch.no_grad():
        ids = torch.tensor(json.load(open(tokens_json)), dtype=torch.long)
        save_file({"logits": model(input_ids=ids).logits.contiguous()}, out)


def tokenize(hf_dir, texts_json, out):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in json.load(open(texts_json))]
    json.dump(ids, open(out, "w"))


def roundtrip(hf_dir, texts_json, out):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=True)
    texts = json.load(open(texts_json))
    json.dump([tok.decode(tok(t, add_special_tokens=False)["input_ids"]) for t in texts], open(out, "w"))


def bpe(tokenizer_json, hex_texts_json, out):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    texts = [bytes.fromhex(h).decode("utf-8", errors="replace") for h in json.load(open(hex_texts_json))]
    json.dump([e.ids for e in tok.encode_batch(texts, add_special_tokens=False)], open(out, "w"))


def make(arch, tokenizer, out, shard="5GB"):
    import transformers as tf

    torch.manual_seed(0)
    vocab = 512
    if tokenizer.endswith(".json"):  # a byte-level BPE: the model covers its ids
        tok = json.load(open(tokenizer, encoding="utf-8"))
        vocab = 1 + max([*tok["model"]["vocab"].values(), *(t["id"] for t in tok["added_tokens"])])
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rope_theta=500.0)
    # Llama 3.1's RoPE scaling at this head size (C 8, theta 500): wavelengths 6.3 (kept, < 32/4),
    # 30 (blended) and 140, 664 (divided by the factor, > 32/1).
    llama3_rope = {"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    if arch == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(rms_norm_eps=1e-5, tie_word_embeddings=False, **common))
    elif arch == "llama3":  # Llama 3.2 1B / SmolLM2: scaled RoPE, tied embeddings
        cfg = dict(common, rope_parameters=llama3_rope)
        del cfg["rope_theta"]
        model = tf.LlamaForCausalLM(tf.LlamaConfig(rms_norm_eps=1e-5, tie_word_embeddings=True, **cfg))
    elif arch == "qwen2":  # Qwen2.5 0.5B: q/k/v biases, tied embeddings, no sliding window
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(rms_norm_eps=1e-5, tie_word_embeddings=True,
                                                   use_sliding_window=False, **common))
    elif arch == "mistral":
        model = tf.MistralForCausalLM(tf.MistralConfig(rms_norm_eps=1e-5, sliding_window=None, **common))
    elif arch == "phi3":
        model = tf.Phi3ForCausalLM(tf.Phi3Config(rms_norm_eps=1e-5, sliding_window=None, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                                 **common))
    elif arch == "cohere":
        model = tf.CohereForCausalLM(tf.CohereConfig(layer_norm_eps=1e-5, logit_scale=0.25, **common))
    elif arch == "mixtral":
        model = tf.MixtralForCausalLM(tf.MixtralConfig(num_local_experts=4, num_experts_per_tok=2,
                                                       rms_norm_eps=1e-5, **common))
    else:
        raise SystemExit("unknown arch " + arch)
    with torch.no_grad():  # norms away from 1 and biases from 0: a dropped one shows in the logits
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True, max_shard_size=shard)
    shutil.copy(tokenizer, out + ("/tokenizer.json" if tokenizer.endswith(".json") else "/tokenizer.model"))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"logits": logits, "tokenize": tokenize, "roundtrip": roundtrip, "bpe": bpe, "make": make}[cmd](*args)
