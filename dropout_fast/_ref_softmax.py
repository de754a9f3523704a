"""Numba kernels of the softmax fusions, re-exported by reference.py.

Attention dropout (softmax over the last axis fused with dropout) with the
signatures of the C wrappers in _softmax.pxi and the contract of
df_softmax_dropout_* in src_c/dropout_fast.h, bit for bit. Per row of Lk
scores (the first nv = min(i + 1, Lk) of them under is_causal, query i = r % Lq):

- s' = s + mask (additive), mask ? s : -inf (bool), or s;
- m = max of the non-NaN s' (0 if that is -inf); x_j = s'_j - m;
- e_j = exp(x_j): 0 for x < XMIN, NaN for NaN, else n = (x * LOG2E + MAGIC) - MAGIC,
  r = (x - n * LN2HI) - n * LN2LO, p = Horner(r) of the Taylor coefficients,
  e = p * 2**n, every step in the array's dtype (src_c/df_kernels_softmax.c);
- Z = the W-lane sum of e (lane j % W in order, then the fixed halving tree);
  inv = 0 if Z == 0 else 1 / Z; P_j = e_j * inv; y_j = keep ? P_j * scale : +0;
- probs (mode "store") receive P_j with the sign bit set where dropped (-P_j);
- backward: dP_j = keep ? dy_j * scale : +0 (keep from the sign of the stored P,
  or from the bits); dot = the W-lane sum of P_j * dP_j; ds_j = P_j * (dP_j - dot);
  keys past nv give +0 everywhere.

No fastmath, so LLVM neither contracts nor reorders. Keep bits come from
reference.mask. Unlike the C kernel, a broadcast mask is materialised to the
scores' shape: simple rather than lean. nthreads and isa are accepted and
ignored: results never depend on them.
"""
import math
from fractions import Fraction

import numba as nb
import numpy as np
from numba import prange

