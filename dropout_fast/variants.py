"""Structured dropout: each function is a row of the variant table
(_variants.py) run by the one engine in api.py. Masks are drawn over a
broadcast shape and never expanded; backward of every variant is
`dropout_backward` (alias `backward`) with the mask its forward returned.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from dropout_fast import _config, _embedding
from dropout_fast._generator import RNGLike
from dropout_fast._variants import VARIANTS
from dropout_fast.api import (DropoutMask, backward_impl, check_p, check_training,
                              dropout_impl, forward_impl)

__all__ = [
    "forward", "backward", "spatial_dropout", "dropout1d", "dropout2d", "dropout3d",
    "variational_dropout", "drop_path", "drop_connect", "alpha_dropout",
    "feature_alpha_dropout", "embedding_dropout", "embedding_dropout_forward",
    "embedding_dropout_backward",
]

_COMMON = """
    training : bool, default True
        When False the function is the identity and returns x itself.
    rng : Generator, int or None
        A Generator, an int seed (a fresh Generator at offset 0), or None for the
        default generator. The mask consumes ceil(m / 8) counter blocks for m mask
        elements.
    out : ndarray, optional
        Output of x's shape and dtype; ``out=x`` works in place.
"""


def _doc(fn):
    fn.__doc__ = fn.__doc__.replace("    {common}\n", _COMMON.strip("\n") + "\n")
    return fn


def forward(variant: str, x, p: float = 0.5, *, rng: RNGLike = None,
            out: Optional[np.ndarray] = None, mask: str = "bits", **options):
    """Training-mode forward of any variant, returning ``(y, m)`` for `backward`.

    Parameters
    ----------
    variant : str
        A name from the variant table: ``"dropout"``, ``"spatial_dropout"``,
        ``"variational_dropout"``, ``"drop_path"``, ``"drop_connect"``,
        ``"alpha_dropout"``, ``"feature_alpha_dropout"``.
    x : ndarray of float32 or float64
    p : float
        Drop probability in [0, 1].
    rng, out :
        As in `dropout`.
    mask : {"bits", "recompute"}
        Keep the mask's bits (1 bit per mask element) or nothing.
    **options
        The variant's options (``data_format``, ``time_axis``, ``mode``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((2, 3, 4, 4), np.float32)
    >>> y, m = forward("spatial_dropout", x, 0.5, rng=0)
    >>> m.noise_shape, m.nbytes
    ((2, 3, 1, 1), 1)
    >>> bool(np.array_equal(backward(np.ones_like(x), m), y))
    True
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    return forward_impl(_config.kernels, x, p, rng, out, mask, variant, options)


