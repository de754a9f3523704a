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
from dropout_fast.torch import _eager, _ops
from dropout_fast.torch._bridge import NATIVE, check_tensor, memory_perm
from dropout_fast.torch._rng import draw_seed, stream_id

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "spatial_dropout", "alpha_dropout",
           "feature_alpha_dropout", "variational_dropout", "drop_path", "drop_connect",
           "gaussian_dropout"]


_COMMON = """    p : float, default 0.5
        Drop probability in [0, 1].
    training : bool
        When False, `input` itself is returned.
    inplace : bool, default False
        Write the result into `input` (torch's in-place rules apply).
    generator : torch.Generator, optional
        Source of the mask's seed; torch's default CPU generator when None.
    mask : {"bits", "recompute"}, default "bits"
        What is kept for backward: the packed mask (1 bit per mask element) or nothing.

    Returns
    -------
    Tensor of input's shape and dtype"""


def _doc(fn):
    """Fill the shared parameter block into a docstring's ``{common}``."""
    fn.__doc__ = fn.__doc__.replace("    {common}", _COMMON)
    return fn


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
    if x.dtype in NATIVE and x.is_contiguous() and not torch.compiler.is_compiling():
        return _eager.run(x, generator, stream_id(), p, noise_shape, a, b, c, mask, inplace)
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
    # The common case in a few checks (the same ones table_variant makes, in order of
    # cost); anything unusual takes the general path, which also raises the errors.
    if (training is True and type(p) is float and 0.0 <= p < 1.0
            and (mask == "bits" or mask == "recompute") and type(input) is Tensor
            and input.is_cpu and input.dtype in NATIVE and type(inplace) is bool
            and input.is_contiguous()
            and not torch.compiler.is_compiling()):
        return _eager.run(input, generator, stream_id(), p, tuple(input.shape),
                          1.0 / (1.0 - p), 0.0, 0.0, mask, inplace)
    return table_variant("dropout", input, p, training, inplace, generator, mask)


@_doc
def spatial_dropout(input: Tensor, p: float = 0.5, training: bool = True,
                    inplace: bool = False, *, data_format: str = "channels_first",
                    generator: Optional[torch.Generator] = None, mask: str = "bits") -> Tensor:
    """Whole feature maps, one decision per (sample, channel) (Tompson et al. 2015).

    Parameters
    ----------
    input : Tensor of shape (N, C, *spatial) or (N, *spatial, C), 3-D to 5-D
        Channels first or last as `data_format` says (Keras' SpatialDropout1D/2D/3D);
        a channels_last memory format needs no copy.
    data_format : {"channels_first", "channels_last"}
    {common}
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
    dims = {1: "L", 2: "H, W", 3: "D, H, W"}[k]
    fn.__doc__ = (f"As ``torch.nn.functional.{name}``: zero whole channels, one decision "
                  f"per (sample, channel).\n\n    Parameters\n    ----------\n"
                  f"    input : Tensor of shape (N, C, {dims})"
                  f"{'' if k == 2 else f' or unbatched (C, {dims})'}\n{_COMMON}\n")
    return fn


dropout1d = _channels_first(1, "dropout1d")
dropout2d = _channels_first(2, "dropout2d")
dropout3d = _channels_first(3, "dropout3d")


@_doc
def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                  inplace: bool = False, *, generator: Optional[torch.Generator] = None,
                  mask: str = "bits") -> Tensor:
    """As ``torch.nn.functional.alpha_dropout`` (note its default training=False):
    SELU-preserving dropout (Klambauer et al. 2017), kept ``a*x + b``, dropped ``c``.

    Parameters
    ----------
    input : Tensor of any shape
    {common}
    """
    return table_variant("alpha_dropout", input, p, training, inplace, generator, mask)


@_doc
def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                          inplace: bool = False, *, generator: Optional[torch.Generator] = None,
                          mask: str = "bits") -> Tensor:
    """As ``torch.nn.functional.feature_alpha_dropout``: alpha dropout of whole
    channels, one decision per (sample, channel).

    Parameters
    ----------
    input : Tensor of shape (N, C, ...)
    {common}
    """
    return table_variant("feature_alpha_dropout", input, p, training, inplace, generator,
                         mask)


@_doc
def variational_dropout(input: Tensor, p: float = 0.5, training: bool = True,
                        inplace: bool = False, *, time_axis: int = 1,
                        generator: Optional[torch.Generator] = None,
                        mask: str = "bits") -> Tensor:
    """One mask per sequence shared by every step along `time_axis` (Gal & Ghahramani
    2016): (N, T, F) gets an (N, 1, F) mask.

    Parameters
    ----------
    input : Tensor of at least 2 dimensions
    time_axis : int, default 1
        The axis along which the mask is shared; 0 for time-major (T, N, F).
    {common}
    """
    return table_variant("variational_dropout", input, p, training, inplace, generator, mask,
                         time_axis=time_axis)


@_doc
def drop_path(input: Tensor, p: float, training: bool = True, inplace: bool = False, *,
              mode: str = "row", scale_by_keep: bool = True,
              generator: Optional[torch.Generator] = None, mask: str = "bits") -> Tensor:
    """Stochastic depth, as timm's ``drop_path`` and torchvision's
    ``stochastic_depth`` (Huang et al. 2016).

    Parameters
    ----------
    input : Tensor of shape (N, ...)
    mode : {"row", "batch"}
        Drop whole samples, or the whole batch at once.
    scale_by_keep : bool, default True
        Scale survivors by 1/(1-p) (timm's default).
    {common}
    """
    _check_flag(scale_by_keep, "scale_by_keep")
    return table_variant("drop_path", input, p, training, inplace, generator, mask,
                         mode=mode, scale_by_keep=scale_by_keep)


def drop_connect(weight: Tensor, p: float = 0.5, training: bool = True, *,
                 generator: Optional[torch.Generator] = None, mask: str = "bits") -> Tensor:
    """DropConnect (Wan et al. 2013): dropout on a weight tensor; use the result in
    place of the weight, e.g. ``F.linear(x, drop_connect(W, 0.5))``.

    Parameters
    ----------
    weight : Tensor of any shape
        The gradient flows back to it through the mask.
    p, training, generator, mask
        As in `dropout`.

    Returns
    -------
    Tensor of weight's shape and dtype
    """
    return table_variant("drop_connect", weight, p, training, False, generator, mask,
                         name="weight")


def gaussian_dropout(input: Tensor, p: float = 0.5, training: bool = True,
                     inplace: bool = False, *,
                     generator: Optional[torch.Generator] = None) -> Tensor:
    """Gaussian dropout (Keras): ``y = x * (1 + sigma * z)``, z ~ N(0, 1),
    ``sigma = sqrt(p / (1 - p))``. Backward regenerates the noise (only the seed is
    kept), with the normals of streams 2 to 5 of the stream contract.

    Parameters
    ----------
    input : Tensor of any shape
    p : float, default 0.5
        In [0, 1).
    training, inplace, generator
        As in `dropout`.

    Returns
    -------
    Tensor of input's shape and dtype
    """
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
