#!/usr/bin/python3
"""Writes golden.gguf, the reference file for the gguf package's tests.

This is an independent implementation of the GGUF v3 layout (Python's
struct module) and of ggml's dequantisation (vectorised numpy, following
the block layouts of ggml-common.h and the operation order of ggml's
dequantize_row_* reference code). The Go tests read the file with the Go
parser and compare, bit for bit, what Float32 returns for each quantised
tensor "<type>" with the float32 tensor "<type>.expected" computed here.

Q8_0 and Q4_0 blocks are made by quantising known random values as ggml's
reference quantisers do, and the script checks the dequantised values are
within half a quantisation step of them. The other block types are filled
with random scales and quants. The metadata holds a value of every GGUF
type, including nested and empty arrays.

Run it with /usr/bin/python3 (Debian's python3-numpy) from this folder:

    /usr/bin/python3 gen_golden.py

It is deterministic; the Go tests do not need Python.
"""

import math
import struct
import sys

import numpy as np

RNG = np.random.default_rng(20240611)
ALIGNMENT = 64  # not GGUF's default, to check general.alignment is honoured

# GGUF metadata value types.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)

# ggml types: id, elements per block, bytes per block.
GGML = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q8_1": (9, 32, 36),
    "Q2_K": (10, 256, 84), "Q3_K": (11, 256, 110), "Q4_K": (12, 256, 144),
    "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210), "Q8_K": (15, 256, 292),
    "F64": (28, 1, 8), "BF16": (30, 1, 2),
}

f32 = np.float32


# ---------------------------------------------------------------- writer

def enc_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


SCALAR_FMT = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
              FLOAT32: "<f", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}


def enc_value(vtype, v):
    if vtype == STRING:
        return enc_str(v)
    if vtype == BOOL:
        return bytes([1 if v else 0])
    if vtype == ARRAY:
        etype, items = v
        out = struct.pack("<IQ", etype, len(items))
        return out + b"".join(enc_value(etype, x) for x in items)
    return struct.pack(SCALAR_FMT[vtype], v)


