"""upcycle's models for transformers: BAM (soft-routed attention experts with their own or shared
K/V, and a mixture-of-experts FFN), BTX, sparse upcycling and the dense models they start from, as
`AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)` loads them from
`upcycle export --format bam`.

The tensors keep upcycle's names and layouts (stages/model/*.h), and this file computes what the
C++ model computes, in plain PyTorch (per expert, not fused; written for clarity, not speed):

  block     parallel: x + attn(n1(x)) + ffn(n1(x));  sequential: y = x + attn(n1(x)),
            y + ffn(n2(y))
  norm      layernorm (weight, no bias) or rmsnorm, eps norm_eps
  attention E experts: q_e = h wq[e]^T (+ bq[e]), k and v from expert e's or the one shared
            projection; RoPE on half-split dimensions (rope_theta, Llama 3.1 scaling); causal
            attention, kv head g serving query heads g*H/G .. (g+1)*H/G - 1; out = sum_e g_e(h)
            (y_e wo[e]^T), gates = softmax(h router^T) (soft), or its top-k renormalised
  ffn       SwiGLU experts w2 (silu(x w1^T) * x w3^T); router softmax then top-k (renormalised
            or not) or top-k logits then softmax; dense in layers where (l + 1) % moe_every != 0
  head      final norm, then the embedding (tied) or head

No KV cache: every call runs the whole sequence (scoring; generation works, slowly).
Written by upcycle; part of the project (stages/io/hf_bam/).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

try:
    from .configuration_bam import BamConfig
except ImportError:  # loaded as a plain module
    from configuration_bam import BamConfig


def _norm(x, w, m):
    if m["norm"] == "rmsnorm":
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + m["norm_eps"]) * w
    return F.layer_norm(x, (x.shape[-1],), w, None, m["norm_eps"])


def _inv_freq(m, head_dim, device):
    inv = m["rope_theta"] ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)
    if m["rope_scaling"] == "llama3":
        old = float(m["rope_original_context"])
        low, high, factor = m["rope_low_freq_factor"], m["rope_high_freq_factor"], m["rope_factor"]
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - low) / (high - low)
        blended = (1 - smooth) * inv / factor + smooth * inv
        inv = torch.where(wavelen > old / low, inv / factor, torch.where(wavelen < old / high, inv, blended))
    return inv


def _rope(x, cos, sin):  # x [B, n, T, C], half-split pairs (i, i + C/2)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


class BamAttention(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m
        E, D, H, G = m["attn_experts"], m["d_model"], m["heads"], m["kv_heads"]
        C = D // H
        Ekv = 1 if m["attn_kv"] == "shared" else E
        self.wq = nn.Parameter(torch.empty(E, H * C, D))
        self.wk = nn.Parameter(torch.empty(Ekv, G * C, D))
        self.wv = nn.Parameter(torch.empty(Ekv, G * C, D))
        self.wo = nn.Parameter(torch.empty(E, D, H * C))
        if E > 1:
            self.router = nn.Parameter(torch.empty(E, D))
        if m["qkv_bias"]:
            self.bq = nn.Parameter(torch.empty(E * H * C))
            self.bk = nn.Parameter(torch.empty(Ekv * G * C))
            self.bv = nn.Parameter(torch.empty(Ekv * G * C))

    def _project(self, h, w, b, e):
        y = h @ w[e].t()
        if b is not None:
            y = y + b.view(w.shape[0], -1)[e]
        return y

    def forward(self, h, cos, sin):
        m = self.m
        B, T, D = h.shape
        E, H, G = m["attn_experts"], m["heads"], m["kv_heads"]
        C = D // H
        bias = m["qkv_bias"]
        heads = lambda y, n: y.view(B, T, n, C).transpose(1, 2)
        out = 0
        if E > 1:
            gates = torch.softmax(h @ self.router.t(), -1)  # [B, T, E]
            if m["attn_routing"] == "top_k" and m["attn_top_k"] < E:
                v, i = gates.topk(m["attn_top_k"], -1)
                gates = torch.zeros_like(gates).scatter(-1, i, v / v.sum(-1, keepdim=True))
        for e in range(E):
            ekv = 0 if self.wk.shape[0] == 1 else e
            q = _rope(heads(self._project(h, self.wq, self.bq if bias else None, e), H), cos, sin)
            k = _rope(heads(self._project(h, self.wk, self.bk if bias else None, ekv), G), cos, sin)
            v = heads(self._project(h, self.wv, self.bv if bias else None, ekv), G)
            k, v = k.repeat_interleave(H // G, 1), v.repeat_interleave(H // G, 1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).reshape(B, T, H * C) @ self.wo[e].t()
            out = out + (gates[..., e : e + 1] * y if E > 1 else y)
        return out


class BamFfn(nn.Module):
    def __init__(self, m, experts):
        super().__init__()
        self.m, self.experts = m, experts
        D, Fe = m["d_model"], m["ffn_hidden"] // m["ffn_granularity"]
        self.w1 = nn.Parameter(torch.empty(experts, Fe, D))
        self.w3 = nn.Parameter(torch.empty(experts, Fe, D))
        self.w2 = nn.Parameter(torch.empty(experts, D, Fe))
        if experts > 1:
            self.router = nn.Parameter(torch.empty(experts, D))

    def _expert(self, x, e):
        return (F.silu(x @ self.w1[e].t()) * (x @ self.w3[e].t())) @ self.w2[e].t()

    def forward(self, h):
        if self.experts == 1:
            return self._expert(h, 0)
        m, K = self.m, self.m["ffn_top_k"]
        logits = h @ self.router.t()
        if m["ffn_routing"] == "topk_then_softmax":
            top, idx = logits.topk(K, -1)
            weight = torch.softmax(top, -1)
        else:
            weight, idx = torch.softmax(logits, -1).topk(K, -1)
            if m["ffn_renormalize"]:
                weight = weight / weight.sum(-1, keepdim=True)
        out = torch.zeros_like(h)
        for e in range(self.experts):
            w_e = (weight * (idx == e)).sum(-1, keepdim=True)  # 0 where e is not chosen
            chosen = (idx == e).any(-1)
            if chosen.any():
                out[chosen] += (w_e * self._expert(h, e))[chosen]
        return out


class BamBlock(nn.Module):
    def __init__(self, m, layer):
        super().__init__()
        self.m = m
        self.norm1 = nn.Parameter(torch.empty(m["d_model"]))
        if m["block"] == "sequential":
            self.norm2 = nn.Parameter(torch.empty(m["d_model"]))
        experts = m["ffn_experts"] if m["ffn_experts"] > 1 and (layer + 1) % m["moe_every"] == 0 else 1
        self.attn = BamAttention(m)
        self.ffn = BamFfn(m, experts)

    def forward(self, x, cos, sin):
        m = self.m
        if m["block"] == "parallel":
            h = _norm(x, self.norm1, m)
            return x + self.attn(h, cos, sin) + self.ffn(h)
        y = x + self.attn(_norm(x, self.norm1, m), cos, sin)
        return y + self.ffn(_norm(y, self.norm2, m))


class BamForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = BamConfig
    base_model_prefix = "bam"
    _supports_sdpa = True

    def __init__(self, config):
        super().__init__(config)
        m = config.upcycle_model
        self.m = m
        self.embed = nn.Parameter(torch.empty(m["vocab"], m["d_model"]))
        self.blocks = nn.ModuleList([BamBlock(m, l) for l in range(m["layers"])])
        self.final_norm = nn.Parameter(torch.empty(m["d_model"]))
        if not m["tied_embeddings"]:
            self.head = nn.Parameter(torch.empty(m["vocab"], m["d_model"]))
        self.post_init()

    def _init_weights(self, module):
        pass  # every tensor comes from the checkpoint

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        m = self.m
        B, T = input_ids.shape
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("BamForCausalLM scores unpadded rows only (attention_mask must be all ones)")
        x = self.embed[input_ids].float()
        C = m["d_model"] // m["heads"]
        angles = torch.outer(torch.arange(T, dtype=torch.float64, device=x.device),
                             _inv_freq(m, C, x.device))
        cos, sin = angles.cos().float().to(x.dtype), angles.sin().float().to(x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
        x = _norm(x, self.final_norm, m)
        logits = x @ (self.embed if m["tied_embeddings"] else self.head).t()
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                   labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask}
