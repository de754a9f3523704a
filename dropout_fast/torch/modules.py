"""nn.Module drop-ins: torch's dropout modules with the same names, constructor
arguments and behaviour (train/eval from ``module.training``; no parameters or
buffers, so a swapped model's state_dict keys are unchanged), plus the
structured variants. Extra keyword-only options: ``generator=`` (a CPU
torch.Generator; torch's default when None) and ``mask=`` ("bits" or
"recompute", see `dropout_fast.torch.functional`).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from dropout_fast._gaussian import check_gaussian_p
from dropout_fast.api import check_p
from dropout_fast.torch import functional as F

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
           "FeatureAlphaDropout", "SpatialDropout", "DropPath", "GaussianDropout",
           "VariationalDropout", "DropBlock2d", "DropBlock3d", "SoftmaxDropout", "BiasDropoutAdd"]


class _DropoutNd(nn.Module):
    """p, inplace, generator and mask, as every module here has them."""

    __constants__ = ["p", "inplace"]

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 generator: Optional[torch.Generator] = None, mask: str = "bits") -> None:
        super().__init__()
        self.p = check_p(p)
        self.inplace = F._check_flag(inplace, "inplace")
        self.generator = generator
        self.mask = F._check_mask(mask)

    def _kw(self) -> dict:
        return {"generator": self.generator, "mask": self.mask}

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """As ``torch.nn.Dropout(p=0.5, inplace=False)``: element-wise inverted dropout.

    Examples
    --------
    >>> import torch
    >>> m = Dropout(0.5)
    >>> y = m(torch.ones(4, 8))
    >>> m.eval()(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace, **self._kw())


class Dropout1d(_DropoutNd):
    """As ``torch.nn.Dropout1d``: whole channels of (N, C, L) or (C, L)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout1d(input, self.p, self.training, self.inplace, **self._kw())


class Dropout2d(_DropoutNd):
    """As ``torch.nn.Dropout2d``: whole channels of (N, C, H, W)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training, self.inplace, **self._kw())


class Dropout3d(_DropoutNd):
    """As ``torch.nn.Dropout3d``: whole channels of (N, C, D, H, W) or (C, D, H, W)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout3d(input, self.p, self.training, self.inplace, **self._kw())


class AlphaDropout(_DropoutNd):
    """As ``torch.nn.AlphaDropout``: SELU-preserving dropout (Klambauer et al. 2017)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.alpha_dropout(input, self.p, self.training, self.inplace, **self._kw())


class FeatureAlphaDropout(_DropoutNd):
    """As ``torch.nn.FeatureAlphaDropout``: alpha dropout of whole channels."""

    def forward(self, input: Tensor) -> Tensor:
        return F.feature_alpha_dropout(input, self.p, self.training, self.inplace,
                                       **self._kw())


class SpatialDropout(_DropoutNd):
    """Keras' SpatialDropout1D/2D/3D: whole channels, ``data_format`` "channels_first"
    (N, C, ...) or "channels_last" (N, ..., C)."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 data_format: str = "channels_first", **kw) -> None:
        super().__init__(p, inplace, **kw)
        self.data_format = data_format
        F.VARIANTS["spatial_dropout"].noise_shape((1, 1, 1), data_format=data_format)

    def forward(self, input: Tensor) -> Tensor:
        return F.spatial_dropout(input, self.p, self.training, self.inplace,
                                 data_format=self.data_format, **self._kw())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", data_format={self.data_format!r}"


class VariationalDropout(_DropoutNd):
    """One mask per sequence, shared along `time_axis` (Gal & Ghahramani 2016)."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *, time_axis: int = 1,
                 **kw) -> None:
        super().__init__(p, inplace, **kw)
        self.time_axis = time_axis

    def forward(self, input: Tensor) -> Tensor:
        return F.variational_dropout(input, self.p, self.training, self.inplace,
                                     time_axis=self.time_axis, **self._kw())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", time_axis={self.time_axis}"


