#!/usr/bin/python3
"""Golden reference values for whet's bitsandbytes-compatible quantisation.

An independent numpy re-statement of bitsandbytes' published algorithms, as
its CUDA kernels and Python front end define them:

  * the NF4 and FP4 code tables of functional.get_4bit_type (FP4's table is
    [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, -0.0625, -8, -12, -4, -6, -2, -3] / 12
    in float32);
  * kQuantizeBlockwise for NF4/FP4 (csrc/kernels.cu): per block of
    `blocksize` elements of the flattened weight, absmax = max |x| in float32,
    inv = 1.0f / absmax, and each x * inv (one float32 multiply) mapped to a
    code by the kernels' comparison trees dQuantizeNF4 / dQuantizeFP4 (strict
    `x > threshold` tests against float32 thresholds; a NaN, which an all-zero
    block gives as 0 * inf, takes every "else" branch: code 0).  Two codes per
    byte, the FIRST element of each pair in the HIGH nibble; an odd element
    count is padded with a 0.0 element (quantised like the rest of its block);
  * dequantisation: code_table[c] * absmax (one float32 multiply);
  * double quantisation (quantize_4bit with compress_statistics): offset =
    mean of the absmax values (computed here as a float64 sum in index order,
    rounded to float32; torch's float32 reduction can differ in the last
    bit), absmax - offset quantised by quantize_blockwise with blocksize 256
    and create_dynamic_map(signed=True); dequantised as
    float32(code[q] * nested_absmax) + offset;
  * blockwise 8-bit (kQuantizeBlockwise, General8bit): the same absmax and
    inv, then dQuantize<0>: a 7-step pivot search of the 256-entry sorted code
    from pivot 127, then a comparison against the float32 midpoint
    (a + b) * 0.5f with the neighbour; x exactly at a midpoint keeps the
    searched pivot (the even index);
  * create_dynamic_map(signed, max_exponent_bits=7, total_bits=8) computed the
    way torch (CPU, AVX2 kernels) evaluates it in float32: torch.linspace's
    vectorised kernel (blocks of 16 values as two 8-lane vectors whose lanes
    are base + j*step, base = start + step*idx fused into one FMA; the tail
    and short ranges use the scalar start + step*idx / end - step*(n-1-idx),
    also fused), means (b[:-1] + b[1:]) / 2, times float32(10**(i-6)).  With
    torch installed the script checks this against torch itself;
  * LLM.int8 row-wise weights (kInt8VectorQuant, int8_vectorwise_dequant):
    per row absmax (over the columns that are not outlier columns), scale =
    127.0f / absmax, code = round-half-even(x * scale) (0 for a zero row);
    dequantised as float32(code * SCB) * 7.874015718698502e-3f.  Columns with
    any |x| >= threshold are outlier columns: their codes are 0 and their
    values are kept in float32.

It neither imports nor copies bitsandbytes.  Everything is numpy float32
arithmetic (every intermediate rounded as the kernels round it), except the
exact-rational FMA emulation for the dynamic map.

Run with /usr/bin/python3 (numpy is enough):

    /usr/bin/python3 scripts/golden/quant_golden.py

Output: quant/testdata/quant_golden.safetensors (inputs and expected outputs,
F32/U8/BF16/I32 arrays) and quant/testdata/quant_golden.json (the cases, their
parameters and the names of their arrays).  Deterministic: a second run
writes byte-identical files.
"""

import argparse
import json
import os
import struct
import sys
from fractions import Fraction

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_DIR = os.path.join(REPO, "quant", "testdata")

f32 = np.float32

# ---------------------------------------------------------------------------
# Code tables

NF4 = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
], dtype=np.float32)

FP4 = (np.array([0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0,
                 -0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0], dtype=np.float32)
       / np.float32(12.0)).astype(np.float32)


def c32(s):
    """A C float literal: the decimal string rounded once to float32.
    (np.float32(float(s)) rounds twice, and for four of the NF4 thresholds,
    which are float32 midpoints printed in float64, that gives the other
    neighbour.)"""
    return THRESH_CACHE.setdefault(s, round_f32(Fraction(s)))


