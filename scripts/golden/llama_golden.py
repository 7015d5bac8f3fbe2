#!/usr/bin/python3
"""Golden reference outputs for whet's Llama-family models.

Builds tiny random checkpoints of the Llama, Mistral, Qwen2 and Qwen3 families
in Hugging Face layout (config.json + model.safetensors) and records, for a
fixed batch, the logits, the causal-LM loss and the gradient of that loss with
respect to every parameter.  Go tests load the checkpoint with whet, run the
same batch and compare.

This is an independent, compact re-implementation of the maths of the
transformers modeling files (modeling_llama/mistral/qwen2/qwen3 and
modeling_rope_utils._compute_llama3_parameters); it does not import or copy
transformers.  Everything is computed in float64 and stored as float32.

Run with Debian's torch (apt-get install python3-torch; torch 1.13 works):

    /usr/bin/python3 scripts/golden/llama_golden.py

Output: models/testdata/golden/<variant>/{config.json, model.safetensors,
golden.safetensors, golden.json}.  The output is deterministic: running the
script twice gives byte-identical files.  See scripts/golden/README.md.
"""

import argparse
import json
import math
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_ROOT = os.path.join(REPO, "models", "testdata", "golden")

IGNORE_INDEX = -100

SLIDING_WINDOW_RULE = (
    "query i attends key j iff j <= i and j > i - sliding_window, i.e. the "
    "sliding_window most recent positions including i itself (transformers "
    "masking_utils.sliding_window_overlay: kv_idx > q_idx - sliding_window)"
)

# ---------------------------------------------------------------------------
# safetensors (torch 1.13 has no safetensors package: write/read it by hand)
# ---------------------------------------------------------------------------

_ST_DTYPES = {
    np.dtype("<f4"): "F32",
    np.dtype("<f8"): "F64",
    np.dtype("<i8"): "I64",
    np.dtype("<i4"): "I32",
}
_ST_NP = {v: k for k, v in _ST_DTYPES.items()}


def write_safetensors(path, tensors):
    """tensors: ordered mapping name -> numpy array (F32/F64/I64/I32).

    Layout: u64 little-endian header length N, N bytes of JSON header padded
    with spaces to a multiple of 8, then the raw little-endian tensor data,
    packed in the order given.
    """
    header = OrderedDict()
    header["__metadata__"] = {"format": "pt"}
    blobs = []
    off = 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = arr.dtype.newbyteorder("<")
        if dt not in _ST_DTYPES:
            raise ValueError("unsupported dtype %s for %s" % (arr.dtype, name))
        b = arr.astype(dt, copy=False).tobytes(order="C")
        header[name] = {
            "dtype": _ST_DTYPES[dt],
            "shape": list(arr.shape),
            "data_offsets": [off, off + len(b)],
        }
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0, "header not padded"
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = OrderedDict()
    meta = header.pop("__metadata__", None)
    end = 0
    for name, info in header.items():
        a, b = info["data_offsets"]
        dt = _ST_NP[info["dtype"]]
        arr = np.frombuffer(data[base + a:base + b], dtype=dt).reshape(info["shape"])
        out[name] = arr
        end = max(end, b)
    assert base + end == len(data), "trailing bytes"
    return out, meta


# ---------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------


def llama_config(**kw):
    c = OrderedDict(
        architectures=["LlamaForCausalLM"],
        attention_bias=False,
        attention_dropout=0.0,
        bos_token_id=1,
        eos_token_id=2,
        head_dim=None,
        hidden_act="silu",
        hidden_size=64,
        initializer_range=0.02,
        intermediate_size=96,
        max_position_embeddings=256,
        mlp_bias=False,
        model_type="llama",
        num_attention_heads=8,
        num_hidden_layers=2,
        num_key_value_heads=2,
        pretraining_tp=1,
        rms_norm_eps=1e-5,
        rope_scaling=None,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        torch_dtype="float32",
        use_cache=True,
        vocab_size=128,
    )
    c.update(kw)
    if c["head_dim"] is None:
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    return c


