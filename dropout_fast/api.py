"""Standard (inverted) dropout: the public functions and the one place where
policy lives (validation, the keep threshold, identity cases, allocation).

Every function here works on any array layout: the mask follows the logical
C-order index of the array, and C-contiguous arrays take the fast path.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

import numpy as np

from dropout_fast import _config
from dropout_fast._generator import RNGLike, resolve_rng
from dropout_fast._plans import threshold  # noqa: F401 - re-exported (_fused, _softmax)
from dropout_fast._plans import forward_plan, threshold_of, variant_coefficients
from dropout_fast._variants import VARIANTS

__all__ = [
    "dropout", "dropout_forward", "dropout_backward", "DropoutMask", "philox4x32",
]

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_FLOATS = (_F32, _F64)
MASK_MODES = ("bits", "recompute")
# The compiled module, whose kernels take n-D C-contiguous arrays as they are
# (the Numba backend's take flat buffers only): the direct path of `apply`.
_C = _config.kernels if _config.BACKEND == "c" else None


# --------------------------------------------------------------------------- policy
def check_p(p) -> float:
    """p as a float in [0, 1], or a ValueError/TypeError naming `p`."""
    if type(p) is float and 0.0 <= p <= 1.0:  # the common case, without the ABC check
        return p
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"p: expected a real number in [0, 1], got {type(p).__name__}")
    p = float(p)
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"p: expected a probability in [0, 1], got {p}")
    return p


def check_array(x, name: str) -> np.ndarray:
    """x as a float32/float64 ndarray, or a TypeError naming `name`."""
    if type(x) is np.ndarray and (x.dtype is _F32 or x.dtype is _F64):
        return x  # the common case, without the dtype comparisons
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype not in _FLOATS:
        if x.dtype.kind == "f" and x.dtype.newbyteorder("=") in _FLOATS:
            # Refused, not converted: a silent copy would break out=x and inplace=True.
            raise TypeError(f"{name}: expected a float32 or float64 array in native byte order, "
                            f"got dtype {x.dtype.str}; convert it with "
                            f"{name}.astype({name}.dtype.newbyteorder('='))")
        raise TypeError(f"{name}: expected a float32 or float64 array, got dtype {x.dtype}")
    return x


def check_out(out, like: np.ndarray, name: str = "out") -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != like.dtype:
        raise TypeError(f"{name}: expected dtype {like.dtype}, got {out.dtype}")
    if out.shape != like.shape:
        raise ValueError(f"{name}: expected shape {like.shape}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{name}: array is read-only")
    if _self_overlapping(out):
        raise ValueError(f"{name}: elements share memory (a zero-stride or self-overlapping "
                         f"view); pass an array with one memory location per element")
    return out


def _self_overlapping(a: np.ndarray) -> bool:
    """Whether two elements of `a` may share memory (True for any zero-stride axis of
    length > 1). Conservative: axes sorted by |stride| must each step past the extent
    of the smaller ones, which every layout numpy creates without as_strided meets."""
    if a.size <= 1 or a.flags.c_contiguous or a.flags.f_contiguous:
        return False  # contiguous: one location per element (the common case, O(1))
    extent = a.itemsize
    dims = sorted(((abs(s), n) for n, s in zip(a.shape, a.strides) if n > 1))
    for stride, n in dims:
        if stride < extent:
            return True
        extent = stride * (n - 1) + extent
    return False


def direct_output(kernels, x: np.ndarray, out: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Validate `out` (see `check_out`) and return the array the C kernels may
    write x's result to as it is (a new one when out is None), or None where
    `apply` must take its general path (strided or overlapping arrays, the
    Numba backend). Taking it before the kernel saves the per-call flag checks,
    flat views and closures of the general path (a few microseconds)."""
    y = _C.direct_output(x, out) if kernels is _C else None
    if y is None and out is not None:
        check_out(out, x)
    return y


