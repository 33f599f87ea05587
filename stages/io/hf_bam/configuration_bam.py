"""The configuration of an upcycle model for transformers (`upcycle export --format bam`).

config.json carries upcycle's own ModelConfig under `upcycle_model` (every field upcycle's
checkpoint has; docs/interop.md) and the usual Hugging Face names beside it, so that
`AutoConfig.from_pretrained(dir, trust_remote_code=True)` and tools that read `hidden_size`,
`num_hidden_layers` or `max_position_embeddings` (lm-evaluation-harness's context length) work.
Written by upcycle; part of the project (stages/io/hf_bam/).
"""
from transformers import PretrainedConfig

# ModelConfig's defaults (stages/arch/config.h), for fields a config.json may leave out.
DEFAULTS = {
    "block": "parallel", "norm": "layernorm", "tied_embeddings": False, "qkv_bias": False,
    "rope_theta": 10000.0, "rope_scaling": "none", "rope_factor": 8.0, "rope_low_freq_factor": 1.0,
    "rope_high_freq_factor": 4.0, "rope_original_context": 8192, "norm_eps": 1e-5,
    "attn_experts": 1, "attn_routing": "soft", "attn_top_k": 1, "attn_kv": "expert",
    "ffn_experts": 1, "ffn_top_k": 1, "ffn_routing": "softmax_then_topk", "ffn_renormalize": False,
    "moe_every": 1, "ffn_granularity": 1,
}


class BamConfig(PretrainedConfig):
    model_type = "upcycle"

    def __init__(self, upcycle_model=None, **kwargs):
        self.upcycle_model = dict(DEFAULTS, **(upcycle_model or {}))
        m = self.upcycle_model
        for hf, ours in [("vocab_size", "vocab"), ("hidden_size", "d_model"),
                         ("num_hidden_layers", "layers"), ("num_attention_heads", "heads"),
                         ("max_position_embeddings", "seq_len")]:
            kwargs.setdefault(hf, m.get(ours))
        # The model ties its head to the embedding itself (upcycle_model.tied_embeddings):
        # transformers' own tying, which looks for nn.Embedding modules, stays off.
        kwargs["tie_word_embeddings"] = False
        super().__init__(**kwargs)
