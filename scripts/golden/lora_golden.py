#!/usr/bin/python3
"""Golden reference outputs for LoRA / rsLoRA / DoRA fine-tuning with AdamW.

Starts from the tiny Llama checkpoint models/testdata/golden/llama-gqa (written
by llama_golden.py), attaches a LoRA adapter in Hugging Face PEFT's layout and
records, for the llama-gqa batch: the loss, logits and gradients with the
initial adapter, the logits of the merged model, and the losses and adapter
tensors after three AdamW steps.  Go tests load the base model and the adapter
with whet, train the same way and compare.

This is an independent re-statement of the maths of PEFT's
tuners/lora/layer.py (LoraLayer.update_layer, reset_lora_parameters,
Linear.forward, get_delta_weight), tuners/lora/dora.py (DoraLinearLayer),
tuners/lora/variants.py (DoraLinearVariant: forward, merge),
utils/save_and_load.py (get_peft_model_state_dict key names), config.py /
tuners/lora/config.py (adapter_config.json as save_pretrained writes it) and of
torch.optim.AdamW (_single_tensor_adamw).  It imports neither PEFT nor
transformers (neither is installed); the model maths is llama_golden.py's.
Everything is computed in float64 and stored as float32.

Run with Debian's torch (apt-get install python3-torch; torch 1.13 works):

    /usr/bin/python3 scripts/golden/lora_golden.py

Output: peft/testdata/golden/<case>/{adapter_init/, adapter_after/,
golden.safetensors, golden.json}.  Deterministic: a second run writes
byte-identical files.  See scripts/golden/README.md.
"""

import argparse
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_golden as lg  # noqa: E402  (sets the default dtype to float64)

torch.set_default_dtype(torch.float64)

REPO = lg.REPO
BASE_REL = "models/testdata/golden/llama-gqa"
BASE_DIR = os.path.join(REPO, *BASE_REL.split("/"))
OUT_ROOT = os.path.join(REPO, "peft", "testdata", "golden")

# PEFT version whose adapter_config.json field set is reproduced.
PEFT_VERSION = "0.17.1"

PREFIX = "base_model.model."  # what PEFT puts before the base model's module names

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PARENT = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
          "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}

B_INIT_STD = 0.05  # B is drawn N(0, 0.05^2) instead of PEFT's zeros; see the README

ADAMW = OrderedDict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01)
STEPS = 3

CASES = OrderedDict()
CASES["lora"] = dict(
    seed=2001,
    target_modules=ALL_LINEAR,
    r=4, lora_alpha=8, lora_dropout=0.0, use_rslora=False, use_dora=False,
    description="Plain LoRA on every linear layer of both blocks (q, k, v, o, gate, up, "
    "down), r 4, lora_alpha 8, scaling lora_alpha/r = 2.",
)
CASES["rslora-dora"] = dict(
    seed=2002,
    target_modules=["q_proj", "v_proj"],
    r=4, lora_alpha=8, lora_dropout=0.0, use_rslora=True, use_dora=True,
    description="rsLoRA + DoRA on q_proj and v_proj of both blocks, r 4, lora_alpha 8, "
    "scaling lora_alpha/sqrt(r) = 4; a trainable magnitude vector per adapted layer, "
    "the row norm ||W + s B A|| treated as a constant in backprop (PEFT's detach).",
)


def scaling_of(spec):
    if spec["use_rslora"]:
        return spec["lora_alpha"] / math.sqrt(spec["r"])
    return spec["lora_alpha"] / spec["r"]


def target_module_paths(cfg, spec):
    """Module names (HF, without PEFT's prefix) that get an adapter, in model order."""
    out = []
    for l in range(cfg["num_hidden_layers"]):
        for name in ALL_LINEAR:
            if name in spec["target_modules"]:
                out.append("model.layers.%d.%s.%s" % (l, PARENT[name], name))
    return out


def key_A(module):
    return PREFIX + module + ".lora_A.weight"


def key_B(module):
    return PREFIX + module + ".lora_B.weight"


