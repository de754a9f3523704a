"""Embedding dropout's policy, shared by the public functions (variants.py) and
the Numba reference (reference.py): checks, the row mask, then one kernel call.

Forward is the kernels' gather (``embedding_fwd``): only looked-up rows are
read, and each output row is written once. Backward is their bucketed
scatter-add (``embedding_bwd``): the same bits as ``numpy.add.at`` into zeros
followed by the row mask, without its per-token cost.
"""
from __future__ import annotations

import numpy as np

from dropout_fast import _config
from dropout_fast._generator import resolve_rng
from dropout_fast.api import MASK_MODES, DropoutMask, check_array, check_p, draw_bits


def check_weight(weight) -> np.ndarray:
    weight = check_array(weight, "weight")
    if weight.ndim != 2:
        raise ValueError(f"weight: expected a 2-D embedding matrix (V, D), "
                         f"got shape {weight.shape}")
    return weight


def _int_ids(ids) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids: expected an integer array of token ids, got dtype {ids.dtype}")
    return ids


def _out_of_range(vocab: int):
    return ValueError(f"ids: token ids must lie in [0, {vocab}) (the weight's rows)")


def check_ids(ids, vocab: int) -> np.ndarray:
    """ids as an integer ndarray with every value in [0, vocab)."""
    ids = _int_ids(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab):
        raise _out_of_range(vocab)
    return ids


def _flat_ids(kernels, ids, vocab: int):
    """(ids as an integer ndarray, its entries as the C-contiguous int64 vector the
    kernels take), checked to lie in [0, vocab) before any counter block is taken.
    An unsigned id of 2**63 or more becomes negative in int64, and is refused."""
    ids = _int_ids(ids)
    flat = np.ascontiguousarray(ids.reshape(-1), dtype=np.int64)
    if not kernels.ids_in_range(flat, vocab):
        raise _out_of_range(vocab)
    return ids, flat


def _rows(kernels, a: np.ndarray) -> np.ndarray:
    """a itself if its rows are contiguous (any row stride), else a C-contiguous copy."""
    return a if kernels.rows_viewable(a) else np.ascontiguousarray(a)


def forward_impl(kernels, weight, ids, p, rng, mask: str):
    """`embedding_dropout_forward` on the given kernels: ``(out, m)``."""
    weight = check_weight(weight)
    ids, flat = _flat_ids(kernels, ids, weight.shape[0])
    p = check_p(p)
    if mask not in MASK_MODES:
        raise ValueError(f"mask: expected one of {MASK_MODES}, got {mask!r}")
    vocab, dim = weight.shape
    gen = resolve_rng(rng)
    offset = gen._reserve((vocab + 7) // 8)
    bits = draw_bits(kernels, gen.key, offset, vocab, p)
    m = DropoutMask(p, weight.shape, gen.key, offset, bits if mask == "bits" else None,
                    (vocab, 1), "embedding_dropout")
    out = np.empty((ids.size, dim), weight.dtype)
    a = m.coefficients(weight.dtype)[0]
    if not kernels.rows_viewable(weight):
        # Columns not contiguous (a Fortran-order matrix): gather the rows looked
        # up rather than copy the whole matrix, and give token t row t's bit.
        keep = (bits[flat >> 3] >> (flat & 7).astype(np.uint8)) & np.uint8(1)
        weight = np.ascontiguousarray(weight[flat])
        bits = np.packbits(keep, bitorder="little")
        flat = np.arange(flat.size, dtype=np.int64)
    kernels.embedding_fwd(weight, flat, bits, a, out, _config.nthreads, _config.isa)
    return out.reshape(ids.shape + (dim,)), m


def backward_impl(kernels, dout, ids, m) -> np.ndarray:
    """`embedding_dropout_backward` on the given kernels: the (V, D) gradient."""
    if not isinstance(m, DropoutMask) or m.variant != "embedding_dropout":
        raise TypeError("m: expected the DropoutMask of embedding_dropout_forward")
    dout = check_array(dout, "dout")
    vocab, dim = m.shape
    ids, flat = _flat_ids(kernels, ids, vocab)
    if dout.shape != ids.shape + (dim,):
        raise ValueError(f"dout: expected shape {ids.shape + (dim,)}, got {dout.shape}")
    grad = np.empty((vocab, dim), dout.dtype)
    rows = _rows(kernels, dout.reshape(ids.size, dim))  # not -1: dim may be 0
    a = m.coefficients(dout.dtype)[0]
    kernels.embedding_bwd(rows, flat, m.packed(kernels), a, grad, _config.nthreads, _config.isa)
    return grad
