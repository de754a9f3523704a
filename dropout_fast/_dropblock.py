"""DropBlock: drop contiguous square (cubic) blocks of feature maps.

Ghiasi, Lin, Le, "DropBlock: A regularization method for convolutional
networks", NeurIPS 2018, with torchvision's ``drop_block2d``/``drop_block3d``
semantics:

- ``gamma = p * H * W / (bs**2 * (H - bs + 1) * (W - bs + 1))`` (cubes and
  ``bs**3`` in 3-D), the seed probability that makes the expected dropped
  fraction ``p`` to first order in gamma;
- seeds are drawn over the grid (N, C, H - bs + 1, W - bs + 1) and a seed at
  (i, j) drops the block [i, i + bs) x [j, j + bs), which lies fully inside the
  map (what torchvision's pad + max_pool2d gives for odd bs; even sizes are
  defined the same anchored way here, where torchvision's shapes mismatch);
- ``out = x * keep * numel / (eps + kept)``, the scale computed in double and
  rounded once to x's dtype.

Seeds follow the stream contract: seed(i) = not keep(i) at drop probability
gamma, over the flat C-order index i of the seed grid ((N, C, *spatial) for
channels_first, (N, *spatial, C) for channels_last), ceil(count / 8) counter
blocks per call. The blocks are expanded in numpy and the scaled mask is
applied by the C pass that dropout's backward uses (``bwd_bits``).
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Optional

import numpy as np

from dropout_fast import _config
from dropout_fast._generator import RNGLike, resolve_rng
from dropout_fast._layer import LayerBase
from dropout_fast.api import (MASK_MODES, apply, check_array, check_out, check_p,
                              check_training, direct_output, draw_bits)

__all__ = ["drop_block", "drop_block_forward", "drop_block_backward", "drop_block2d",
           "drop_block3d", "DropBlock", "DropBlockMask"]

FORMATS = ("channels_first", "channels_last")


# --------------------------------------------------------------------------- policy
def _check_block_size(block_size) -> int:
    if isinstance(block_size, (bool, np.bool_)):
        raise TypeError("block_size: expected an int, got bool")
    try:
        bs = operator.index(block_size)
    except TypeError:
        raise TypeError(f"block_size: expected an int, got {type(block_size).__name__}") from None
    if bs < 1:
        raise ValueError(f"block_size: expected a positive int, got {bs}")
    return bs


def _check_options(data_format, eps) -> float:
    if data_format not in FORMATS:
        raise ValueError(f"data_format: expected 'channels_first' or 'channels_last', "
                         f"got {data_format!r}")
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"eps: expected a real number, got {type(eps).__name__}")
    eps = float(eps)
    if not 0.0 <= eps < math.inf:  # also rejects NaN
        raise ValueError(f"eps: expected a finite number >= 0, got {eps}")
    return eps


def _spatial_axes(shape: tuple, data_format: str, block_size: int, name: str) -> tuple:
    """The axes of the feature map; ValueError if x is not 4-D/5-D or too small."""
    if len(shape) not in (4, 5):
        raise ValueError(f"{name}: drop_block expects a 4-D (N, C, H, W) or 5-D (N, C, D, H, W) "
                         f"input (channels last: (N, H, W, C), (N, D, H, W, C)), "
                         f"got shape {shape}")
    axes = tuple(range(2, len(shape)) if data_format == "channels_first"
                 else range(1, len(shape) - 1))
    spatial = tuple(shape[a] for a in axes)
    if block_size > min(spatial):
        raise ValueError(f"block_size: {block_size} is larger than the feature map {spatial} "
                         f"of {name}")
    return axes


def _validate(x, p, block_size, data_format, eps, name: str) -> tuple:
    """(x, p, block_size, eps, spatial axes), or the error naming the bad argument."""
    x = check_array(x, name)
    p = check_p(p)
    bs = _check_block_size(block_size)
    eps = _check_options(data_format, eps)
    return x, p, bs, eps, _spatial_axes(x.shape, data_format, bs, name)


def _seed_probability(p: float, spatial: tuple, block_size: int) -> float:
    """torchvision's gamma, multiplied in its order so thresholds agree bit for bit.

    gamma <= p always (bs * (e - bs + 1) >= e for 1 <= bs <= e), so the clamp to
    [0, 1] only guards rounding. p == 1 is special: gamma = 1, every seed fires
    and the whole map is dropped, whereas torchvision keeps drawing at gamma < 1.
    """
    if p == 1.0:
        return 1.0
    g = p
    for e in spatial:
        g *= e
    return min(g / (block_size ** len(spatial) * math.prod(e - block_size + 1 for e in spatial)),
               1.0)


def _scale(p: float, numel: int, kept: int, eps: float) -> float:
    """numel / (eps + kept) in double; 1 for p == 0 (torchvision returns x itself),
    0 for eps == kept == 0 (where the scale multiplies nothing)."""
    if p == 0.0:
        return 1.0
    return numel / (eps + kept) if eps + kept > 0 else 0.0


def _rounded(scale: float, dtype: np.dtype) -> float:
    """The scale rounded once to dtype. It overflows only when nothing is kept (a
    tiny eps over no survivors), where no output uses it."""
    if -3.0e38 < scale < 3.0e38:  # inside float32's range: no overflow to silence
        return float(dtype.type(scale))  # (np.errstate costs ~2 us a call)
    with np.errstate(over="ignore"):
        return float(dtype.type(scale))


# --------------------------------------------------------------------------- masks
def _dilate(a: np.ndarray, b: np.ndarray, step: int, bs: int):
    """a[i] |= a[i - k*step] for k in [1, bs), on flat buffers; returns (result, spare).

    Window doubling (widths 1, 2, 4, ..., bs): ceil(log2 bs) contiguous passes,
    ping-ponged between a and b so no pass reads what it writes.
    """
    w = 1
    while w < bs:
        k = min(w, bs - w) * step
        b[:k] = a[:k]
        np.logical_or(a[k:], a[:-k], out=b[k:])
        a, b = b, a
        w += min(w, bs - w)
    return a, b


def _grid(shape: tuple, axes: tuple, bs: int) -> tuple:
    """Shape of the seed grid: each spatial extent e becomes e - bs + 1."""
    return tuple(d - bs + 1 if a in axes else d for a, d in enumerate(shape))


def _no_seed(kernels, key: tuple, offset: int, gamma: float, grid: tuple) -> np.ndarray:
    """The keep draws at drop probability gamma over the grid: False where a seed fires."""
    n = math.prod(grid)
    keep = np.unpackbits(draw_bits(kernels, key, offset, n, gamma), count=n, bitorder="little")
    return keep.view(bool).reshape(grid)


def _dropped(kernels, key: tuple, offset: int, gamma: float, shape: tuple, axes: tuple,
             bs: int) -> np.ndarray:
    """The dropped elements (bool, x's shape) for the seeds at (key, offset)."""
    grid = _grid(shape, axes, bs)
    a = np.zeros(shape, bool)
    np.logical_not(_no_seed(kernels, key, offset, gamma, grid),
                   out=a[tuple(slice(0, g) for g in grid)])
    # Seeds sit in the low corner of each map and the last bs - 1 entries of every
    # spatial axis start empty, so a flat shift by k < bs steps of an axis never
    # carries a block into the next row, plane or map: each axis dilates as one
    # contiguous 1-D pass over the whole buffer.
    a, b = a.reshape(-1), np.empty(a.size, bool)
    for ax in axes:
        a, b = _dilate(a, b, math.prod(shape[ax + 1:]), bs)
    return a.reshape(shape)


def _pack_keep(dropped: np.ndarray) -> tuple:
    """(packed keep bits with the unused high bits 0, number kept)."""
    n = dropped.size
    bits = np.packbits(dropped.reshape(-1), bitorder="little")
    np.invert(bits, out=bits)
    if n % 8:
        bits[-1] &= (1 << (n % 8)) - 1
    return bits, n - int(np.count_nonzero(dropped))


class DropBlockMask:
    """What `drop_block_backward` needs from `drop_block_forward`.

    Attributes
    ----------
    p, gamma : float
        The drop probability and the seed probability derived from it.
    shape : tuple of int
        Shape of the forward input (and of dy).
    block_size : int
    data_format : {"channels_first", "channels_last"}
    key : tuple of two int
        Philox key words of the generator used.
    offset : int
        First counter block of the seed grid.
    scale : float
        numel / (eps + kept) in double, as torchvision's; 1.0 for p == 0.
    bits : ndarray of uint8, shape (ceil(numel / 8),), or None
        Keep bits of every element of x (flat C order, ``packbits(keep,
        bitorder="little")``); None in recompute mode.
    """

    __slots__ = ("p", "gamma", "shape", "block_size", "data_format", "key", "offset", "scale",
                 "bits")

    def __init__(self, p, gamma, shape, block_size, data_format, key, offset, scale, bits):
        self.p, self.gamma, self.shape, self.block_size = p, gamma, shape, block_size
        self.data_format, self.key, self.offset = data_format, key, offset
        self.scale, self.bits = scale, bits

    @property
    def nbytes(self) -> int:
        """Bytes kept for backward: ceil(numel / 8) with bits, 0 in recompute mode."""
        return 0 if self.bits is None else self.bits.nbytes

    @property
    def _axes(self) -> tuple:
        return _spatial_axes(self.shape, self.data_format, self.block_size, "shape")

    def packed(self, kernels=None) -> np.ndarray:
        """The packed keep bits, regenerated from (key, offset) if not stored."""
        if self.bits is not None:
            return self.bits
        return _pack_keep(_dropped(kernels or _config.kernels, self.key, self.offset, self.gamma,
                                   self.shape, self._axes, self.block_size))[0]

    def to_bool(self) -> np.ndarray:
        """The keep mask as a bool array of `shape` (True where kept)."""
        n = math.prod(self.shape)
        return np.unpackbits(self.packed(), count=n, bitorder="little").view(bool).reshape(
            self.shape)

    def seeds(self, kernels=None) -> np.ndarray:
        """The seed grid (bool, True where a block starts), redrawn from (key, offset)."""
        grid = _grid(self.shape, self._axes, self.block_size)
        return ~_no_seed(kernels or _config.kernels, self.key, self.offset, self.gamma, grid)

    def _backward(self, kernels, dy, out):
        """The generic `dropout_fast.backward` lands here."""
        return drop_block_backward_impl(kernels, dy, self, out)

    def __repr__(self) -> str:
        mode = "bits" if self.bits is not None else "recompute"
        return (f"DropBlockMask(p={self.p}, block_size={self.block_size}, shape={self.shape}, "
                f"data_format={self.data_format!r}, offset={self.offset}, mode={mode!r}, "
                f"nbytes={self.nbytes})")


# --------------------------------------------------------------------------- the engine
def drop_block_forward_impl(kernels, x, p, block_size, data_format="channels_first", eps=1e-6,
                            rng: RNGLike = None, out=None, mask="bits", name="x"):
    """Validate everything, reserve the seed grid's blocks, expand, apply."""
    x, p, bs, eps, axes = _validate(x, p, block_size, data_format, eps, name)
    if mask not in MASK_MODES:
        raise ValueError(f"mask: expected one of {MASK_MODES}, got {mask!r}")
    y = direct_output(kernels, x, out)  # checks out
    gen = resolve_rng(rng)
    gamma = _seed_probability(p, tuple(x.shape[a] for a in axes), bs)
    offset = gen._reserve((math.prod(_grid(x.shape, axes, bs)) + 7) // 8)
    bits, kept = _pack_keep(_dropped(kernels, gen.key, offset, gamma, x.shape, axes, bs))
    scale = _scale(p, x.size, kept, eps)
    s, nt, isa = _rounded(scale, x.dtype), _config.nthreads, _config.isa
    y = apply(x, out, lambda src, dst: kernels.bwd_bits(src, dst, bits, s, nt, isa), y)
    m = DropBlockMask(p, gamma, x.shape, bs, data_format, gen.key, offset, scale,
                      bits if mask == "bits" else None)
    return y, m


def drop_block_backward_impl(kernels, dy, m, out=None):
    """dx = keep ? scale * dy : 0 with the forward's mask."""
    if not isinstance(m, DropBlockMask):
        raise TypeError(f"m: expected a DropBlockMask from drop_block_forward, "
                        f"got {type(m).__name__}")
    dy = check_array(dy, "dy")
    if dy.shape != m.shape:
        raise ValueError(f"dy: expected shape {m.shape} (the mask's), got {dy.shape}")
    y = direct_output(kernels, dy, out)  # checks out
    bits = m.packed(kernels)
    s, nt, isa = _rounded(m.scale, dy.dtype), _config.nthreads, _config.isa
    return apply(dy, out, lambda src, dst: kernels.bwd_bits(src, dst, bits, s, nt, isa), y)


def drop_block_impl(kernels, x, p, block_size, data_format="channels_first", eps=1e-6,
                    training=True, rng: RNGLike = None, out=None, name="x"):
    """The one-shot form: x itself when not training (after validation)."""
    if check_training(training):
        return drop_block_forward_impl(kernels, x, p, block_size, data_format, eps, rng, out,
                                       "recompute", name)[0]
    x = _validate(x, p, block_size, data_format, eps, name)[0]
    if out is None:
        return x
    check_out(out, x)
    if out is not x:
        out[...] = x
    return out


# --------------------------------------------------------------------------- public API
def drop_block(x, p: float, block_size: int, *, data_format: str = "channels_first",
               eps: float = 1e-6, training: bool = True, rng: RNGLike = None,
               out: Optional[np.ndarray] = None) -> np.ndarray:
    """DropBlock: zero random bs x bs (bs**3 in 3-D) blocks, rescale the rest.

    Parameters
    ----------
    x : ndarray of float32 or float64, shape (N, C, H, W) or (N, C, D, H, W)
        Channels last: (N, H, W, C) or (N, D, H, W, C). Any other ndim is a ValueError.
    p : float
        Drop probability in [0, 1]; seeds fire with torchvision's gamma (see the
        module docstring), so about a fraction p of the map is dropped (exactly p
        to first order in gamma: blocks overlap). p == 0 copies x; p == 1 drops
        everything (torchvision would still keep part of the map).
    block_size : int
        Side of the blocks, in [1, min(spatial extents)]: a ValueError otherwise
        (torchvision clamps it). A seed at (i, j) drops [i, i + bs) x [j, j + bs),
        for even sizes too.
    data_format : {"channels_first", "channels_last"}
        Also the order of the seed grid in the stream.
    eps : float, default 1e-6
        Added to the kept count in the scale numel / (eps + kept); >= 0.
    training : bool, default True
        When False the function is the identity and returns x itself.
    rng : Generator, int or None
        The seed grid (x's shape less bs - 1 per spatial axis, m elements)
        consumes ceil(m / 8) counter blocks, whatever p.
    out : ndarray, optional
        Output of x's shape and dtype; ``out=x`` works in place.

    Returns
    -------
    ndarray of x's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> y = drop_block(np.ones((2, 3, 8, 8), np.float32), 0.3, 3, rng=0)
    >>> y.shape, bool(np.all(y[y != 0] == y.max()))
    ((2, 3, 8, 8), True)
    """
    return drop_block_impl(_config.kernels, x, p, block_size, data_format, eps, training, rng, out)


def drop_block_forward(x, p: float, block_size: int, *, data_format: str = "channels_first",
                       eps: float = 1e-6, rng: RNGLike = None, out: Optional[np.ndarray] = None,
                       mask: str = "bits"):
    """Training-mode `drop_block` that also returns what backward needs.

    Parameters
    ----------
    x, p, block_size, data_format, eps, rng, out :
        As in `drop_block`.
    mask : {"bits", "recompute"}, default "bits"
        "bits" keeps the expanded mask, 1 bit per element of x; "recompute"
        keeps (key, offset) and backward redraws the seeds and re-expands them.

    Returns
    -------
    y : ndarray of x's shape and dtype
    m : DropBlockMask

    Examples
    --------
    >>> import numpy as np
    >>> y, m = drop_block_forward(np.ones((1, 2, 6, 6)), 0.5, 2, rng=1)
    >>> m.nbytes, bool(np.all((y == 0) == ~m.to_bool()))
    (9, True)
    """
    return drop_block_forward_impl(_config.kernels, x, p, block_size, data_format, eps, rng, out,
                                   mask)


def drop_block_backward(dy, m: DropBlockMask, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of `drop_block_forward`: ``dx = scale * dy`` where kept, 0 elsewhere.

    Parameters
    ----------
    dy : ndarray of float32 or float64 with the mask's shape
    m : DropBlockMask
        From `drop_block_forward`; in recompute mode the mask is regenerated.
    out : ndarray, optional
        Output of dy's shape and dtype; ``out=dy`` works in place.

    Returns
    -------
    dx : ndarray of dy's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 1, 5, 5), np.float32)
    >>> y, m = drop_block_forward(x, 0.4, 3, rng=2, mask="recompute")
    >>> bool(np.array_equal(drop_block_backward(x, m), y))
    True
    """
    return drop_block_backward_impl(_config.kernels, dy, m, out)


def _torchvision_alias(ndim: int, name: str):
    def fn(input, p: float, block_size: int, inplace: bool = False, eps: float = 1e-6,
           training: bool = True, *, rng: RNGLike = None) -> np.ndarray:
        arr = check_array(input, "input")
        if arr.ndim != ndim:
            raise ValueError(f"input: {name} expects a {ndim}-D input, got shape {arr.shape}")
        return drop_block_impl(_config.kernels, arr, p, block_size, "channels_first", eps,
                               training, rng, arr if inplace else None, "input")
    fn.__name__ = fn.__qualname__ = name
    dims = "H, W" if ndim == 4 else "D, H, W"
    fn.__doc__ = (f"torchvision's ``{name}(input, p, block_size, inplace, eps, training)``: "
                  f"`drop_block` of a channels-first (N, C, {dims}) input, plus ``rng=``. "
                  f"inplace=True writes into input (an ndarray); any other ndim is a ValueError.")
    return fn


drop_block2d = _torchvision_alias(4, "drop_block2d")
drop_block3d = _torchvision_alias(5, "drop_block3d")


class DropBlock(LayerBase):
    """DropBlock layer for numpy networks; train/eval like a PyTorch module.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1].
    block_size : int
        Side of the dropped blocks (see `drop_block`).
    data_format : {"channels_first", "channels_last"}
    eps : float, default 1e-6
    mask : {"bits", "recompute"}, default "bits"
        What forward keeps for backward (see `drop_block_forward`).
    rng : Generator, int or None
        Source of seeds; an int seeds a Generator owned by the layer.

    Examples
    --------
    >>> import numpy as np
    >>> layer = DropBlock(0.2, 3, rng=0)
    >>> x = np.ones((2, 4, 9, 9), np.float32)
    >>> y = layer.forward(x)
    >>> bool(np.array_equal(layer.backward(np.ones_like(y)), y)), layer.eval().forward(x) is x
    (True, True)
    """

    def __init__(self, p: float, block_size: int, *, data_format: str = "channels_first",
                 eps: float = 1e-6, mask: str = "bits", rng: RNGLike = None):
        super().__init__(rng)
        self.p = check_p(p)
        self.block_size = _check_block_size(block_size)
        self.eps = _check_options(data_format, eps)
        self.data_format = data_format
        if mask not in MASK_MODES:
            raise ValueError(f"mask: expected one of {MASK_MODES}, got {mask!r}")
        self.mask_mode = mask

    def _forward(self, kernels, x):
        return drop_block_forward_impl(kernels, x, self.p, self.block_size, self.data_format,
                                       self.eps, self.rng, None, self.mask_mode)

    def __repr__(self) -> str:
        return (f"DropBlock(p={self.p}, block_size={self.block_size}, "
                f"data_format={self.data_format!r}, mask={self.mask_mode!r})")
