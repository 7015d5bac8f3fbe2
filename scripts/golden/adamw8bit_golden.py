#!/usr/bin/python3
"""Golden reference for whet's 8-bit AdamW (backend.Optimizers.AdamW8bit).

An independent numpy re-statement of bitsandbytes' blockwise 8-bit Adam
(AdamW8bit with block_wise=True), written from:

  bitsandbytes/functional.py   create_dynamic_map(signed, max_exponent_bits=7,
                               total_bits=8): the quantisation codes ("qmap1"
                               signed for m, "qmap2" unsigned for v)
  bitsandbytes/optim/optimizer.py
                               Optimizer2State.init_state: U8 states, zeroed;
                               absmax1/absmax2 F32, one per block of 256,
                               zeroed; tensors under min_8bit_size = 4096
                               elements keep F32 states (not exercised here:
                               this is the kernel's golden)
  csrc kOptimizerStatic8bit2StateBlockwise<ADAM> and quantize_2D
                               the update (below)

For each block of 256 elements (the last may be partial), in float32:

  m = qmap1[c1] * absmax1[b];  v = qmap2[c2] * absmax2[b]      dequantise
  g = g * gnorm_scale                      (elements with NaN/Inf g: m = v = 0,
                                            p untouched)
  v = v*b2 + ((1-b2)*g)*g;  m = m*b1 + (1-b1)*g
  absmax1[b] = max|m|, absmax2[b] = max|v| over the block *and its padding
      lanes* (a partial block is padded with g = 0, c1 = 128, c2 = 0, as the
      CUDA kernel's cub loads do, and the block reduction sees them)
  p = p + step_size * (m / (sqrt(v) + c2t*eps)),
      step_size = -lr*sqrt(1-b2^t)/(1-b1^t), c2t = sqrt(1-b2^t)
  p = p * (1 - lr*wd)                      (decoupled decay, after the step)
  c1 = quantize_2D(qmap1, m/absmax1), then, if the sign of qmap1[c1] differs
       from m's, c1 moves one code towards m's sign (uint8 wrap-around);
  c2 = quantize_2D(qmap2, v/absmax2)

quantize_2D is a binary search over the sorted code (pivot 127, steps 64 .. 1)
that ends at an even index p between its neighbours p-1 and p+1 and returns
the nearest of the three by comparing x with the float32 midpoints
(upper+val)*0.5 and (lower+val)*0.5; a tie keeps p. Below code 0 the search
uses -1 (signed) or 0 (unsigned), above code 255 it uses 1. The script checks
that it returns a nearest code for every x it quantises.

Arithmetic: numpy float32, one rounding per operation (no fused multiply-add;
IEEE division where CUDA uses __fdividef). The step constants are computed in
float64 with b^t by binary exponentiation (a fixed sequence of IEEE
multiplications, which whet's Go kernel repeats) and rounded once to float32.

create_dynamic_map builds its means from torch.linspace(0.1, 1, k) in
float32. torch's CPU kernel computes linspace as start + step*i (i < k/2) or
end - step*(k-1-i), contracted to a fused multiply-add in the scalar path, and
in its AVX2 vector path (pairs of 8-lane vectors) as base + float32(j*step) for
lane j. emulate_linspace() reproduces that, so the codes here are the bits
torch 1.13 (Debian) computes on an AVX2 CPU; when torch is importable the
script asserts this against the real thing (an AVX-512 build of torch may
differ by an ulp in a few entries).

Run:   /usr/bin/python3 scripts/golden/adamw8bit_golden.py
Needs: numpy (torch optional, only for the cross-check)
Writes optim/testdata/adamw8bit_golden.json (deterministic; float32 arrays and
U8 codes as little-endian hex).
"""

import json
import math
import os
import sys

import numpy as np

f32 = np.float32
BLOCK = 256
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "optim", "testdata", "adamw8bit_golden.json")


# ---------------------------------------------------------------- codes


def emulate_linspace(start, end, k):
    """torch.linspace(start, end, k) in float32 as torch's CPU kernel does it."""
    start, end = f32(start), f32(end)
    step = f32(end - start) / f32(k - 1)
    half = k // 2

    def scalar(i):
        # start + step*i rounded once (a fused multiply-add); float64 holds
        # the exact value for these small k, so one rounding to float32.
        if i < half:
            return f32(float(start) + float(step) * i)
        return f32(float(end) - float(step) * (k - 1 - i))

    out = [None] * k
    i, vec = 0, 8
    while i + 2 * vec <= k:
        for _ in range(2):
            base = scalar(i)
            for j in range(vec):
                out[i + j] = f32(base + f32(f32(j) * step))
            i += vec
    while i < k:
        out[i] = scalar(i)
        i += 1
    return np.array(out, dtype=f32)


