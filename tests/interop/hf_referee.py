"""The outside referee for the interop tests: transformers, which nobody here wrote.

  hf_referee.py logits HF_DIR TOKENS_JSON OUT      logits of AutoModelForCausalLM (fp32, CPU) on the
                                                   token rows of TOKENS_JSON, saved as OUT (safetensors)
  hf_referee.py tokenize HF_DIR TEXTS_JSON OUT     AutoTokenizer's ids of each text, as JSON
  hf_referee.py bpe TOKENIZER_JSON HEX_TEXTS_JSON OUT
                                                   the tokenizers library's ids of each text (hex
                                                   bytes, decoded as Python does with errors="replace"),
                                                   no special tokens added, as JSON
  hf_referee.py make ARCH SP_MODEL OUT [SHARD]     a small random ARCH (llama | llama3 | mistral |
                                                   phi3 | cohere | mixtral) model
                                                   saved by save_pretrained with the SentencePiece
                                                   model as its tokenizer.model
"""
import json
import shutil
import sys

import torch
from safetensors.torch import save_file


def logits(hf_dir, tokens_json, out):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ids = torch.tensor(json.load(open(tokens_json)), dtype=torch.long)
        save_file({"logits": model(input_ids=ids).logits.contiguous()}, out)


def tokenize(hf_dir, texts_json, out):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_dir)
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in json.load(open(texts_json))]
    json.dump(ids, open(out, "w"))


def bpe(tokenizer_json, hex_texts_json, out):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    texts = [bytes.fromhex(h).decode("utf-8", errors="replace") for h in json.load(open(hex_texts_json))]
    json.dump([e.ids for e in tok.encode_batch(texts, add_special_tokens=False)], open(out, "w"))


def make(arch, sp_model, out, shard="5GB"):
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=512, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
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
    with torch.no_grad():  # norms away from 1, so a swapped or dropped norm shows in the logits
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True, max_shard_size=shard)
    shutil.copy(sp_model, out + "/tokenizer.model")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"logits": logits, "tokenize": tokenize, "bpe": bpe, "make": make}[cmd](*args)
