"""A plain-numpy oracle for the dropout_fast stream contract.

Written from the contract in src_c/dropout_fast.h alone and sharing no code
with the C library or the Numba backend (dropout_fast.reference): the tests
compare both against it. Simplicity over speed: every word lives in a uint64
array (so 32x32-bit products fit without overflow), stream 1 is computed for
every element, and nothing is skipped for the common case.

Philox4x32: Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
1, 2, 3", SC'11; constants from Random123's philox.h.
"""
from fractions import Fraction as _Fraction
from math import factorial as _factorial

import numpy as np

M0 = 0xD2511F53
M1 = 0xCD9E8D57
W0 = 0x9E3779B9
W1 = 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def philox4x32(ctr, key, rounds=10):
    """Philox4x32-R of each row: ctr (..., 4) and key (..., 2) -> uint32 (..., 4)."""
    ctr = np.asarray(ctr, dtype=np.uint64)
    key = np.asarray(key, dtype=np.uint64)
    c0, c1, c2, c3 = (ctr[..., j] & _MASK32 for j in range(4))
    k0, k1 = key[..., 0] & _MASK32, key[..., 1] & _MASK32
    for r in range(rounds):
        if r > 0:
            k0 = (k0 + np.uint64(W0)) & _MASK32
            k1 = (k1 + np.uint64(W1)) & _MASK32
        p0 = np.uint64(M0) * c0
        p1 = np.uint64(M1) * c2
        c0, c1, c2, c3 = ((p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32)
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def threshold(p):
    """The keep threshold T = min(floor((1 - p) * 2**32), 2**32), clamped at 0."""
    t = np.floor((1.0 - float(p)) * 4294967296.0)
    return int(min(max(t, 0.0), 4294967296.0))


def draws(n, seed, block0, stream):
    """The first n 16-bit draws of `stream` starting at block block0 (uint64 array)."""
    nblocks = (n + 7) // 8
    # 96-bit block indices block0 + j (mod 2**96): the low 64 bits wrap in uint64
    # arithmetic and the top word takes the carry.
    lo0 = block0 % 2**64
    lo = np.uint64(lo0) + np.arange(nblocks, dtype=np.uint64)
    hi = ((block0 >> 64) + (lo < np.uint64(lo0)).astype(np.uint64)) & _MASK32
    ctr = np.stack([lo & _MASK32, lo >> _SHIFT32, hi,
                    np.full(nblocks, stream, dtype=np.uint64)], axis=-1)
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint64)
    w = philox4x32(ctr, np.broadcast_to(key, (nblocks, 2))).astype(np.uint64)
    halves = np.stack([w & np.uint64(0xFFFF), w >> np.uint64(16)], axis=-1)  # (blocks, 4, 2)
    return halves.reshape(-1)[:n]


def uniform32(n, seed, block0):
    """U = A << 16 | B for the first n elements (uint64), A from stream 0, B from stream 1."""
    return (draws(n, seed, block0, 0) << np.uint64(16)) | draws(n, seed, block0, 1)


def mask_bool(n, seed, block0, p):
    """keep(i) = U(i) < T for i in [0, n)."""
    return uniform32(n, seed, block0) < np.uint64(threshold(p))


def tie_count(n, seed, block0, p):
    """How many of the first n elements have A == T >> 16: the ties that stream 1
    resolves when T & 0xFFFF != 0."""
    return int(np.count_nonzero(draws(n, seed, block0, 0) == np.uint64(threshold(p) >> 16)))


def scale_of(p, dtype):
    """1 / (1 - p) rounded once to dtype (inf for p == 1, where nothing is kept)."""
    return np.dtype(dtype).type(np.inf if p == 1 else 1.0 / (1.0 - p))


def apply_mask(x, keep, p):
    """keep ? x * scale : +0.0 in x's dtype, with scale = scale_of(p, x.dtype)."""
    x = np.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.where(keep, x * scale_of(p, x.dtype), x.dtype.type(0))
    return y.astype(x.dtype, copy=False)


def dropout(x, seed, block0, p):
    """(y, keep): y = keep ? x * scale : +0.0 in x's dtype, keep over the flat C-order index."""
    x = np.asarray(x)
    keep = mask_bool(x.size, seed, block0, p).reshape(x.shape)
    return apply_mask(x, keep, p), keep


def packbits(keep):
    """Packed mask bytes: bit i % 8 of byte i // 8."""
    return np.packbits(np.asarray(keep, dtype=bool).reshape(-1), bitorder="little")