def mistral_config(**kw):
    c = OrderedDict(
        architectures=["MistralForCausalLM"],
        attention_dropout=0.0,
        bos_token_id=1,
        eos_token_id=2,
        head_dim=None,
        hidden_act="silu",
        hidden_size=64,
        initializer_range=0.02,
        intermediate_size=96,
        max_position_embeddings=256,
        model_type="mistral",
        num_attention_heads=4,
        num_hidden_layers=2,
        num_key_value_heads=2,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        sliding_window=5,
        tie_word_embeddings=False,
        torch_dtype="float32",
        use_cache=True,
        vocab_size=100,
    )
    c.update(kw)
    if c["head_dim"] is None:
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    return c


def qwen2_config(**kw):
    c = OrderedDict(
        architectures=["Qwen2ForCausalLM"],
        attention_dropout=0.0,
        bos_token_id=1,
        eos_token_id=2,
        hidden_act="silu",
        hidden_size=64,
        initializer_range=0.02,
        intermediate_size=80,
        max_position_embeddings=256,
        max_window_layers=1,
        model_type="qwen2",
        num_attention_heads=4,
        num_hidden_layers=2,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_scaling=None,
        rope_theta=1000000.0,
        # Deliberately small and shorter than T: transformers drops it because
        # use_sliding_window is false (Qwen2Config: sliding_window = None unless
        # use_sliding_window), so every layer must use full causal attention.
        sliding_window=4,
        tie_word_embeddings=False,
        torch_dtype="float32",
        use_cache=True,
        use_sliding_window=False,
        vocab_size=120,
    )
    c.update(kw)
    return c


def qwen3_config(**kw):
    c = OrderedDict(
        architectures=["Qwen3ForCausalLM"],
        attention_bias=False,
        attention_dropout=0.0,
        bos_token_id=1,
        eos_token_id=2,
        head_dim=16,
        hidden_act="silu",
        hidden_size=48,
        initializer_range=0.02,
        intermediate_size=80,
        max_position_embeddings=256,
        max_window_layers=2,
        model_type="qwen3",
        num_attention_heads=4,
        num_hidden_layers=2,
        num_key_value_heads=2,
        rms_norm_eps=1e-6,
        rope_scaling=None,
        rope_theta=1000000.0,
        sliding_window=None,
        tie_word_embeddings=False,
        torch_dtype="float32",
        use_cache=True,
        use_sliding_window=False,
        vocab_size=96,
    )
    c.update(kw)
    return c


VARIANTS = OrderedDict()

VARIANTS["llama-gqa"] = dict(
    seed=1001,
    seq_len=16,
    config=llama_config(),
    description="Llama with grouped-query attention (8 query heads share 2 KV heads, "
    "head_dim 8), plain RoPE theta 1e4, untied lm_head.",
    checks=["embedding lookup", "pre-norm RMSNorm (eps 1e-5)", "half-split RoPE",
            "GQA repeat_kv (query head h uses kv head h // 4)", "causal softmax attention",
            "SwiGLU MLP", "final norm", "untied lm_head", "shifted mean cross-entropy with -100",
            "gradients of every parameter"],
)

VARIANTS["llama3-tied"] = dict(
    seed=1002,
    seq_len=16,
    config=llama_config(
        vocab_size=112,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        rope_theta=500000.0,
        rope_scaling=OrderedDict(
            factor=8.0,
            high_freq_factor=4.0,
            low_freq_factor=1.0,
            original_max_position_embeddings=64,
            rope_type="llama3",
        ),
        tie_word_embeddings=True,
        eos_token_id=[2, 3],
    ),
    description="Llama 3 style: llama3 RoPE scaling (factor 8, low 1, high 4, original "
    "context 64, theta 5e5, head_dim 16, so frequency 0 is kept, 1 is smoothed, 2..7 are "
    "divided by 8), tied embeddings (no lm_head tensor), GQA 4/2.",
    checks=["llama3 inv_freq (all three bands)", "tied lm_head = embed_tokens; its gradient "
            "is the sum of the embedding and output-projection contributions", "GQA",
            "eos_token_id as a list"],
)

