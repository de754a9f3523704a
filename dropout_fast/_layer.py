"""The shared behaviour of the numpy layers: train/eval like PyTorch modules,
forward keeps what backward needs, backward applies it (identity in eval mode)."""
from __future__ import annotations

import numpy as np

from dropout_fast import _config
from dropout_fast._generator import RNGLike, resolve_rng
from dropout_fast.api import backward_impl, check_array


class LayerBase:
    """Subclasses define ``_forward(kernels, x) -> (y, mask)``; the mask is any
    object the generic backward accepts (DropoutMask, DropBlockMask, GaussianNoise)."""

    def __init__(self, rng: RNGLike = None):
        self.rng = resolve_rng(rng) if rng is not None else None
        self.training = True
        self._mask = None

    def train(self, mode: bool = True):
        """Switch training mode on (or off with mode=False); returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Switch training mode off: forward and backward are the identity."""
        return self.train(False)

    def _forward(self, kernels, x):
        raise NotImplementedError

    def forward(self, x) -> np.ndarray:
        """The layer in training mode (keeping its mask), x itself in eval mode."""
        if not self.training:
            self._mask = None
            return check_array(x, "x")
        y, self._mask = self._forward(_config.kernels, x)
        return y

    def __call__(self, x) -> np.ndarray:
        return self.forward(x)

    def backward(self, dy) -> np.ndarray:
        """dx for the last forward call (dy itself after an eval-mode forward)."""
        if self._mask is None:
            return check_array(dy, "dy")
        return backward_impl(_config.kernels, dy, self._mask, None)
