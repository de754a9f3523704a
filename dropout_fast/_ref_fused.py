"""Numba kernels of the fused fusions, re-exported by reference.py.

Bias + dropout + residual and the Welford accumulator of Monte Carlo dropout,
with the signatures of the C wrappers in _fused.pxi and the contracts of
src_c/dropout_fast.h, bit for bit:

- forward: ``y[i] = residual[i] + (keep(i) ? (x[i] + bias[i % c]) * scale : +0)``,
  each operation rounded in the array's dtype (no fastmath: LLVM neither
  contracts nor reorders), keep(i) from the stream contract (drawn by
  reference.mask, then applied);
- backward: ``dx[i] = keep(i) ? dy[i] * scale : +0`` and ``dbias[j]`` the sum in
  double of ``dx[r * c + j]`` over rows r in row order, starting from 0.0;
- Welford: ``t = count + s + 1; d = x - mean; mean = mean + d / t;
  m2 = m2 + d * (x - mean)`` per sample s in order, in double.

nthreads and isa are accepted and ignored, as in reference.py: results never
depend on them.
"""
import numba as nb
import numpy as np
from numba import prange

__all__ = ["bias_dropout_add_fwd", "bias_dropout_add_bwd", "welford_update", "welford_var"]

_ONE = np.uint64(1)
_THREE = np.uint64(3)
_SEVEN = np.uint64(7)
# Columns per prange iteration of the bias-gradient sum (each sums its rows in order).
_COLS = 256


@nb.njit(inline="always")
def _keep(bits, i):
    return (np.uint64(bits[i >> _THREE]) >> (i & _SEVEN)) & _ONE


@nb.njit(parallel=True, cache=True)
def _bda_fwd_kernel(x, bias, has_bias, r, y, bits, c, scale, zero):
    n = np.uint64(x.shape[0])
    for i in prange(n):
        v = x[i] + bias[i % c] if has_bias else x[i]
        y[i] = r[i] + (v * scale if _keep(bits, i) else zero)


@nb.njit(parallel=True, cache=True)
def _bda_bwd_kernel(dy, dx, bits, scale, zero):
    n = np.uint64(dy.shape[0])
    for i in prange(n):
        dx[i] = dy[i] * scale if _keep(bits, i) else zero