THRESH_CACHE = {}


def quantize_nf4(x):
    """dQuantizeNF4: the comparison tree, in float32."""
    t = lambda v: x > c32(v)  # noqa: E731
    if t('0.03979014977812767'):
        if t('0.3893125355243683'):
            if t('0.6427869200706482'):
                return 15 if t('0.8614784181118011') else 14
            return 13 if t('0.5016634166240692') else 12
        if t('0.2035212516784668'):
            return 11 if t('0.2920137718319893') else 10
        return 9 if t('0.1202552504837513') else 8
    if t('-0.33967943489551544'):
        if t('-0.13791173323988914'):
            return 7 if t('-0.045525018125772476') else 6
        return 5 if t('-0.23460740596055984') else 4
    if t('-0.6106329262256622'):
        return 3 if t('-0.4599952697753906') else 2
    return 1 if t('-0.8480964004993439') else 0


def quantize_fp4(x):
    """dQuantizeFP4: sign bit from x < 0, then a tree on |x|."""
    sign = 8 if x < f32(0) else 0
    x = abs(x)
    t = lambda v: x > c32(v)  # noqa: E731
    if t('0.29166667'):
        if t('0.583333'):
            return (3 if t('0.8333333') else 2) + sign
        return (5 if t('0.4166667') else 4) + sign
    if t('0.0859375'):
        return (7 if t('0.20833333') else 6) + sign
    return (1 if t('0.00260417') else 0) + sign


def block_absmax(v):
    """max |x| over a block, ignoring NaN as fmaxf does."""
    m = f32(0)
    for e in v:
        a = abs(f32(e))
        if a > m:
            m = a
    return f32(m)


def recip(a):
    with np.errstate(divide="ignore"):
        return f32(f32(1.0) / f32(a))


def mul(a, b):
    with np.errstate(invalid="ignore", over="ignore"):
        return f32(f32(a) * f32(b))