def key_M(module):
    # DoraLinearLayer keeps the magnitude as `lora_magnitude_vector.<adapter>.weight`;
    # get_peft_model_state_dict drops ".weight" (to keep the pre-refactor name) and then
    # the ".<adapter>" part, so the saved name ends in "lora_magnitude_vector".
    return PREFIX + module + ".lora_magnitude_vector"


# ---------------------------------------------------------------------------
# Adapter initialisation
# ---------------------------------------------------------------------------


def kaiming_uniform_bound(fan_in, a):
    """torch.nn.init.kaiming_uniform_(w, a) samples U(-bound, bound) with
    bound = gain * sqrt(3 / fan_in), gain = calculate_gain('leaky_relu', a)."""
    gain = torch.nn.init.calculate_gain("leaky_relu", a)
    return gain * math.sqrt(3.0 / fan_in)


def init_adapter(cfg, spec, P):
    """A as PEFT (kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in))), B ~ N(0, 0.05^2)
    instead of zeros, both rounded to float32; DoRA magnitude = row norms of W + s B A
    (DoraLinearLayer.update_layer), rounded to float32.  Returns saved key -> float64."""
    gen = torch.Generator().manual_seed(spec["seed"])
    s = scaling_of(spec)
    r = spec["r"]
    ad = OrderedDict()
    for mod in target_module_paths(cfg, spec):
        W = P[mod + ".weight"]
        out_f, in_f = W.shape
        bound = kaiming_uniform_bound(in_f, math.sqrt(5))
        assert abs(bound - 1 / math.sqrt(in_f)) < 1e-15
        A = (torch.rand((r, in_f), generator=gen) * 2 - 1) * bound
        B = B_INIT_STD * torch.randn((out_f, r), generator=gen)
        A, B = A.float().double(), B.float().double()
        ad[key_A(mod)] = A
        ad[key_B(mod)] = B
        if spec["use_dora"]:
            m = torch.linalg.norm(W + s * (B @ A), dim=1)
            ad[key_M(mod)] = m.float().double()
    return OrderedDict(sorted(ad.items()))


# ---------------------------------------------------------------------------
# Forward with the adapter (PEFT's unmerged form) and with merged weights
# ---------------------------------------------------------------------------


def dora_weight_norm(W, A, B, s):
    """DoraLinearLayer.get_weight_norm(W, lora_weight.detach(), s), then .detach():
    ||W + s * (B @ A)|| over dim 1 (one norm per output row)."""
    return torch.linalg.norm(W + s * (B @ A).detach(), dim=1).detach()


def adapted_linear(spec, s, W, x, ad, mod, frozen_norm=None, detach_norm=True):
    """peft.tuners.lora.layer.Linear.forward for one active adapter, dropout 0."""
    base = x @ W.t()                                   # self.base_layer(x)
    A, B = ad[key_A(mod)], ad[key_B(mod)]
    lora = (x @ A.t()) @ B.t()                         # lora_B(lora_A(dropout(x)))
    if not spec["use_dora"]:
        return base + lora * s
    # DoraLinearLayer.forward: lora_weight = lora_B(lora_A(eye)).T = B @ A;
    # weight_norm = ||W + s * lora_weight.detach()||_row, detached;
    # result += (m / norm - 1) * (x W^T) + (m / norm) * lora * s
    m = ad[key_M(mod)]
    if frozen_norm is not None:
        norm = frozen_norm
    elif detach_norm:
        norm = dora_weight_norm(W, A, B, s)
    else:  # NOT PEFT: the full derivative, only used to show that the detach matters
        norm = torch.linalg.norm(W + s * (B @ A), dim=1)
    mag_norm_scale = (m / norm).view(1, -1)
    return base + ((mag_norm_scale - 1) * base + mag_norm_scale * lora * s)