@nb.njit(parallel=True, cache=True)
def _column_sums(dx, dbias, c):
    """dbias[j] = ((0.0 + dx[j]) + dx[c + j]) + ... in double, rows in order."""
    rows = dx.shape[0] // c
    for jb in prange((c + _COLS - 1) // _COLS):
        j0 = jb * _COLS
        j1 = min(j0 + _COLS, c)
        for j in range(j0, j1):
            dbias[j] = 0.0
        for r in range(rows):
            for j in range(j0, j1):
                dbias[j] = dbias[j] + np.float64(dx[r * c + j])


@nb.njit(parallel=True, cache=True)
def _welford_kernel(x, k, mean, m2, count):
    length = mean.shape[0]
    for i in prange(length):
        mu = mean[i]
        q = m2[i]
        for s in range(k):
            t = np.float64(count + s + 1)
            xi = np.float64(x[s * length + i])
            d = xi - mu
            mu = mu + d / t
            q = q + d * (xi - mu)
        mean[i] = mu
        m2[i] = q


def _flat(a, n, name, dtypes):
    """a as a 1-D view of at least n items (Numba does not check indices)."""
    if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or a.size < n:
        raise ValueError(f"{name}: expected a C-contiguous array of at least {n} items")
    if a.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype {' or '.join(map(str, dtypes))}, not {a.dtype}")
    return a.reshape(-1)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_F64 = (np.dtype(np.float64),)
_U8 = (np.dtype(np.uint8),)


def _mask_bits(n, key0, key1, block_lo, block_hi, thresh):
    from dropout_fast import reference  # late: reference imports this module
    bits = np.empty((n + 7) // 8, np.uint8)
    reference.mask(bits, n, key0, key1, block_lo, block_hi, thresh)
    return bits


def bias_dropout_add_fwd(x, bias, residual, y, bits, key0, key1, block_lo, block_hi, thresh,
                         scale, nthreads=0, isa=-1):
    """y = residual + (keep ? (x + bias[i % C]) * scale : +0.0) over 1-D buffers, C =
    bias.size (bias may be None); bits (may be None) receives the mask; y may be x
    or residual. scale is rounded once to x's dtype."""
    x = _flat(x, 0, "x", _FLOATS)
    n = x.size
    residual = _flat(residual, n, "residual", (x.dtype,))
    y = _flat(y, n, "y", (x.dtype,))
    if bias is None:
        b, c = np.zeros(1, x.dtype), 1
    else:
        b = _flat(bias, 0, "bias", (x.dtype,))
        c = b.size
        if c < 1 or n % c:
            raise ValueError(f"bias: {c} entries do not divide the {n} elements of x")
    drawn = _mask_bits(n, key0, key1, block_lo, block_hi, thresh)
    if bits is not None:
        _flat(bits, (n + 7) // 8, "bits", _U8)[:drawn.size] = drawn
    t = x.dtype.type
    if n:
        _bda_fwd_kernel(x[:n], b, bias is not None, residual[:n], y[:n], drawn, np.uint64(c),
                        t(scale), t(0))


def bias_dropout_add_bwd(dy, dx, dbias, bits, c, key0, key1, block_lo, block_hi, thresh, scale,
                         nthreads=0, isa=-1):
    """dx = keep ? dy * scale : +0.0 (keep from bits, or regenerated when bits is None);
    dbias (float64 of c entries, or None) = dx summed over rows in row order."""
    dy = _flat(dy, 0, "dy", _FLOATS)
    n = dy.size
    dx = _flat(dx, n, "dx", (dy.dtype,))
    if dbias is not None:
        if c < 1 or n % c:
            raise ValueError(f"c: {c} does not divide the {n} elements of dy")
        dbias = _flat(dbias, c, "dbias", _F64)
    if bits is None:
        bits = _mask_bits(n, key0, key1, block_lo, block_hi, thresh)
    bits = _flat(bits, (n + 7) // 8, "bits", _U8)
    t = dy.dtype.type
    if n:
        _bda_bwd_kernel(dy[:n], dx[:n], bits, t(scale), t(0))
    if dbias is not None:
        if n:
            _column_sums(dx[:n], dbias[:c], np.int64(c))
        else:
            dbias[:c] = 0.0


def welford_update(x, mean, m2, count, nthreads=0, isa=-1):
    """Add the k = x.size // mean.size samples held one after another in x to the
    running float64 mean and m2 of `count` samples (Welford), in place."""
    if count < 0:
        raise ValueError(f"count: expected a non-negative integer, got {count}")
    mean = _flat(mean, 0, "mean", _F64)
    m2 = _flat(m2, mean.size, "m2", _F64)
    x = _flat(x, 0, "x", _FLOATS)
    length = mean.size
    if (length == 0 and x.size) or (length and x.size % length):
        raise ValueError(f"x: {x.size} elements are not whole samples of {length}")
    if length and x.size:
        _welford_kernel(x, np.int64(x.size // length), mean, m2[:length], np.int64(count))


def welford_var(m2, var, count, ddof, nthreads=0, isa=-1):
    """var = m2 / (count - ddof) over float64 buffers; var may be m2."""
    if ddof < 0 or count - ddof < 1:
        raise ValueError(f"ddof: needs 0 <= ddof < count = {count}, got {ddof}")
    m2 = _flat(m2, 0, "m2", _F64)
    var = _flat(var, m2.size, "var", _F64)
    np.divide(m2, np.float64(count - ddof), out=var[:m2.size])
