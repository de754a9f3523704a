"""Gaussian dropout: multiply each element by 1 + sigma * z, z ~ N(0, 1).

The multiplicative-noise form of dropout (Srivastava et al., "Dropout: a simple
way to prevent neural networks from overfitting", JMLR 2014, sec. 10), with
Keras' parametrisation: for a drop rate p the noise has mean 1 and standard
deviation ``sigma = sqrt(p / (1 - p))``, the variance of inverted dropout's
multiplier. The deviates z come from Philox streams 2..5 at the caller's
counter offset, through Box-Muller with a log and a cos written as a fixed
sequence of IEEE double operations, so they are the same bits for every
backend, instruction set, thread count and platform (see
``src_c/dropout_fast.h``). A call on n elements consumes ceil(n / 8) counter
blocks, as a dropout mask does, whatever p is.

p == 1 is refused: the noise variance p / (1 - p) is infinite there. (Keras
accepts ``rate=1`` when the layer is built and then fails with
ZeroDivisionError on the first training call.)
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from dropout_fast import _config
from dropout_fast._generator import RNGLike, resolve_rng
from dropout_fast._layer import LayerBase
from dropout_fast.api import _block_words, apply, check_array, check_out, check_p, check_training

__all__ = ["gaussian_dropout", "gaussian_dropout_forward", "gaussian_dropout_backward",
           "GaussianNoise", "GaussianDropout"]

NOISE_MODES = ("recompute", "store")


# --------------------------------------------------------------------------- policy
def check_gaussian_p(p) -> float:
    """p as a float in [0, 1), or a ValueError/TypeError naming `p`."""
    p = check_p(p)
    if p == 1.0:
        raise ValueError("p: Gaussian dropout needs p < 1 (the noise variance p / (1 - p) "
                         "is infinite at p == 1), got 1.0")
    return p


def gaussian_sigma(p: float) -> float:
    """The noise standard deviation sqrt(p / (1 - p)), in double."""
    return math.sqrt(p / (1.0 - p))


def _check_noise(noise) -> str:
    if noise not in NOISE_MODES:
        raise ValueError(f"noise: expected one of {NOISE_MODES}, got {noise!r}")
    return noise


class GaussianNoise:
    """What backward needs from a Gaussian-dropout forward call: the multipliers,
    or only (key, offset) to regenerate them.

    Attributes
    ----------
    p : float
        The drop rate; the noise has standard deviation `sigma`.
    shape : tuple of int
        Shape of the forward input (and of dy).
    dtype : numpy.dtype
        The forward input's dtype; the multipliers are rounded to it.
    key : tuple of two int
        Philox key words of the generator used.
    offset : int
        The first counter block; the call used ``ceil(size / 8)`` blocks.
    sigma : float
        ``sqrt(p / (1 - p))`` in double.
    noise : ndarray of `shape` and `dtype`, or None
        The multipliers ``1 + sigma * z`` ("store" mode); None in "recompute" mode.
    """

    __slots__ = ("p", "shape", "dtype", "key", "offset", "sigma", "noise")

    def __init__(self, p: float, shape: tuple, dtype, key: tuple, offset: int,
                 noise: Optional[np.ndarray] = None):
        self.p, self.shape, self.dtype = p, shape, np.dtype(dtype)
        self.key, self.offset = key, offset
        self.sigma = gaussian_sigma(p)
        self.noise = noise

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes kept for backward: the multipliers in "store" mode, 0 in "recompute" mode."""
        return 0 if self.noise is None else self.noise.nbytes

    def multiplier(self, kernels=None) -> np.ndarray:
        """The per-element multipliers ``1 + sigma * z`` (`shape`, `dtype`),
        regenerated from (key, offset) if not stored."""
        if self.noise is not None:
            return self.noise
        return draw_multiplier(kernels or _config.kernels, self.key, self.offset, self.shape,
                               self.dtype, self.sigma)

    def _backward(self, kernels, dy, out):
        """The generic `dropout_fast.backward` lands here."""
        return gaussian_backward_impl(kernels, dy, self, out)

    def __repr__(self) -> str:
        mode = "recompute" if self.noise is None else "store"
        return (f"GaussianNoise(p={self.p}, shape={self.shape}, dtype={self.dtype}, "
                f"offset={self.offset}, mode={mode!r}, nbytes={self.nbytes})")