# --------------------------------------------------------------------------- Gaussian dropout
# Written from the Gaussian-dropout contract in src_c/dropout_fast.h and the
# transform spelled out at the top of src_c/df_kernels_gaussian.c: element i
# of a call at block offset block0 takes w1 = word h % 4 of stream 2 + h // 4
# and w2 = word h % 4 of stream 4 + h // 4 of block block0 + i // 8 (h = i % 8),
# then Box-Muller with the log and cos(2 pi u) as fixed IEEE double operations.
# Every step below is a numpy ufunc on float64 arrays (correctly rounded add,
# multiply, divide, sqrt; exact frexp and power-of-two scaling), in the order
# of the specification. The series coefficients are derived here from exact
# fractions, not copied.
_GLOG = [float(_Fraction(1, 2 * k + 1)) for k in range(8, 0, -1)]                  # 1/17 .. 1/3
_GSIN = [float(_Fraction((-1) ** k, _factorial(2 * k + 1))) for k in range(7, 0, -1)]
_GCOS = [float(_Fraction((-1) ** k, _factorial(2 * k))) for k in range(8, 0, -1)]
_GLN2 = float.fromhex("0x1.62e42fefa39efp-1")
_GTWO_PI = float.fromhex("0x1.921fb54442d18p+2")
_GSQRT_HALF = float.fromhex("0x1.6a09e667f3bcdp-1")


def blocks(n, seed, block0, stream):
    """The four 32-bit words of blocks block0 .. block0 + ceil(n/8) - 1 of `stream`,
    shape (ceil(n/8), 4) as uint64."""
    nblocks = (n + 7) // 8
    lo0 = block0 % 2**64
    lo = np.uint64(lo0) + np.arange(nblocks, dtype=np.uint64)
    hi = ((block0 >> 64) + (lo < np.uint64(lo0)).astype(np.uint64)) & _MASK32
    ctr = np.stack([lo & _MASK32, lo >> _SHIFT32, hi,
                    np.full(nblocks, stream, dtype=np.uint64)], axis=-1)
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint64)
    return philox4x32(ctr, np.broadcast_to(key, (nblocks, 2))).astype(np.uint64)


def gaussian_words(n, seed, block0):
    """(w1, w2) of the first n elements: streams 2|3 and 4|5, h // 4 picking the stream."""
    w1 = np.concatenate([blocks(n, seed, block0, 2), blocks(n, seed, block0, 3)], axis=1)
    w2 = np.concatenate([blocks(n, seed, block0, 4), blocks(n, seed, block0, 5)], axis=1)
    return w1.reshape(-1)[:n], w2.reshape(-1)[:n]


def gaussian_log(w1):
    """log((w1 + 0.5) / 2**32) for uint32 words, in float64."""
    u = (np.asarray(w1, dtype=np.uint64).astype(np.float64) + 0.5) * 2.0 ** -32
    f, e = np.frexp(u)  # u = f * 2**e, f in [0.5, 1)
    small = f < _GSQRT_HALF
    m = np.where(small, f + f, f)
    k = np.where(small, e - 1, e).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = np.full_like(s, _GLOG[0])
    for c in _GLOG[1:]:
        p = p * s2 + c
    p = p * s2 + 1.0
    return k * _GLN2 + (2.0 * s) * p


def gaussian_cos2pi(w2):
    """cos(2 pi w2 / 2**32) for uint32 words, in float64."""
    w = np.asarray(w2, dtype=np.uint64)
    q = (w + np.uint64(1 << 29)) >> np.uint64(30)  # nearest quarter turn, 0..4
    t = ((w.astype(np.float64) - (q << np.uint64(30)).astype(np.float64)) * 2.0 ** -32) * _GTWO_PI
    t2 = t * t
    sp = np.full_like(t, _GSIN[0])
    for c in _GSIN[1:]:
        sp = sp * t2 + c
    sn = t + (t * t2) * sp
    cp = np.full_like(t, _GCOS[0])
    for c in _GCOS[1:]:
        cp = cp * t2 + c
    cs = 1.0 + t2 * cp
    q = (q & np.uint64(3)).astype(np.int64)
    return np.choose(q, [cs, -sn, -cs, sn])


def gaussian_z(n, seed, block0):
    """The standard normal deviates z of the first n elements (float64)."""
    w1, w2 = gaussian_words(n, seed, block0)
    return np.sqrt(-2.0 * gaussian_log(w1)) * gaussian_cos2pi(w2)


def gaussian_sigma(p):
    """sigma = sqrt(p / (1 - p)) in double, for p in [0, 1)."""
    return float(np.sqrt(p / (1.0 - p)))


