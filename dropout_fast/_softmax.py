"""Attention dropout: the softmax over the last axis fused with inverted dropout.

``y = dropout(softmax(scores + mask))`` in one pass per row, as in the attention
of a transformer (Vaswani et al. 2017, sec. 5.4: dropout on the attention
weights). The dropout mask is the stream contract's, over the flat C-order
index of the output, so ``softmax_dropout(s, p, rng=g)`` equals
``dropout(softmax(s), p, rng=g)`` bit for bit. The softmax is max-subtracted
and uses the library's own exp, a fixed sequence of float (double) operations,
so the C kernels on every instruction set and thread count, the Numba backend
and the plain-numpy oracle agree bit for bit (see ``src_c/dropout_fast.h``).

Masks follow torch.nn.functional.scaled_dot_product_attention: a float mask is
added to the scores (``-inf`` excludes a key), a bool mask is True where a query
attends, ``is_causal`` keeps keys ``j <= i`` (top-left aligned when Lq != Lk,
torch's convention). Both may be given: the mask applies, then the causal cut.
A row with nothing left (every key masked) gives zeros, never NaN.

Backward needs the probabilities P and the dropout mask. Mode "store" keeps P
(one array of the scores' size and dtype) with the mask folded into its sign
bits: P >= 0, so a dropped element is stored as -P (-0.0 for a zero), which
costs no memory and spares backward the mask (flash-attention's debug output
marks dropped probabilities the same way). Mode "recompute" keeps nothing:
backward recomputes P from the scores, which the caller passes again (and from
the attention mask, which the mask object references, not copies), and
regenerates the dropout mask from (key, offset), or reads it from packed bits
(1 bit per element) kept with ``bits=True``.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from dropout_fast import _config
from dropout_fast._generator import RNGLike, resolve_rng
from dropout_fast._layer import LayerBase
from dropout_fast.api import (_block_words, check_array, check_out, check_p, check_training,
                              draw_bits, threshold, variant_coefficients)

__all__ = ["softmax", "softmax_dropout", "softmax_dropout_forward", "softmax_dropout_backward",
           "SoftmaxDropoutMask", "SoftmaxDropout"]

PROBS_MODES = ("store", "recompute")


# --------------------------------------------------------------------------- policy
def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _check_mode(mode) -> str:
    if mode not in PROBS_MODES:
        raise ValueError(f"mode: expected one of {PROBS_MODES}, got {mode!r}")
    return mode


def _check_axis(axis, ndim: int) -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis: expected an integer, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: {axis} is out of range for scores with {ndim} dimensions")
    return int(axis) % ndim


def _broadcast_mask(attn_mask, scores: np.ndarray) -> np.ndarray:
    """attn_mask as a read-only view of scores' shape whose last axis is
    contiguous (a mask broadcast along the keys is expanded along them only)."""
    m = attn_mask if isinstance(attn_mask, np.ndarray) else np.asarray(attn_mask)
    if m.dtype != np.bool_ and m.dtype != scores.dtype:
        raise TypeError(f"attn_mask: expected a bool array or one of the scores' dtype "
                        f"{scores.dtype}, got dtype {m.dtype}")
    try:
        ok = m.ndim <= scores.ndim and np.broadcast_shapes(m.shape, scores.shape) == scores.shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"attn_mask: shape {m.shape} does not broadcast to the scores' "
                         f"shape {scores.shape}")
    lk = scores.shape[-1]
    if m.ndim == 0 or (lk > 1 and (m.shape[-1] == 1 or m.strides[-1] != m.itemsize)):
        m = np.ascontiguousarray(np.broadcast_to(m, m.shape[:-1] + (lk,)))
    view = np.broadcast_to(m, scores.shape)
    if any(st % m.itemsize for st in view.strides):
        view = np.ascontiguousarray(view)
    return view


class _Layout:
    """A call in the kernels' layout: the softmax axis last, scores C-contiguous."""

    __slots__ = ("axis", "shape", "mask", "causal")

    def __init__(self, scores: np.ndarray, axis, attn_mask, is_causal):
        if scores.ndim == 0:
            raise ValueError("scores: expected at least one dimension")
        self.axis = _check_axis(axis, scores.ndim)
        self.causal = _check_bool(is_causal, "is_causal")
        last = self.axis == scores.ndim - 1
        if self.causal and (scores.ndim < 2 or not last):
            raise ValueError("is_causal: needs scores of shape (..., Lq, Lk) and axis=-1")
        mask = None if attn_mask is None else _broadcast_mask(attn_mask, scores)
        if not last and mask is not None:
            mask = np.ascontiguousarray(np.moveaxis(mask, self.axis, -1))
        self.mask = mask
        self.shape = self.to_kernel(scores).shape

    @classmethod
    def of(cls, m: SoftmaxDropoutMask) -> _Layout:
        """The layout of the forward call that made m."""
        lay = cls.__new__(cls)
        lay.axis, lay.causal, lay.mask = m.axis, m.causal, m.attn_mask
        lay.shape = lay.to_kernel(np.empty(m.shape, np.uint8)).shape
        return lay

    def to_kernel(self, a: np.ndarray) -> np.ndarray:
        """a (of the scores' shape) with the softmax axis moved last (a view)."""
        return a if self.axis == a.ndim - 1 else np.moveaxis(a, self.axis, -1)

    def from_kernel(self, a: np.ndarray) -> np.ndarray:
        return a if self.axis == a.ndim - 1 else np.moveaxis(a, -1, self.axis)


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """a and b are the same C-contiguous memory (an alias the kernels allow)."""
    return (a.flags.c_contiguous and b.flags.c_contiguous and a.nbytes == b.nbytes
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _deliver(lay: _Layout, out, dtype, may_alias, apart, run):
    """Run `run(dst_flat)` into `out` when the kernel may write it directly (axis
    last, C-contiguous, overlapping none of `apart` and each of `may_alias` only
    exactly), else into a fresh array moved back and copied into out."""
    def clear(a, exact_ok):
        return a is None or not np.may_share_memory(out, a) or (exact_ok and _same(out, a))
    direct = (out is not None and lay.axis == out.ndim - 1 and out.flags.c_contiguous
              and all(clear(a, True) for a in may_alias) and all(clear(a, False) for a in apart))
    if direct:
        if out.size:
            run(out.reshape(-1))
        return out
    y = np.empty(lay.shape, dtype)
    if y.size:
        run(y.reshape(-1))
    y = lay.from_kernel(y)
    if out is None:
        return y
    out[...] = y
    return out


# --------------------------------------------------------------------------- the mask object
class SoftmaxDropoutMask:
    """What backward needs from `softmax_dropout_forward`.

    Attributes
    ----------
    p : float
        The drop probability (0.0 for an eval-mode layer's forward).
    shape : tuple of int
        Shape of the scores (and of y, dy, ds).
    dtype : numpy.dtype
    axis : int
        The softmax axis (non-negative).
    causal : bool
    mode : {"store", "recompute"}
    key, offset : tuple of two int, int
        Philox key words and first counter block; the call used ``ceil(size / 8)``
        blocks. None when no mask was drawn (training off).
    bits : ndarray of uint8 or None
        Packed keep bits over the flat index of the output (mode "recompute" with
        ``bits=True``).
    attn_mask : ndarray or None
        The attention mask as the kernels read it (a view, not a copy), kept for
        mode "recompute".
    """

    __slots__ = ("p", "shape", "dtype", "axis", "causal", "mode", "key", "offset", "bits",
                 "attn_mask", "_probs")

    def __init__(self, p, shape, dtype, axis, causal, mode, key, offset, bits, attn_mask, probs):
        self.p, self.shape, self.dtype, self.axis = p, shape, np.dtype(dtype), axis
        self.causal, self.mode, self.key, self.offset = causal, mode, key, offset
        self.bits, self.attn_mask, self._probs = bits, attn_mask, probs

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def probs(self) -> Optional[np.ndarray]:
        """The softmax probabilities P of the scores' shape (mode "store"), else None:
        a new array, the stored one without the sign bits that mark dropped elements."""
        if self._probs is None:
            return None
        p = np.abs(self._probs)
        return p if self.axis == len(self.shape) - 1 else np.moveaxis(p, -1, self.axis)

    @property
    def nbytes(self) -> int:
        """Bytes kept for backward: P in mode "store" (size * itemsize, the mask in
        its sign bits); in mode "recompute" ceil(size / 8) with bits, else 0."""
        return sum(a.nbytes for a in (self._probs, self.bits) if a is not None)

    def to_bool(self, kernels=None) -> np.ndarray:
        """The keep mask, a bool array of the scores' shape (True where kept):
        read from the bits, or drawn again from (key, offset)."""
        kshape = _Layout.of(self).shape
        if self.offset is None or threshold(self.p) >> 32:
            keep = np.ones(kshape, bool)
        else:
            bits = self.bits if self.bits is not None else \
                draw_bits(kernels or _config.kernels, self.key, self.offset, self.size, self.p)
            keep = np.unpackbits(bits, count=self.size, bitorder="little").view(bool)
            keep = keep.reshape(kshape)
        return keep if kshape == self.shape else np.moveaxis(keep, -1, self.axis)

    def _backward(self, kernels, dy, out):
        """The generic `dropout_fast.backward` lands here (mode "store" only)."""
        return softmax_backward_impl(kernels, dy, self, None, out)

    def __repr__(self) -> str:
        return (f"SoftmaxDropoutMask(p={self.p}, shape={self.shape}, dtype={self.dtype}, "
                f"axis={self.axis}, causal={self.causal}, mode={self.mode!r}, "
                f"offset={self.offset}, nbytes={self.nbytes})")


# --------------------------------------------------------------------------- the engine
def _stream(p: float, dtype, key, offset):
    """Kernel arguments (key0, key1, lo, hi, thresh, scale); no dropout when offset is None."""
    if offset is None:
        return 0, 0, 0, 0, 1 << 32, 1.0
    lo, hi = _block_words(offset)
    scale = variant_coefficients("dropout", p, np.dtype(dtype), {"noise_shape": None})[0]
    return key[0], key[1], lo, hi, threshold(p), scale


def _forward_core(kernels, scores, lay: _Layout, p, key, offset, out, mode, bits):
    s = _flat(lay.to_kernel(scores))
    n = s.size
    probs = np.empty(lay.shape, scores.dtype) if mode == "store" else None
    bitbuf = np.empty((n + 7) // 8, np.uint8) if bits and offset is not None else None
    args = _stream(p, scores.dtype, key, offset)
    nt, isa = _config.nthreads, _config.isa

    def run(dst):
        kernels.softmax_fwd(s, dst, None if probs is None else probs.reshape(-1), bitbuf,
                            lay.shape, lay.mask, lay.causal, *args, nt, isa)
    y = _deliver(lay, out, scores.dtype, [s], [lay.mask], run)
    m = SoftmaxDropoutMask(p, scores.shape, scores.dtype, lay.axis, lay.causal, mode, key,
                           offset, bitbuf, lay.mask if mode == "recompute" else None, probs)
    return y, m


def _prepare(scores, p, axis, attn_mask, is_causal, out, mode, bits):
    """Every check of a forward call, before any counter is reserved. mode None:
    nothing is kept for backward (the one-shot forms)."""
    scores = check_array(scores, "scores")
    p = check_p(p)
    if mode is not None:
        _check_mode(mode)
    if _check_bool(bits, "bits") and mode != "recompute":
        raise ValueError("bits: only for mode 'recompute' (mode 'store' keeps the mask "
                         "in the sign bits of P)")
    lay = _Layout(scores, axis, attn_mask, is_causal)
    if out is not None:
        check_out(out, scores)
        if mode == "recompute" and np.may_share_memory(out, scores):
            raise ValueError("out: mode 'recompute' needs the scores unchanged for backward; "
                             "do not write the output over them")
    return scores, p, lay


def softmax_forward_impl(kernels, scores, p, axis, attn_mask, is_causal, rng: RNGLike, out,
                         mode, bits, training: bool = True):
    """Forward: validate, reserve ceil(n / 8) counter blocks (training only), run."""
    scores, p, lay = _prepare(scores, p, axis, attn_mask, is_causal, out, mode, bits)
    if not check_training(training):
        return _forward_core(kernels, scores, lay, 0.0, None, None, out, mode, False)
    gen = resolve_rng(rng)
    offset = gen._reserve((scores.size + 7) // 8)
    return _forward_core(kernels, scores, lay, p, gen.key, offset, out, mode, bits)


def softmax_backward_impl(kernels, dy, m, scores, out):
    """Backward: ds = P * (dP - sum(P * dP)) per row, P stored or recomputed."""
    if not isinstance(m, SoftmaxDropoutMask):
        raise TypeError(f"m: expected a SoftmaxDropoutMask from softmax_dropout_forward, "
                        f"got {type(m).__name__}")
    dy = check_array(dy, "dy")
    if dy.shape != m.shape:
        raise ValueError(f"dy: expected shape {m.shape} (the scores'), got {dy.shape}")
    if dy.dtype != m.dtype:
        raise TypeError(f"dy: expected dtype {m.dtype} (the scores'), got {dy.dtype}")
    s = None
    if m._probs is None:
        if scores is None:
            raise ValueError("scores: mode 'recompute' needs the forward's scores again: "
                             "softmax_dropout_backward(dy, m, scores=scores)")
        scores = check_array(scores, "scores")
        if scores.shape != m.shape or scores.dtype != m.dtype:
            raise ValueError(f"scores: expected the forward's shape {m.shape} and dtype "
                             f"{m.dtype}, got {scores.shape} and {scores.dtype}")
        s = scores
    if out is not None:
        check_out(out, dy)
    lay = _Layout.of(m)
    g = _flat(lay.to_kernel(dy))
    sk = None if s is None else _flat(lay.to_kernel(s))
    args = _stream(m.p, m.dtype, m.key, m.offset)
    nt, isa = _config.nthreads, _config.isa

    def run(dst):
        kernels.softmax_bwd(g, dst, None if m._probs is None else m._probs.reshape(-1), sk,
                            m.bits, lay.shape, None if sk is None else lay.mask, lay.causal,
                            *args, nt, isa)
    if sk is None:  # mode "store": ds may be dy or the stored P exactly
        return _deliver(lay, out, m.dtype, [g, m._probs], [], run)
    return _deliver(lay, out, m.dtype, [sk], [g, lay.mask], run)


def softmax_impl(kernels, scores, axis, attn_mask, is_causal, out):
    """The plain (masked) softmax: the fused kernel with nothing dropped."""
    scores, _, lay = _prepare(scores, 0.0, axis, attn_mask, is_causal, out, None, False)
    return _forward_core(kernels, scores, lay, 0.0, None, None, out, None, False)[0]


def softmax_dropout_impl(kernels, scores, p, axis, attn_mask, is_causal, rng, training, out):
    """The one-shot form: softmax only when not training, else forward keeping nothing."""
    if not check_training(training):
        check_p(p)
        return softmax_impl(kernels, scores, axis, attn_mask, is_causal, out)
    return softmax_forward_impl(kernels, scores, p, axis, attn_mask, is_causal, rng, out,
                                None, False)[0]


# --------------------------------------------------------------------------- public API
def softmax(scores, *, axis: int = -1, attn_mask=None, is_causal: bool = False,
            out: Optional[np.ndarray] = None) -> np.ndarray:
    """The (masked) softmax of the fused kernel, without dropout.

    ``P_j = exp(s'_j - max s') / sum_k exp(s'_k - max s')`` over `axis`, with the
    masking, exp and summation order of `softmax_dropout` (so its P is this
    function's output bit for bit).

    Parameters
    ----------
    scores : ndarray of float32 or float64, shape (..., Lq, Lk)
        Attention scores (any layout).
    axis : int, default -1
        The softmax axis. Another axis is moved last, computed on and moved back
        (the attention mask with it); is_causal needs the last.
    attn_mask : array_like of bool or of the scores' dtype, optional
        Broadcastable to the scores' shape. Bool: True where a query attends (torch's
        scaled_dot_product_attention convention); float: added to the scores
        (-inf excludes a key).
    is_causal : bool, default False
        Keep keys ``j <= i`` for query i (axis -2), top-left aligned when Lq != Lk
        (torch's convention); needs axis=-1.
    out : ndarray, optional
        Output of the scores' shape and dtype; ``out=scores`` works in place.

    Returns
    -------
    P : ndarray of the scores' shape and dtype
        Rows sum to 1 within rounding; rows with every key masked are all zero.

    Examples
    --------
    >>> import numpy as np
    >>> softmax(np.zeros((2, 4), np.float32))
    array([[0.25, 0.25, 0.25, 0.25],
           [0.25, 0.25, 0.25, 0.25]], dtype=float32)
    >>> softmax(np.zeros((2, 2)), is_causal=True)
    array([[1. , 0. ],
           [0.5, 0.5]])
    """
    return softmax_impl(_config.kernels, scores, axis, attn_mask, is_causal, out)


def softmax_dropout(scores, p: float, *, axis: int = -1, attn_mask=None, is_causal: bool = False,
                    rng: RNGLike = None, training: bool = True,
                    out: Optional[np.ndarray] = None) -> np.ndarray:
    """Attention dropout: ``dropout(softmax(scores + mask), p)`` in one pass.

    Equals ``dropout(softmax(scores, ...), p, rng=rng)`` bit for bit: the keep mask
    is the stream contract's over the flat C-order index of the output (of the
    output with `axis` moved last, for another axis), kept values are
    ``P * scale`` with ``scale = 1 / (1 - p)`` rounded to the dtype, dropped ones +0.0.

    Parameters
    ----------
    scores : ndarray of float32 or float64, shape (..., Lq, Lk)
    p : float
        Drop probability in [0, 1].
    axis, attn_mask, is_causal
        See `softmax`.
    rng : Generator, int or None
        Source of the mask; consumes ceil(scores.size / 8) counter blocks.
    training : bool, default True
        When False, returns ``softmax(scores, ...)`` without dropout (PyTorch's
        eval mode) and consumes nothing.
    out : ndarray, optional
        Output of the scores' shape and dtype; ``out=scores`` works in place.

    Returns
    -------
    y : ndarray of the scores' shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> y = softmax_dropout(np.zeros((2, 4), np.float32), 0.5, rng=0)
    >>> sorted(set(y.ravel().tolist()))
    [0.0, 0.5]
    >>> softmax_dropout(np.zeros(2), 0.5, training=False)
    array([0.5, 0.5])
    """
    return softmax_dropout_impl(_config.kernels, scores, p, axis, attn_mask, is_causal, rng,
                                training, out)


def softmax_dropout_forward(scores, p: float, *, axis: int = -1, attn_mask=None,
                            is_causal: bool = False, rng: RNGLike = None,
                            out: Optional[np.ndarray] = None, mode: str = "store",
                            bits: bool = False):
    """Training-mode attention dropout that also returns what backward needs.

    Parameters
    ----------
    scores : ndarray of float32 or float64, shape (..., Lq, Lk)
    p : float
        Drop probability in [0, 1].
    axis, attn_mask, is_causal
        See `softmax`.
    rng : Generator, int or None
        See `softmax_dropout`.
    out : ndarray, optional
        Output of the scores' shape and dtype (not over the scores in mode "recompute").
    mode : {"store", "recompute"}, default "store"
        "store" keeps the probabilities P (scores.size * itemsize bytes), the
        dropout mask folded into their sign bits; "recompute" keeps nothing, and
        backward recomputes P from the scores, which must be passed to it again
        (unchanged), and the attention mask, which `m` references.
    bits : bool, default False
        Mode "recompute" only: keep the dropout mask packed (ceil(scores.size / 8)
        bytes) instead of regenerating it from (key, offset) in backward.

    Returns
    -------
    y : ndarray of the scores' shape and dtype
    m : SoftmaxDropoutMask

    Examples
    --------
    >>> import numpy as np
    >>> s = np.zeros((4, 8), np.float32)
    >>> y, m = softmax_dropout_forward(s, 0.5, rng=1)
    >>> m.nbytes, bool(np.array_equal(y, m.probs * 2 * m.to_bool()))
    (128, True)
    >>> y, m = softmax_dropout_forward(s, 0.5, rng=1, mode="recompute")
    >>> m.nbytes
    0
    """
    return softmax_forward_impl(_config.kernels, scores, p, axis, attn_mask, is_causal, rng,
                                out, mode, bits)


def softmax_dropout_backward(dy, m: SoftmaxDropoutMask, *, scores=None,
                             out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of attention dropout with respect to the scores.

    ``dP = keep ? dy * scale : 0``, then per row ``ds = P * (dP - sum(P * dP))``
    (0 for keys cut by is_causal). The gradient of an additive attn_mask is ds
    summed over the mask's broadcast axes.

    Parameters
    ----------
    dy : ndarray of the scores' shape and dtype
        Gradient of the loss with respect to the forward output.
    m : SoftmaxDropoutMask
        From `softmax_dropout_forward`.
    scores : ndarray, optional
        The forward's scores, unchanged: required in mode "recompute", ignored in "store".
    out : ndarray, optional
        Output of dy's shape and dtype; ``out=dy`` works in place.

    Returns
    -------
    ds : ndarray of dy's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> s = np.array([[0.0, 1.0, 2.0]])
    >>> y, m = softmax_dropout_forward(s, 0.0, rng=0, mode="recompute")
    >>> ds = softmax_dropout_backward(np.ones_like(y), m, scores=s)
    >>> bool(np.allclose(ds, 0.0))
    True
    """
    return softmax_backward_impl(_config.kernels, dy, m, scores, out)


class SoftmaxDropout(LayerBase):
    """Attention dropout as a layer for numpy networks; train/eval like a PyTorch module.

    ``forward(scores, attn_mask=None, is_causal=False)`` is `softmax_dropout` in
    training mode and `softmax` in eval mode; ``backward(dy)`` is the gradient with
    respect to the scores (of the softmax alone in eval mode).

    Parameters
    ----------
    p : float, default 0.1
        Drop probability in [0, 1].
    axis : int, default -1
        The softmax axis (see `softmax`).
    mode : {"store", "recompute"}, default "store"
        What forward keeps for backward (see `softmax_dropout_forward`); in
        "recompute" the layer references the scores given to forward, which must
        stay unchanged until backward.
    bits : bool, default False
        Mode "recompute" only: keep the packed dropout mask instead of
        regenerating it.
    rng : Generator, int or None
        Source of the masks; an int seeds a Generator owned by the layer, None uses
        the default generator at each call.

    Examples
    --------
    >>> import numpy as np
    >>> layer = SoftmaxDropout(0.5, rng=0)
    >>> s = np.zeros((2, 4), np.float32)
    >>> y = layer.forward(s, is_causal=False)
    >>> ds = layer.backward(np.ones_like(y))
    >>> ds.shape, layer.eval().forward(s)[0].tolist()
    ((2, 4), [0.25, 0.25, 0.25, 0.25])
    """

    def __init__(self, p: float = 0.1, *, axis: int = -1, mode: str = "store", bits: bool = False,
                 rng: RNGLike = None):
        super().__init__(rng)
        self.p = check_p(p)
        self.axis = axis
        self.mode = _check_mode(mode)
        self.bits = _check_bool(bits, "bits")
        if self.bits and mode != "recompute":
            raise ValueError("bits: only for mode 'recompute' (mode 'store' keeps the mask "
                             "in the sign bits of P)")
        self._scores = None

    def forward(self, scores, attn_mask=None, is_causal: bool = False) -> np.ndarray:
        """Attention weights for `scores` (dropout in training mode only)."""
        y, self._mask = softmax_forward_impl(_config.kernels, scores, self.p, self.axis,
                                             attn_mask, is_causal, self.rng, None, self.mode,
                                             self.bits, self.training)
        self._scores = scores if self.mode == "recompute" else None
        return y

    def __call__(self, scores, attn_mask=None, is_causal: bool = False) -> np.ndarray:
        return self.forward(scores, attn_mask, is_causal)

    def backward(self, dy) -> np.ndarray:
        """d(scores) for the last forward call."""
        if self._mask is None:
            raise RuntimeError("SoftmaxDropout.backward: call forward first")
        return softmax_backward_impl(_config.kernels, dy, self._mask, self._scores, None)

    def __repr__(self) -> str:
        return f"SoftmaxDropout(p={self.p}, axis={self.axis}, mode={self.mode!r})"