class DropPath(_DropoutNd):
    """Stochastic depth, as timm's ``DropPath(drop_prob, scale_by_keep=True)``."""

    def __init__(self, p: float = 0.0, inplace: bool = False, *, mode: str = "row",
                 scale_by_keep: bool = True, **kw) -> None:
        super().__init__(p, inplace, **kw)
        self.mode, self.scale_by_keep = mode, F._check_flag(scale_by_keep, "scale_by_keep")
        F.VARIANTS["drop_path"].noise_shape((1,), mode=mode)

    def forward(self, input: Tensor) -> Tensor:
        return F.drop_path(input, self.p, self.training, self.inplace, mode=self.mode,
                           scale_by_keep=self.scale_by_keep, **self._kw())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mode={self.mode!r}, scale_by_keep={self.scale_by_keep}"


class GaussianDropout(nn.Module):
    """Keras' GaussianDropout: ``x * (1 + sigma * z)``, sigma = sqrt(p / (1 - p))."""

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.p = check_gaussian_p(p)
        self.inplace = F._check_flag(inplace, "inplace")
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        return F.gaussian_dropout(input, self.p, self.training, self.inplace,
                                  generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class _DropBlockNd(_DropoutNd):
    _fn = None

    def __init__(self, p: float, block_size: int, inplace: bool = False, eps: float = 1e-6,
                 **kw) -> None:
        super().__init__(p, inplace, **kw)
        self.block_size, self.eps = block_size, eps
        F.drop_block(torch.zeros((1, 1) + (block_size,) * self._k), p, block_size, False,
                     eps=eps)  # validates block_size and eps now, not at the first call

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.p, self.block_size, self.inplace, self.eps,
                              self.training, **self._kw())

    def extra_repr(self) -> str:
        return (f"p={self.p}, block_size={self.block_size}, inplace={self.inplace}, "
                f"eps={self.eps}")


class DropBlock2d(_DropBlockNd):
    """As ``torchvision.ops.DropBlock2d(p, block_size, inplace=False, eps=1e-06)``
    (Ghiasi et al. 2018), on (N, C, H, W)."""

    _k, _fn = 2, staticmethod(F.drop_block2d)


class DropBlock3d(_DropBlockNd):
    """As ``torchvision.ops.DropBlock3d``, on (N, C, D, H, W)."""

    _k, _fn = 3, staticmethod(F.drop_block3d)


class SoftmaxDropout(nn.Module):
    """Attention probabilities with dropout in one pass:
    ``forward(scores, attn_mask=None)`` = ``dropout(softmax(scores + attn_mask, dim), p)``;
    the plain softmax in eval mode. See `dropout_fast.torch.functional.softmax_dropout`."""

    def __init__(self, p: float = 0.1, dim: int = -1, *, is_causal: bool = False,
                 mode: str = "store", generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.p, self.dim, self.is_causal = check_p(p), dim, F._check_flag(is_causal, "is_causal")
        if mode not in ("store", "recompute"):
            raise ValueError(f"mode: expected 'store' or 'recompute', got {mode!r}")
        self.mode, self.generator = mode, generator

    def forward(self, scores: Tensor, attn_mask: Optional[Tensor] = None) -> Tensor:
        return F.softmax_dropout(scores, self.p, self.dim, self.training, attn_mask=attn_mask,
                                 is_causal=self.is_causal, mode=self.mode,
                                 generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, dim={self.dim}, is_causal={self.is_causal}, mode={self.mode!r}"


class BiasDropoutAdd(_DropoutNd):
    """Megatron-LM's fusion as a module: ``forward(x, bias, residual)`` =
    ``residual + dropout(x + bias, p)``; ``residual + x + bias`` in eval mode."""

    def __init__(self, p: float = 0.1, **kw) -> None:
        super().__init__(p, False, **kw)

    def forward(self, x: Tensor, bias: Optional[Tensor], residual: Tensor) -> Tensor:
        return F.bias_dropout_add(x, bias, residual, self.p, self.training, **self._kw())

    def extra_repr(self) -> str:
        return f"p={self.p}"