def gaussian_multiplier(n, seed, block0, p, dtype):
    """The multipliers 1 + sigma * z of the first n elements, rounded once to dtype."""
    mult = 1.0 + gaussian_sigma(p) * gaussian_z(n, seed, block0)
    return mult.astype(dtype)


def gaussian_dropout(x, seed, block0, p):
    """y = x * mult in x's dtype, mult over x's flat C-order index."""
    x = np.asarray(x)
    mult = gaussian_multiplier(x.size, seed, block0, p, x.dtype).reshape(x.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        return (x * mult).astype(x.dtype, copy=False)


# --------------------------------------------------------------------------- bias + dropout + residual
# From the contract in src_c/dropout_fast.h (df_bias_dropout_add_*): with j = i % C,
# v = x + bias[j] rounded to the dtype, y = residual + (keep ? v * scale : +0.0);
# backward dx = keep ? dy * scale : +0.0 and dbias[j] the rows of dx added in
# double in row order, starting from 0.0, then rounded to the dtype.
def bias_dropout_add(x, bias, residual, seed, block0, p):
    """(y, keep) of the fused forward; keep over x's flat C-order index."""
    x = np.asarray(x)
    t = x.dtype.type
    keep = mask_bool(x.size, seed, block0, p).reshape(x.shape)
    v = x if bias is None else np.add(x, np.asarray(bias), dtype=x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        term = np.where(keep, v * scale_of(p, x.dtype), t(0)).astype(x.dtype)
        y = np.add(np.asarray(residual), term, dtype=x.dtype)
    return y, keep


def bias_dropout_add_grads(dy, keep, p):
    """(dx, dbias) of the fused op for a mask `keep`; dbias summed row by row in double."""
    dy = np.asarray(dy)
    with np.errstate(over="ignore", invalid="ignore"):
        dx = np.where(keep, dy * scale_of(p, dy.dtype), dy.dtype.type(0)).astype(dy.dtype)
    width = dy.shape[-1] if dy.ndim else 1
    acc = np.zeros(width, np.float64)
    for row in dx.reshape(-1, width):
        acc = acc + row.astype(np.float64)
    return dx, acc.astype(dy.dtype)


# --------------------------------------------------------------------------- Monte Carlo statistics
def welford(samples):
    """(mean, m2) of samples stacked on axis 0, updated one sample at a time in double:
    d = s - mean; mean = mean + d / t; m2 = m2 + d * (s - mean), t = 1, 2, ..."""
    samples = np.asarray(samples)
    mean = np.zeros(samples.shape[1:], np.float64)
    m2 = np.zeros(samples.shape[1:], np.float64)
    for t, s in enumerate(samples, start=1):
        s = s.astype(np.float64)
        d = s - mean
        mean = mean + d / float(t)
        m2 = m2 + d * (s - mean)
    return mean, m2


def entropy(p):
    """-sum p log p over the last axis, in float64, with 0 log 0 taken as 0."""
    p = np.asarray(p, dtype=np.float64)
    terms = [np.where(q > 0, -q * np.log(np.where(q > 0, q, 1.0)), 0.0)
             for q in np.moveaxis(p, -1, 0)]
    return np.sum(terms, axis=0) if terms else np.zeros(p.shape[:-1])


# --------------------------------------------------------------------------- attention dropout
# Written from the df_softmax_dropout_* contract in src_c/dropout_fast.h: per row
# of the last axis, s' = masked scores, m = max of the non-NaN s' (0 if -inf),
# e = exp(s' - m) by Cody-Waite reduction and a Taylor polynomial in the dtype,
# Z = the W-lane sum with its halving tree, P = e * (Z == 0 ? 0 : 1 / Z),
# y = keep ? P * scale : 0; backward ds = P * (dP - lane sum of P * dP). Causal
# rows stop at key i (top-left). Each step is one numpy ufunc over whole arrays
# in the dtype (correctly rounded, no FMA); the constants are derived here
# from ln 2 to 50 digits and exact factorials, not copied.
import decimal as _decimal

_decimal.getcontext().prec = 50
_LN2 = _Fraction(_decimal.Decimal(2).ln())
_SM_LANES = {np.dtype(np.float32): 32, np.dtype(np.float64): 16}


def _sm_constants(dtype):
    """(xmin, log2e, magic, ln2_hi, ln2_lo, Horner coefficients) of the kernels' exp:
    ln2_hi is ln 2 to 9 significant bits (rounded) for float, 32 (truncated) for
    double, so n * ln2_hi is exact; the polynomial is Taylor's to degree 7 / 13."""
    t = np.dtype(dtype).type
    if t is np.float32:
        hi, xmin, degree, magic = _Fraction(round(_LN2 * 2**9), 2**9), -87.0, 7, 1.5 * 2**23
    else:
        hi, xmin, degree, magic = _Fraction(int(_LN2 * 2**32), 2**32), -708.0, 13, 1.5 * 2**52
    coef = [t(float(_Fraction(1, _factorial(k)))) for k in range(degree, 1, -1)] + [t(1), t(1)]
    return (t(xmin), t(float(1 / _LN2)), t(magic), t(float(hi)), t(float(_LN2 - hi)), coef)


def softmax_exp(x):
    """The kernels' exp of an array of x <= 0 (any x gives a defined value): 0 below
    xmin, NaN for NaN, else p(r) * 2**n with n = round(x log2 e)."""
    x = np.asarray(x)
    xmin, log2e, magic, hi, lo, coef = _sm_constants(x.dtype)
    ok = (x >= xmin)
    xv = np.where(ok, x, x.dtype.type(0))
    with np.errstate(all="ignore"):
        n = (xv * log2e + magic) - magic
        r = (xv - n * hi) - n * lo
        p = np.full_like(r, coef[0])
        for c in coef[1:]:
            p = p * r + c
        e = p * np.ldexp(x.dtype.type(1), n.astype(np.int64))
    return np.where(np.isnan(x), x, np.where(ok, e, x.dtype.type(0)))


def lane_sum(v):
    """Sum over the last axis in W lanes (lane l adds j = l, l + W, ... in order
    from +0), then acc[l] += acc[l + h] for h = W/2 .. 1."""
    v = np.asarray(v)
    w = _SM_LANES[v.dtype]
    k = -(-v.shape[-1] // w)
    pad = np.zeros(v.shape[:-1] + (k * w,), v.dtype)
    pad[..., :v.shape[-1]] = v
    acc = np.zeros(v.shape[:-1] + (w,), v.dtype)
    for q in range(k):
        acc = acc + pad[..., q * w:(q + 1) * w]
    while w > 1:
        w //= 2
        acc = acc[..., :w] + acc[..., w:2 * w]
    return acc[..., 0]


def _causal_cut(shape, is_causal):
    """True for keys past the causal cut: j > i, i the index along axis -2."""
    if not is_causal:
        return np.zeros(shape[-1:], bool)
    lq, lk = shape[-2], shape[-1]
    return np.arange(lk)[None, :] > np.arange(lq)[:, None]


def attention_softmax(s, attn_mask=None, is_causal=False):
    """P of the contract over the last axis of s (float32/float64, any shape)."""
    s = np.asarray(s)
    t = s.dtype.type
    if attn_mask is None:
        sm = s.copy()
    elif np.asarray(attn_mask).dtype == bool:
        sm = np.where(attn_mask, s, t(-np.inf))
    else:
        sm = s + np.asarray(attn_mask)
    sm = np.broadcast_to(sm, s.shape)
    cut = _causal_cut(s.shape, is_causal)
    sm = np.where(cut, t(-np.inf), sm)
    m = np.where(np.isnan(sm), t(-np.inf), sm).max(axis=-1, keepdims=True)
    m = np.where(m == t(-np.inf), t(0), m)
    with np.errstate(invalid="ignore"):
        e = softmax_exp(sm - m)
    z = lane_sum(e)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(z == t(0), t(0), t(1) / z)
        p = e * inv
    return np.where(cut, t(0), p)


def softmax_dropout(s, seed, block0, p, attn_mask=None, is_causal=False):
    """(y, P, keep): y = keep ? P * scale : +0, keep over the output's flat C-order index."""
    probs = attention_softmax(s, attn_mask, is_causal)
    keep = mask_bool(probs.size, seed, block0, p).reshape(probs.shape)
    return apply_mask(probs, keep, p), probs, keep


def softmax_dropout_backward(dy, probs, keep, p, is_causal=False):
    """ds = P * (dP - lane_sum(P * dP)), dP = keep ? dy * scale : 0; 0 past the causal cut."""
    dy = np.asarray(dy)
    t = dy.dtype.type
    cut = _causal_cut(dy.shape, is_causal)
    dp = apply_mask(dy, keep, p)
    dot = lane_sum(np.where(cut, t(0), probs * dp))[..., None]
    return np.where(cut, t(0), probs * (dp - dot))
