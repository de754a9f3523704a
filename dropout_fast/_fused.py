"""Bias + dropout + residual in one pass: ``y = residual + dropout(x + bias)``.

The transformer-block fusion of Megatron-LM (Shoeybi et al., "Megatron-LM:
training multi-billion parameter language models using model parallelism",
2019, ``bias_dropout_add``): the output of an attention or MLP projection gets
its bias, dropout and the residual connection in one sweep over memory.

The value contract (every backend, instruction set and thread count gives
these bits). For the flat C-order index i of x and j = i % C, C = x.shape[-1]:

    v    = x[i] + bias[j]                 rounded to x's dtype (v = x[i] without a bias)
    y[i] = residual[i] + (keep(i) ? v * scale : +0.0)

with each operation rounded on its own (no fused multiply-add) and keep(i) the
dropout mask of the stream contract at the Generator's offset, exactly the
mask ``dropout_fast.dropout`` would draw for an array of x's shape. So with
the same Generator state, ``dropout(x + bias, p) + residual`` equals the fused
result bit for bit (only which NaN payload survives when the residual and the
dropout term are both NaN is not specified, as IEEE 754 leaves it open). Note
that a dropped element is ``residual + 0.0``: a residual of -0.0 gives +0.0.

Backward: ``dx = keep ? dy * scale : +0.0``; ``dbias[j]`` is dx summed over
all leading axes, computed as the sum in double of the rows in row order
(``((0.0 + dx[0, j]) + dx[1, j]) + ...`` over x viewed as (R, C)), then
rounded once to the dtype; ``dresidual`` is dy itself (the gradient of an
addition passes through; no copy), or dy summed over the axes along which the
residual was broadcast.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from dropout_fast import _config
from dropout_fast._generator import RNGLike, resolve_rng
from dropout_fast.api import (MASK_MODES, DropoutMask, _block_words, check_array, check_out,
                              check_p, check_training, threshold, variant_coefficients)

__all__ = ["bias_dropout_add", "bias_dropout_add_forward", "bias_dropout_add_backward",
           "BiasDropoutAddMask"]

_KEEP_ALL = 1 << 32  # the threshold that keeps every element (p == 0, eval mode)


class BiasDropoutAddMask(DropoutMask):
    """What `bias_dropout_add_backward` needs from a forward call.

    A `DropoutMask` of the dropout applied to ``x + bias`` (so
    `dropout_backward` with it gives dx alone), plus what the other two
    gradients need.

    Attributes
    ----------
    bias_size : int or None
        C, the length of the bias (x's last axis), or None when bias was None.
    residual_shape : tuple of int
        Shape of the residual; dresidual has it.
    dtype : numpy.dtype
        x's dtype.
    """

    __slots__ = ("bias_size", "residual_shape", "dtype")

    def __init__(self, p, shape, key, offset, bits, bias_size, residual_shape, dtype):
        super().__init__(p, shape, key, offset, bits, shape, "dropout", {})
        self.bias_size, self.residual_shape, self.dtype = bias_size, residual_shape, dtype

    def __repr__(self) -> str:
        mode = "bits" if self.bits is not None else "recompute"
        return (f"BiasDropoutAddMask(p={self.p}, shape={self.shape}, bias_size={self.bias_size}, "
                f"residual_shape={self.residual_shape}, offset={self.offset}, mode={mode!r}, "
                f"nbytes={self.nbytes})")


# --------------------------------------------------------------------------- policy
def check_inputs(x, bias, residual):
    """(x, bias, residual) as arrays of one float dtype; bias of shape (C,) with C =
    x.shape[-1] (or None); residual broadcastable to x's shape. Errors name the argument."""
    x = check_array(x, "x")
    residual = check_array(residual, "residual")
    if residual.dtype != x.dtype:
        raise TypeError(f"residual: expected x's dtype {x.dtype}, got {residual.dtype}")
    try:
        ok = np.broadcast_shapes(residual.shape, x.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"residual: shape {residual.shape} does not broadcast to x's shape "
                         f"{x.shape}")
    if bias is not None:
        bias = check_array(bias, "bias")
        if bias.dtype != x.dtype:
            raise TypeError(f"bias: expected x's dtype {x.dtype}, got {bias.dtype}")
        if x.ndim == 0:
            raise ValueError("bias: x is a scalar, so there is no last axis to add a bias along")
        if bias.shape != (x.shape[-1],):
            raise ValueError(f"bias: expected shape ({x.shape[-1]},) (x's last axis), "
                             f"got {bias.shape}")
    return x, bias, residual


def _distinct_or_same(out: np.ndarray, a: np.ndarray) -> bool:
    """out may be written while a is read: a is out exactly, or shares no memory with it."""
    if not np.may_share_memory(out, a):
        return True
    return (a.flags.c_contiguous and a.shape == out.shape
            and a.__array_interface__["data"][0] == out.__array_interface__["data"][0])


def _run(kernels, x, bias, residual, out, bits, key, offset, thresh, scale):
    """The forward kernel over x's logical C order; returns y."""
    xs = np.ascontiguousarray(x)
    rs = np.ascontiguousarray(residual if residual.shape == x.shape
                              else np.broadcast_to(residual, x.shape))
    bs = None if bias is None else np.ascontiguousarray(bias)
    if out is None:
        y, direct = np.empty(x.shape, x.dtype), True
    else:
        y = out
        direct = (y.flags.c_contiguous and _distinct_or_same(y, xs) and _distinct_or_same(y, rs)
                  and (bs is None or not np.may_share_memory(y, bs)))
    if x.size == 0:
        return y
    dst = y if direct else np.empty(x.shape, x.dtype)
    lo, hi = _block_words(offset)
    kernels.bias_dropout_add_fwd(xs.reshape(-1), bs, rs.reshape(-1), dst.reshape(-1), bits,
                                 key[0], key[1], lo, hi, thresh, scale, _config.nthreads,
                                 _config.isa)
    if not direct:
        y[...] = dst
    return y


def bias_dropout_add_forward_impl(kernels, x, bias, residual, p, rng: RNGLike, out, mask: str):
    """Forward: validate, reserve ceil(n / 8) counter blocks, run the fused kernel."""
    x, bias, residual = check_inputs(x, bias, residual)
    p = check_p(p)
    if mask not in MASK_MODES:
        raise ValueError(f"mask: expected one of {MASK_MODES}, got {mask!r}")
    if out is not None:
        check_out(out, x)
    gen = resolve_rng(rng)
    n = x.size
    offset = gen._reserve((n + 7) // 8)
    scale = variant_coefficients("dropout", p, x.dtype, {})[0]
    bits = np.empty((n + 7) // 8, np.uint8) if mask == "bits" else None
    y = _run(kernels, x, bias, residual, out, bits, gen.key, offset, threshold(p), scale)
    m = BiasDropoutAddMask(p, x.shape, gen.key, offset, bits,
                           None if bias is None else bias.shape[0], residual.shape, x.dtype)
    return y, m


def bias_dropout_add_impl(kernels, x, bias, residual, p, training, rng: RNGLike, out):
    """The one-shot form; in eval mode ``residual + (x + bias)`` (no counter blocks used)."""
    if check_training(training):
        return bias_dropout_add_forward_impl(kernels, x, bias, residual, p, rng, out,
                                             "recompute")[0]
    x, bias, residual = check_inputs(x, bias, residual)
    check_p(p)
    if out is not None:
        check_out(out, x)
    # The kernel at the keep-everything threshold with scale 1: v * 1 == v exactly.
    return _run(kernels, x, bias, residual, out, None, (0, 0), 0, _KEEP_ALL, 1.0)


def _unbroadcast(dy: np.ndarray, shape: tuple) -> np.ndarray:
    """dy summed over the axes along which an array of `shape` was broadcast to dy's shape."""
    lead = dy.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + d for d, s in enumerate(shape)
                                      if s == 1 and dy.shape[lead + d] != 1)
    return dy.sum(axis=axes, keepdims=False).reshape(shape) if axes else dy.reshape(shape)


def bias_dropout_add_backward_impl(kernels, dy, m, out):
    """Backward: (dx, dbias, dresidual) with the forward's mask, stored or regenerated."""
    if not isinstance(m, BiasDropoutAddMask):
        raise TypeError(f"m: expected a BiasDropoutAddMask from bias_dropout_add_forward, "
                        f"got {type(m).__name__}")
    dy = check_array(dy, "dy")
    if dy.shape != m.shape:
        raise ValueError(f"dy: expected shape {m.shape} (the forward input's), got {dy.shape}")
    if dy.dtype != m.dtype:
        raise TypeError(f"dy: expected dtype {m.dtype} (the forward input's), got {dy.dtype}")
    if out is not None:
        check_out(out, dy)
    # dresidual is dy; keep a copy first if dx is about to overwrite it.
    overwrite = out is not None and np.may_share_memory(out, dy)
    dres = dy.copy() if overwrite else dy
    if m.residual_shape != m.shape:
        dres = _unbroadcast(dres, m.residual_shape)
    src = np.ascontiguousarray(dy)
    if out is None:
        dx, direct = np.empty(dy.shape, dy.dtype), True
    else:
        dx = out
        direct = dx.flags.c_contiguous and _distinct_or_same(dx, src)
    dst = dx if direct else np.empty(dy.shape, dy.dtype)
    c = m.bias_size
    dbias64 = None if c is None else np.empty(c, np.float64)
    scale = m.coefficients(dy.dtype)[0]
    lo, hi = _block_words(m.offset)
    if dy.size:
        kernels.bias_dropout_add_bwd(src.reshape(-1), dst.reshape(-1), dbias64, m.bits,
                                     1 if c is None else c, m.key[0], m.key[1], lo, hi,
                                     threshold(m.p), scale, _config.nthreads, _config.isa)
    elif dbias64 is not None:  # empty dy (C may be 0, which the kernels refuse): zero sums
        dbias64[...] = 0.0
    if not direct:
        dx[...] = dst
    dbias = None if c is None else dbias64.astype(dy.dtype)
    return dx, dbias, dres


# --------------------------------------------------------------------------- public API
def bias_dropout_add(x, bias, residual, p: float, *, rng: RNGLike = None, training: bool = True,
                     out: Optional[np.ndarray] = None) -> np.ndarray:
    """Bias, dropout and residual in one pass: ``residual + dropout(x + bias, p)``.

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (..., C), any layout
        Activations (the output of a projection, before its bias).
    bias : ndarray of shape (C,) and x's dtype, or None
        Added along x's last axis before dropout; None adds nothing.
    residual : ndarray of x's dtype, broadcastable to x's shape
        The skip connection, added after dropout.
    p : float
        Drop probability in [0, 1].
    rng : Generator, int or None
        Source of the mask, as for `dropout_fast.dropout`: the same mask
        ``dropout(x + bias, p, rng=...)`` would draw. Consumes ceil(x.size / 8)
        counter blocks.
    training : bool, default True
        When False, dropout is off: ``residual + (x + bias)`` (no counter blocks used).
    out : ndarray, optional
        Output of x's shape and dtype; ``out=residual`` and ``out=x`` work in place.

    Returns
    -------
    y : ndarray of x's shape and dtype
        ``residual + (keep ? (x + bias) * scale : 0)``, scale = 1/(1-p), each
        operation rounded to the dtype on its own (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> x, b, r = np.ones((2, 4), np.float32), np.ones(4, np.float32), np.zeros((2, 4), np.float32)
    >>> y = bias_dropout_add(x, b, r, 0.5, rng=0)
    >>> sorted(set(y.ravel().tolist()))
    [0.0, 4.0]
    >>> bias_dropout_add(x, b, r, 0.5, training=False)
    array([[2., 2., 2., 2.],
           [2., 2., 2., 2.]], dtype=float32)
    """
    return bias_dropout_add_impl(_config.kernels, x, bias, residual, p, training, rng, out)


def bias_dropout_add_forward(x, bias, residual, p: float, *, rng: RNGLike = None,
                             out: Optional[np.ndarray] = None, mask: str = "bits"):
    """Training-mode `bias_dropout_add` that also returns what backward needs.

    Parameters
    ----------
    x, bias, residual, p, rng, out
        See `bias_dropout_add`.
    mask : {"bits", "recompute"}, default "bits"
        "bits" keeps the mask packed, 1 bit per element of x; "recompute" keeps
        only (key, offset) and backward regenerates the mask.

    Returns
    -------
    y : ndarray of x's shape and dtype
    m : BiasDropoutAddMask

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(2, 4)
    >>> y, m = bias_dropout_add_forward(x, np.zeros(4), np.ones((2, 4)), 0.25, rng=1)
    >>> m.nbytes, bool(np.array_equal(y, 1 + np.where(m.to_bool(), x * (1 / 0.75), 0)))
    (1, True)
    """
    return bias_dropout_add_forward_impl(_config.kernels, x, bias, residual, p, rng, out, mask)


def bias_dropout_add_backward(dy, m: BiasDropoutAddMask, *, out: Optional[np.ndarray] = None):
    """Gradients of `bias_dropout_add` with respect to x, bias and residual.

    Parameters
    ----------
    dy : ndarray of the forward input's shape and dtype
        Gradient of the loss with respect to y.
    m : BiasDropoutAddMask
        From `bias_dropout_add_forward`; in recompute mode the mask is regenerated.
    out : ndarray, optional
        Output for dx, of dy's shape and dtype; ``out=dy`` works in place (dresidual
        is then a copy of dy taken first).

    Returns
    -------
    dx : ndarray of dy's shape and dtype
        ``keep ? dy * scale : 0``.
    dbias : ndarray of shape (C,) and dy's dtype, or None
        dx summed over all leading axes: in double, rows in order, then rounded
        once. None when the forward had no bias.
    dresidual : ndarray
        dy itself (not a copy) when the residual had x's shape; else dy summed
        over the broadcast axes (numpy's ``sum``) to the residual's shape.

    Examples
    --------
    >>> import numpy as np
    >>> y, m = bias_dropout_add_forward(np.ones((3, 2)), np.ones(2), np.ones((3, 2)), 0.5, rng=2)
    >>> dy = np.ones((3, 2))
    >>> dx, db, dr = bias_dropout_add_backward(dy, m)
    >>> bool(np.array_equal(db, dx.sum(axis=0))), dr is dy
    (True, True)
    """
    return bias_dropout_add_backward_impl(_config.kernels, dy, m, out)