# --------------------------------------------------------------------------- the engine
def draw_multiplier(kernels, key: tuple, offset: int, shape: tuple, dtype,
                    sigma: float) -> np.ndarray:
    """The multipliers of a call at block `offset`: the kernel run in place on ones."""
    mult = np.ones(shape, dtype)
    if mult.size and sigma != 0.0:
        flat = mult.reshape(-1)
        lo, hi = _block_words(offset)
        kernels.gaussian_fwd(flat, flat, key[0], key[1], lo, hi, sigma, _config.nthreads,
                             _config.isa)
    return mult


def _scale_by(kernels, x: np.ndarray, out, key: tuple, offset: int, sigma: float):
    """x * multipliers through the fused kernel (a copy when sigma == 0: the multiplier is 1)."""
    if sigma == 0.0:
        return apply(x, out, lambda src, dst: np.copyto(dst, src))
    lo, hi = _block_words(offset)
    nt, isa = _config.nthreads, _config.isa

    def kernel(src, dst):
        kernels.gaussian_fwd(src, dst, key[0], key[1], lo, hi, sigma, nt, isa)
    return apply(x, out, kernel)


def _times(x: np.ndarray, mult: np.ndarray, out) -> np.ndarray:
    """x * mult in x's dtype (numpy rounds each product once, as the kernel does);
    quiet about overflow to inf, as the kernel is."""
    y = np.empty(x.shape, x.dtype) if out is None else out
    with np.errstate(over="ignore", invalid="ignore"):
        np.multiply(x, mult, out=y)
    return y