def backward(dy, m, *, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Backward of any variant: ``dx = a * dy`` where kept, 0 elsewhere (see `forward`)."""
    return backward_impl(_config.kernels, dy, m, out)


def _run(variant, x, p, training, rng, out, **options):
    return dropout_impl(_config.kernels, x, p, training, rng, out, variant, options)


@_doc
def spatial_dropout(x, p: float = 0.5, *, data_format: str = "channels_first",
                    training: bool = True, rng: RNGLike = None,
                    out: Optional[np.ndarray] = None) -> np.ndarray:
    """Spatial (channel) dropout: zero whole feature maps, one decision per (sample, channel).

    As PyTorch's ``dropout1d/2d/3d`` (channels_first) and Keras'
    ``SpatialDropout1D/2D/3D`` (channels_last); Tompson et al. 2015.

    Parameters
    ----------
    x : ndarray of shape (N, C, L), (N, C, H, W) or (N, C, D, H, W), or channels last
        (N, L, C), (N, H, W, C), (N, D, H, W, C). A 3-D input is always a batch.
    p : float, default 0.5
        Probability of dropping a channel.
    data_format : {"channels_first", "channels_last"}
    {common}
    Returns
    -------
    ndarray of x's shape and dtype

    Examples
    --------
    >>> import numpy as np
    >>> y = spatial_dropout(np.ones((2, 4, 3, 3), np.float32), 0.5, rng=0)
    >>> sorted(set(y.reshape(2, 4, 9).max(axis=2).ravel().tolist()) | {0.0})
    [0.0, 2.0]
    """
    return _run("spatial_dropout", x, p, training, rng, out, data_format=data_format)


def _channels_first(ndim: int, name: str):
    def fn(x, p: float = 0.5, *, training: bool = True, rng: RNGLike = None,
           out: Optional[np.ndarray] = None) -> np.ndarray:
        arr = np.asarray(x)
        if arr.ndim != ndim + 2:
            raise ValueError(f"x: {name} expects a {ndim + 2}-D input (N, C, ...), "
                             f"got shape {arr.shape}")
        return spatial_dropout(x, p, training=training, rng=rng, out=out)
    fn.__name__ = fn.__qualname__ = name
    dims = {1: "L", 2: "H, W", 3: "D, H, W"}[ndim]
    fn.__doc__ = (f"PyTorch's ``{name}``: `spatial_dropout` of a {ndim + 2}-D channels-first "
                  f"input (N, C, {dims}); any other ndim is a ValueError.")
    return fn


dropout1d = _channels_first(1, "dropout1d")
dropout2d = _channels_first(2, "dropout2d")
dropout3d = _channels_first(3, "dropout3d")


@_doc
def variational_dropout(x, p: float = 0.5, *, time_axis: int = 1, training: bool = True,
                        rng: RNGLike = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Variational dropout: one mask per sequence, shared by every timestep.

    Gal & Ghahramani 2016. For (N, T, F) the mask is (N, 1, F); for the
    time-major (T, N, F) layout pass ``time_axis=0``.

    Parameters
    ----------
    x : ndarray of at least 2 dimensions
    p : float, default 0.5
    time_axis : int, default 1
        The axis along which the mask is shared.
    {common}
    Examples
    --------
    >>> import numpy as np
    >>> y = variational_dropout(np.ones((2, 5, 8)), 0.5, rng=0)
    >>> bool(np.all(y == y[:, :1, :]))
    True
    """
    return _run("variational_dropout", x, p, training, rng, out, time_axis=time_axis)


@_doc
def drop_path(x, p: float, *, mode: str = "row", scale_by_keep: bool = True,
              training: bool = True, rng: RNGLike = None,
              out: Optional[np.ndarray] = None) -> np.ndarray:
    """Stochastic depth: drop whole samples of a residual branch.

    As timm's ``DropPath`` and torchvision's ``stochastic_depth`` (Huang et al. 2016).

    Parameters
    ----------
    x : ndarray of shape (N, ...)
    p : float
        Probability of dropping a sample (mode "row") or the whole batch ("batch").
    mode : {"row", "batch"}
    scale_by_keep : bool, default True
        Scale survivors by 1 / (1 - p) (timm's default); False leaves them as they are.
    {common}
    Examples
    --------
    >>> import numpy as np
    >>> y = drop_path(np.ones((4, 3)), 0.5, rng=1)
    >>> bool(np.all((y == 0).all(axis=1) | (y == 2).all(axis=1)))
    True
    """
    return _run("drop_path", x, p, training, rng, out, mode=mode,
                scale_by_keep=bool(scale_by_keep))


@_doc
def drop_connect(w, p: float = 0.5, *, training: bool = True, rng: RNGLike = None,
                 out: Optional[np.ndarray] = None) -> np.ndarray:
    """DropConnect: dropout on a weight matrix, one mask per call (Wan et al. 2013).

    Use the result in place of the weights, e.g. ``x @ drop_connect(W, p).T``;
    `backward` with the mask of `forward("drop_connect", ...)` gives dL/dW.

    Parameters
    ----------
    w : ndarray of float32 or float64, any shape
    p : float, default 0.5
    {common}
    Examples
    --------
    >>> import numpy as np
    >>> w = drop_connect(np.ones((3, 4)), 0.5, rng=0)
    >>> w.shape
    (3, 4)
    """
    return _run("drop_connect", w, p, training, rng, out)


@_doc
def alpha_dropout(x, p: float = 0.5, *, training: bool = True, rng: RNGLike = None,
                  out: Optional[np.ndarray] = None) -> np.ndarray:
    """Alpha dropout for SELU networks: keeps mean 0 and variance 1 (Klambauer et al. 2017).

    Dropped units are set to SELU's negative saturation and everything is
    affinely corrected: kept ``a*x + b``, dropped ``c``, PyTorch's coefficients.

    Parameters
    ----------
    x : ndarray of float32 or float64
    p : float, default 0.5
    {common}
    Examples
    --------
    >>> import numpy as np
    >>> y = alpha_dropout(np.zeros(1000), 0.2, rng=0)
    >>> len(set(y.tolist()))
    2
    """
    return _run("alpha_dropout", x, p, training, rng, out)


@_doc
def feature_alpha_dropout(x, p: float = 0.5, *, training: bool = True, rng: RNGLike = None,
                          out: Optional[np.ndarray] = None) -> np.ndarray:
    """Alpha dropout of whole channels: one decision per (sample, channel), as PyTorch's.

    Parameters
    ----------
    x : ndarray of shape (N, C, ...)
    p : float, default 0.5
    {common}
    Examples
    --------
    >>> import numpy as np
    >>> y = feature_alpha_dropout(np.zeros((2, 3, 5)), 0.5, rng=0)
    >>> bool(np.all(y == y[:, :, :1]))
    True
    """
    return _run("feature_alpha_dropout", x, p, training, rng, out)


def embedding_dropout_forward(weight, ids, p: float = 0.1, *, rng: RNGLike = None,
                              mask: str = "bits"):
    """Word-level embedding dropout with what backward needs: ``(out, m)``.

    Drops whole rows of the embedding matrix, so a token id is dropped at every
    position of the batch (Gal & Ghahramani 2016; AWD-LSTM's ``embedded_dropout``);
    survivors are scaled by 1 / (1 - p). The mask is one bit per row.

    Parameters
    ----------
    weight : ndarray of shape (V, D), float32 or float64
    ids : integer ndarray of any shape, values in [0, V)
    p : float, default 0.1
    rng : Generator, int or None
    mask : {"bits", "recompute"}

    Returns
    -------
    out : ndarray of shape ids.shape + (D,)
        ``weight[ids]`` with the rows of dropped ids zeroed and the rest scaled.
    m : DropoutMask
        A row mask of noise_shape (V, 1) for `embedding_dropout_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.ones((5, 3), np.float32)
    >>> out, m = embedding_dropout_forward(w, np.array([[0, 1, 0]]), 0.5, rng=2)
    >>> out.shape, bool(np.array_equal(out[0, 0], out[0, 2]))
    ((1, 3, 3), True)
    """
    return _embedding.forward_impl(_config.kernels, weight, ids, p, rng, mask)


def embedding_dropout_backward(dout, ids, m: DropoutMask) -> np.ndarray:
    """Gradient with respect to the embedding matrix: the rows of `dout` summed
    into their ids in token order (the bits of ``numpy.add.at`` into zeros), then
    the forward's row mask and scale.

    Returns
    -------
    ndarray of shape (V, D), the dtype of `dout`
    """
    return _embedding.backward_impl(_config.kernels, dout, ids, m)


def embedding_dropout(weight, ids=None, p: float = 0.1, *, training: bool = True,
                      rng: RNGLike = None) -> np.ndarray:
    """Embedding (word) dropout: drop whole rows of an embedding matrix.

    With `ids`, returns the lookup ``weight[ids]`` under the row mask; without,
    the masked matrix itself (V, D). See `embedding_dropout_forward`.

    Examples
    --------
    >>> import numpy as np
    >>> w = embedding_dropout(np.ones((6, 2)), p=0.5, rng=0)
    >>> bool(np.all((w == 0).all(axis=1) | (w == 2).all(axis=1)))
    True
    """
    if not check_training(training):
        weight = _embedding.check_weight(weight)  # as in training mode (not an IndexError)
        check_p(p)
        return weight if ids is None else weight[_embedding.check_ids(ids, weight.shape[0])]
    if ids is None:
        return _run("embedding_dropout", weight, p, True, rng, None)
    return embedding_dropout_forward(weight, ids, p, rng=rng, mask="recompute")[0]