def apply(x: np.ndarray, out: Optional[np.ndarray], kernel,
          y: Optional[np.ndarray] = None) -> np.ndarray:
    """Run kernel(src_flat, dst_flat) over x's logical C order; returns the output.

    The kernel sees C-contiguous 1-D buffers only: a strided input is copied, and
    an output that is strided or overlaps the input without being it is written
    through a temporary, so the input is never clobbered half-way. With y from
    `direct_output`, the kernel runs on (x, y) as they are.
    """
    if y is not None:
        kernel(x, y)
        return y
    src = np.ascontiguousarray(x)
    if out is None:
        y = np.empty(x.shape, x.dtype)
        direct = True
    else:
        y = out
        direct = y.flags.c_contiguous and (y is src or not np.may_share_memory(y, src))
    if x.size == 0:
        return y
    dst = y if direct else np.empty(x.shape, x.dtype)
    kernel(src.reshape(-1), dst.reshape(-1))
    if not direct:
        y[...] = dst
    return y


_LO64 = 0xFFFFFFFFFFFFFFFF


def _block_words(offset: int):
    return offset & _LO64, offset >> 64


# --------------------------------------------------------------------------- masks
class DropoutMask:
    """What backward needs from a forward call: the packed keep bits, or nothing
    but (key, offset) to regenerate them.

    Attributes
    ----------
    p : float
        The drop probability.
    shape : tuple of int
        Shape of the forward input (and of dy).
    noise_shape : tuple of int
        Shape of the mask itself, broadcast over its size-1 axes; equals `shape`
        for element-wise dropout.
    variant : str
        The row of the variant table (``"dropout"``, ``"spatial_dropout"``, ...).
    options : dict
        The variant's options (for example ``data_format``).
    key : tuple of two int
        Philox key words of the generator used.
    offset : int
        The first counter block of the mask.
    bits : ndarray of uint8, shape (ceil(m / 8),), or None
        Keep bits over the mask's own flat C-order index i (m elements of
        `noise_shape`): bit ``i % 8`` of byte ``i // 8``, i.e.
        ``numpy.packbits(keep, bitorder="little")``. None in recompute mode.
    """

    __slots__ = ("p", "shape", "key", "offset", "bits", "noise_shape", "variant", "options",
                 "_memo")

    def __init__(self, p: float, shape: tuple, key: tuple, offset: int,
                 bits: Optional[np.ndarray], noise_shape: Optional[tuple] = None,
                 variant: str = "dropout", options: Optional[dict] = None):
        self.p, self.shape, self.key, self.offset, self.bits = p, shape, key, offset, bits
        self.noise_shape = shape if noise_shape is None else noise_shape
        self.variant, self.options = variant, options or {}
        # (dtype, p, variant, options, copy of options, a): backward's scale for
        # dtype, valid while those attributes are the very objects (and values) it
        # was computed from; saves the coefficient memo's key (~0.3 us a call).
        self._memo = None

    @property
    def size(self) -> int:
        """Number of mask elements (of `noise_shape`)."""
        return math.prod(self.noise_shape)

    @property
    def nbytes(self) -> int:
        """Bytes kept for backward: ceil(m / 8) with bits, 0 in recompute mode."""
        return 0 if self.bits is None else self.bits.nbytes

    def packed(self, kernels=None) -> np.ndarray:
        """The packed keep bits, regenerated from (key, offset) if not stored."""
        if self.bits is not None:
            return self.bits
        return draw_bits(kernels or _config.kernels, self.key, self.offset, self.size, self.p)

    def to_bool(self) -> np.ndarray:
        """The keep mask as a bool array of `noise_shape` (True where kept)."""
        keep = np.unpackbits(self.packed(), count=self.size, bitorder="little")
        return keep.view(bool).reshape(self.noise_shape)

    def coefficients(self, dtype) -> tuple:
        """(a, b, c) of the variant for p, rounded to `dtype`."""
        return variant_coefficients(self.variant, self.p, np.dtype(dtype), self.options)

    def __repr__(self) -> str:
        mode = "bits" if self.bits is not None else "recompute"
        return (f"DropoutMask(variant={self.variant!r}, p={self.p}, shape={self.shape}, "
                f"noise_shape={self.noise_shape}, offset={self.offset}, mode={mode!r}, "
                f"nbytes={self.nbytes})")