VARIANTS["mistral-window"] = dict(
    seed=1003,
    seq_len=20,
    config=mistral_config(),
    description="Mistral with sliding_window 5 < T=20, GQA 4/2, head_dim 16. " + SLIDING_WINDOW_RULE + ".",
    checks=["sliding-window causal mask (window of 5 keys incl. the query's own position)",
            "GQA", "gradients through the windowed attention"],
)

VARIANTS["qwen2-bias"] = dict(
    seed=1004,
    seq_len=16,
    config=qwen2_config(),
    description="Qwen2: q/k/v projections have biases (o_proj has none), rms_norm_eps 1e-6, "
    "theta 1e6. use_sliding_window is false, so the (small, trap) sliding_window 4 and "
    "max_window_layers 1 must be ignored: all layers are full causal attention.",
    checks=["q/k/v bias and their gradients", "use_sliding_window=false disables sliding_window",
            "untied lm_head"],
)

VARIANTS["qwen3-qknorm"] = dict(
    seed=1005,
    seq_len=14,
    config=qwen3_config(),
    description="Qwen3: head_dim 16 != hidden 48 / 4 heads (q_proj is [64, 48], o_proj "
    "[48, 64]); per-head RMSNorm q_norm/k_norm (weight [head_dim], eps 1e-6) applied to "
    "q and k after the projection and the split into heads, before RoPE; no biases.",
    checks=["explicit head_dim != hidden/heads", "q_norm/k_norm before RoPE and their gradients",
            "sliding_window null / use_sliding_window false"],
)


# ---------------------------------------------------------------------------
# Model maths
# ---------------------------------------------------------------------------