def gaussian_forward_impl(kernels, x, p, rng: RNGLike, out, noise: str):
    """Forward: validate, reserve ceil(n / 8) counter blocks, run."""
    x = check_array(x, "x")
    p = check_gaussian_p(p)
    _check_noise(noise)
    if out is not None:
        check_out(out, x)
    gen = resolve_rng(rng)
    offset = gen._reserve((x.size + 7) // 8)
    m = GaussianNoise(p, x.shape, x.dtype, gen.key, offset)
    if noise == "store":
        m.noise = draw_multiplier(kernels, gen.key, offset, x.shape, x.dtype, m.sigma)
        return _times(x, m.noise, out), m
    return _scale_by(kernels, x, out, gen.key, offset, m.sigma), m


def gaussian_backward_impl(kernels, dy, m, out):
    """Backward: dx = dy * multipliers, stored or regenerated."""
    if not isinstance(m, GaussianNoise):
        raise TypeError(f"m: expected a GaussianNoise from gaussian_dropout_forward, "
                        f"got {type(m).__name__}")
    dy = check_array(dy, "dy")
    if dy.shape != m.shape:
        raise ValueError(f"dy: expected shape {m.shape} (the forward input's), got {dy.shape}")
    if dy.dtype != m.dtype:
        raise TypeError(f"dy: expected dtype {m.dtype} (the forward input's), got {dy.dtype}")
    if out is not None:
        check_out(out, dy)
    if m.noise is not None:
        return _times(dy, m.noise, out)
    return _scale_by(kernels, dy, out, m.key, m.offset, m.sigma)


def gaussian_dropout_impl(kernels, x, p, training, rng, out):
    """The one-shot form: identity when not training, else forward keeping nothing."""
    if not check_training(training):
        x = check_array(x, "x")
        check_gaussian_p(p)
        if out is None:
            return x
        check_out(out, x)
        if out is not x:
            out[...] = x
        return out
    return gaussian_forward_impl(kernels, x, p, rng, out, "recompute")[0]


# --------------------------------------------------------------------------- public API
def gaussian_dropout(x, p: float = 0.5, *, training: bool = True, rng: RNGLike = None,
                     out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gaussian dropout: ``y = x * (1 + sigma * z)``, z ~ N(0, 1) per element.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape and layout
        Input activations.
    p : float, default 0.5
        Drop rate in [0, 1) (Keras' `rate`): the noise has mean 1 and standard
        deviation ``sqrt(p / (1 - p))``. p == 0 copies x; p == 1 is a ValueError.
    training : bool, default True
        When False the layer is off and `x` itself is returned (copied into `out` if given).
    rng : Generator, int or None
        Source of the noise: a Generator, an int seed (a fresh Generator at offset 0),
        or None for the default generator. Consumes ceil(n / 8) counter blocks.
    out : ndarray, optional
        Output of x's shape and dtype; ``out=x`` works in place.

    Returns
    -------
    y : ndarray of x's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> y = gaussian_dropout(np.ones(4, np.float32), 0.5, rng=0)
    >>> y.dtype, bool(np.all(y != 1))
    (dtype('float32'), True)
    >>> gaussian_dropout(np.ones(3), 0.5, training=False)
    array([1., 1., 1.])
    """
    return gaussian_dropout_impl(_config.kernels, x, p, training, rng, out)


def gaussian_dropout_forward(x, p: float = 0.5, *, rng: RNGLike = None,
                             out: Optional[np.ndarray] = None, noise: str = "recompute"):
    """Training-mode Gaussian dropout that also returns what backward needs.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape and layout
    p : float, default 0.5
        Drop rate in [0, 1); see `gaussian_dropout`.
    rng : Generator, int or None
        See `gaussian_dropout`.
    out : ndarray, optional
        Output of x's shape and dtype; ``out=x`` works in place.
    noise : {"recompute", "store"}, default "recompute"
        "recompute" keeps only (key, offset) and backward regenerates the noise
        (no memory, one more pass of Philox and Box-Muller); "store" keeps the
        multipliers, an array of x's shape and dtype.

    Returns
    -------
    y : ndarray of x's shape and dtype
    m : GaussianNoise

    Examples
    --------
    >>> import numpy as np
    >>> y, m = gaussian_dropout_forward(np.ones((2, 3)), 0.2, rng=1, noise="store")
    >>> bool(np.array_equal(y, m.multiplier())), m.nbytes
    (True, 48)
    """
    return gaussian_forward_impl(_config.kernels, x, p, rng, out, noise)


def gaussian_dropout_backward(dy, m: GaussianNoise, *,
                              out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of Gaussian dropout: ``dx = dy * (1 + sigma * z)`` with the forward's noise.

    Parameters
    ----------
    dy : ndarray of the forward input's shape and dtype
        Gradient of the loss with respect to the forward output.
    m : GaussianNoise
        From `gaussian_dropout_forward`; in "recompute" mode the noise is regenerated.
    out : ndarray, optional
        Output of dy's shape and dtype; ``out=dy`` works in place.

    Returns
    -------
    dx : ndarray of dy's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> y, m = gaussian_dropout_forward(np.full(5, 2.0), 0.5, rng=2)
    >>> dx = gaussian_dropout_backward(np.ones(5), m)
    >>> bool(np.array_equal(2.0 * dx, y)), m.nbytes
    (True, 0)
    """
    return gaussian_backward_impl(_config.kernels, dy, m, out)


class GaussianDropout(LayerBase):
    """Gaussian dropout as a layer for numpy networks; train/eval like a PyTorch module.

    Parameters
    ----------
    p : float, default 0.5
        Drop rate in [0, 1); the noise standard deviation is ``sqrt(p / (1 - p))``.
    noise : {"recompute", "store"}, default "recompute"
        What forward keeps for backward (see `gaussian_dropout_forward`).
    rng : Generator, int or None
        Source of the noise; an int seeds a Generator owned by the layer, None
        uses the default generator at each call.

    Examples
    --------
    >>> import numpy as np
    >>> layer = GaussianDropout(0.5, rng=0)
    >>> x = np.ones((2, 8), np.float32)
    >>> y = layer.forward(x)
    >>> dx = layer.backward(np.ones_like(y))
    >>> bool(np.array_equal(dx, y)), layer.eval().forward(x) is x
    (True, True)
    """

    def __init__(self, p: float = 0.5, *, noise: str = "recompute", rng: RNGLike = None):
        super().__init__(rng)
        self.p = check_gaussian_p(p)
        self.noise_mode = _check_noise(noise)

    def _forward(self, kernels, x):
        return gaussian_forward_impl(kernels, x, self.p, self.rng, None, self.noise_mode)

    def __repr__(self) -> str:
        return f"GaussianDropout(p={self.p}, noise={self.noise_mode!r})"
