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

__all__ = [
    "dropout", "dropout_forward", "dropout_backward", "DropoutMask", "Dropout", "philox4x32",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
MASK_MODES = ("bits", "recompute")


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


def threshold(p: float) -> int:
    """The keep threshold of the stream contract: min(floor((1 - p) * 2**32), 2**32)."""
    return min(math.floor((1.0 - p) * 4294967296.0), 1 << 32)


def scale_of(p: float, dtype: np.dtype) -> float:
    """1 / (1 - p) computed in double, rounded once to `dtype` (0 for p == 1)."""
    return float(dtype.type(1.0 / (1.0 - p))) if p < 1.0 else 0.0


_coeff_cache: dict = {}


def coefficients(p: float, dtype: np.dtype) -> tuple:
    """(threshold(p), scale_of(p, dtype)), memoised: a layer calls with one p."""
    key = (p, dtype.char)
    hit = _coeff_cache.get(key)
    if hit is None:
        if len(_coeff_cache) > 256:
            _coeff_cache.clear()
        hit = _coeff_cache[key] = (threshold(p), scale_of(p, dtype))
    return hit


def check_array(x, name: str) -> np.ndarray:
    """x as a float32/float64 ndarray, or a TypeError naming `name`."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype not in _FLOATS:
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
    return out


def apply(x: np.ndarray, out: Optional[np.ndarray], kernel) -> np.ndarray:
    """Run kernel(src_flat, dst_flat) over x's logical C order; returns the output.

    The kernel sees C-contiguous 1-D buffers only: a strided input is copied, and
    an output that is strided or overlaps the input without being it is written
    through a temporary, so the input is never clobbered half-way.
    """
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


def _block_words(offset: int):
    return offset & 0xFFFFFFFFFFFFFFFF, offset >> 64


# --------------------------------------------------------------------------- masks
class DropoutMask:
    """What backward needs from a forward call: the packed keep bits, or nothing
    but (key, offset) to regenerate them.

    Attributes
    ----------
    p : float
        The drop probability.
    shape : tuple of int
        Shape of the mask (and of the forward input).
    key : tuple of two int
        Philox key words of the generator used.
    offset : int
        The first counter block of the mask.
    bits : ndarray of uint8, shape (ceil(n / 8),), or None
        Keep bits, bit ``i % 8`` of byte ``i // 8`` for flat C-order index i
        (``numpy.packbits(keep, bitorder="little")``). None in recompute mode.
    """

    __slots__ = ("p", "shape", "key", "offset", "bits")

    def __init__(self, p: float, shape: tuple, key: tuple, offset: int,
                 bits: Optional[np.ndarray]):
        self.p, self.shape, self.key, self.offset, self.bits = p, shape, key, offset, bits

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes kept for backward: ceil(n / 8) with bits, 0 in recompute mode."""
        return 0 if self.bits is None else self.bits.nbytes

    def packed(self, kernels=None) -> np.ndarray:
        """The packed keep bits, regenerated from (key, offset) if not stored."""
        if self.bits is not None:
            return self.bits
        n = self.size
        bits = np.empty((n + 7) // 8, np.uint8)
        lo, hi = _block_words(self.offset)
        (kernels or _config.kernels).mask(bits, n, self.key[0], self.key[1], lo, hi,
                                          threshold(self.p), _config.nthreads, _config.isa)
        return bits

    def to_bool(self) -> np.ndarray:
        """The keep mask as a bool array of `shape` (True where kept)."""
        keep = np.unpackbits(self.packed(), count=self.size, bitorder="little")
        return keep.view(bool).reshape(self.shape)

    def __repr__(self) -> str:
        mode = "bits" if self.bits is not None else "recompute"
        return (f"DropoutMask(p={self.p}, shape={self.shape}, offset={self.offset}, "
                f"mode={mode!r}, nbytes={self.nbytes})")


# --------------------------------------------------------------------------- implementations
def forward_impl(kernels, x, p, rng: RNGLike, out, mask: str):
    x = check_array(x, "x")
    p = check_p(p)
    if mask not in MASK_MODES:
        raise ValueError(f"mask: expected one of {MASK_MODES}, got {mask!r}")
    if out is not None:
        check_out(out, x)
    gen = resolve_rng(rng)
    n = x.size
    offset = gen._reserve((n + 7) // 8)
    bits = np.empty((n + 7) // 8, np.uint8) if mask == "bits" else None
    thresh, scale = coefficients(p, x.dtype)
    lo, hi = _block_words(offset)
    nt, isa = _config.nthreads, _config.isa

    def kernel(src, dst):
        kernels.fwd(src, dst, bits, gen.key[0], gen.key[1], lo, hi, thresh, scale, nt, isa)

    y = apply(x, out, kernel)
    return y, DropoutMask(p, x.shape, gen.key, offset, bits)


def backward_impl(kernels, dy, m, out):
    if not isinstance(m, DropoutMask):
        raise TypeError(f"m: expected a DropoutMask from dropout_forward, got {type(m).__name__}")
    dy = check_array(dy, "dy")
    if dy.shape != m.shape:
        raise ValueError(f"dy: expected shape {m.shape} (the mask's), got {dy.shape}")
    if out is not None:
        check_out(out, dy)
    thresh, scale = coefficients(m.p, dy.dtype)
    nt, isa = _config.nthreads, _config.isa
    if m.bits is not None:
        def kernel(src, dst):
            kernels.bwd_bits(src, dst, m.bits, scale, nt, isa)
    else:
        lo, hi = _block_words(m.offset)

        def kernel(src, dst):
            kernels.fwd(src, dst, None, m.key[0], m.key[1], lo, hi, thresh, scale, nt, isa)
    return apply(dy, out, kernel)


def dropout_impl(kernels, x, p, training, rng, out):
    if not training:
        x = check_array(x, "x")
        check_p(p)
        if out is None:
            return x
        check_out(out, x)
        if out is not x:
            out[...] = x
        return out
    return forward_impl(kernels, x, p, rng, out, "recompute")[0]


# --------------------------------------------------------------------------- public API
def dropout(x, p: float = 0.5, *, training: bool = True, rng: RNGLike = None,
            out: Optional[np.ndarray] = None) -> np.ndarray:
    """Inverted dropout: zero each element with probability `p`, scale the rest by 1/(1-p).

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape and layout
        Input activations.
    p : float, default 0.5
        Drop probability in [0, 1]. p == 0 keeps (copies) everything, p == 1 gives zeros.
    training : bool, default True
        When False dropout is off and `x` itself is returned (copied into `out` if given).
    rng : Generator, int or None
        Source of the mask: a Generator, an int seed (a fresh Generator at offset 0),
        or None for the default generator. Consumes ceil(x.size / 8) counter blocks.
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
    return dropout_impl(_config.kernels, x, p, training, rng, out)


def dropout_forward(x, p: float = 0.5, *, rng: RNGLike = None, out: Optional[np.ndarray] = None,
                    mask: str = "bits"):
    """Training-mode dropout that also returns what backward needs.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape and layout
    p : float, default 0.5
        Drop probability in [0, 1].
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
    return forward_impl(_config.kernels, x, p, rng, out, mask)


def dropout_backward(dy, m: DropoutMask, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of dropout: ``dx = dy * scale`` where the mask kept, 0 elsewhere.

    Parameters
    ----------
    dy : ndarray of float32 or float64 with the mask's shape
        Gradient of the loss with respect to the forward output.
    m : DropoutMask
        From `dropout_forward`; in recompute mode the mask is regenerated.
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


# --------------------------------------------------------------------------- layer
class Dropout:
    """Inverted dropout layer for numpy networks, with its own backward.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability in [0, 1].
    mask : {"bits", "recompute"}, default "bits"
        What forward keeps for backward (see `dropout_forward`).
    rng : Generator, int or None
        Source of masks; an int seeds a Generator owned by the layer.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dropout(0.5, rng=0)
    >>> x = np.ones((2, 8), np.float32)
    >>> y = layer.forward(x)
    >>> dx = layer.backward(np.ones_like(y))
    >>> bool(np.array_equal(dx, y)), layer.eval().forward(x) is x
    (True, True)
    """

    def __init__(self, p: float = 0.5, *, mask: str = "bits", rng: RNGLike = None):
        self.p = check_p(p)
        if mask not in MASK_MODES:
            raise ValueError(f"mask: expected one of {MASK_MODES}, got {mask!r}")
        self.mask_mode = mask
        self.rng = resolve_rng(rng) if rng is not None else None
        self.training = True
        self._mask: Optional[DropoutMask] = None

    def train(self, mode: bool = True) -> "Dropout":
        self.training = bool(mode)
        return self

    def eval(self) -> "Dropout":
        return self.train(False)

    def forward(self, x) -> np.ndarray:
        """y = dropout(x) in training mode (keeping the mask), x itself in eval mode."""
        if not self.training:
            self._mask = None
            return check_array(x, "x")
        y, self._mask = dropout_forward(x, self.p, rng=self.rng, mask=self.mask_mode)
        return y

    __call__ = forward

    def backward(self, dy) -> np.ndarray:
        """dx for the last forward call (dy itself after an eval-mode forward)."""
        if self._mask is None:
            return check_array(dy, "dy")
        return dropout_backward(dy, self._mask)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p}, mask={self.mask_mode!r})"