# --------------------------------------------------------------------------- the engine
def draw_bits(kernels, key: tuple, offset: int, count: int, p: float) -> np.ndarray:
    """Packed keep bits of `count` mask elements at block `offset` (stream contract)."""
    if kernels is _C and count > 0:  # allocated in C (saves ~0.2 us a call)
        return _C.mask_new(count, key[0], key[1], offset & _LO64, offset >> 64, threshold_of(p),
                           _config.nthreads, _config.isa)
    bits = np.empty((count + 7) // 8, np.uint8)
    if count:
        lo, hi = _block_words(offset)
        kernels.mask(bits, count, key[0], key[1], lo, hi, threshold_of(p), _config.nthreads,
                     _config.isa)
    return bits


def check_training(training) -> bool:
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training: expected a bool, got {type(training).__name__}")
    return bool(training)


def forward_impl(kernels, x, p, rng: RNGLike, out, mask: str, variant: str = "dropout",
                 options: Optional[dict] = None, want_mask: bool = True):
    """Every variant's forward: validate, reserve the mask's counter blocks, run.
    Returns (y, DropoutMask), or (y, None) when want_mask is False."""
    x = check_array(x, "x")
    p = check_p(p)
    if mask not in MASK_MODES:
        raise ValueError(f"mask: expected one of {MASK_MODES}, got {mask!r}")
    y = direct_output(kernels, x, out)
    options = options or {}
    shape = x.shape
    noise_shape, count, a, b, c, thresh = forward_plan(variant, p, x.dtype, shape, options)
    gen = resolve_rng(rng)
    offset = gen._reserve((count + 7) // 8)
    key = gen._key
    nt, isa = _config.nthreads, _config.isa
    if noise_shape == shape and b == 0.0 and c == 0.0:
        # The fused pass: mask generation, scaling and the bit write in one sweep.
        lo, hi = offset & _LO64, offset >> 64
        if y is not None:
            bits = kernels.fwd_into(x, y, mask == "bits", key[0], key[1], lo, hi, thresh, a,
                                    nt, isa)
        else:
            bits = np.empty((count + 7) // 8, np.uint8) if mask == "bits" else None
            y = apply(x, out, lambda src, dst: kernels.fwd(src, dst, bits, key[0], key[1], lo,
                                                           hi, thresh, a, nt, isa))
    else:
        bits = draw_bits(kernels, key, offset, count, p)
        if y is not None:
            kernels.bcast_apply(x, y, bits, shape, noise_shape, a, b, c, nt, isa)
        else:
            y = apply(x, out, lambda src, dst: kernels.bcast_apply(src, dst, bits, shape,
                                                                   noise_shape, a, b, c, nt, isa))
        if mask == "recompute":
            bits = None
    if not want_mask:
        return y, None
    m = DropoutMask(p, shape, key, offset, bits, noise_shape, variant, options)
    m._memo = (x.dtype, p, variant, m.options, dict(m.options), a)
    return y, m


def backward_impl(kernels, dy, m, out):
    """Every variant's backward: dx = keep ? a * dy : 0 with the forward's mask."""
    if not isinstance(m, DropoutMask):
        own = getattr(m, "_backward", None)  # masks of variants outside the table (DropBlock)
        if own is None:
            raise TypeError(f"m: expected a DropoutMask from a *_forward call, "
                            f"got {type(m).__name__}")
        return own(kernels, dy, out)
    dy = check_array(dy, "dy")
    shape = m.shape
    if dy.shape != shape:
        raise ValueError(f"dy: expected shape {shape} (the mask's), got {dy.shape}")
    y = direct_output(kernels, dy, out)
    dt = dy.dtype
    try:
        memo = m._memo
    except AttributeError:  # unpickled from a version without the slot
        memo = None
    if (memo is not None and memo[0] is dt and memo[1] is m.p and memo[2] is m.variant
            and memo[3] is m.options and memo[4] == m.options):
        a = memo[5]
    else:
        a = variant_coefficients(m.variant, m.p, dt, m.options)[0]
        m._memo = (dt, m.p, m.variant, m.options, dict(m.options), a)
    nt, isa = _config.nthreads, _config.isa
    noise_shape = m.noise_shape
    if noise_shape != shape:
        bits = m.packed(kernels)
        if y is not None:
            kernels.bcast_apply(dy, y, bits, shape, noise_shape, a, 0.0, 0.0, nt, isa)
            return y
        return apply(dy, out, lambda src, dst: kernels.bcast_apply(src, dst, bits, shape,
                                                                   noise_shape, a, 0.0, 0.0,
                                                                   nt, isa))
    bits = m.bits
    if bits is not None:
        if y is not None:
            kernels.bwd_bits(dy, y, bits, a, nt, isa)
            return y
        return apply(dy, out, lambda src, dst: kernels.bwd_bits(src, dst, bits, a, nt, isa))
    key, offset = m.key, m.offset
    lo, hi, thresh = offset & _LO64, offset >> 64, threshold_of(m.p)
    return apply(dy, out, lambda src, dst: kernels.fwd(src, dst, None, key[0], key[1], lo, hi,
                                                       thresh, a, nt, isa), y)


def dropout_impl(kernels, x, p, training, rng, out, variant: str = "dropout",
                 options: Optional[dict] = None):
    """The one-shot form: identity when not training, else forward without bits."""
    if not check_training(training):
        x = check_array(x, "x")
        check_p(p)
        VARIANTS[variant].noise_shape(x.shape, **(options or {}))  # validate options too
        if out is None:
            return x
        check_out(out, x)
        if out is not x:
            out[...] = x
        return out
    return forward_impl(kernels, x, p, rng, out, "recompute", variant, options, False)[0]


# --------------------------------------------------------------------------- public API
def dropout(x, p: float = 0.5, *, noise_shape: Optional[tuple] = None, training: bool = True,
            rng: RNGLike = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Inverted dropout: zero each element with probability `p`, scale the rest by 1/(1-p).

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape and layout
        Input activations.
    p : float, default 0.5
        Drop probability in [0, 1]. p == 0 keeps (copies) everything, p == 1 gives zeros.
    noise_shape : tuple of int, optional
        Shape of the mask (Keras semantics): x's ndim entries, each x's extent or 1.
        The mask is drawn over this shape and broadcast over its size-1 axes.
        Default: x's shape (element-wise).
    training : bool, default True
        When False dropout is off and `x` itself is returned (copied into `out` if given).
    rng : Generator, int or None
        Source of the mask: a Generator, an int seed (a fresh Generator at offset 0),
        or None for the default generator. Consumes ceil(m / 8) counter blocks for an
        m-element mask.
    out : ndarray, optional
        Output of x's shape and dtype; ``out=x`` works in place.

    Returns
    -------
    y : ndarray of x's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> y = dropout(np.ones(8, np.float32), 0.5, rng=0)
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    """
    return dropout_impl(_config.kernels, x, p, training, rng, out, "dropout",
                        {"noise_shape": noise_shape})


def dropout_forward(x, p: float = 0.5, *, noise_shape: Optional[tuple] = None,
                    rng: RNGLike = None, out: Optional[np.ndarray] = None, mask: str = "bits"):
    """Training-mode dropout that also returns what backward needs.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape and layout
    p : float, default 0.5
        Drop probability in [0, 1].
    noise_shape : tuple of int, optional
        See `dropout`.
    rng : Generator, int or None
        See `dropout`.
    out : ndarray, optional
        Output of x's shape and dtype; ``out=x`` works in place.
    mask : {"bits", "recompute"}, default "bits"
        "bits" keeps the mask packed, 1 bit per element; "recompute" keeps
        nothing but (key, offset) and backward regenerates the mask.

    Returns
    -------
    y : ndarray of x's shape and dtype
    m : DropoutMask

    Examples
    --------
    >>> import numpy as np
    >>> y, m = dropout_forward(np.ones((4, 4)), 0.25, rng=1)
    >>> m.nbytes, bool(np.all((y == 0) == ~m.to_bool()))
    (2, True)
    """
    return forward_impl(_config.kernels, x, p, rng, out, mask, "dropout",
                        {"noise_shape": noise_shape})


def dropout_backward(dy, m: DropoutMask, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of any dropout variant: ``dx = a * dy`` where the mask kept, 0 elsewhere.

    `a` is the variant's scale (1/(1-p) for inverted dropout); the mask is
    broadcast over its size-1 axes as in the forward call.

    Parameters
    ----------
    dy : ndarray of float32 or float64 with the mask's shape
        Gradient of the loss with respect to the forward output.
    m : DropoutMask
        From `dropout_forward` or any variant's forward (`forward`); in recompute
        mode the mask is regenerated.
    out : ndarray, optional
        Output of dy's shape and dtype; ``out=dy`` works in place.

    Returns
    -------
    dx : ndarray of dy's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> y, m = dropout_forward(np.ones(16, np.float32), 0.5, rng=3)
    >>> bool(np.array_equal(dropout_backward(np.ones(16, np.float32), m), y))
    True
    """
    return backward_impl(_config.kernels, dy, m, out)


def philox4x32(counter, key, rounds: int = 10) -> np.ndarray:
    """The Philox4x32 block function (Salmon et al., SC'11), vectorised.

    Parameters
    ----------
    counter : array_like of uint32, shape (..., 4)
    key : array_like of uint32, shape (..., 2)
        Broadcast against counter's leading dimensions.
    rounds : int, default 10
        Number of rounds in [0, 16]; 10 is the generator of the stream contract.

    Returns
    -------
    ndarray of uint32, shape (..., 4)

    Examples
    --------
    >>> [hex(w) for w in philox4x32([0, 0, 0, 0], [0, 0])]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    counter, key = _as_words(counter, "counter", 4), _as_words(key, "key", 2)
    if isinstance(rounds, (bool, np.bool_)) or not isinstance(rounds, numbers.Integral):
        raise TypeError(f"rounds: expected an integer, got {type(rounds).__name__}")
    if not 0 <= rounds <= 16:
        raise ValueError(f"rounds: expected an integer in [0, 16], got {rounds}")
    try:
        lead = np.broadcast_shapes(counter.shape[:-1], key.shape[:-1])
    except ValueError:
        raise ValueError(f"counter and key: leading shapes {counter.shape[:-1]} and "
                         f"{key.shape[:-1]} do not broadcast") from None
    ctr = np.ascontiguousarray(np.broadcast_to(counter, lead + (4,))).reshape(-1, 4)
    k = np.ascontiguousarray(np.broadcast_to(key, lead + (2,))).reshape(-1, 2)
    out = np.empty_like(ctr)
    if out.size:
        _config.kernels.philox4x32(ctr, k, out, int(rounds))
    return out.reshape(lead + (4,))


def _as_words(a, name: str, width: int) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer array of uint32 words, got dtype {a.dtype}")
    if a.ndim == 0 or a.shape[-1] != width:
        raise ValueError(f"{name}: expected shape (..., {width}), got {a.shape}")
    if a.size and (a.min() < 0 or a.max() > 0xFFFFFFFF):
        raise ValueError(f"{name}: words must lie in [0, 2**32)")
    return a.astype(np.uint32, copy=False)
