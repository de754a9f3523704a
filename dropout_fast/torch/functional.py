"""Functional dropout for torch tensors, with torch.nn.functional's names and
arguments: ``dropout(input, p=0.5, training=True, inplace=False)`` and so on.

Each function validates its arguments, returns `input` itself when not
training, draws one seed from `generator` (torch's default CPU generator when
None; see _rng.py for the exact rule), and runs a registered op. Extra
keyword-only options: ``generator=`` and ``mask=``: "bits" (default) keeps the
mask packed for backward, 1 bit per mask element, 32 times less than the
float32 mask torch keeps; "recompute" keeps nothing but the seed and backward
regenerates the mask.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from dropout_fast._gaussian import check_gaussian_p, gaussian_sigma
from dropout_fast._variants import VARIANTS
from dropout_fast.api import MASK_MODES, check_p
from dropout_fast.torch import _ops
from dropout_fast.torch._bridge import check_tensor, memory_perm
from dropout_fast.torch._rng import draw_seed, stream_id

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "spatial_dropout", "alpha_dropout",
           "feature_alpha_dropout", "variational_dropout", "drop_path", "drop_connect",
           "gaussian_dropout"]


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def _check_mask(mask: str) -> str:
    if mask not in MASK_MODES:
        raise ValueError(f"mask: expected one of {MASK_MODES}, got {mask!r}")
    return mask


def _result(x: Tensor, y: Tensor, inplace: bool) -> Tensor:
    """y, or y written over x with torch's in-place semantics (version bump, and the
    error torch raises for a leaf that requires grad)."""
    return x.copy_(y) if inplace else y


def table_variant(variant: str, x: Tensor, p: float, training: bool, inplace: bool,
                  generator: Optional[torch.Generator], mask: str, name: str = "input",
                  **options) -> Tensor:
    """Every row of the variant table: validate, then the masked op (see _ops)."""
    check_tensor(x, name)
    p = check_p(p)
    _check_flag(training, "training")
    _check_flag(inplace, "inplace")
    _check_mask(mask)
    noise_shape = VARIANTS[variant].noise_shape(tuple(x.shape), **options)
    if not training:
        return x
    a, b, c = VARIANTS[variant].coefficients(p, **options)
    seed = draw_seed(generator)
    keep_bits = mask == "bits" and x.requires_grad and torch.is_grad_enabled()
    y = _ops.masked_fwd(x, seed, stream_id(), p, list(noise_shape), memory_perm(x),
                        a, b, c, keep_bits)[0]
    return _result(x, y, inplace)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *,
            generator: Optional[torch.Generator] = None, mask: str = "bits") -> Tensor:
    """Inverted dropout, as ``torch.nn.functional.dropout``: zero each element with
    probability `p`, scale the rest by 1/(1-p).

    Parameters
    ----------
    input : Tensor of float32, float64, bfloat16 or float16 on the CPU, any shape
    p : float, default 0.5
        Drop probability in [0, 1].
    training : bool, default True
        When False, `input` itself is returned.
    inplace : bool, default False
        Write the result into `input` (torch's in-place rules apply).
    generator : torch.Generator, optional
        Source of the mask's seed; torch's default CPU generator when None.
    mask : {"bits", "recompute"}, default "bits"
        What is kept for backward: the packed mask (1 bit per element) or nothing.

    Returns
    -------
    Tensor of input's shape, dtype and memory format

    Examples
    --------
    >>> import torch
    >>> y = dropout(torch.ones(8), 0.5)
    >>> sorted(set(y.tolist()) | {0.0, 2.0})
    [0.0, 2.0]
    """
    return table_variant("dropout", input, p, training, inplace, generator, mask)


def spatial_dropout(input: Tensor, p: float = 0.5, training: bool = True,
                    inplace: bool = False, *, data_format: str = "channels_first",
                    generator: Optional[torch.Generator] = None, mask: str = "bits") -> Tensor:
    """Whole feature maps, one decision per (sample, channel) (Tompson et al. 2015).

    `input` is (N, C, *spatial) with ``data_format="channels_first"`` or
    (N, *spatial, C) with "channels_last" (Keras' SpatialDropout1D/2D/3D), 3-D to 5-D.
    A channels_last memory format needs no copy. Other arguments as in `dropout`.
    """
    return table_variant("spatial_dropout", input, p, training, inplace, generator, mask,
                         data_format=data_format)


def _channels_first(k: int, name: str):
    def fn(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False, *,
           generator: Optional[torch.Generator] = None, mask: str = "bits") -> Tensor:
        check_tensor(input, "input")
        if input.dim() == k + 1 and k != 2:  # unbatched (C, *spatial), as torch accepts
            out = fn(input.unsqueeze(0), p, training, False, generator=generator, mask=mask)
            return input if not training else _result(input, out.squeeze(0), inplace)
        if input.dim() != k + 2:
            raise ValueError(f"input: {name} expects a {k + 2}-D input (N, C, ...)"
                             f"{'' if k == 2 else f' or a {k + 1}-D unbatched one'}, "
                             f"got shape {tuple(input.shape)}")
        return table_variant("spatial_dropout", input, p, training, inplace, generator, mask,
                             data_format="channels_first")
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"As ``torch.nn.functional.{name}``: zero whole channels of a "
                  f"{k + 2}-D (N, C, ...) input, one decision per (sample, channel). "
                  f"Arguments as in `dropout`.")
    return fn


dropout1d = _channels_first(1, "dropout1d")
dropout2d = _channels_first(2, "dropout2d")
dropout3d = _channels_first(3, "dropout3d")


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                  inplace: bool = False, *, generator: Optional[torch.Generator] = None,
                  mask: str = "bits") -> Tensor:
    """As ``torch.nn.functional.alpha_dropout`` (note its default training=False):
    SELU-preserving dropout (Klambauer et al. 2017), kept ``a*x + b``, dropped ``c``."""
    return table_variant("alpha_dropout", input, p, training, inplace, generator, mask)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                          inplace: bool = False, *, generator: Optional[torch.Generator] = None,
                          mask: str = "bits") -> Tensor:
    """As ``torch.nn.functional.feature_alpha_dropout``: alpha dropout of whole
    channels of an (N, C, ...) input."""
    return table_variant("feature_alpha_dropout", input, p, training, inplace, generator,
                         mask)


def variational_dropout(input: Tensor, p: float = 0.5, training: bool = True,
                        inplace: bool = False, *, time_axis: int = 1,
                        generator: Optional[torch.Generator] = None,
                        mask: str = "bits") -> Tensor:
    """One mask per sequence shared by every step along `time_axis` (Gal & Ghahramani
    2016): (N, T, F) gets an (N, 1, F) mask; pass ``time_axis=0`` for (T, N, F)."""
    return table_variant("variational_dropout", input, p, training, inplace, generator, mask,
                         time_axis=time_axis)


def drop_path(input: Tensor, p: float, training: bool = True, inplace: bool = False, *,
              mode: str = "row", scale_by_keep: bool = True,
              generator: Optional[torch.Generator] = None, mask: str = "bits") -> Tensor:
    """Stochastic depth, as timm's ``drop_path`` and torchvision's
    ``stochastic_depth``: drop whole samples ("row") or the whole batch ("batch")."""
    _check_flag(scale_by_keep, "scale_by_keep")
    return table_variant("drop_path", input, p, training, inplace, generator, mask,
                         mode=mode, scale_by_keep=scale_by_keep)


def drop_connect(weight: Tensor, p: float = 0.5, training: bool = True, *,
                 generator: Optional[torch.Generator] = None, mask: str = "bits") -> Tensor:
    """DropConnect (Wan et al. 2013): dropout on a weight tensor; use the result in
    place of the weight, e.g. ``F.linear(x, drop_connect(W, 0.5))``."""
    return table_variant("drop_connect", weight, p, training, False, generator, mask,
                         name="weight")


def gaussian_dropout(input: Tensor, p: float = 0.5, training: bool = True,
                     inplace: bool = False, *,
                     generator: Optional[torch.Generator] = None) -> Tensor:
    """Gaussian dropout (Keras): ``y = x * (1 + sigma * z)``, z ~ N(0, 1),
    ``sigma = sqrt(p / (1 - p))``, p in [0, 1). Backward regenerates the noise
    (nothing but the seed is kept)."""
    check_tensor(input, "input")
    p = check_gaussian_p(p)
    _check_flag(training, "training")
    _check_flag(inplace, "inplace")
    if not training:
        return input
    seed = draw_seed(generator)
    y = _ops.gaussian(input, seed, stream_id(), gaussian_sigma(p), memory_perm(input))
    return _result(input, y, inplace)


from dropout_fast.torch.fused import (bias_dropout_add, drop_block, drop_block2d,  # noqa: E402
                                      drop_block3d, embedding_dropout, softmax_dropout)

__all__ += ["drop_block", "drop_block2d", "drop_block3d", "embedding_dropout", "softmax_dropout",
            "bias_dropout_add"]
