"""The Numba backend of dropout_fast, bit-exact with the C library.

A second implementation of the stream contract in src_c/dropout_fast.h,
following the scalar C specification (src_c/df_philox.h and
src_c/df_kernels_scalar.c) step for step, so that masks and outputs agree
with every C instruction set bit for bit:

- Philox4x32-10 (Salmon et al., SC'11) on counter (block lo, block lo >> 32,
  block hi, stream) and key (seed & 0xFFFFFFFF, seed >> 32); the 96-bit block
  index of element i is block0 + i // 8 with the carry from lo into hi.
- keep(i) = A < T >> 16, or A == T >> 16 and B < T & 0xFFFF, with A and B the
  16-bit draws of streams 0 and 1; stream 1 is computed only for such a tie,
  and only when T & 0xFFFF != 0 (df_keep_byte).
- Kept y = x * scale in the array dtype, dropped y = +0.0; no fastmath, so
  LLVM neither contracts nor reorders the multiply.

The kernel functions (`philox4x32`, `mask`, `fwd`, `bwd_bits`) take the
arguments the Python API layer passes to the C extension, refuse buffers that
would let a kernel index out of bounds (Numba does not check), and normalise
the scalars to fixed types (uint64 words, scale in the array's dtype) so each
kernel compiles once per dtype. `prange` runs over chunks of 512 whole blocks
(8 elements, one mask byte each), so no two threads write the same byte and
the split never changes a bit. Inside a chunk, the stream-0 loop is branch-free
so LLVM vectorises Philox across blocks; the rare ties are resolved afterwards.
Hot loops index with np.uint64: Numba adds negative-index handling for signed
indices, which blocks vectorisation and costs 3-5x. Word arithmetic is held in
np.uint64 with explicit masks, since Numba promotes uint32 operands to 64 bits
and mixing signed with unsigned integers gives float64.

Nothing compiles at import: the njit functions are lazy and compile on first
call, with the machine code cached on disk (cache=True).
"""
import sys

import numba as nb
import numpy as np
from numba import prange

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_LO32 = np.uint64(0xFFFFFFFF)
_LO16 = np.uint64(0xFFFF)
_S16 = np.uint64(16)
_S32 = np.uint64(32)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)


@nb.njit(inline="always")
def _philox(c0, c1, c2, c3, k0, k1, rounds):
    """Philox4x32-R on 32-bit words held in uint64; the key is bumped by the
    Weyl constants before every round after the first (Random123 philox.h)."""
    for r in range(rounds):
        if r > 0:
            k0 = (k0 + _W0) & _LO32
            k1 = (k1 + _W1) & _LO32
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _LO32, (p0 >> _S32) ^ c3 ^ k1, p0 & _LO32
    return c0, c1, c2, c3


@nb.njit(inline="always")
def _lt(a, t):
    """1 if a < t else 0, for a, t < 2**63, without a branch."""
    return (a - t) >> np.uint64(63)


@nb.njit(inline="always")
def _halves(w0, w1, w2, w3):
    """A block's eight 16-bit halves in stream order."""
    return (w0 & _LO16, w0 >> _S16, w1 & _LO16, w1 >> _S16,
            w2 & _LO16, w2 >> _S16, w3 & _LO16, w3 >> _S16)


@nb.njit(inline="always")
def _block(lo0, hi0, j, stream, k0, k1):
    """Halves of block block0 + j of `stream`: the 96-bit index carries from lo into hi."""
    lo = lo0 + j
    hi = (hi0 + np.uint64(lo < lo0)) & _LO32
    w0, w1, w2, w3 = _philox(lo & _LO32, lo >> _S32, hi, stream, k0, k1, 10)
    return _halves(w0, w1, w2, w3)


@nb.njit(inline="always")
def _keep_tie(lo0, hi0, j, k0, k1, thi):
    """Bits 0-7: A < T >> 16 for the 8 elements of block j; bits 8-15: A == T >> 16."""
    a = _block(lo0, hi0, j, _ZERO, k0, k1)
    r = _ZERO
    for h in range(8):
        r |= _lt(a[h], thi) << np.uint64(h)
        r |= np.uint64(a[h] == thi) << np.uint64(h + 8)
    return r