def head_dim_of(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def q_bias(cfg):
    return cfg["model_type"] == "qwen2" or bool(cfg.get("attention_bias", False))


def o_bias(cfg):
    # Qwen2 hard-codes o_proj bias=False; Llama/Qwen3 use attention_bias for all four.
    return cfg["model_type"] != "qwen2" and bool(cfg.get("attention_bias", False))


def has_qk_norm(cfg):
    return cfg["model_type"] == "qwen3"


def effective_window(cfg):
    """The sliding window transformers applies to every layer, or None."""
    w = cfg.get("sliding_window")
    if cfg["model_type"] in ("qwen2", "qwen3"):
        if not cfg.get("use_sliding_window", False):
            return None
        raise NotImplementedError("per-layer windows (max_window_layers) not generated")
    return w


def inv_freq_of(cfg):
    """RoPE inverse frequencies in float64 (transformers computes them in float32)."""
    d = head_dim_of(cfg)
    theta = float(cfg["rope_theta"])
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    assert rs["rope_type"] == "llama3", rs
    factor = float(rs["factor"])
    lo, hi = float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
    old = float(rs["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv
    lo_wl, hi_wl = old / lo, old / hi
    smooth = (old / wavelen - lo) / (hi - lo)
    out = torch.where(wavelen > lo_wl, inv / factor, inv)  # low frequencies: divided
    mid = (wavelen >= hi_wl) & (wavelen <= lo_wl)
    out = torch.where(mid, (1 - smooth) * inv / factor + smooth * inv, out)
    return out


def llama3_band_reference(cfg):
    """Scalar re-statement of the llama3 rule, used to cross-check inv_freq_of."""
    d = head_dim_of(cfg)
    rs = cfg["rope_scaling"]
    res, bands = [], []
    for i in range(d // 2):
        f = cfg["rope_theta"] ** (-(2.0 * i) / d)
        wl = 2 * math.pi / f
        if wl < rs["original_max_position_embeddings"] / rs["high_freq_factor"]:
            res.append(f)
            bands.append("high(kept)")
        elif wl > rs["original_max_position_embeddings"] / rs["low_freq_factor"]:
            res.append(f / rs["factor"])
            bands.append("low(/factor)")
        else:
            s = (rs["original_max_position_embeddings"] / wl - rs["low_freq_factor"]) / (
                rs["high_freq_factor"] - rs["low_freq_factor"])
            res.append((1 - s) * f / rs["factor"] + s * f)
            bands.append("medium(smoothed)")
    return res, bands


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def attention_allowed(T, window):
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    ok = j <= i
    if window is not None:
        ok = ok & (j > i - window)
    return ok


def forward(cfg, P, input_ids, record=None):
    """Logits [B, T, V] in float64. P: name -> tensor (HF names)."""
    B, T = input_ids.shape
    H = cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"]
    D = head_dim_of(cfg)
    eps = cfg["rms_norm_eps"]
    rep = H // KV

    inv = inv_freq_of(cfg)
    pos = torch.arange(T, dtype=torch.float64)
    ang = pos[:, None] * inv[None, :]            # [T, D/2]
    emb = torch.cat((ang, ang), dim=-1)           # [T, D]
    cos, sin = emb.cos(), emb.sin()
    allowed = attention_allowed(T, effective_window(cfg))

    x = P["model.embed_tokens.weight"][input_ids]  # [B, T, hidden]
    if record is not None:
        record["hidden_states.0"] = x
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms_norm(x, P[p + "input_layernorm.weight"], eps)

        def proj(name, inp):
            y = inp @ P[p + name + ".weight"].t()
            b = P.get(p + name + ".bias")
            return y + b if b is not None else y

        q = proj("self_attn.q_proj", h).view(B, T, H, D)
        k = proj("self_attn.k_proj", h).view(B, T, KV, D)
        v = proj("self_attn.v_proj", h).view(B, T, KV, D)
        if has_qk_norm(cfg):
            q = rms_norm(q, P[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, P[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, h, T, D]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # repeat_kv: query head hq uses kv head hq // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        s = s.masked_fill(~allowed, float("-inf"))
        a = torch.softmax(s, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(B, T, H * D)
        x = x + proj("self_attn.o_proj", o)

        h = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = proj("mlp.gate_proj", h)
        u = proj("mlp.up_proj", h)
        x = x + proj("mlp.down_proj", torch.nn.functional.silu(g) * u)
        if record is not None:
            record["hidden_states.%d" % (l + 1)] = x

    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return x @ head.t()


def causal_lm_loss(logits, labels):
    """transformers ForCausalLMLoss: position t predicts labels[t+1]; the last
    position and labels == -100 are ignored; mean over the remaining tokens of
    the whole batch."""
    V = logits.shape[-1]
    shifted = torch.cat(
        (labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)), dim=1)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, V), shifted.reshape(-1), ignore_index=IGNORE_INDEX, reduction="mean")


def manual_loss(logits, labels):
    """Independent restatement of causal_lm_loss (logsumexp form)."""
    total, n = 0.0, 0
    B, T, _ = logits.shape
    for b in range(B):
        for t in range(T - 1):
            y = int(labels[b, t + 1])
            if y == IGNORE_INDEX:
                continue
            row = logits[b, t]
            total += float(torch.logsumexp(row, 0) - row[y])
            n += 1
    return total / n


# ---------------------------------------------------------------------------
# Parameters and batch
# ---------------------------------------------------------------------------


def param_shapes(cfg):
    Hd = cfg["hidden_size"]
    I = cfg["intermediate_size"]
    V = cfg["vocab_size"]
    D = head_dim_of(cfg)
    Hq = cfg["num_attention_heads"] * D
    Hkv = cfg["num_key_value_heads"] * D
    s = OrderedDict()
    s["model.embed_tokens.weight"] = (V, Hd)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        s[p + "input_layernorm.weight"] = (Hd,)
        s[p + "self_attn.q_proj.weight"] = (Hq, Hd)
        if q_bias(cfg):
            s[p + "self_attn.q_proj.bias"] = (Hq,)
        s[p + "self_attn.k_proj.weight"] = (Hkv, Hd)
        if q_bias(cfg):
            s[p + "self_attn.k_proj.bias"] = (Hkv,)
        s[p + "self_attn.v_proj.weight"] = (Hkv, Hd)
        if q_bias(cfg):
            s[p + "self_attn.v_proj.bias"] = (Hkv,)
        s[p + "self_attn.o_proj.weight"] = (Hd, Hq)
        if o_bias(cfg):
            s[p + "self_attn.o_proj.bias"] = (Hd,)
        if has_qk_norm(cfg):
            s[p + "self_attn.q_norm.weight"] = (D,)
            s[p + "self_attn.k_norm.weight"] = (D,)
        s[p + "post_attention_layernorm.weight"] = (Hd,)
        s[p + "mlp.gate_proj.weight"] = (I, Hd)
        s[p + "mlp.up_proj.weight"] = (I, Hd)
        s[p + "mlp.down_proj.weight"] = (Hd, I)
    s["model.norm.weight"] = (Hd,)
    if not cfg["tie_word_embeddings"]:
        s["lm_head.weight"] = (V, Hd)
    return s


def init_params(cfg, gen):
    """Random weights scaled so that every activation is O(1):
    linear weights N(0, 1/fan_in) (o_proj/down_proj/lm_head at half that std),
    embeddings N(0, 0.5^2) (N(0, 1/hidden) when tied, as they are then also the
    output projection), norm weights 1 + N(0, 0.1^2), biases N(0, 0.1^2).
    Drawn in float64 and rounded to float32, so the stored F32 checkpoint is
    exactly the model the goldens were computed with."""
    P = OrderedDict()
    for name, shape in param_shapes(cfg).items():
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith(".bias"):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif name == "model.embed_tokens.weight":
            std = 1.0 / math.sqrt(shape[1]) if cfg["tie_word_embeddings"] else 0.5
            t = std * torch.randn(shape, generator=gen)
        else:
            fan_in = shape[1]
            std = 1.0 / math.sqrt(fan_in)
            if any(k in name for k in ("o_proj", "down_proj", "lm_head")):
                std *= 0.5
            t = std * torch.randn(shape, generator=gen)
        P[name] = t.float().double()
    return P


def make_batch(cfg, T, gen):
    V = cfg["vocab_size"]
    B = 2
    ids = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)
    labels = ids.clone()
    # -100 at: the first two positions of sequence 0 (position 0's label is never
    # used anyway, position 1's is a real ignored target), one interior position
    # of each sequence, and the last three of sequence 1.
    labels[0, 0:2] = IGNORE_INDEX
    labels[0, T // 2] = IGNORE_INDEX
    labels[1, 3] = IGNORE_INDEX
    labels[1, T - 3:] = IGNORE_INDEX
    return ids, labels


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------


def finite_difference_check(cfg, P, ids, labels, grads, gen, n_entries=3, h=1e-6):
    """Central differences (float64) on a few entries of several parameters."""
    names = list(P.keys())
    picks = [n for n in names if any(k in n for k in (
        "embed_tokens", "layers.0.self_attn.q_proj.weight", "layers.1.self_attn.k_proj",
        "layers.0.self_attn.v_proj.bias", "q_norm", "k_norm", "layers.1.mlp.down_proj",
        "layers.0.input_layernorm", "model.norm", "lm_head"))]
    worst_abs, worst_rel = 0.0, 0.0
    for n in picks:
        flat = P[n].detach().view(-1)
        idx = torch.randint(0, flat.numel(), (n_entries,), generator=gen).tolist()
        if n == "model.embed_tokens.weight":
            # make sure one entry belongs to a token that is actually used
            idx[0] = int(ids[0, 0]) * P[n].shape[1]
        for i in idx:
            with torch.no_grad():
                old = flat[i].item()
                flat[i] = old + h
                lp = causal_lm_loss(forward(cfg, P, ids), labels).item()
                flat[i] = old - h
                lm = causal_lm_loss(forward(cfg, P, ids), labels).item()
                flat[i] = old
            fd = (lp - lm) / (2 * h)
            an = grads[n].view(-1)[i].item()
            err = abs(fd - an)
            rel = err / max(abs(fd), abs(an), 1e-300)
            worst_abs = max(worst_abs, err)
            if abs(an) > 1e-5:
                worst_rel = max(worst_rel, rel)
            if err > 1e-8 and rel > 1e-5:
                raise AssertionError("gradient check failed for %s[%d]: fd %.10g autograd %.10g"
                                     % (n, i, fd, an))
    return worst_abs, worst_rel, len(picks) * n_entries


def self_checks(name, cfg, P, ids, labels, logits, loss, grads, gen):
    notes = {}
    # 1. loss against a scalar restatement
    ml = manual_loss(logits.detach(), labels)
    assert abs(ml - loss.item()) < 1e-12, (ml, loss.item())
    # 2. gradients by central differences
    wabs, wrel, n = finite_difference_check(cfg, P, ids, labels, grads, gen)
    notes["finite_difference_entries"] = n
    notes["finite_difference_max_abs_err"] = wabs
    notes["finite_difference_max_rel_err"] = wrel
    # 3. mask shape: row i sees min(i+1, window) keys
    T = ids.shape[1]
    w = effective_window(cfg)
    counts = attention_allowed(T, w).sum(-1).tolist()
    assert counts == [min(i + 1, w if w else T + 1) for i in range(T)], counts
    notes["keys_visible_per_query"] = counts
    # 4. llama3: the scaling must change some frequencies, and match the scalar rule
    if cfg.get("rope_scaling"):
        d = head_dim_of(cfg)
        plain = 1.0 / float(cfg["rope_theta"]) ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        scaled = inv_freq_of(cfg)
        ref, bands = llama3_band_reference(cfg)
        assert torch.allclose(scaled, torch.tensor(ref), rtol=1e-14, atol=0), (scaled, ref)
        changed = (scaled != plain).sum().item()
        assert changed > 0 and changed < d // 2, "llama3 scaling should change some, not all"
        assert set(bands) == {"high(kept)", "medium(smoothed)", "low(/factor)"}, bands
        notes["llama3_bands"] = bands
        notes["llama3_frequencies_changed"] = int(changed)
    # 5. Qwen2 trap: the configured sliding_window really would change the output
    if cfg["model_type"] == "qwen2" and cfg.get("sliding_window") and not cfg["use_sliding_window"]:
        wrong = dict(cfg)
        wrong["model_type"] = "mistral"  # mistral honours sliding_window unconditionally
        wrong_logits = forward(wrong, P, ids).detach()
        diff = (wrong_logits - logits.detach()).abs().max().item()
        assert diff > 1e-3, diff
        notes["max_logit_change_if_window_wrongly_applied"] = diff
    # 6. mistral: the window must matter
    if w is not None:
        full = dict(cfg, sliding_window=None)
        diff = (forward(full, P, ids).detach() - logits.detach()).abs().max().item()
        assert diff > 1e-3, diff
        notes["max_logit_change_without_window"] = diff
    return notes


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def f32(t):
    return t.detach().to(torch.float32).contiguous().numpy()


def build_variant(name, spec, out_root, check=True):
    cfg = OrderedDict(spec["config"])
    gen = torch.Generator().manual_seed(spec["seed"])
    P = init_params(cfg, gen)
    for t in P.values():
        t.requires_grad_(True)
    ids, labels = make_batch(cfg, spec["seq_len"], gen)

    rec = OrderedDict()
    logits = forward(cfg, P, ids, record=rec)
    loss = causal_lm_loss(logits, labels)
    grads = torch.autograd.grad(loss, list(P.values()))
    grads = OrderedDict(zip(P.keys(), grads))

    notes = self_checks(name, cfg, P, ids, labels, logits, loss, grads,
                        torch.Generator().manual_seed(spec["seed"] + 7)) if check else {}

    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)

    cfg_out = OrderedDict(cfg)
    cfg_out["_golden_note"] = (
        "Tiny random %s checkpoint generated by scripts/golden/llama_golden.py (not a trained "
        "model). %s" % (name, spec["description"]))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg_out, f, indent=2)
        f.write("\n")

    write_safetensors(os.path.join(d, "model.safetensors"),
                      OrderedDict((k, f32(v)) for k, v in P.items()))

    g = OrderedDict()
    g["input_ids"] = ids.numpy().astype("<i8")
    g["labels"] = labels.numpy().astype("<i8")
    g["logits"] = f32(logits)
    g["loss"] = f32(loss.reshape(1))
    for k, v in rec.items():
        g[k] = f32(v)
    for k, v in grads.items():
        g["grad." + k] = f32(v)
    write_safetensors(os.path.join(d, "golden.safetensors"), g)

    n_targets = int((torch.cat((labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)), 1)
                     != IGNORE_INDEX).sum())
    summary = OrderedDict(
        variant=name,
        description=spec["description"],
        checks=spec["checks"],
        seed=spec["seed"],
        batch=OrderedDict(B=int(ids.shape[0]), T=int(ids.shape[1]), padding=False,
                          attention_mask="none (all positions real)",
                          position_ids="0..T-1 for every sequence"),
        loss=loss.item(),
        loss_targets=n_targets,
        loss_convention="labels are unshifted (same positions as input_ids); logits[:, t] is "
        "scored against labels[:, t+1]; the last position and every -100 are ignored; the loss "
        "is the mean over the remaining (b, t) of the whole batch",
        attention="causal" if effective_window(cfg) is None else SLIDING_WINDOW_RULE,
        effective_sliding_window=effective_window(cfg),
        head_dim=head_dim_of(cfg),
        rope_inv_freq=[float(x) for x in inv_freq_of(cfg)],
        golden_tensors=OrderedDict(
            input_ids="I64 [B, T]",
            labels="I64 [B, T], -100 = ignored",
            logits="F32 [B, T, V]",
            loss="F32 [1]",
            **{"hidden_states.0": "F32 [B, T, hidden]: embeddings",
               "hidden_states.N": "F32 [B, T, hidden]: residual stream after layer N-1 "
                                  "(before the final norm)",
               "grad.<param>": "F32, d loss / d <param>, same shape as the parameter"}),
        parameters=OrderedDict((k, list(v.shape)) for k, v in P.items()),
        logits_abs_max=logits.detach().abs().max().item(),
        grad_abs_max=max(v.abs().max().item() for v in grads.values()),
        precision="computed in float64 (RoPE tables, softmax and norms included), stored as "
        "float32; the model.safetensors weights are exactly the float64 weights used",
        self_checks=notes,
    )
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

    # round-trip the files we wrote
    back, meta = read_safetensors(os.path.join(d, "model.safetensors"))
    assert meta == {"format": "pt"}
    for k, v in P.items():
        assert np.array_equal(back[k], f32(v)), k
    back, _ = read_safetensors(os.path.join(d, "golden.safetensors"))
    assert list(back.keys()) == list(g.keys())
    # re-run forward from the stored F32 weights: must reproduce the golden logits
    P2 = OrderedDict((k, torch.from_numpy(np.array(v, dtype=np.float64)))
                     for k, v in read_safetensors(os.path.join(d, "model.safetensors"))[0].items())
    l2 = forward(cfg, P2, torch.from_numpy(np.array(back["input_ids"])))
    assert np.array_equal(f32(l2), back["logits"]), "reload mismatch"
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_ROOT, help="output root (default %(default)s)")
    ap.add_argument("--only", nargs="*", help="variants to build (default all)")
    ap.add_argument("--no-check", action="store_true", help="skip the self-checks")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    names = args.only or list(VARIANTS)
    for n in names:
        s = build_variant(n, VARIANTS[n], args.out, check=not args.no_check)
        sc = s["self_checks"]
        print("%-15s loss %.6f  targets %d  |logits|max %.3f  |grad|max %.3f  "
              "finite differences: %s" % (
                  n, s["loss"], s["loss_targets"], s["logits_abs_max"], s["grad_abs_max"],
                  "%d entries, max abs err %.1e, max rel err %.1e" % (
                      sc["finite_difference_entries"], sc["finite_difference_max_abs_err"],
                      sc["finite_difference_max_rel_err"]) if sc else "skipped"))
        if "llama3_bands" in sc:
            print("  llama3 bands:", sc["llama3_bands"])
            print("  inv_freq:", ["%.6g" % x for x in s["rope_inv_freq"]])
        if "max_logit_change_without_window" in sc:
            print("  keys visible per query:", sc["keys_visible_per_query"])
            print("  max |logit change| without the window: %.4f"
                  % sc["max_logit_change_without_window"])
        if "max_logit_change_if_window_wrongly_applied" in sc:
            print("  max |logit change| if sliding_window were wrongly applied: %.4f"
                  % sc["max_logit_change_if_window_wrongly_applied"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
