"""Numba kernels of embedding dropout, re-exported by reference.py.

The signatures of the C wrappers in _embedding.pxi and the contracts of
df_embedding_fwd/df_embedding_bwd in src_c/dropout_fast.h, bit for bit, written
the plain way (the C kernels bucket tokens by row first; this walks them once):

- forward: ``out[t] = keep(ids[t]) ? weight[ids[t]] * scale : +0``;
- backward: ``grad[r] = (((+0 + dout[t1]) + dout[t2]) + ...) * scale`` over the
  tokens t1 < t2 < ... of row r when r is kept and has one, else +0, each
  operation rounded in the array's dtype (no fastmath: LLVM neither contracts
  nor reorders); a NaN token value meeting a NaN sum gives the token's NaN.

An id outside [0, V) raises the ValueError the C wrappers raise, before
anything is written. nthreads and isa are accepted and ignored, as in
reference.py: results never depend on them.
"""
import numba as nb
import numpy as np
from numba import prange

__all__ = ["embedding_bwd", "embedding_fwd", "ids_in_range", "rows_viewable"]

_ONE = np.uint64(1)
_THREE = np.uint64(3)
_SEVEN = np.uint64(7)


@nb.njit(inline="always")
def _keep(bits, r):
    return (np.uint64(bits[r >> _THREE]) >> (r & _SEVEN)) & _ONE


@nb.njit(cache=True)
def _ids_ok(ids, vocab):
    for t in range(ids.shape[0]):
        if ids[t] < 0 or ids[t] >= vocab:
            return False
    return True


@nb.njit(parallel=True, cache=True)
def _fwd_kernel(weight, ids, bits, scale, out, zero):
    for t in prange(out.shape[0]):
        r = np.uint64(ids[t])
        if _keep(bits, r):
            for j in range(out.shape[1]):
                out[t, j] = weight[r, j] * scale
        else:
            for j in range(out.shape[1]):
                out[t, j] = zero


@nb.njit(cache=True)
def _bwd_kernel(dout, ids, bits, scale, grad, zero):
    vocab, dim = grad.shape
    used = np.zeros(vocab, np.bool_)
    for r in range(vocab):
        for j in range(dim):
            grad[r, j] = zero
    for t in range(ids.shape[0]):
        r = ids[t]
        if _keep(bits, np.uint64(r)):
            used[r] = True
            for j in range(dim):
                d = dout[t, j]
                # NaN meeting NaN: the token's NaN, quieted (the C contract's select).
                grad[r, j] = d + d if np.isnan(d) else d + grad[r, j]
    for r in range(vocab):
        if used[r]:
            for j in range(dim):
                grad[r, j] = grad[r, j] * scale


def ids_in_range(ids, vocab):
    """Whether every entry of the int64 vector `ids` lies in [0, vocab)."""
    return bool(_ids_ok(ids, vocab))


def rows_viewable(a):
    """Whether 2-D `a` has contiguous rows (as the C wrapper's; Numba takes any strides)."""
    item = a.itemsize
    if a.ndim != 2:
        return False
    return a.size == 0 or ((a.shape[0] <= 1 or a.strides[0] % item == 0)
                           and (a.shape[1] <= 1 or a.strides[1] == item))


def _check(weight_or_dout, ids, bits, vocab, out, out_shape, name):
    if not isinstance(weight_or_dout, np.ndarray) or weight_or_dout.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array")
    if weight_or_dout.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected float32 or float64")
    if out.dtype != weight_or_dout.dtype or out.shape != out_shape:
        raise ValueError(f"output: expected shape {out_shape} and dtype {weight_or_dout.dtype}")
    if ids.dtype != np.int64 or ids.ndim != 1:
        raise TypeError("ids: expected int64 token ids")
    if bits.dtype != np.uint8 or bits.size < (vocab + 7) // 8:
        raise ValueError(f"bits: expected at least {(vocab + 7) // 8} bytes")
    if not _ids_ok(ids, vocab):
        raise ValueError(f"ids: token ids must lie in [0, {vocab}) (the weight's rows)")


def embedding_fwd(weight, ids, bits, scale, out, nthreads=0, isa=-1):
    """out[t] = keep(ids[t]) ? weight[ids[t]] * scale : +0 (see the module docstring)."""
    vocab, dim = weight.shape
    _check(weight, ids, bits, vocab, out, (ids.size, dim), "weight")
    t = weight.dtype.type
    _fwd_kernel(weight, ids, bits.reshape(-1), t(scale), out, t(0))


def embedding_bwd(dout, ids, bits, scale, grad, nthreads=0, isa=-1):
    """grad = the row sums of dout by id, in token order, masked and scaled."""
    vocab = grad.shape[0]
    _check(dout, ids, bits, vocab, grad, (vocab, dout.shape[1]), "dout")
    if ids.size != dout.shape[0]:
        raise ValueError(f"ids: expected {dout.shape[0]} ids, one per row of dout")
    t = dout.dtype.type
    _bwd_kernel(dout, ids, bits.reshape(-1), t(scale), grad, t(0))