def forward_adapter(cfg, spec, P, ad, input_ids, frozen_norms=None, detach_norm=True):
    """Logits [B, T, V] (float64) of the base model P with the adapter ad applied
    the way PEFT's LoRA layers do it (unmerged).  The transformer maths is
    llama_golden.forward's, re-stated here with a hook on every linear layer."""
    s = scaling_of(spec)
    targets = set(target_module_paths(cfg, spec))
    B_, T = input_ids.shape
    H = cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"]
    D = lg.head_dim_of(cfg)
    eps = cfg["rms_norm_eps"]
    rep = H // KV

    inv = lg.inv_freq_of(cfg)
    pos = torch.arange(T, dtype=torch.float64)
    ang = pos[:, None] * inv[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    allowed = lg.attention_allowed(T, lg.effective_window(cfg))

    def lin(mod, inp):
        W = P[mod + ".weight"]
        assert P.get(mod + ".bias") is None
        if mod in targets:
            fn = None if frozen_norms is None else frozen_norms[mod]
            return adapted_linear(spec, s, W, inp, ad, mod, fn, detach_norm)
        return inp @ W.t()

    x = P["model.embed_tokens.weight"][input_ids]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = lg.rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = lin(p + "self_attn.q_proj", h).view(B_, T, H, D)
        k = lin(p + "self_attn.k_proj", h).view(B_, T, KV, D)
        v = lin(p + "self_attn.v_proj", h).view(B_, T, KV, D)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q = q * cos + lg.rotate_half(q) * sin
        k = k * cos + lg.rotate_half(k) * sin
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        sc = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        sc = sc.masked_fill(~allowed, float("-inf"))
        a = torch.softmax(sc, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(B_, T, H * D)
        x = x + lin(p + "self_attn.o_proj", o)
        h = lg.rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = lin(p + "mlp.gate_proj", h)
        u = lin(p + "mlp.up_proj", h)
        x = x + lin(p + "mlp.down_proj", torch.nn.functional.silu(g) * u)
    x = lg.rms_norm(x, P["model.norm.weight"], eps)
    return x @ P["lm_head.weight"].t()


def merged_params(cfg, spec, P, ad):
    """Base weights with the adapter merged as peft Linear.merge does:
    W' = W + s B A, or for DoRA W' = (m / ||W + s B A||_row)[:, None] * (W + s B A)."""
    s = scaling_of(spec)
    Q = OrderedDict((k, v.detach()) for k, v in P.items())
    for mod in target_module_paths(cfg, spec):
        W = Q[mod + ".weight"]
        delta = s * (ad[key_B(mod)].detach() @ ad[key_A(mod)].detach())   # get_delta_weight
        if spec["use_dora"]:
            norm = torch.linalg.norm(W + delta, dim=1)                     # get_weight_norm(W, delta, 1)
            dora_factor = ad[key_M(mod)].detach() / norm
            Q[mod + ".weight"] = dora_factor.view(-1, 1) * (W + delta)
        else:
            Q[mod + ".weight"] = W + delta
    return Q


def loss_and_grads(cfg, spec, P, ad, ids, labels, detach_norm=True):
    leaves = OrderedDict((k, v.detach().clone().requires_grad_(True)) for k, v in ad.items())
    logits = forward_adapter(cfg, spec, P, leaves, ids, detach_norm=detach_norm)
    loss = lg.causal_lm_loss(logits, labels)
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return loss.detach(), logits.detach(), OrderedDict(zip(leaves.keys(), grads))


# ---------------------------------------------------------------------------
# AdamW
# ---------------------------------------------------------------------------


def adamw_step(params, grads, state, t, lr, beta1, beta2, eps, weight_decay):
    """torch.optim.adamw._single_tensor_adamw (amsgrad off, maximize off), step t >= 1."""
    out = OrderedDict()
    for k, p in params.items():
        g = grads[k]
        m, v = state[k]
        p = p * (1 - lr * weight_decay)                 # decoupled weight decay
        m = m * beta1 + (1 - beta1) * g
        v = v * beta2 + (1 - beta2) * g * g
        bc1 = 1 - beta1 ** t
        bc2 = 1 - beta2 ** t
        step_size = lr / bc1
        denom = v.sqrt() / math.sqrt(bc2) + eps
        p = p - step_size * m / denom
        state[k] = (m, v)
        out[k] = p
    return out


def train(cfg, spec, P, ad0, ids, labels):
    """STEPS AdamW steps on the same batch.  Returns losses[0..STEPS] (losses[k] is the
    loss after k steps) and the adapter after STEPS steps."""
    params = OrderedDict((k, v.clone()) for k, v in ad0.items())
    state = OrderedDict((k, (torch.zeros_like(v), torch.zeros_like(v))) for k, v in ad0.items())
    losses = []
    for t in range(STEPS + 1):
        loss, _, grads = loss_and_grads(cfg, spec, P, params, ids, labels)
        losses.append(loss.item())
        if t == STEPS:
            break
        params = adamw_step(params, grads, state, t + 1, **ADAMW)
    return losses, params


def train_with_torch_adamw(cfg, spec, P, ad0, ids, labels):
    """The same training with torch.optim.AdamW itself (cross-check)."""
    params = OrderedDict((k, torch.nn.Parameter(v.clone())) for k, v in ad0.items())
    opt = torch.optim.AdamW(list(params.values()), lr=ADAMW["lr"],
                            betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"], amsgrad=False)
    losses = []
    for t in range(STEPS + 1):
        opt.zero_grad()
        loss = lg.causal_lm_loss(forward_adapter(cfg, spec, P, params, ids), labels)
        losses.append(loss.item())
        if t == STEPS:
            break
        loss.backward()
        opt.step()
    return losses, OrderedDict((k, v.detach()) for k, v in params.items())


# ---------------------------------------------------------------------------
# PEFT files
# ---------------------------------------------------------------------------


def adapter_config(spec):
    """adapter_config.json as PEFT 0.17.1's PeftModel.save_pretrained writes it:
    dataclasses.asdict(LoraConfig) minus runtime_config, sets turned into lists,
    inference_mode forced to True, json.dumps(indent=2, sort_keys=True), no
    trailing newline."""
    c = {
        # PeftConfigMixin / PeftConfig
        "task_type": "CAUSAL_LM",
        "peft_type": "LORA",
        "auto_mapping": None,
        "base_model_name_or_path": BASE_REL,
        "revision": None,
        "inference_mode": True,
        # LoraConfig
        "r": spec["r"],
        # a set in LoraConfig (__post_init__), written in the set's iteration order,
        # which depends on PYTHONHASHSEED; sorted here for determinism
        "target_modules": sorted(spec["target_modules"]),
        "exclude_modules": None,
        "lora_alpha": spec["lora_alpha"],
        "lora_dropout": spec["lora_dropout"],
        "fan_in_fan_out": False,
        "bias": "none",
        "use_rslora": spec["use_rslora"],
        "modules_to_save": None,
        "init_lora_weights": True,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "trainable_token_indices": None,
        "loftq_config": {},
        "eva_config": None,
        "corda_config": None,
        "use_dora": spec["use_dora"],
        "use_qalora": False,
        "qalora_group_size": 16,
        "layer_replication": None,
        "lora_bias": False,
        "target_parameters": None,
    }
    return json.dumps(c, indent=2, sort_keys=True)


def f32(t):
    return lg.f32(t)


def write_adapter_dir(d, spec, ad):
    """adapter_config.json + adapter_model.safetensors.  safetensors' serializer orders
    tensors by dtype alignment, then name: all F32 here, so by name."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        f.write(adapter_config(spec))
    lg.write_safetensors(os.path.join(d, "adapter_model.safetensors"),
                         OrderedDict((k, f32(ad[k])) for k in sorted(ad)))


def read_adapter_dir(d):
    t, meta = lg.read_safetensors(os.path.join(d, "adapter_model.safetensors"))
    assert meta == {"format": "pt"}
    with open(os.path.join(d, "adapter_config.json")) as f:
        c = json.load(f)
    return c, OrderedDict((k, torch.from_numpy(np.array(v, dtype=np.float64))) for k, v in t.items())


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------


def fd_check(cfg, spec, P, ad, ids, labels, grads, gen, frozen, n_entries=2, h=1e-6):
    """Central differences (float64) on a few entries of several adapter tensors.
    frozen=True holds every DoRA weight norm at its value at ad (what PEFT's detach
    means); frozen=False lets it move (the full derivative)."""
    s = scaling_of(spec)
    norms = None
    if spec["use_dora"] and frozen:
        norms = {mod: dora_weight_norm(P[mod + ".weight"], ad[key_A(mod)], ad[key_B(mod)], s)
                 for mod in target_module_paths(cfg, spec)}
    mods = target_module_paths(cfg, spec)
    picks = []
    for mod in (mods[0], mods[len(mods) // 2], mods[-1]):
        picks += [key_A(mod), key_B(mod)]
        if spec["use_dora"]:
            picks.append(key_M(mod))
    work = OrderedDict((k, v.clone()) for k, v in ad.items())
    worst_abs, worst_rel, n = 0.0, 0.0, 0
    for k in picks:
        flat = work[k].view(-1)
        for i in torch.randint(0, flat.numel(), (n_entries,), generator=gen).tolist():
            old = flat[i].item()
            flat[i] = old + h
            lp = lg.causal_lm_loss(forward_adapter(cfg, spec, P, work, ids, norms), labels).item()
            flat[i] = old - h
            lm = lg.causal_lm_loss(forward_adapter(cfg, spec, P, work, ids, norms), labels).item()
            flat[i] = old
            fd = (lp - lm) / (2 * h)
            an = grads[k].view(-1)[i].item()
            err = abs(fd - an)
            rel = err / max(abs(fd), abs(an), 1e-300)
            worst_abs = max(worst_abs, err)
            if abs(an) > 1e-6:
                worst_rel = max(worst_rel, rel)
            n += 1
            if err > 1e-8 and rel > 1e-5:
                raise AssertionError("gradient check failed for %s[%d]: fd %.10g autograd %.10g"
                                     % (k, i, fd, an))
    return OrderedDict(entries=n, max_abs_err=worst_abs, max_rel_err=worst_rel)


def rel_norm(a, b):
    return float((a - b).norm() / max(b.norm().item(), 1e-300))


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def load_base():
    with open(os.path.join(BASE_DIR, "config.json")) as f:
        cfg = json.load(f, object_pairs_hook=OrderedDict)
    w, meta = lg.read_safetensors(os.path.join(BASE_DIR, "model.safetensors"))
    assert meta == {"format": "pt"}
    P = OrderedDict((k, torch.from_numpy(np.array(v, dtype=np.float64))) for k, v in w.items())
    g, _ = lg.read_safetensors(os.path.join(BASE_DIR, "golden.safetensors"))
    ids = torch.from_numpy(np.array(g["input_ids"], dtype=np.int64))
    labels = torch.from_numpy(np.array(g["labels"], dtype=np.int64))
    return cfg, P, ids, labels, np.array(g["logits"])


def build_case(name, spec, out_root, check=True):
    cfg, P, ids, labels, base_logits_golden = load_base()
    assert list(lg.param_shapes(cfg)) == list(P), "unexpected base checkpoint"
    s = scaling_of(spec)
    notes = OrderedDict()

    # The adapter-free forward is llama_golden's and reproduces llama-gqa's golden logits.
    no_adapter = dict(spec, target_modules=[])
    base_logits = forward_adapter(cfg, no_adapter, P, {}, ids)
    assert torch.allclose(base_logits, lg.forward(cfg, P, ids), rtol=0, atol=1e-12)
    assert np.array_equal(f32(base_logits), base_logits_golden), "base model mismatch"

    ad0 = init_adapter(cfg, spec, P)
    loss0, logits0, grads0 = loss_and_grads(cfg, spec, P, ad0, ids, labels)
    merged_logits0 = lg.forward(cfg, merged_params(cfg, spec, P, ad0), ids)
    losses, ad3 = train(cfg, spec, P, ad0, ids, labels)
    assert losses[0] == loss0.item()

    if check:
        gen = torch.Generator().manual_seed(spec["seed"] + 7)
        # loss against the scalar restatement
        assert abs(lg.manual_loss(logits0, labels) - loss0.item()) < 1e-12
        # the adapter does something
        d = (logits0 - base_logits).abs().max().item()
        assert d > 1e-2, d
        notes["max_abs_logit_change_from_adapter"] = d
        # merged == unmerged
        d = (merged_logits0 - logits0).abs().max().item()
        assert d < 1e-10, d
        notes["max_abs_merged_minus_adapter_logits"] = d
        # A within PEFT's kaiming bound, every gradient non-zero
        for mod in target_module_paths(cfg, spec):
            A = ad0[key_A(mod)]
            assert A.abs().max().item() <= 1 / math.sqrt(A.shape[1])
        gmin = min(v.abs().min().item() for v in grads0.values())
        notes["min_abs_grad_entry"] = gmin
        notes["max_abs_grad_entry"] = max(v.abs().max().item() for v in grads0.values())
        assert all(v.abs().max().item() > 0 for v in grads0.values())
        # gradients by central differences
        notes["finite_differences"] = fd_check(cfg, spec, P, ad0, ids, labels, grads0, gen, True)
        if spec["use_dora"]:
            # magnitude = ||W + s B A|| at init, so m / norm = 1 up to float32 rounding
            for mod in target_module_paths(cfg, spec):
                W = P[mod + ".weight"]
                ratio = ad0[key_M(mod)] / dora_weight_norm(W, ad0[key_A(mod)], ad0[key_B(mod)], s)
                assert (ratio - 1).abs().max().item() < 1e-6
            # the detach matters: the full derivative differs (and is what central
            # differences give when the norm is allowed to move)
            _, _, full = loss_and_grads(cfg, spec, P, ad0, ids, labels, detach_norm=False)
            nd = fd_check(cfg, spec, P, ad0, ids, labels, full, gen, False)
            notes["finite_differences_full_derivative"] = nd
            diff = OrderedDict()
            for k in grads0:
                diff[k] = rel_norm(full[k], grads0[k])
            worst = max(diff.values())
            assert worst > 1e-3, worst
            notes["rel_norm_diff_if_norm_not_detached"] = diff
        # AdamW against torch.optim.AdamW
        tl, tp = train_with_torch_adamw(cfg, spec, P, ad0, ids, labels)
        assert np.allclose(tl, losses, rtol=1e-13, atol=0), (tl, losses)
        worst = max((tp[k] - ad3[k]).abs().max().item() for k in ad3)
        assert worst < 1e-13, worst
        notes["max_abs_diff_vs_torch_optim_AdamW"] = worst
        # training lowers the loss on this batch
        assert losses[-1] < losses[0], losses
        notes["max_abs_change_after_steps"] = max(
            (ad3[k] - ad0[k]).abs().max().item() for k in ad0)

    # ---- write ------------------------------------------------------------
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    write_adapter_dir(os.path.join(d, "adapter_init"), spec, ad0)
    write_adapter_dir(os.path.join(d, "adapter_after"), spec, ad3)

    keys = sorted(ad0)
    g = OrderedDict()
    g["input_ids"] = ids.numpy().astype("<i8")
    g["labels"] = labels.numpy().astype("<i8")
    g["loss0"] = f32(loss0.reshape(1))
    g["logits0"] = f32(logits0)
    g["merged_logits0"] = f32(merged_logits0)
    for k in keys:
        g["grad." + k] = f32(grads0[k])
    for i in range(1, STEPS + 1):
        g["loss.%d" % i] = f32(torch.tensor([losses[i]]))
    for k in keys:
        g["after." + k] = f32(ad3[k])
    lg.write_safetensors(os.path.join(d, "golden.safetensors"), g)

    summary = OrderedDict(
        case=name,
        description=spec["description"],
        base_model=BASE_REL,
        peft_format_version=PEFT_VERSION,
        adapter=OrderedDict(
            r=spec["r"], lora_alpha=spec["lora_alpha"], lora_dropout=spec["lora_dropout"],
            use_rslora=spec["use_rslora"], use_dora=spec["use_dora"], scaling=s,
            target_modules=spec["target_modules"],
            adapted_layers=target_module_paths(cfg, spec)),
        init=OrderedDict(
            seed=spec["seed"],
            lora_A="PEFT's kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in_features), "
            "1/sqrt(in_features)), drawn in float64 and rounded to float32",
            lora_B="N(0, %g^2) rounded to float32 (NOT PEFT's zeros, so that the gradients "
            "of lora_A are non-zero)" % B_INIT_STD,
            lora_magnitude_vector="row norms of W + scaling * B @ A with that non-zero B, "
            "rounded to float32 (DoraLinearLayer.update_layer)" if spec["use_dora"] else None),
        optimizer=OrderedDict(
            name="AdamW (torch.optim.AdamW, single-tensor path)", steps=STEPS,
            betas=[ADAMW["beta1"], ADAMW["beta2"]],
            lr=ADAMW["lr"], eps=ADAMW["eps"], weight_decay=ADAMW["weight_decay"],
            weight_decay_applies_to="every adapter tensor (lora_A, lora_B and the DoRA magnitude)",
            same_batch_every_step=True, grad_clipping=None, lr_schedule=None),
        loss0=losses[0],
        losses_after_step=OrderedDict(("loss.%d" % i, losses[i]) for i in range(1, STEPS + 1)),
        adapter_tensors=OrderedDict((k, list(ad0[k].shape)) for k in keys),
        golden_tensors=OrderedDict([
            ("input_ids", "I64 [B, T] (the llama-gqa batch)"),
            ("labels", "I64 [B, T], unshifted, -100 = ignored (the llama-gqa batch)"),
            ("loss0", "F32 [1], mean shifted cross-entropy with the initial adapter"),
            ("logits0", "F32 [B, T, V] with the initial adapter (unmerged)"),
            ("merged_logits0", "F32 [B, T, V] of the base with the initial adapter merged"),
            ("grad.<key>", "F32, d loss0 / d <key> for every adapter tensor" + (
                " (DoRA: the row norm held constant, as PEFT's detach does)"
                if spec["use_dora"] else "")),
            ("loss.<k>", "F32 [1], loss after k AdamW steps, k = 1..%d" % STEPS),
            ("after.<key>", "F32, adapter tensor after %d AdamW steps" % STEPS),
        ]),
        precision="computed in float64, stored as float32; adapter_init holds exactly the "
        "float64 starting point used; the base weights are the float32 llama-gqa ones",
        self_checks=notes,
    )
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

    # ---- read back --------------------------------------------------------
    c0, r0 = read_adapter_dir(os.path.join(d, "adapter_init"))
    c3, r3 = read_adapter_dir(os.path.join(d, "adapter_after"))
    assert c0 == c3 == json.loads(adapter_config(spec))
    assert list(r0) == keys and list(r3) == keys
    for k in keys:
        assert torch.equal(r0[k], ad0[k]), k            # the starting point is exactly F32
        assert np.array_equal(f32(r3[k]), f32(ad3[k])), k
    back, _ = lg.read_safetensors(os.path.join(d, "golden.safetensors"))
    assert list(back) == list(g)
    l2 = forward_adapter(cfg, spec, P, r0, torch.from_numpy(np.array(back["input_ids"])))
    assert np.array_equal(f32(l2), back["logits0"]), "reload mismatch"
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_ROOT, help="output root (default %(default)s)")
    ap.add_argument("--only", nargs="*", help="cases to build (default all)")
    ap.add_argument("--no-check", action="store_true", help="skip the self-checks")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for n in args.only or list(CASES):
        s = build_case(n, CASES[n], args.out, check=not args.no_check)
        sc = s["self_checks"]
        print("%-12s scaling %g  loss0 %.6f  after steps %s" % (
            n, s["adapter"]["scaling"], s["loss0"],
            " ".join("%.6f" % v for v in s["losses_after_step"].values())))
        if sc:
            fd = sc["finite_differences"]
            print("  finite differences: %d entries, max abs err %.1e, max rel err %.1e;"
                  " merged-vs-adapter logits %.1e; vs torch AdamW %.1e; |grad| in [%.1e, %.1e]" % (
                      fd["entries"], fd["max_abs_err"], fd["max_rel_err"],
                      sc["max_abs_merged_minus_adapter_logits"],
                      sc["max_abs_diff_vs_torch_optim_AdamW"],
                      sc["min_abs_grad_entry"], sc["max_abs_grad_entry"]))
            if "rel_norm_diff_if_norm_not_detached" in sc:
                print("  DoRA: gradient without the detach differs by up to %.1e (rel. norm)"
                      % max(sc["rel_norm_diff_if_norm_not_detached"].values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