@nb.njit(inline="always")
def _chunk_keep(kt, j0, j1, lo0, hi0, k0, k1, thi, tlo):
    """kt[j - j0] = keep bits of block j for j in [j0, j1) (df_keep_byte in df_philox.h).

    The stream-0 loop has no branch, so LLVM vectorises Philox across blocks;
    ties (probability 2**-16 per element) are resolved from stream 1 afterwards,
    only if some block of the chunk has one and T & 0xFFFF != 0."""
    ties = _ZERO
    for j in range(j0, j1):
        r = _keep_tie(lo0, hi0, j, k0, k1, thi)
        kt[j - j0] = np.uint16(r)
        ties |= r
    if ties >> np.uint64(8) != _ZERO and tlo != _ZERO:
        for j in range(j0, j1):
            r = np.uint64(kt[j - j0])
            if r >> np.uint64(8) != _ZERO:
                b = _block(lo0, hi0, j, _ONE, k0, k1)
                for h in range(8):
                    if (r >> np.uint64(h + 8)) & _ONE:
                        r |= _lt(b[h], tlo) << np.uint64(h)
                kt[j - j0] = np.uint16(r)


# Blocks per prange iteration: 4096 elements, whose x and y stay in L1/L2.
_CHUNK = np.uint64(512)


@nb.njit(inline="always")
def _chunk_range(c, nblocks):
    j0 = c * _CHUNK
    return j0, min(j0 + _CHUNK, nblocks)


@nb.njit(inline="always")
def _store_bits(bits, kt, j0, j1, n):
    """bits[j] = keep byte of block j, the bits past element n - 1 cleared."""
    for j in range(j0, j1):
        bits[j] = np.uint8(kt[j - j0])
    if (j1 << np.uint64(3)) > n:
        bits[j1 - _ONE] &= np.uint8((_ONE << (n & np.uint64(7))) - _ONE)


@nb.njit(parallel=True, cache=True)
def _philox_kernel(ctr, key, out, rounds):
    for j in prange(ctr.shape[0]):
        u = np.uint64(j)
        c0, c1, c2, c3 = _philox(np.uint64(ctr[u, 0]), np.uint64(ctr[u, 1]),
                                 np.uint64(ctr[u, 2]), np.uint64(ctr[u, 3]),
                                 np.uint64(key[u, 0]), np.uint64(key[u, 1]), rounds)
        out[u, 0] = np.uint32(c0)
        out[u, 1] = np.uint32(c1)
        out[u, 2] = np.uint32(c2)
        out[u, 3] = np.uint32(c3)