def dynamic_map(signed):
    """bitsandbytes' create_dynamic_map(signed), float32 [256], ascending."""
    max_exponent_bits, total_bits = 7, 8
    non_sign_bits = total_bits - 1  # bitsandbytes: (1 if signed else 1)
    data = []
    for i in range(max_exponent_bits):
        k = 2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1
        b = emulate_linspace(0.1, 1.0, k)
        means = (b[:-1] + b[1:]) / f32(2)
        scale = f32(10.0 ** (-(max_exponent_bits - 1) + i))
        data += list(scale * means)
        if signed:
            data += list(-scale * means)
    data += [f32(0), f32(1)]
    assert len(data) == 256
    return np.array(sorted(data), dtype=f32)


def torch_dynamic_map(signed):
    """The same through torch, exactly as bitsandbytes writes it (for the check)."""
    import torch

    data = []
    non_sign_bits = 8 - 1
    for i in range(7):
        k = int(2 ** (i + non_sign_bits - 7) + 1 if signed else 2 ** (i + non_sign_bits - 7 + 1) + 1)
        boundaries = torch.linspace(0.1, 1, k)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(7 - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(7 - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    data.sort()
    return torch.Tensor(data).numpy()


# ---------------------------------------------------------------- kernel


def quantize_2d(code, x, signed):
    """bitsandbytes' quantize_2D (the quadrant cache is code[63/127/191])."""
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower = f32(-1.0) if signed else f32(0.0)
    upper = f32(1.0)
    val = code[pivot]
    i = 64
    while i > 0:
        if x > val:
            lower_pivot, lower = pivot, val
            pivot += i
        else:
            upper_pivot, upper = pivot, val
            pivot -= i
        val = code[pivot]
        i >>= 1
    if x > val:
        mid = f32(upper + val) * f32(0.5)
        return upper_pivot if x > mid else pivot
    mid = f32(lower + val) * f32(0.5)
    return lower_pivot if x < mid else pivot


def is_nearest(code, x, c):
    """Whether code[c] is a nearest code to x (ties either way)."""
    if x != x:
        return True
    best = np.min(np.abs(code.astype(np.float64) - float(x)))
    return abs(float(code[c]) - float(x)) <= best * (1 + 1e-12) + 1e-45


def powi(x, n):
    r = 1.0
    while n > 0:
        if n & 1:
            r = r * x
        x = x * x
        n >>= 1
    return r


def adamw8bit_step(p, g, c1, c2, absmax1, absmax2, qmap1, qmap2, lr, beta1, beta2, eps, wd, step, gnorm_scale, stats):
    """One step; returns new (p, c1, c2, absmax1, absmax2). Inputs unchanged."""
    n = p.size
    nb = (n + BLOCK - 1) // BLOCK
    pad = nb * BLOCK - n
    # The padded view the CUDA kernel loads: g 0, c1 128, c2 0, p 0.
    gp = np.concatenate([g, np.zeros(pad, f32)])
    c1p = np.concatenate([c1, np.full(pad, 128, np.uint8)])
    c2p = np.concatenate([c2, np.zeros(pad, np.uint8)])
    pp = np.concatenate([p, np.zeros(pad, f32)])

    b1, b2 = f32(beta1), f32(beta2)
    omb1, omb2 = f32(1) - b1, f32(1) - b2
    scale = f32(1) if gnorm_scale == 0 else f32(gnorm_scale)
    corr1 = 1 - powi(beta1, step)
    corr2 = math.sqrt(1 - powi(beta2, step))
    step_size = f32(-lr * corr2 / corr1)
    eps_term = f32(corr2 * eps)
    decay = f32(1 - lr * wd)

    out_p = pp.copy()
    out_c1 = np.zeros(nb * BLOCK, np.uint8)
    out_c2 = np.zeros(nb * BLOCK, np.uint8)
    new1 = np.zeros(nb, f32)
    new2 = np.zeros(nb, f32)
    with np.errstate(all="ignore"):
        for b in range(nb):
            sl = slice(b * BLOCK, (b + 1) * BLOCK)
            gb = gp[sl]
            ok = np.isfinite(gb)
            gs = gb * scale
            s2 = qmap2[c2p[sl]] * absmax2[b]
            s2 = (s2 * b2) + ((omb2 * gs) * gs)
            s1 = qmap1[c1p[sl]] * absmax1[b]
            s1 = (s1 * b1) + (omb1 * gs)
            s1 = np.where(ok, s1, f32(0)).astype(f32)
            s2 = np.where(ok, s2, f32(0)).astype(f32)
            m1 = np.fmax.reduce(np.abs(s1), initial=f32(-np.finfo(f32).max))
            m2 = np.fmax.reduce(np.abs(s2), initial=f32(-np.finfo(f32).max))
            new1[b], new2[b] = m1, m2
            upd = s1 / (np.sqrt(s2) + eps_term)
            pn = (pp[sl] + (step_size * upd)) * decay
            out_p[sl] = np.where(ok, pn, pp[sl])
            for j in range(BLOCK):
                x1 = s1[j] / m1
                q1 = quantize_2d(qmap1, x1, True)
                stats["quantised"] += 1
                if not is_nearest(qmap1, x1, q1):
                    stats["not_nearest"] += 1
                if np.signbit(qmap1[q1]) != np.signbit(s1[j]):
                    q1 = (q1 + 1) & 0xFF if s1[j] > 0 else (q1 - 1) & 0xFF
                    stats["sign_fixes"] += 1
                x2 = s2[j] / m2
                q2 = quantize_2d(qmap2, x2, False)
                stats["quantised"] += 1
                if not is_nearest(qmap2, x2, q2):
                    stats["not_nearest"] += 1
                out_c1[b * BLOCK + j], out_c2[b * BLOCK + j] = q1, q2
    return out_p[:n], out_c1[:n], out_c2[:n], new1, new2


# ---------------------------------------------------------------- cases


def hexf(a):
    return np.asarray(a, dtype="<f4").tobytes().hex()


def hexu(a):
    return np.asarray(a, dtype=np.uint8).tobytes().hex()


def make_case(name, note, n, steps, hp, seed, edit_grads=None):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(n).astype(f32)
    grads = []
    for t in range(steps):
        # Magnitudes spread over about two decades inside a block. (A much
        # wider spread sends small v to code 0 — the unsigned map's smallest
        # non-zero code is 3.25e-7 of the block's absmax — and 8-bit Adam then
        # takes large steps on those elements, as bitsandbytes does.)
        g = rng.standard_normal(n) * np.exp(rng.standard_normal(n) * 0.75) * 1e-2
        g = g.astype(f32)
        if edit_grads:
            edit_grads(t, g)
        grads.append(g)
    return {"name": name, "note": note, "n": n, "seed": seed, **hp, "p0": p0, "grads": grads}


def run_case(c, qmap1, qmap2, stats):
    n = c["n"]
    nb = (n + BLOCK - 1) // BLOCK
    p = c["p0"].copy()
    c1 = np.zeros(n, np.uint8)  # init_state: zeros, absmax zeros
    c2 = np.zeros(n, np.uint8)
    a1 = np.zeros(nb, f32)
    a2 = np.zeros(nb, f32)
    # An unquantised float64 AdamW on the same inputs, bitsandbytes' order,
    # to show the 8-bit run tracks it.
    p64 = c["p0"].astype(np.float64)
    m64 = np.zeros(n)
    v64 = np.zeros(n)
    out = []
    for t, g in enumerate(c["grads"]):
        step = t + 1
        lr, gsc = c["lr"][t], c["grad_scale"][t]
        p, c1, c2, a1, a2 = adamw8bit_step(p, g, c1, c2, a1, a2, qmap1, qmap2, lr, c["beta1"], c["beta2"], c["eps"], c["weight_decay"], step, gsc, stats)
        ok = np.isfinite(g)
        gg = np.where(ok, g.astype(np.float64), 0) * (1.0 if gsc == 0 else gsc)
        m64 = np.where(ok, c["beta1"] * m64 + (1 - c["beta1"]) * gg, 0)
        v64 = np.where(ok, c["beta2"] * v64 + (1 - c["beta2"]) * gg * gg, 0)
        bc1, bc2 = 1 - c["beta1"] ** step, 1 - c["beta2"] ** step
        upd = -lr / bc1 * m64 / (np.sqrt(v64) / math.sqrt(bc2) + c["eps"])
        p64 = np.where(ok, (p64 + upd) * (1 - lr * c["weight_decay"]), p64)
        out.append({"step": step, "p": hexf(p), "m": hexu(c1), "v": hexu(c2), "absmax_m": hexf(a1), "absmax_v": hexf(a2)})
    c["max_abs_diff_vs_f64_adamw"] = float(np.max(np.abs(p.astype(np.float64) - p64)))
    c["max_abs_update_f64"] = float(np.max(np.abs(p64 - c["p0"].astype(np.float64))))
    return out


def main():
    qmap1, qmap2 = dynamic_map(True), dynamic_map(False)
    assert np.all(np.diff(qmap1) > 0) and np.all(np.diff(qmap2) > 0)
    assert qmap1[127] == 0 and qmap1[255] == 1 and qmap2[0] == 0 and qmap2[255] == 1
    torch_check = "torch not importable; not checked"
    try:
        import torch  # noqa: F401

        t1, t2 = torch_dynamic_map(True), torch_dynamic_map(False)
        d1 = int(np.sum(t1.view(np.uint32) != qmap1.view(np.uint32)))
        d2 = int(np.sum(t2.view(np.uint32) != qmap2.view(np.uint32)))
        torch_check = f"torch {torch.__version__}: signed map differs in {d1} entries, unsigned in {d2}"
        if d1 or d2:
            print("warning:", torch_check, file=sys.stderr)
    except ImportError:
        pass

    def main_edits(t, g):
        if t < 2:
            g[256:512] = 0  # block 1: zero gradients (absmax 0, 0/0 codes)
        if t == 2:
            g[768:] = np.nan  # the partial block: every element NaN
        if t in (1, 4):
            g[[3, 17, 100]] = [np.nan, np.inf, -np.inf]

    cases = [
        make_case(
            "blocks-partial-nan", "3 full blocks and a partial one of 77; block 1 has zero gradients for steps 1-2; "
            "the partial block's gradients are all NaN at step 3 (its new m absmax then comes from the padding lanes); "
            "scattered NaN/Inf gradients at steps 2 and 5; a learning-rate schedule and gradient scales",
            845, 6, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01,
                     "lr": [1e-3, 2e-3, 3e-3, 3e-3, 2e-3, 1e-3], "grad_scale": [0, 0.5, 1, 0.25, 0, 2]},
            1, main_edits),
        make_case(
            "two-blocks", "two full blocks, beta2 0.95, eps 1e-6, no weight decay, a large learning rate",
            512, 5, {"beta1": 0.9, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.0,
                     "lr": [0.05] * 5, "grad_scale": [0] * 5}, 2),
        make_case(
            "one-partial-block", "a single partial block of 100, beta1 0.8, weight decay 0.1",
            100, 4, {"beta1": 0.8, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.1,
                     "lr": [1e-2] * 4, "grad_scale": [0] * 4}, 3),
    ]
    stats = {"quantised": 0, "not_nearest": 0, "sign_fixes": 0}
    out_cases = []
    for c in cases:
        steps = run_case(c, qmap1, qmap2, stats)
        out_cases.append({
            "name": c["name"], "note": c["note"], "n": c["n"], "seed": c["seed"],
            "beta1": c["beta1"], "beta2": c["beta2"], "eps": c["eps"], "weight_decay": c["weight_decay"],
            "lr": c["lr"], "grad_scale": c["grad_scale"],
            "p0": hexf(c["p0"]), "grads": [hexf(g) for g in c["grads"]],
            "steps": steps,
            "max_abs_diff_vs_f64_adamw": c["max_abs_diff_vs_f64_adamw"],
            "max_abs_update_f64": c["max_abs_update_f64"],
        })
        print(f'{c["name"]}: n={c["n"]}, |p8 - p_f64adamw| <= {c["max_abs_diff_vs_f64_adamw"]:.3g} '
              f'(total update up to {c["max_abs_update_f64"]:.3g})')
    assert stats["not_nearest"] == 0, stats
    print(f'quantised {stats["quantised"]} values: all to a nearest code; {stats["sign_fixes"]} sign fixes')
    print("dynamic map:", torch_check)
    doc = {
        "_note": "Golden for whet's AdamW8bit kernel, written by scripts/golden/adamw8bit_golden.py (see its docstring). "
                 "Float arrays are little-endian float32 hex, codes uint8 hex. Each step gives the state after it. "
                 "Initial codes and absmax are zero.",
        "block": BLOCK,
        "qmap_signed": hexf(qmap1),
        "qmap_unsigned": hexf(qmap2),
        "qmap_check": torch_check,
        "quantised_values": stats["quantised"],
        "sign_fixes": stats["sign_fixes"],
        "cases": out_cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(OUT, REPO), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
