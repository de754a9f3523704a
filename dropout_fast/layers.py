"""Dropout layers for numpy networks: forward keeps the mask (or just its
counter range), backward applies it. Train/eval like PyTorch modules."""
from __future__ import annotations

from typing import Optional

import numpy as np

from dropout_fast import _config
from dropout_fast._generator import RNGLike, resolve_rng
from dropout_fast._layer import LayerBase
from dropout_fast.api import (MASK_MODES, DropoutMask, backward_impl, check_array, check_p,
                              draw_bits, forward_impl)

__all__ = ["Dropout", "SpatialDropout", "VariationalDropout", "DropPath", "AlphaDropout",
           "FeatureAlphaDropout", "DropConnect", "RecurrentDropout"]


class _Layer(LayerBase):
    """A variant of the table with its options, a mask mode and a generator."""

    variant = "dropout"

    def __init__(self, p: float = 0.5, *, mask: str = "bits", rng: RNGLike = None, **options):
        super().__init__(rng)
        self.p = check_p(p)
        if mask not in MASK_MODES:
            raise ValueError(f"mask: expected one of {MASK_MODES}, got {mask!r}")
        self.mask_mode = mask
        self.options = options

    def _forward(self, kernels, x):
        return forward_impl(kernels, x, self.p, self.rng, None, self.mask_mode, self.variant,
                            self.options)

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items() if v is not None)
        return f"{type(self).__name__}(p={self.p}{opts}, mask={self.mask_mode!r})"


class Dropout(_Layer):
    """Inverted dropout, element-wise or over a Keras `noise_shape`.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability in [0, 1].
    noise_shape : tuple of int, optional
        See `dropout_fast.dropout`.
    mask : {"bits", "recompute"}, default "bits"
        What forward keeps for backward (see `dropout_fast.dropout_forward`).
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

    def __init__(self, p: float = 0.5, *, noise_shape: Optional[tuple] = None,
                 mask: str = "bits", rng: RNGLike = None):
        super().__init__(p, mask=mask, rng=rng, noise_shape=noise_shape)


class SpatialDropout(_Layer):
    """Channel dropout of 1D/2D/3D feature maps (see `spatial_dropout`)."""

    variant = "spatial_dropout"

    def __init__(self, p: float = 0.5, *, data_format: str = "channels_first",
                 mask: str = "bits", rng: RNGLike = None):
        super().__init__(p, mask=mask, rng=rng, data_format=data_format)


class VariationalDropout(_Layer):
    """One mask per sequence shared along `time_axis` (see `variational_dropout`)."""

    variant = "variational_dropout"

    def __init__(self, p: float = 0.5, *, time_axis: int = 1, mask: str = "bits",
                 rng: RNGLike = None):
        super().__init__(p, mask=mask, rng=rng, time_axis=time_axis)


class DropPath(_Layer):
    """Stochastic depth on a residual branch (see `drop_path`)."""

    variant = "drop_path"

    def __init__(self, p: float = 0.0, *, mode: str = "row", scale_by_keep: bool = True,
                 mask: str = "bits", rng: RNGLike = None):
        super().__init__(p, mask=mask, rng=rng, mode=mode, scale_by_keep=bool(scale_by_keep))


class AlphaDropout(_Layer):
    """SELU-preserving dropout (see `alpha_dropout`)."""

    variant = "alpha_dropout"

    def __init__(self, p: float = 0.5, *, mask: str = "bits", rng: RNGLike = None):
        super().__init__(p, mask=mask, rng=rng)


class FeatureAlphaDropout(_Layer):
    """Alpha dropout of whole channels (see `feature_alpha_dropout`)."""

    variant = "feature_alpha_dropout"

    def __init__(self, p: float = 0.5, *, mask: str = "bits", rng: RNGLike = None):
        super().__init__(p, mask=mask, rng=rng)


class DropConnect(_Layer):
    """Dropout of a weight matrix, a fresh mask per forward (see `drop_connect`)."""

    variant = "drop_connect"


class RecurrentDropout:
    """Variational dropout of an RNN's hidden state inside a hand-written loop.

    `reset` draws one mask per sequence (shape (N, H)) at the start of a batch;
    every step applies that same mask (Gal & Ghahramani 2016), and `backward`
    applies it to the gradient of each step's dropped-out state. Summing those
    per-step gradients over the unrolled loop (BPTT) is exactly the gradient of
    the loss: the mask is a constant of the whole sequence.

    Parameters
    ----------
    p : float, default 0.5
        Drop probability of each hidden unit for the sequence.
    rng : Generator, int or None

    Examples
    --------
    >>> import numpy as np
    >>> rd = RecurrentDropout(0.5, rng=0)
    >>> h = np.ones((2, 4), np.float32)
    >>> rd.reset(h.shape)
    >>> a, b = rd(h), rd(h)                      # two steps, one mask
    >>> bool(np.array_equal(a, b)), bool(np.array_equal(rd.backward(h), a))
    (True, True)
    """

    def __init__(self, p: float = 0.5, *, rng: RNGLike = None):
        self.p = check_p(p)
        self.rng = resolve_rng(rng) if rng is not None else None
        self.training = True
        self.mask: Optional[DropoutMask] = None

    def train(self, mode: bool = True) -> "RecurrentDropout":
        self.training = bool(mode)
        return self

    def eval(self) -> "RecurrentDropout":
        return self.train(False)

    def reset(self, shape) -> None:
        """Draw the mask for a new batch of sequences, over hidden states of `shape`."""
        shape = tuple(int(d) for d in shape)
        gen = resolve_rng(self.rng)
        count = int(np.prod(shape, dtype=np.int64))
        offset = gen._reserve((count + 7) // 8)
        bits = draw_bits(_config.kernels, gen.key, offset, count, self.p)
        self.mask = DropoutMask(self.p, shape, gen.key, offset, bits)

    def forward(self, h) -> np.ndarray:
        """One step: h with the sequence's mask applied (h itself in eval mode)."""
        h = check_array(h, "h")
        if not self.training:
            return h
        if self.mask is None:
            self.reset(h.shape)
        if h.shape != self.mask.shape:
            raise ValueError(f"h: expected shape {self.mask.shape} (call reset for a new batch), "
                             f"got {h.shape}")
        return backward_impl(_config.kernels, h, self.mask, None)

    __call__ = forward

    def backward(self, dy) -> np.ndarray:
        """Gradient of one step's input from the gradient of its output."""
        if not self.training or self.mask is None:
            return check_array(dy, "dy")
        return backward_impl(_config.kernels, dy, self.mask, None)