@nb.njit(parallel=True, cache=True)
def _mask_kernel(bits, n, k0, k1, lo0, hi0, thi, tlo):
    nblocks = (n + np.uint64(7)) >> np.uint64(3)
    for cc in prange((nblocks + _CHUNK - _ONE) // _CHUNK):
        j0, j1 = _chunk_range(np.uint64(cc), nblocks)
        # Numba hoists this allocation out of the loop into each thread's share
        # of it (see parallel_diagnostics): one scratch buffer per thread.
        kt = np.empty(_CHUNK, dtype=np.uint16)
        _chunk_keep(kt, j0, j1, lo0, hi0, k0, k1, thi, tlo)
        _store_bits(bits, kt, j0, j1, n)


@nb.njit(parallel=True, cache=True)
def _fwd_kernel(x, y, bits, want_bits, k0, k1, lo0, hi0, thi, tlo, scale, zero):
    n = np.uint64(x.shape[0])
    nblocks = (n + np.uint64(7)) >> np.uint64(3)
    for cc in prange((nblocks + _CHUNK - _ONE) // _CHUNK):
        j0, j1 = _chunk_range(np.uint64(cc), nblocks)
        kt = np.empty(_CHUNK, dtype=np.uint16)
        _chunk_keep(kt, j0, j1, lo0, hi0, k0, k1, thi, tlo)
        i0 = j0 << np.uint64(3)
        for i in range(i0, min(j1 << np.uint64(3), n)):
            keep = (np.uint64(kt[(i - i0) >> np.uint64(3)]) >> (i & np.uint64(7))) & _ONE
            y[i] = x[i] * scale if keep else zero
        if want_bits:
            _store_bits(bits, kt, j0, j1, n)


@nb.njit(parallel=True, cache=True)
def _bwd_kernel(dy, dx, bits, scale, zero):
    n = np.uint64(dy.shape[0])
    nblocks = (n + np.uint64(7)) >> np.uint64(3)
    for cc in prange((nblocks + _CHUNK - _ONE) // _CHUNK):
        j0, j1 = _chunk_range(np.uint64(cc), nblocks)
        for i in range(j0 << np.uint64(3), min(j1 << np.uint64(3), n)):
            keep = (np.uint64(bits[i >> np.uint64(3)]) >> (i & np.uint64(7))) & _ONE
            dx[i] = dy[i] * scale if keep else zero


@nb.njit(parallel=True, cache=True)
def _bcast_kernel(x, y, bits, midx, a, b, c):
    """y[i] = bit midx[i] ? a * x[i] + b : c (midx: each element's mask index)."""
    for i in prange(np.uint64(x.shape[0])):
        m = np.uint64(midx[i])
        if (np.uint64(bits[m >> np.uint64(3)]) >> (m & np.uint64(7))) & _ONE:
            y[i] = a * x[i] + b
        else:
            y[i] = c


def _buf(a, n, name, dtypes):
    """a as a 1-D view of at least n items, refusing what would let a kernel
    touch memory out of bounds (Numba does not check indices)."""
    if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or a.size < n:
        raise ValueError(f"{name}: expected a C-contiguous array of at least {n} items")
    if a.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype {' or '.join(map(str, dtypes))}, not {a.dtype}")
    return a.reshape(-1)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_U8 = (np.dtype(np.uint8),)
_U32 = (np.dtype(np.uint32),)


def _stream_args(n, key0, key1, block_lo, block_hi, thresh):
    """Key, block offset and threshold words as the fixed types the kernels take."""
    n, block_lo, block_hi, thresh = int(n), int(block_lo), int(block_hi), int(thresh)
    if not 0 <= thresh <= 2**32:
        raise ValueError(f"thresh: {thresh} is outside [0, 2**32]")
    if (block_hi << 64 | block_lo) + (n + 7) // 8 > 2**96:
        raise ValueError("block0: the call's counter range passes 2**96 blocks")
    return (np.uint64(key0 & 0xFFFFFFFF), np.uint64(key1 & 0xFFFFFFFF), np.uint64(block_lo),
            np.uint64(block_hi), np.uint64(thresh >> 16), np.uint64(thresh & 0xFFFF))


def philox4x32(ctr, key, out, rounds):
    """out[j] = Philox4x32-rounds(ctr[j], key[j]) on uint32 arrays (n, 4), (n, 2), (n, 4)."""
    if not 0 <= rounds <= 16:
        raise ValueError(f"rounds: {rounds} is outside [0, 16]")
    n = out.size // 4
    ctr = _buf(ctr, 4 * n, "ctr", _U32)[:4 * n].reshape(n, 4)
    key = _buf(key, 2 * n, "key", _U32)[:2 * n].reshape(n, 2)
    _philox_kernel(ctr, key, _buf(out, 4 * n, "out", _U32)[:4 * n].reshape(n, 4), np.int64(rounds))


def mask(bits, n, key0, key1, block_lo, block_hi, thresh, nthreads=0, isa=-1):
    """bits[i // 8] bit i % 8 = keep(i) for i in [0, n); unused high bits are 0.

    nthreads and isa are options of the C backend, accepted and ignored: the
    Numba backend uses numba's thread pool, and results never depend on it."""
    bits = _buf(bits, (n + 7) // 8, "bits", _U8)
    _mask_kernel(bits, np.uint64(n), *_stream_args(n, key0, key1, block_lo, block_hi, thresh))


def fwd(x, y, bits, key0, key1, block_lo, block_hi, thresh, scale, nthreads=0, isa=-1):
    """y[i] = keep(i) ? x[i] * scale : +0.0, and bits (unless None) as in `mask`.

    x, y: float32 or float64, the same dtype; y may be x. scale is rounded once
    to that dtype."""
    x = _buf(x, 0, "x", _FLOATS)
    n = x.size
    y = _buf(y, n, "y", (x.dtype,))
    want_bits = bits is not None
    bits = _buf(bits, (n + 7) // 8, "bits", _U8) if want_bits else np.empty(0, dtype=np.uint8)
    t = x.dtype.type
    _fwd_kernel(x, y, bits, want_bits,
                *_stream_args(n, key0, key1, block_lo, block_hi, thresh), t(scale), t(0))


def bwd_bits(dy, dx, bits, scale, nthreads=0, isa=-1):
    """dx[i] = bit i of bits ? dy[i] * scale : +0.0; dx may be dy. scale is
    rounded once to dy's dtype."""
    dy = _buf(dy, 0, "dy", _FLOATS)
    n = dy.size
    dx = _buf(dx, n, "dx", (dy.dtype,))
    bits = _buf(bits, (n + 7) // 8, "bits", _U8)
    t = dy.dtype.type
    _bwd_kernel(dy, dx, bits, t(scale), t(0))



def bcast_apply(x, y, bits, shape, noise_shape, a, b, c, nthreads=0, isa=-1):
    """y = keep ? a * x + b : c over C-contiguous x, y of `shape`, with keep
    broadcast from the bits of `noise_shape` (each entry shape[d] or 1).

    Unlike the C kernel it materialises each element's mask index (numpy
    broadcasting of an arange over noise_shape): simple rather than lean."""
    shape, noise_shape = tuple(int(d) for d in shape), tuple(int(d) for d in noise_shape)
    if len(shape) != len(noise_shape) or any(m not in (d, 1) for d, m in zip(shape, noise_shape)):
        raise ValueError(f"noise_shape: {noise_shape} does not broadcast to {shape}")
    x = _buf(x, 0, "x", _FLOATS)
    n = x.size
    y = _buf(y, n, "y", (x.dtype,))
    m = int(np.prod(noise_shape, dtype=np.int64))
    bits = _buf(bits, (m + 7) // 8, "bits", _U8)
    midx = np.broadcast_to(np.arange(m, dtype=np.uint64).reshape(noise_shape), shape).reshape(-1)
    t = x.dtype.type
    # Signed zeros as the C contract: b == 0 is -0.0 (a * x + b == a * x), c == 0 is +0.0.
    b = t(-0.0) if b == 0 else t(b)
    c = t(0.0) if c == 0 else t(c)
    _bcast_kernel(x[:n], y[:n], bits, np.ascontiguousarray(midx), t(a), b, c)


# Gaussian dropout: y = x * (1 + sigma * z), z from Box-Muller on Philox streams 2..5
# (src_c/df_kernels_gaussian.c is the specification). Element i uses block
# b = block0 + i // 8, h = i % 8: w1 = word h % 4 of stream 2 + h // 4, w2 = word
# h % 4 of stream 4 + h // 4. log and cos(2 pi u) are the same IEEE double
# operations in the same order as the C (no fastmath: nothing fused or reordered;
# math.frexp and math.sqrt are exact / correctly rounded everywhere).
import math  # noqa: E402  (kept with the only code that uses it)

_GLN2 = float.fromhex("0x1.62e42fefa39efp-1")
_GTWO_PI = float.fromhex("0x1.921fb54442d18p+2")
_GSQRT_HALF = float.fromhex("0x1.6a09e667f3bcdp-1")
_GLOG = tuple(float.fromhex(h) for h in (   # 1/17, 1/15, ..., 1/3
    "0x1.e1e1e1e1e1e1ep-5", "0x1.1111111111111p-4", "0x1.3b13b13b13b14p-4",
    "0x1.745d1745d1746p-4", "0x1.c71c71c71c71cp-4", "0x1.2492492492492p-3",
    "0x1.999999999999ap-3", "0x1.5555555555555p-2"))
_GSIN = tuple(float.fromhex(h) for h in (   # (-1)**k / (2k + 1)!, k = 7 .. 1
    "-0x1.ae7f3e733b81fp-41", "0x1.6124613a86d09p-33", "-0x1.ae64567f544e4p-26",
    "0x1.71de3a556c734p-19", "-0x1.a01a01a01a01ap-13", "0x1.1111111111111p-7",
    "-0x1.5555555555555p-3"))
_GCOS = tuple(float.fromhex(h) for h in (   # (-1)**k / (2k)!, k = 8 .. 1
    "0x1.ae7f3e733b81fp-45", "-0x1.93974a8c07c9dp-37", "0x1.1eed8eff8d898p-29",
    "-0x1.27e4fb7789f5cp-22", "0x1.a01a01a01a01ap-16", "-0x1.6c16c16c16c17p-10",
    "0x1.5555555555555p-5", "-0x1.0000000000000p-1"))


@nb.njit(inline="always")
def _gauss_log(w1):
    """log((w1 + 0.5) * 2**-32) for a 32-bit word held in uint64."""
    u = (np.float64(w1) + 0.5) * 2.0 ** -32
    f, e = math.frexp(u)  # u = f * 2**e, f in [0.5, 1): exact
    m, k = f, e
    if f < _GSQRT_HALF:
        m, k = f + f, e - 1
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = _GLOG[0]
    for c in _GLOG[1:]:
        p = p * s2 + c
    p = p * s2 + 1.0
    return np.float64(k) * _GLN2 + (2.0 * s) * p


@nb.njit(inline="always")
def _gauss_cos2pi(w2):
    """cos(2 pi w2 / 2**32) for a 32-bit word held in uint64."""
    q = (w2 + np.uint64(1 << 29)) >> np.uint64(30)  # nearest quarter turn, 0..4
    t = ((np.float64(w2) - np.float64(q << np.uint64(30))) * 2.0 ** -32) * _GTWO_PI
    t2 = t * t
    sp = _GSIN[0]
    for c in _GSIN[1:]:
        sp = sp * t2 + c
    sn = t + (t * t2) * sp
    cp = _GCOS[0]
    for c in _GCOS[1:]:
        cp = cp * t2 + c
    cs = 1.0 + t2 * cp
    q &= np.uint64(3)
    if q == _ZERO:
        return cs
    if q == _ONE:
        return -sn
    if q == np.uint64(2):
        return -cs
    return sn


@nb.njit(inline="always")
def _gauss_mult(w1, w2, sigma):
    """1 + sigma * z in double, z = sqrt(-2 ln u1) * cos(2 pi u2)."""
    r = math.sqrt(-2.0 * _gauss_log(w1))
    return 1.0 + sigma * (r * _gauss_cos2pi(w2))


@nb.njit(cache=True)
def _gauss_log_cos(w1, w2, out_log, out_cos):
    """The two transcendental steps over word arrays (for the accuracy tests)."""
    for i in range(w1.shape[0]):
        out_log[i] = _gauss_log(np.uint64(w1[i]))
        out_cos[i] = _gauss_cos2pi(np.uint64(w2[i]))


@nb.njit(parallel=True, cache=True)
def _gauss_kernel(x, y, k0, k1, lo0, hi0, sigma):
    n = np.uint64(x.shape[0])
    nblocks = (n + np.uint64(7)) >> np.uint64(3)
    for cc in prange((nblocks + _CHUNK - _ONE) // _CHUNK):
        j0, j1 = _chunk_range(np.uint64(cc), nblocks)
        # The multiplier rounded to x's dtype by the store, before the product
        # (x may be y, so it cannot go through y).
        mt = np.empty(8, dtype=x.dtype)
        for j in range(j0, j1):
            lo = lo0 + j
            hi = (hi0 + np.uint64(lo < lo0)) & _LO32
            c0, c1, c2 = lo & _LO32, lo >> _S32, hi
            a0, a1, a2, a3 = _philox(c0, c1, c2, np.uint64(2), k0, k1, 10)
            a4, a5, a6, a7 = _philox(c0, c1, c2, np.uint64(3), k0, k1, 10)
            b0, b1, b2, b3 = _philox(c0, c1, c2, np.uint64(4), k0, k1, 10)
            b4, b5, b6, b7 = _philox(c0, c1, c2, np.uint64(5), k0, k1, 10)
            w1 = (a0, a1, a2, a3, a4, a5, a6, a7)
            w2 = (b0, b1, b2, b3, b4, b5, b6, b7)
            i0 = j << np.uint64(3)
            m = min(n - i0, np.uint64(8))
            for h in range(m):
                mt[h] = _gauss_mult(w1[h], w2[h], sigma)
            for h in range(m):
                i = i0 + np.uint64(h)
                y[i] = x[i] * mt[h]


def gaussian_log_cos(w1, w2):
    """(log((w1 + 0.5) / 2**32), cos(2 pi w2 / 2**32)) of uint32 word arrays, as the
    Gaussian kernels compute them (float64; for accuracy tests)."""
    w1 = np.ascontiguousarray(w1, dtype=np.uint32).reshape(-1)
    w2 = np.ascontiguousarray(w2, dtype=np.uint32).reshape(-1)
    out_log, out_cos = np.empty(w1.size), np.empty(w2.size)
    _gauss_log_cos(w1, w2, out_log, out_cos)
    return out_log, out_cos


def gaussian_fwd(x, y, key0, key1, block_lo, block_hi, sigma, nthreads=0, isa=-1):
    """y[i] = x[i] * (1 + sigma * z(i)), the multiplier rounded once to x's dtype;
    y may be x. nthreads and isa are accepted and ignored (see `mask`)."""
    x = _buf(x, 0, "x", _FLOATS)
    n = x.size
    y = _buf(y, n, "y", (x.dtype,))
    sigma = float(sigma)
    if not 0.0 <= sigma <= sys.float_info.max:
        raise ValueError(f"sigma: expected a finite non-negative number, got {sigma}")
    k0, k1, lo, hi, _, _ = _stream_args(n, key0, key1, block_lo, block_hi, 0)
    _gauss_kernel(x, y[:n], k0, k1, lo, hi, np.float64(sigma))


def gaussian_dropout(x, p=0.5, *, training=True, rng=None, out=None):
    """`dropout_fast.gaussian_dropout` computed by the Numba kernels."""
    from dropout_fast import _gaussian
    return _gaussian.gaussian_dropout_impl(_this, x, p, training, rng, out)


# Kernel families kept in their own modules, with the same interface as _core.
from dropout_fast._ref_embedding import *  # noqa: E402,F401,F403
from dropout_fast._ref_fused import *  # noqa: E402,F401,F403
from dropout_fast._ref_softmax import *  # noqa: E402,F401,F403


# Public functions: the API of dropout_fast computed by these kernels (same masks,
# same outputs). api is imported late: it may be importing this module as its
# fallback backend.
def dropout(x, p=0.5, *, noise_shape=None, training=True, rng=None, out=None):
    """`dropout_fast.dropout` computed by the Numba kernels."""
    from dropout_fast import api
    return api.dropout_impl(_this, x, p, training, rng, out, "dropout",
                            {"noise_shape": noise_shape})


def dropout_forward(x, p=0.5, *, noise_shape=None, rng=None, out=None, mask="bits"):
    """`dropout_fast.dropout_forward` computed by the Numba kernels."""
    from dropout_fast import api
    return api.forward_impl(_this, x, p, rng, out, mask, "dropout", {"noise_shape": noise_shape})


def forward(variant, x, p=0.5, *, rng=None, out=None, mask="bits", **options):
    """`dropout_fast.forward` (any variant of the table) computed by the Numba kernels."""
    from dropout_fast import api
    if variant not in api.VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(api.VARIANTS)}, got {variant!r}")
    return api.forward_impl(_this, x, p, rng, out, mask, variant, options)


def dropout_backward(dy, m, *, out=None):
    """`dropout_fast.dropout_backward` (every variant) computed by the Numba kernels."""
    from dropout_fast import api
    return api.backward_impl(_this, dy, m, out)


backward = dropout_backward


def drop_block(x, p, block_size, **kw):
    """`dropout_fast.drop_block` computed by the Numba kernels (seeds and the apply pass)."""
    from dropout_fast import _dropblock
    return _dropblock.drop_block_impl(_this, x, p, block_size, **kw)


def softmax_dropout(scores, p, *, axis=-1, attn_mask=None, is_causal=False, rng=None,
                    training=True, out=None):
    """`dropout_fast.softmax_dropout` computed by the Numba kernels."""
    from dropout_fast import _softmax
    return _softmax.softmax_dropout_impl(_this, scores, p, axis, attn_mask, is_causal, rng,
                                         training, out)


def bias_dropout_add(x, bias, residual, p, *, rng=None, training=True, out=None):
    """`dropout_fast.bias_dropout_add` computed by the Numba kernels."""
    from dropout_fast import _fused
    return _fused.bias_dropout_add_impl(_this, x, bias, residual, p, training, rng, out)


def embedding_dropout_forward(weight, ids, p=0.1, *, rng=None, mask="bits"):
    """`dropout_fast.embedding_dropout_forward` computed by the Numba kernels."""
    from dropout_fast import _embedding
    return _embedding.forward_impl(_this, weight, ids, p, rng, mask)


def embedding_dropout_backward(dout, ids, m):
    """`dropout_fast.embedding_dropout_backward` computed by the Numba kernels."""
    from dropout_fast import _embedding
    return _embedding.backward_impl(_this, dout, ids, m)


_this = sys.modules[__name__]