def write_gguf(path, kvs, tensors):
    """kvs: [(key, type, value)]; tensors: [(name, type name, row-major shape, bytes)]."""
    out = bytearray(b"GGUF")
    out += struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, vtype, v in kvs:
        out += enc_str(key) + struct.pack("<I", vtype) + enc_value(vtype, v)
    offset = 0
    offsets = []
    for name, tname, shape, data in tensors:
        ne = list(reversed(shape))  # ggml order: fastest-varying first
        out += enc_str(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        out += struct.pack("<IQ", GGML[tname][0], offset)
        offsets.append(offset)
        offset += -(-len(data) // ALIGNMENT) * ALIGNMENT
    out += bytes(-len(out) % ALIGNMENT)
    start = len(out)
    for (name, tname, shape, data), off in zip(tensors, offsets):
        assert len(out) == start + off
        out += data
        out += bytes(-len(out) % ALIGNMENT)
    with open(path, "wb") as fp:
        fp.write(out)


# ---------------------------------------------------------------- helpers

def half_bytes(x):
    """float32 values -> little-endian binary16 bytes, shape (..., 2)."""
    h = np.atleast_1d(np.asarray(x, dtype=np.float16).astype("<f2"))
    return h.view(np.uint8).reshape(*np.shape(x), 2)


def half_at(blocks, i):
    """The binary16 at byte i of every block, as float32."""
    return blocks[:, i:i + 2].copy().view("<f2").astype(f32)[:, 0]


def rand_half(n, scale):
    """n random finite binary16 scales, as bytes (n, 2)."""
    return half_bytes((RNG.standard_normal(n) * scale).astype(f32))


def rand_bytes(n, k):
    return RNG.integers(0, 256, size=(n, k), dtype=np.uint8)


def nibbles(qs):
    """(n, 16) bytes -> (n, 32) values: low nibbles are elements 0..15, high 16..31."""
    return np.concatenate([qs & 0xF, qs >> 4], axis=1)


def fifth_bits(qh):
    """(n, 4) bytes of a little-endian u32 -> (n, 32) bits, bit j for element j."""
    word = qh.copy().view("<u4")[:, 0].astype(np.uint64)
    return ((word[:, None] >> np.arange(32, dtype=np.uint64)) & 1).astype(np.uint8)


# ---------------------------------------------------------------- quantisers (ggml reference rounding)

def quantize_q8_0(x):
    """x: (n, 32) float32 -> (n, 34) blocks."""
    amax = np.abs(x).max(axis=1)
    d = amax / f32(127)
    inv = np.where(d == 0, f32(0), f32(1) / np.where(d == 0, f32(1), d)).astype(f32)
    q = x * inv[:, None]
    q = np.where(q >= 0, np.floor(q + f32(0.5)), np.ceil(q - f32(0.5)))  # roundf: ties away from zero
    return np.concatenate([half_bytes(d), q.astype(np.int8).view(np.uint8)], axis=1)


def quantize_q4_0(x):
    """x: (n, 32) float32 -> (n, 18) blocks."""
    idx = np.abs(x).argmax(axis=1)
    vmax = x[np.arange(len(x)), idx]
    d = vmax / f32(-8)
    inv = np.where(d == 0, f32(0), f32(1) / np.where(d == 0, f32(1), d)).astype(f32)
    q = np.minimum(15, np.trunc(x * inv[:, None] + f32(8.5))).clip(0, 15).astype(np.uint8)
    qs = q[:, :16] | (q[:, 16:] << 4)
    return np.concatenate([half_bytes(d), qs], axis=1)


# ---------------------------------------------------------------- dequantisers (the reference)

def dequant(tname, b):
    """b: (n, type size) uint8 blocks -> (n, block size) float32."""
    n = len(b)
    if tname == "Q4_0":
        d = half_at(b, 0)
        q = nibbles(b[:, 2:18]).astype(f32) - f32(8)
        return q * d[:, None]
    if tname == "Q4_1":
        d, m = half_at(b, 0), half_at(b, 2)
        q = nibbles(b[:, 4:20]).astype(f32)
        return q * d[:, None] + m[:, None]
    if tname == "Q5_0":
        d = half_at(b, 0)
        q = (nibbles(b[:, 6:22]) | (fifth_bits(b[:, 2:6]) << 4)).astype(f32) - f32(16)
        return q * d[:, None]
    if tname == "Q5_1":
        d, m = half_at(b, 0), half_at(b, 2)
        q = (nibbles(b[:, 8:24]) | (fifth_bits(b[:, 4:8]) << 4)).astype(f32)
        return q * d[:, None] + m[:, None]
    if tname == "Q8_0":
        return b[:, 2:34].view(np.int8).astype(f32) * half_at(b, 0)[:, None]
    if tname == "Q8_1":
        return b[:, 4:36].view(np.int8).astype(f32) * half_at(b, 0)[:, None]
    if tname == "Q8_K":
        d = b[:, 0:4].copy().view("<f4")[:, 0].astype(f32)
        return d[:, None] * b[:, 4:260].view(np.int8).astype(f32)
    if tname == "Q2_K":
        scales, qs = b[:, 0:16], b[:, 16:80]
        d, dmin = half_at(b, 80), half_at(b, 82)
        # element e: half h = e // 128, shift group g = (e % 128) // 32, byte (e % 32) of the half
        e = np.arange(256)
        byte = 32 * (e // 128) + e % 32
        shift = 2 * ((e % 128) // 32)
        q = ((qs[:, byte] >> shift) & 3).astype(f32)
        sub = e // 16  # one scale byte per 16 elements
        dl = d[:, None] * (scales[:, sub] & 0xF).astype(f32)
        ml = dmin[:, None] * (scales[:, sub] >> 4).astype(f32)
        return dl * q - ml
    if tname == "Q3_K":
        hmask, qs, sc, d = b[:, 0:32], b[:, 32:96], b[:, 96:108], half_at(b, 108)
        i = np.arange(16)
        low = np.where(i < 8, sc[:, i % 8] & 0xF, sc[:, i % 8] >> 4)
        high = (sc[:, 8 + i % 4] >> (2 * (i // 4))) & 3
        scale = (low | (high << 4)).astype(np.int16) - 32
        e = np.arange(256)
        byte = 32 * (e // 128) + e % 32
        shift = 2 * ((e % 128) // 32)
        q = ((qs[:, byte] >> shift) & 3).astype(np.int16)
        hbit = (hmask[:, e % 32] >> (e // 32)) & 1
        q = q - np.where(hbit == 1, 0, 4)
        dl = d[:, None] * scale[:, e // 16].astype(f32)
        return dl * q.astype(f32)
    if tname in ("Q4_K", "Q5_K"):
        d, dmin, s = half_at(b, 0), half_at(b, 2), b[:, 4:16]
        j = np.arange(8)
        sc = np.where(j < 4, s[:, j % 4] & 63, (s[:, 4 + j] & 0xF) | ((s[:, (j - 4) % 4] >> 6) << 4))
        mn = np.where(j < 4, s[:, (j + 4) % 12] & 63, (s[:, 4 + j] >> 4) | ((s[:, j % 8] >> 6) << 4))
        e = np.arange(256)
        sub = e // 32  # scale/min pair of each element
        chunk, pos = e // 64, e % 32
        qs = b[:, 16:144] if tname == "Q4_K" else b[:, 48:176]
        byte = qs[:, 32 * chunk + pos]
        q = np.where((e // 32) % 2 == 0, byte & 0xF, byte >> 4)
        if tname == "Q5_K":
            qh = b[:, 16:48]
            q = q | (((qh[:, pos] >> sub) & 1) << 4)
        dl = d[:, None] * sc[:, sub].astype(f32)
        ml = dmin[:, None] * mn[:, sub].astype(f32)
        return dl * q.astype(f32) - ml
    if tname == "Q6_K":
        ql, qh, sc, d = b[:, 0:128], b[:, 128:192], b[:, 192:208].view(np.int8), half_at(b, 208)
        e = np.arange(256)
        half, k, l = e // 128, (e % 128) // 32, e % 32
        lbyte = ql[:, 64 * half + 32 * (k % 2) + l]
        low = np.where(k < 2, lbyte & 0xF, lbyte >> 4)
        hi = (qh[:, 32 * half + l] >> (2 * k)) & 3
        q = (low | (hi << 4)).astype(np.int16) - 32
        scale = sc[:, 8 * half + 2 * k + l // 16].astype(f32)
        return (d[:, None] * scale) * q.astype(f32)
    raise ValueError(tname)


# ---------------------------------------------------------------- blocks

def make_blocks(tname, n):
    """n blocks of type tname."""
    if tname in ("Q8_0", "Q4_0"):
        x = RNG.standard_normal((n, 32)).astype(f32) * f32(0.05)
        x[0] = 0  # d = 0
        x[1] = np.linspace(-1, 0.7, 32, dtype=f32)
        x[2, 5] = f32(3.0)  # one outlier
        b = quantize_q8_0(x) if tname == "Q8_0" else quantize_q4_0(x)
        y = dequant(tname, b)
        d = half_at(b, 0)[:, None]
        # Within half a step, allowing for d's rounding to binary16; Q4_0
        # clips at 15 the values near -8*d, which may be a whole step off.
        step = np.full_like(x, 0.5)
        if tname == "Q4_0":
            step[x / np.where(d == 0, 1, d) > 7.5] = 1.0
        err = np.abs(y - x)
        assert np.all(err <= np.abs(d) * step + np.abs(x) * 2e-3 + 1e-7), (tname, err.max())
    else:
        b = rand_bytes(n, GGML[tname][2])
        # Replace the scales with finite binary16 (or float32 for Q8_K) values.
        if tname in ("Q5_0", "Q8_1"):
            b[:, 0:2] = rand_half(n, 0.01)
        if tname in ("Q4_1", "Q5_1", "Q8_1", "Q4_K", "Q5_K"):
            b[:, 0:2] = rand_half(n, 0.01)
            b[:, 2:4] = rand_half(n, 0.01)
        if tname == "Q2_K":
            b[:, 80:82] = rand_half(n, 0.01)
            b[:, 82:84] = rand_half(n, 0.01)
        if tname == "Q3_K":
            b[:, 108:110] = rand_half(n, 0.01)
        if tname == "Q6_K":
            b[:, 208:210] = rand_half(n, 0.01)
        if tname == "Q8_K":
            b[:, 0:4] = (RNG.standard_normal((n, 1)) * 0.01).astype("<f4").view(np.uint8)
    # Extreme scales in the last block: the largest binary16, or the
    # smallest subnormal one, negated.
    if GGML[tname][1] == 32:
        b[-1, 0:2] = half_bytes(f32(65504.0))
    elif tname in ("Q4_K", "Q5_K"):
        b[-1, 0:2] = half_bytes(f32(-(2.0 ** -24)))
    return b


def special_floats():
    return np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 65504.0, 2.0 ** -24, 6e-8,
                     1e-40, 3.4e38, 1e-5, 0.1, 1 / 3, -7.0], dtype=f32)


def float_tensor(tname, rows, cols):
    """(raw bytes, expected float32) for the float types."""
    x = RNG.standard_normal((rows, cols)).astype(f32)
    x.flat[:16] = special_floats()
    if tname == "F32":
        return x.astype("<f4").tobytes(), x
    if tname == "F16":
        h = x.astype(np.float16)
        return h.astype("<f2").tobytes(), h.astype(f32)
    if tname == "BF16":
        u = (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation: any bit pattern will do
        u.flat[16] = 0x7FC1  # a NaN with payload
        u.flat[17] = 0x0001  # the smallest subnormal
        return u.astype("<u2").tobytes(), (u.astype(np.uint32) << 16).view(f32)
    if tname == "F64":
        x64 = RNG.standard_normal((rows, cols)) * 1e3
        x64.flat[:4] = [1e300, -1e-300, 1 + 2.0 ** -30, np.nan]
        return x64.astype("<f8").tobytes(), x64.astype(f32)
    raise ValueError(tname)


def main():
    np.seterr(all="ignore")  # float16 overflow to inf is intended
    tensors = []
    for tname in ["F32", "F16", "BF16", "F64"]:
        raw, want = float_tensor(tname, 3, 24)
        tensors.append((tname.lower(), tname, [3, 24], raw))
        tensors.append((tname.lower() + ".expected", "F32", [3, 24], want.astype("<f4").tobytes()))
    for tname in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1",
                  "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]:
        _, bs, _ = GGML[tname]
        rows, cols = (3, 2 * bs) if bs == 32 else (2, 2 * bs)
        b = make_blocks(tname, rows * cols // bs)
        want = dequant(tname, b).reshape(rows, cols)
        assert want.dtype == f32
        tensors.append((tname.lower(), tname, [rows, cols], b.tobytes()))
        tensors.append((tname.lower() + ".expected", "F32", [rows, cols], want.astype("<f4").tobytes()))

    kvs = [
        ("general.architecture", STRING, "golden"),
        ("general.alignment", UINT32, ALIGNMENT),
        ("test.uint8", UINT8, 200),
        ("test.int8", INT8, -100),
        ("test.uint16", UINT16, 60000),
        ("test.int16", INT16, -30000),
        ("test.uint32", UINT32, 4000000000),
        ("test.int32", INT32, -2000000000),
        ("test.float32", FLOAT32, 1.5),
        ("test.bool_true", BOOL, True),
        ("test.bool_false", BOOL, False),
        ("test.string", STRING, "h\u00e9llo \u2581w\u00f6rld"),
        ("test.empty_string", STRING, ""),
        ("test.uint64", UINT64, 2 ** 63 + 5),
        ("test.int64", INT64, -(2 ** 62) - 7),
        ("test.float64", FLOAT64, math.pi),
        ("test.array.uint8", ARRAY, (UINT8, [0, 1, 255])),
        ("test.array.int8", ARRAY, (INT8, [-128, 0, 127])),
        ("test.array.uint16", ARRAY, (UINT16, [0, 65535])),
        ("test.array.int16", ARRAY, (INT16, [-32768, 32767])),
        ("test.array.uint32", ARRAY, (UINT32, [7, 4294967295])),
        ("test.array.int32", ARRAY, (INT32, [-2147483648, 2147483647, 3])),
        ("test.array.float32", ARRAY, (FLOAT32, [0.25, -1e-3, 3e38])),
        ("test.array.bool", ARRAY, (BOOL, [True, False, True])),
        ("test.array.string", ARRAY, (STRING, ["a", "", "\u00fc\u00df", "<0x0A>"])),
        ("test.array.uint64", ARRAY, (UINT64, [0, 2 ** 64 - 1])),
        ("test.array.int64", ARRAY, (INT64, [-(2 ** 63), 2 ** 63 - 1])),
        ("test.array.float64", ARRAY, (FLOAT64, [math.e, -0.0])),
        ("test.array.empty", ARRAY, (FLOAT32, [])),
        ("test.array.nested", ARRAY, (ARRAY, [(INT32, [1, 2]), (STRING, ["x"]), (UINT8, [])])),
        ("test.array.nested2", ARRAY, (ARRAY, [(ARRAY, [(INT16, [-1])])])),
    ]
    write_gguf(sys.argv[1] if len(sys.argv) > 1 else "golden.gguf", kvs, tensors)


if __name__ == "__main__":
    main()