def quantize_4bit(x, blocksize, kind):
    """Returns packed codes (uint8 [ceil(n/2)]) and absmax (float32 [blocks])."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    n = x.size
    nblocks = (n + blocksize - 1) // blocksize
    q = quantize_nf4 if kind == "nf4" else quantize_fp4
    codes = np.zeros(n + (n & 1), dtype=np.uint8)
    absmax = np.zeros(nblocks, dtype=np.float32)
    for b in range(nblocks):
        lo, hi = b * blocksize, min(n, (b + 1) * blocksize)
        am = block_absmax(x[lo:hi])
        absmax[b] = am
        inv = recip(am)
        for i in range(lo, hi):
            codes[i] = q(mul(x[i], inv))
        if hi == n and n & 1:
            codes[n] = q(mul(f32(0), inv))  # the pad element, loaded as 0
    packed = ((codes[0::2].astype(np.uint16) << 4) | codes[1::2]).astype(np.uint8)
    return packed, absmax


def unpack(packed, n):
    c = np.zeros(2 * packed.size, dtype=np.uint8)
    c[0::2] = packed >> 4
    c[1::2] = packed & 15
    return c[:n]


def dequantize_4bit(packed, absmax, n, blocksize, table):
    c = unpack(packed, n)
    out = np.zeros(n, dtype=np.float32)
    for i in range(n):
        out[i] = mul(table[c[i]], absmax[i // blocksize])
    return out


# ---------------------------------------------------------------------------
# Dynamic map (create_dynamic_map as torch evaluates it on an AVX2 CPU)

def round_f32(fr):
    """Rounds an exact Fraction to the nearest float32, ties to even."""
    x = f32(float(fr))
    best = None
    for c in (np.nextafter(x, f32(-np.inf)), x, np.nextafter(x, f32(np.inf))):
        d = abs(Fraction(float(c)) - fr)
        even = (int(np.frombuffer(np.float32(c).tobytes(), np.uint32)[0]) & 1) == 0
        if best is None or d < best[0] or (d == best[0] and even):
            best = (d, c)
    return f32(best[1])


def fma32(a, b, c):
    return round_f32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


def torch_linspace_f32(start, end, steps):
    s, e = f32(start), f32(end)
    step = f32(f32(e - s) / f32(steps - 1))
    half = steps // 2

    def scalar(idx):
        if idx < half:
            return fma32(step, f32(idx), s)
        return fma32(-step, f32(steps - idx - 1), e)

    out = np.zeros(steps, dtype=np.float32)
    lanes = 8
    i = 0
    while i <= steps - 2 * lanes:
        for k in (i, i + lanes):
            base = scalar(k)
            for j in range(lanes):
                out[k + j] = f32(base + f32(f32(j) * step))
        i += 2 * lanes
    while i < steps:
        out[i] = scalar(i)
        i += 1
    return out


def dynamic_map(signed):
    data = []
    for i in range(7):
        n = 2 ** i + 1 if signed else 2 ** (i + 1) + 1
        b = torch_linspace_f32(0.1, 1.0, n)
        means = ((b[:-1] + b[1:]).astype(np.float32) / f32(2.0)).astype(np.float32)
        scale = f32(10.0 ** (i - 6))
        data += list((scale * means).astype(np.float32))
        if signed:
            data += list((-scale * means).astype(np.float32))
    data += [f32(0.0), f32(1.0)]
    out = np.sort(np.array(data, dtype=np.float32))
    assert out.size == 256
    return out


def check_dynamic_map_with_torch(signed, ours):
    """When torch is installed: bitsandbytes' create_dynamic_map in torch."""
    try:
        import torch
    except ImportError:
        return None
    data = []
    for i in range(7):
        n = int(2 ** i + 1 if signed else 2 ** (i + 1) + 1)
        b = torch.linspace(0.1, 1, n)
        means = (b[:-1] + b[1:]) / 2.0
        data += ((10 ** (-6 + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-6 + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    data.sort()
    ref = torch.tensor(data, dtype=torch.float32).numpy()
    return bool(np.array_equal(ref.view(np.uint32), ours.view(np.uint32)))


# ---------------------------------------------------------------------------
# Blockwise 8-bit

def dquantize8(code, x):
    pivot, upper_pivot, lower_pivot = 127, 255, 0
    lower, upper = f32(-1.0), f32(1.0)
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
    if upper_pivot == 255:
        upper = code[255]
    if lower_pivot == 0:
        lower = code[0]
    if x > val:
        mid = f32(f32(upper + val) * f32(0.5))
        return upper_pivot if x > mid else pivot
    mid = f32(f32(lower + val) * f32(0.5))
    return lower_pivot if x < mid else pivot


def quantize_blockwise8(x, code, blocksize):
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    n = x.size
    nblocks = (n + blocksize - 1) // blocksize
    codes = np.zeros(n, dtype=np.uint8)
    absmax = np.zeros(nblocks, dtype=np.float32)
    for b in range(nblocks):
        lo, hi = b * blocksize, min(n, (b + 1) * blocksize)
        am = block_absmax(x[lo:hi])
        absmax[b] = am
        inv = recip(am)
        for i in range(lo, hi):
            codes[i] = dquantize8(code, mul(x[i], inv))
    return codes, absmax


def dequantize_blockwise8(codes, absmax, code, blocksize):
    return np.array([mul(code[c], absmax[i // blocksize]) for i, c in enumerate(codes)], dtype=np.float32)


# ---------------------------------------------------------------------------
# Int8 (LLM.int8 weights)

INV127 = f32(7.874015718698502e-3)


def quantize_int8(x, threshold):
    rows, cols = x.shape
    outlier_cols = []
    if threshold > 0:
        outlier_cols = [j for j in range(cols) if np.any(np.abs(x[:, j]) >= f32(threshold))]
    keep = [j for j in range(cols) if j not in outlier_cols]
    codes = np.zeros((rows, cols), dtype=np.int8)
    scb = np.zeros(rows, dtype=np.float32)
    for r in range(rows):
        am = block_absmax(x[r, keep])
        scb[r] = am
        if am == 0:
            continue
        scale = f32(f32(127.0) / am)
        for j in keep:
            codes[r, j] = int(np.rint(mul(x[r, j], scale)))
    outliers = x[:, outlier_cols].astype(np.float32).reshape(rows, len(outlier_cols))
    return codes, scb, np.array(outlier_cols, dtype=np.int32), outliers


def dequantize_int8(codes, scb, outlier_cols, outliers):
    rows, cols = codes.shape
    out = np.zeros((rows, cols), dtype=np.float32)
    for r in range(rows):
        for j in range(cols):
            out[r, j] = mul(mul(f32(codes[r, j]), scb[r]), INV127)
        for k, j in enumerate(outlier_cols):
            out[r, j] = outliers[r, k]
    return out


# ---------------------------------------------------------------------------
# Inputs

def bf16_round(x):
    """Rounds float32 values to bfloat16 (nearest even), returned as float32."""
    b = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return (b.astype(np.uint32) << 16).view(np.float32)


def with_thresholds(x, table_thresholds, blocksize=64):
    """Scales the first block into (-0.9, 0.9) and puts 1.0 (so that absmax
    = 1 and inv = 1), exact threshold values and the float32 values just
    above them into it, testing the strict > of the trees."""
    x = x.copy().reshape(-1)
    first = x[:blocksize]
    x[:blocksize] = (first / np.max(np.abs(first)) * f32(0.9)).astype(np.float32)
    x[0] = f32(1.0)
    for i, t in enumerate(table_thresholds):
        x[1 + 2 * i] = c32(t)
        x[2 + 2 * i] = np.nextafter(c32(t), f32(np.inf))
    return x


NF4_THRESHOLDS = ['0.03979014977812767', '0.3893125355243683', '0.6427869200706482', '0.8614784181118011',
                  '0.5016634166240692', '0.2035212516784668', '0.2920137718319893', '0.1202552504837513',
                  '-0.33967943489551544', '-0.13791173323988914', '-0.045525018125772476',
                  '-0.23460740596055984', '-0.6106329262256622', '-0.4599952697753906', '-0.8480964004993439']
FP4_THRESHOLDS = ['0.29166667', '0.583333', '0.8333333', '0.4166667', '0.0859375', '0.20833333', '0.00260417',
                  '-0.29166667', '-0.0859375']


def make_cases(rng):
    cases = []

    def normal(shape, std=1.0):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    # 4-bit cases: (name, kind, shape, blocksize, double, dtype, input)
    x = with_thresholds(normal((3, 40), 0.02), NF4_THRESHOLDS).reshape(3, 40)
    x[2, 5] = 0.0
    cases.append(dict(name="nf4_b64", kind="nf4", shape=[3, 40], blocksize=64, double=False, dtype="F32", x=x))
    cases.append(dict(name="nf4_b128_odd", kind="nf4", shape=[5, 27], blocksize=128, double=False,
                      dtype="F32", x=normal((5, 27), 0.05)))
    x = with_thresholds(normal((7, 19), 3.0), FP4_THRESHOLDS).reshape(7, 19)
    cases.append(dict(name="fp4_b64_odd", kind="fp4", shape=[7, 19], blocksize=64, double=False, dtype="F32", x=x))
    x = normal((2, 64), 0.1)
    x[0, :] = 0.0  # an all-zero block
    x[1, 63] = -0.0
    cases.append(dict(name="nf4_zero_block", kind="nf4", shape=[2, 64], blocksize=64, double=False, dtype="F32", x=x))
    cases.append(dict(name="fp4_zero_block", kind="fp4", shape=[2, 64], blocksize=64, double=False, dtype="F32", x=x))
    x = bf16_round(normal((4, 48), 0.03))
    cases.append(dict(name="nf4_bf16", kind="nf4", shape=[4, 48], blocksize=64, double=False, dtype="BF16", x=x))
    # Double quantisation: 303 blocks of 64, so 2 nested blocks of 256; the
    # rows have different scales so that the absmax values spread.
    x = normal((61, 317), 1.0) * np.exp(rng.standard_normal((61, 1))).astype(np.float32) * f32(0.02)
    x = x.astype(np.float32)
    cases.append(dict(name="nf4_double", kind="nf4", shape=[61, 317], blocksize=64, double=True, dtype="F32", x=x))
    x = (normal((9, 37), 1.0) * f32(0.5)).astype(np.float32)
    cases.append(dict(name="fp4_double_b128", kind="fp4", shape=[9, 37], blocksize=128, double=True,
                      dtype="F32", x=x))
    return cases


def make_int8_cases(rng):
    x = (rng.standard_normal((6, 10)) * 1.5).astype(np.float32)
    x[:, 3] *= 8
    x[2, 7] = -9.5
    x[4, :] = 0.0
    x[5, 1] = 6.0  # exactly the threshold: an outlier (>=)
    y = (rng.standard_normal((5, 33)) * 0.01).astype(np.float32)
    y[3, :] = 0.0
    # A value whose x * scale is exactly k + 0.5 tests round-half-even:
    # with absmax 127 the scale is exactly 1.
    y[1, 0] = 127.0
    y[1, 1] = 2.5
    y[1, 2] = -3.5
    return [dict(name="int8_outliers", shape=[6, 10], threshold=6.0, x=x),
            dict(name="int8_plain", shape=[5, 33], threshold=0.0, x=y)]


def make_blockwise8_cases(rng, dyn_signed, dyn_unsigned):
    x = (rng.standard_normal(700) * 0.3).astype(np.float32)
    # Block 1 has absmax 1 (inv = 1): exact code values, midpoints (ties)
    # and the neighbours of midpoints.
    x[256] = 1.0
    k = 257
    for i in range(0, 255, 9):
        mid = f32(f32(dyn_signed[i] + dyn_signed[i + 1]) * f32(0.5))
        for v in (dyn_signed[i], mid, np.nextafter(mid, f32(np.inf)), np.nextafter(mid, f32(-np.inf))):
            x[k] = v
            k += 1
    y = np.abs(rng.standard_normal(600) * 0.01).astype(np.float32)
    y[256:512] = 0.0  # an all-zero block
    return [dict(name="blockwise8_signed", signed=True, blocksize=256, x=x),
            dict(name="blockwise8_unsigned", signed=False, blocksize=256, x=y)]


# ---------------------------------------------------------------------------
# Output

def write_safetensors(path, arrays):
    """arrays: name -> (dtype string, shape, bytes), written in name order."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    body = b""
    for name in sorted(arrays):
        dt, shape, data = arrays[name]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        body += data
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(body)


def f32_entry(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return ("F32", list(a.shape), a.astype("<f4").tobytes())


def u8_entry(a):
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return ("U8", list(a.shape), a.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_DIR)
    args = ap.parse_args()
    rng = np.random.default_rng(20240611)

    arrays = {}
    summary = {"note": "Written by scripts/golden/quant_golden.py; see its docstring.",
               "tables": {}, "cases": []}
    dyn_s, dyn_u = dynamic_map(True), dynamic_map(False)
    arrays["table.nf4"] = f32_entry(NF4)
    arrays["table.fp4"] = f32_entry(FP4)
    arrays["table.dynamic_signed"] = f32_entry(dyn_s)
    arrays["table.dynamic_unsigned"] = f32_entry(dyn_u)
    summary["tables"] = {
        "nf4": "table.nf4", "fp4": "table.fp4",
        "dynamic_signed": "table.dynamic_signed", "dynamic_unsigned": "table.dynamic_unsigned",
        "dynamic_signed_first_last": [float(dyn_s[0]), float(dyn_s[255])],
        "dynamic_unsigned_first_last": [float(dyn_u[0]), float(dyn_u[255])],
    }
    for signed, ours in ((True, dyn_s), (False, dyn_u)):
        ok = check_dynamic_map_with_torch(signed, ours)
        name = "signed" if signed else "unsigned"
        if ok is None:
            print("torch is not installed: the %s dynamic map was not checked against it" % name)
        elif not ok:
            sys.exit("the %s dynamic map differs from torch's create_dynamic_map" % name)
        else:
            print("the %s dynamic map equals torch's bit for bit" % name)

    for c in make_cases(rng):
        x = np.asarray(c["x"], dtype=np.float32)
        n = x.size
        packed, absmax = quantize_4bit(x, c["blocksize"], c["kind"])
        table = NF4 if c["kind"] == "nf4" else FP4
        entry = {k: c[k] for k in ("name", "kind", "shape", "blocksize", "double", "dtype")}
        p = "case.%s." % c["name"]
        if c["dtype"] == "BF16":
            raw = (x.view(np.uint32) >> 16).astype("<u2").tobytes()
            arrays[p + "x"] = ("BF16", list(x.shape), raw)
        else:
            arrays[p + "x"] = f32_entry(x)
        arrays[p + "codes"] = u8_entry(packed)
        arrays[p + "absmax"] = f32_entry(absmax)
        used_absmax = absmax
        if c["double"]:
            s = 0.0
            for a in absmax:
                s += float(a)
            offset = f32(s / absmax.size)
            centred = (absmax - offset).astype(np.float32)
            qabs, nabs = quantize_blockwise8(centred, dyn_s, 256)
            used_absmax = np.array([f32(mul(dyn_s[q], nabs[i // 256]) + offset) for i, q in enumerate(qabs)],
                                   dtype=np.float32)
            arrays[p + "qabsmax"] = u8_entry(qabs)
            arrays[p + "nested_absmax"] = f32_entry(nabs)
            arrays[p + "absmax_dequantized"] = f32_entry(used_absmax)
            entry["offset"] = float(offset)
            entry["nested_blocksize"] = 256
        arrays[p + "dequantized"] = f32_entry(dequantize_4bit(packed, used_absmax, n, c["blocksize"], table)
                                              .reshape(x.shape))
        # Self-check: every value is within half the largest code gap of its
        # block's absmax (without double quantisation).
        if not c["double"]:
            deq = dequantize_4bit(packed, absmax, n, c["blocksize"], table)
            gap = float(np.max(np.diff(np.sort(table))))
            for i in range(n):
                am = float(absmax[i // c["blocksize"]])
                assert abs(float(x.reshape(-1)[i]) - float(deq[i])) <= am * gap / 2 * (1 + 1e-6) + 1e-30
        entry["codes_hex_first_bytes"] = packed[:8].tobytes().hex()
        summary["cases"].append(entry)

    for c in make_int8_cases(rng):
        codes, scb, cols, outl = quantize_int8(c["x"], c["threshold"])
        p = "case.%s." % c["name"]
        arrays[p + "x"] = f32_entry(c["x"])
        arrays[p + "codes"] = u8_entry(codes.view(np.uint8))
        arrays[p + "scb"] = f32_entry(scb)
        arrays[p + "outlier_cols"] = ("I32", [cols.size], cols.astype("<i4").tobytes())
        arrays[p + "outliers"] = f32_entry(outl)
        arrays[p + "dequantized"] = f32_entry(dequantize_int8(codes, scb, cols, outl))
        summary["cases"].append({"name": c["name"], "kind": "int8", "shape": c["shape"],
                                 "threshold": c["threshold"], "outlier_cols": cols.tolist()})

    for c in make_blockwise8_cases(rng, dyn_s, dyn_u):
        code = dyn_s if c["signed"] else dyn_u
        codes, absmax = quantize_blockwise8(c["x"], code, c["blocksize"])
        p = "case.%s." % c["name"]
        arrays[p + "x"] = f32_entry(c["x"])
        arrays[p + "codes"] = u8_entry(codes)
        arrays[p + "absmax"] = f32_entry(absmax)
        arrays[p + "dequantized"] = f32_entry(dequantize_blockwise8(codes, absmax, code, c["blocksize"]))
        summary["cases"].append({"name": c["name"], "kind": "blockwise8", "signed": c["signed"],
                                 "blocksize": c["blocksize"], "n": int(c["x"].size)})

    os.makedirs(args.out, exist_ok=True)
    write_safetensors(os.path.join(args.out, "quant_golden.safetensors"), arrays)
    with open(os.path.join(args.out, "quant_golden.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    print("wrote %d arrays for %d cases to %s" % (len(arrays), len(summary["cases"]), args.out))


if __name__ == "__main__":
    main()