__all__ = ["softmax_fwd", "softmax_bwd", "softmax_exp"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_U8 = (np.dtype(np.uint8),)
_LANES = {np.dtype(np.float32): 32, np.dtype(np.float64): 16}


def _constants(dtype):
    """(c, poly, pow2) of the exp for dtype: c = [XMIN, LOG2E, MAGIC, LN2HI, LN2LO,
    -inf, 0, 1, -1], poly the Horner coefficients (1/7! .. 1/2, 1, 1 for float; to
    1/13! for double), pow2[k] = 2**-k."""
    t = np.dtype(dtype).type
    if t is np.float32:
        head = [-87.0, float.fromhex("0x1.715476p+0"), 1.5 * 2.0**23, float.fromhex("0x1.63p-1"),
                float.fromhex("-0x1.bd0106p-13")]
        degree, kmax = 7, 126
    else:
        head = [-708.0, float.fromhex("0x1.71547652b82fep+0"), 1.5 * 2.0**52,
                float.fromhex("0x1.62e42fee00000p-1"), float.fromhex("0x1.a39ef35793c76p-33")]
        degree, kmax = 13, 1021
    c = np.array(head + [-np.inf, 0.0, 1.0, -1.0], dtype=t)
    poly = np.array([float(Fraction(1, math.factorial(k))) for k in range(degree, 1, -1)]
                    + [1.0, 1.0], dtype=t)
    pow2 = np.array([math.ldexp(1.0, -k) for k in range(kmax + 1)], dtype=t)
    return c, poly, pow2


_CONSTS = {dt: _constants(dt) for dt in _FLOATS}


@nb.njit(inline="always")
def _exp(x, c, poly, pow2):
    if x < c[0]:
        return c[6]
    if math.isnan(x):
        return x
    t = x * c[1] + c[2]
    n = t - c[2]
    r = (x - n * c[3]) - n * c[4]
    p = poly[0]
    for k in range(1, poly.shape[0]):
        p = p * r + poly[k]
    return p * pow2[-int(n)]


@nb.njit(inline="always")
def _tree(acc):
    h = acc.shape[0] // 2
    while h >= 1:
        for l in range(h):
            acc[l] = acc[l] + acc[l + h]
        h //= 2
    return acc[0]


@nb.njit(inline="always")
def _nvalid(r, lq, lk, causal):
    if causal:
        return min(r % lq + 1, lk)
    return lk


@nb.njit(inline="always")
def _keep(bits, f):
    return (bits[f >> 3] >> (f & 7)) & 1


@nb.njit(cache=True)
def _probs_row(s, madd, mbool, kind, r, nv, c, poly, pow2, lanes):
    """P of row r (its first nv keys): passes 1-3 of the contract."""
    x = np.empty(nv, s.dtype)
    mx = np.full(lanes, c[5])
    for j in range(nv):
        v = s[r, j]
        if kind == 1:
            v = v + madd[r, j]
        elif kind == 2 and mbool[r, j] == 0:
            v = c[5]
        x[j] = v
        if v > mx[j % lanes]:
            mx[j % lanes] = v
    m = c[5]
    for l in range(lanes):
        if mx[l] > m:
            m = mx[l]
    if m == c[5]:
        m = c[6]
    acc = np.zeros(lanes, s.dtype)
    for j in range(nv):
        e = _exp(x[j] - m, c, poly, pow2)
        x[j] = e
        acc[j % lanes] = acc[j % lanes] + e
    z = _tree(acc)
    inv = c[6] if z == c[6] else c[7] / z
    for j in range(nv):
        x[j] = x[j] * inv
    return x


@nb.njit(parallel=True, cache=True)
def _kernel(backward, g, out, pr, has_p, s, bits, drop, madd, mbool, kind, lq, causal, scale, c,
            poly, pow2, lanes):
    """Forward (out = y; signed P to pr if has_p) or backward (g = dy, out = ds; P and
    the mask from the signed pr if has_p, else P recomputed from s and the mask from
    bits): one kernel, so Numba compiles it once per dtype."""
    rows, lk = out.shape
    for r in prange(rows):
        nv = _nvalid(r, lq, lk, causal)
        kept = np.empty(nv, np.bool_)
        if backward and has_p:
            p = np.empty(nv, pr.dtype)
            for j in range(nv):
                p[j] = np.abs(pr[r, j])
                kept[j] = not np.signbit(pr[r, j])
        else:
            p = _probs_row(s, madd, mbool, kind, r, nv, c, poly, pow2, lanes)
            for j in range(nv):
                kept[j] = not drop or _keep(bits, r * lk + j) != 0
        if not backward:
            for j in range(nv):
                if has_p:  # the mask folded into P's sign bit
                    pr[r, j] = p[j] if kept[j] else np.copysign(p[j], c[8])
                out[r, j] = p[j] * scale if kept[j] else c[6]
            for j in range(nv, lk):
                out[r, j] = c[6]
                if has_p:
                    pr[r, j] = c[6]
            continue
        dp = np.empty(nv, g.dtype)
        acc = np.zeros(lanes, g.dtype)
        for j in range(nv):
            dp[j] = g[r, j] * scale if kept[j] else c[6]
            acc[j % lanes] = acc[j % lanes] + p[j] * dp[j]
        dot = _tree(acc)
        for j in range(nv):
            out[r, j] = p[j] * (dp[j] - dot)
        for j in range(nv, lk):
            out[r, j] = c[6]


@nb.njit(cache=True)
def _exp_array(x, out, c, poly, pow2):
    for i in range(x.shape[0]):
        out[i] = _exp(x[i], c, poly, pow2)


def softmax_exp(x):
    """The kernels' exp of each element of a float32/float64 array (for accuracy tests)."""
    x = np.ascontiguousarray(x)
    if x.dtype not in _FLOATS:
        raise TypeError(f"x: expected float32 or float64, not {x.dtype}")
    out = np.empty_like(x)
    _exp_array(x.reshape(-1), out.reshape(-1), *_CONSTS[x.dtype])
    return out


def _flat(a, n, name, dtypes):
    """a as a 1-D view of at least n items (Numba does not check indices)."""
    if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or a.size < n:
        raise ValueError(f"{name}: expected a C-contiguous array of at least {n} items")
    if a.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype {' or '.join(map(str, dtypes))}, not {a.dtype}")
    return a.reshape(-1)


def _layout(shape):
    shape = tuple(int(d) for d in shape)
    if not 1 <= len(shape) <= 32 or min(shape) < 0:
        raise ValueError(f"scores: expected 1 to 32 non-negative extents, got {shape}")
    lk = shape[-1]
    rows = math.prod(shape[:-1])
    lq = shape[-2] if len(shape) >= 2 else 1
    return shape, rows, lq, lk


def _masks(mask, shape, rows, lk, dtype):
    """(kind, additive rows, bool rows) with (1, 1) placeholders for the unused."""
    none_f, none_b = np.zeros((1, 1), dtype), np.zeros((1, 1), np.uint8)
    if mask is None:
        return 0, none_f, none_b
    if not isinstance(mask, np.ndarray) or mask.shape != shape:
        raise ValueError(f"attn_mask: expected an ndarray view of shape {shape}")
    if mask.dtype == np.bool_:
        return 2, none_f, np.ascontiguousarray(mask).view(np.uint8).reshape(rows, lk)
    if mask.dtype != dtype:
        raise TypeError(f"attn_mask: expected bool or the scores' float dtype, got {mask.dtype}")
    return 1, np.ascontiguousarray(mask).reshape(rows, lk), none_b


def _keep_bits(bits, n, key0, key1, block_lo, block_hi, thresh, write):
    """(drop, packed bits): the call's keep bits, drawn (and written to `bits` when
    `write`), read from `bits`, or none at all when thresh keeps everything."""
    from dropout_fast import reference  # late: reference imports this module
    thresh = int(thresh)
    if bits is not None:
        bits = _flat(bits, (n + 7) // 8, "bits", _U8)
    if thresh >= 2**32:
        if write and bits is not None and n:
            bits[:(n + 7) // 8] = 0xFF
            if n % 8:
                bits[n // 8] = (1 << (n % 8)) - 1
        return False, np.zeros(1, np.uint8)
    if bits is not None and not write:
        return True, bits
    drawn = bits if bits is not None else np.empty((n + 7) // 8, np.uint8)
    reference.mask(drawn, n, key0, key1, block_lo, block_hi, thresh)
    return True, drawn


def softmax_fwd(s, y, probs, bits, shape, mask, causal, key0, key1, block_lo, block_hi, thresh,
                scale, nthreads=0, isa=-1):
    """y = dropout(softmax(masked s)) over the last axis of `shape`, s and y (and
    probs, unless None: P, negated where dropped) C-contiguous buffers; bits (or
    None) receives the keep bits. thresh == 2**32 with scale 1 is the plain softmax."""
    shape, rows, lq, lk = _layout(shape)
    n = rows * lk
    s = _flat(s, n, "scores", _FLOATS)
    dt = s.dtype
    y = _flat(y, n, "y", (dt,))
    want_p = probs is not None
    pr = _flat(probs, n, "probs", (dt,))[:n] if want_p else np.zeros(1, dt)
    kind, madd, mbool = _masks(mask, shape, rows, lk, dt)
    drop, kb = _keep_bits(bits, n, key0, key1, block_lo, block_hi, thresh, True)
    if n == 0:
        return
    s = s[:n].reshape(rows, lk)
    _kernel(False, s, y[:n].reshape(rows, lk), pr.reshape(-1, lk) if want_p else pr.reshape(1, 1),
            want_p, s, kb, drop, madd, mbool, kind, lq, bool(causal), dt.type(scale),
            *_CONSTS[dt], _LANES[dt])


def softmax_bwd(dy, ds, probs, s, bits, shape, mask, causal, key0, key1, block_lo, block_hi,
                thresh, scale, nthreads=0, isa=-1):
    """ds = d(scores) from dy, with P and the mask from the signed probs ("store"),
    or P recomputed from s and mask when probs is None ("recompute") and the mask
    read from bits or regenerated."""
    shape, rows, lq, lk = _layout(shape)
    n = rows * lk
    dy = _flat(dy, n, "dy", _FLOATS)
    dt = dy.dtype
    ds = _flat(ds, n, "ds", (dt,))
    have_p = probs is not None
    if not have_p and s is None:
        raise ValueError("probs, s: one of them is needed")
    src = _flat(probs if have_p else s, n, "probs" if have_p else "s", (dt,))[:n]
    kind, madd, mbool = _masks(None if have_p else mask, shape, rows, lk, dt)
    drop, kb = (False, np.zeros(1, np.uint8)) if have_p else \
        _keep_bits(bits, n, key0, key1, block_lo, block_hi, thresh, False)
    if n == 0:
        return
    src = src.reshape(rows, lk)
    _kernel(True, dy[:n].reshape(rows, lk), ds[:n].reshape(rows, lk), src, have_p, src, kb, drop,
            madd, mbool, kind, lq, bool(causal), dt.type(scale), *_CONSTS[dt], _LANES[dt])
