"""The variant table: every structured dropout is a mask-shape rule plus
coefficients, and the C kernel computes ``kept = a*x + b``, ``dropped = c``
with the mask broadcast over the size-1 axes of its shape. Adding a variant is
a row here and a three-line public function in variants.py.

Rules take the input's shape and the variant's keyword options and return the
mask's shape (Keras' noise_shape: x's ndim, each entry x's extent or 1); they
raise ValueError naming the bad argument. Coefficient functions take p and the
options and return (a, b, c) in double; the engine rounds them once to the
array's dtype. Backward of every variant is ``dx = keep ? a*dy : 0``.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

Shape = Tuple[int, ...]

# Klambauer et al. 2017, "Self-Normalizing Neural Networks": -lambda*alpha of SELU.
SELU_ALPHA_PRIME = 1.7580993408473766


@dataclass(frozen=True)
class Variant:
    name: str
    noise_shape: Callable[..., Shape]
    coefficients: Callable[..., Tuple[float, float, float]]
    summary: str


# --------------------------------------------------------------------------- mask-shape rules
def full_shape(shape: Shape, noise_shape: Optional[Shape] = None) -> Shape:
    """Element-wise, or the caller's Keras-style noise_shape."""
    if noise_shape is None:
        return shape
    try:
        ns = tuple(operator.index(d) for d in noise_shape)
    except TypeError:
        raise TypeError(f"noise_shape: expected a tuple of ints, got {noise_shape!r}") from None
    if len(ns) != len(shape) or any(m not in (d, 1) for d, m in zip(shape, ns)):
        raise ValueError(f"noise_shape: {ns} does not broadcast to x's shape {shape} "
                         "(each entry must equal x's extent or 1)")
    return ns


def _check_format(data_format: str) -> None:
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"data_format: expected 'channels_first' or 'channels_last', "
                         f"got {data_format!r}")


def spatial_shape(shape: Shape, data_format: str = "channels_first") -> Shape:
    """One bit per (sample, channel): (N, C, 1, ...) or (N, 1, ..., C)."""
    _check_format(data_format)
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"x: spatial dropout expects a 3-D, 4-D or 5-D input (N, C, *spatial) "
                         f"or (N, *spatial, C), got shape {shape}")
    ones = (1,) * (len(shape) - 2)
    if data_format == "channels_first":
        return (shape[0], shape[1]) + ones
    return (shape[0],) + ones + (shape[-1],)


def feature_shape(shape: Shape) -> Shape:
    """One bit per (sample, channel), channels first: (N, C, 1, ...)."""
    if len(shape) < 2:
        raise ValueError(f"x: feature dropout expects at least 2-D input (N, C, ...), got {shape}")
    return shape[:2] + (1,) * (len(shape) - 2)


def time_shared_shape(shape: Shape, time_axis: int = 1) -> Shape:
    """One mask per sequence, shared by every step along time_axis."""
    try:
        axis = operator.index(time_axis)
    except TypeError:
        raise TypeError(f"time_axis: expected an int, got {type(time_axis).__name__}") from None
    if not -len(shape) <= axis < len(shape) or len(shape) < 2:
        raise ValueError(f"time_axis: {time_axis} is out of range for an input of shape {shape}")
    axis %= len(shape)
    return shape[:axis] + (1,) + shape[axis + 1:]


def per_sample_shape(shape: Shape, mode: str = "row", scale_by_keep: bool = True) -> Shape:
    """DropPath: one decision per sample ("row") or for the whole batch ("batch")."""
    if mode not in ("row", "batch"):
        raise ValueError(f"mode: expected 'row' or 'batch', got {mode!r}")
    if len(shape) < 1:
        raise ValueError("x: drop_path expects at least 1-D input (N, ...)")
    first = shape[0] if mode == "row" else 1
    return (first,) + (1,) * (len(shape) - 1)


def row_shape(shape: Shape) -> Shape:
    """Embedding dropout: one bit per row (token id) of a (V, D) weight matrix."""
    if len(shape) != 2:
        raise ValueError(f"weight: expected a 2-D embedding matrix (V, D), got shape {shape}")
    return (shape[0], 1)


# --------------------------------------------------------------------------- coefficients
def inverted(p: float, **_) -> Tuple[float, float, float]:
    """Inverted dropout: kept x / (1 - p), dropped 0."""
    return (1.0 / (1.0 - p) if p < 1.0 else 0.0), 0.0, 0.0


def drop_path_coefficients(p: float, mode: str = "row", scale_by_keep: bool = True
                           ) -> Tuple[float, float, float]:
    """timm's DropPath: survivors scaled by 1 / (1 - p) only when scale_by_keep."""
    if p >= 1.0:
        return 0.0, 0.0, 0.0
    return (1.0 / (1.0 - p) if scale_by_keep else 1.0), 0.0, 0.0


def alpha(p: float, **_) -> Tuple[float, float, float]:
    """Alpha dropout (Klambauer et al. 2017), PyTorch's coefficients: dropped
    units are set to SELU's saturation -alpha', then a*x + b restores mean 0 and
    variance 1. p == 1 gives zeros, as in PyTorch."""
    if p >= 1.0:
        return 0.0, 0.0, 0.0
    alpha = SELU_ALPHA_PRIME  # the expressions of ATen's Dropout.cpp, in double
    a = 1.0 / math.sqrt((alpha * alpha * p + 1.0) * (1.0 - p))
    b = alpha * a * p
    return a, b, -alpha * a + b


VARIANTS: Dict[str, Variant] = {v.name: v for v in [
    Variant("dropout", full_shape, inverted,
            "element-wise, or any Keras noise_shape"),
    Variant("spatial_dropout", spatial_shape, inverted,
            "whole channels per sample, 1D/2D/3D maps, channels first or last"),
    Variant("variational_dropout", time_shared_shape, inverted,
            "one mask per sequence shared by all timesteps (Gal & Ghahramani 2016)"),
    Variant("drop_path", per_sample_shape, drop_path_coefficients,
            "stochastic depth: whole samples (or the whole batch)"),
    Variant("drop_connect", full_shape, inverted,
            "dropout on a weight matrix (Wan et al. 2013)"),
    Variant("embedding_dropout", row_shape, inverted,
            "whole rows of an embedding matrix: a token id dropped everywhere (AWD-LSTM)"),
    Variant("alpha_dropout", full_shape, alpha,
            "SELU-preserving dropout (Klambauer et al. 2017)"),
    Variant("feature_alpha_dropout", feature_shape, alpha,
            "alpha dropout of whole channels"),
]}
