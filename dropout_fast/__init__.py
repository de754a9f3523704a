"""dropout_fast: fast, exact inverted dropout for CPUs.

Masks come from a counter-based Philox4x32-10 stream, so the mask bit of an
element depends only on (seed, offset, index): the C kernels (AVX-512, AVX2,
scalar; any thread count), the Numba reference and the standalone C library
all produce the same bits, and backward can regenerate a mask instead of
storing it.
"""
from __future__ import annotations

import operator as _operator

from dropout_fast import _config, mc
from dropout_fast._generator import Generator, default_generator, manual_seed
from dropout_fast._version import __version__
from dropout_fast._dropblock import (
    DropBlock,
    DropBlockMask,
    drop_block,
    drop_block2d,
    drop_block3d,
    drop_block_backward,
    drop_block_forward,
)
from dropout_fast._fused import (
    BiasDropoutAddMask,
    bias_dropout_add,
    bias_dropout_add_backward,
    bias_dropout_add_forward,
)
from dropout_fast._gaussian import (
    GaussianDropout,
    GaussianNoise,
    gaussian_dropout,
    gaussian_dropout_backward,
    gaussian_dropout_forward,
)
from dropout_fast._softmax import (
    SoftmaxDropout,
    SoftmaxDropoutMask,
    softmax,
    softmax_dropout,
    softmax_dropout_backward,
    softmax_dropout_forward,
)
from dropout_fast.api import DropoutMask, dropout, dropout_backward, dropout_forward, philox4x32
from dropout_fast.layers import (
    AlphaDropout,
    DropConnect,
    DropPath,
    Dropout,
    FeatureAlphaDropout,
    RecurrentDropout,
    SpatialDropout,
    VariationalDropout,
)
from dropout_fast.variants import (
    alpha_dropout,
    backward,
    drop_connect,
    drop_path,
    dropout1d,
    dropout2d,
    dropout3d,
    embedding_dropout,
    embedding_dropout_backward,
    embedding_dropout_forward,
    feature_alpha_dropout,
    forward,
    spatial_dropout,
    variational_dropout,
)

__all__ = [
    "Generator", "manual_seed", "default_generator", "dropout", "dropout_forward",
    "dropout_backward", "DropoutMask", "philox4x32", "forward", "backward",
    "spatial_dropout", "dropout1d", "dropout2d", "dropout3d", "variational_dropout",
    "drop_path", "drop_connect", "alpha_dropout", "feature_alpha_dropout",
    "embedding_dropout", "embedding_dropout_forward", "embedding_dropout_backward",
    "drop_block", "drop_block2d", "drop_block3d", "drop_block_forward", "drop_block_backward",
    "DropBlock", "DropBlockMask", "gaussian_dropout", "gaussian_dropout_forward",
    "gaussian_dropout_backward", "GaussianDropout", "GaussianNoise", "bias_dropout_add",
    "bias_dropout_add_forward", "bias_dropout_add_backward", "BiasDropoutAddMask", "softmax",
    "softmax_dropout", "softmax_dropout_forward", "softmax_dropout_backward",
    "SoftmaxDropoutMask", "SoftmaxDropout", "mc",
    "Dropout", "SpatialDropout", "VariationalDropout", "DropPath", "AlphaDropout",
    "FeatureAlphaDropout", "DropConnect", "RecurrentDropout",
    "set_num_threads", "get_num_threads", "info", "__version__",
]

if _config.BACKEND == "c" and _config.kernels.version() != __version__:
    raise ImportError(f"dropout_fast: compiled extension is version {_config.kernels.version()} "
                      f"but the package is {__version__}; rebuild it (pip install .)")


def set_num_threads(n: int) -> None:
    """Use `n` threads in the C kernels (the default is all cores, or
    DROPOUT_FAST_NUM_THREADS). Results never depend on it."""
    try:
        n = _operator.index(n)
    except TypeError:
        raise TypeError(f"n: expected a positive integer, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"n: expected a positive integer, got {n}")
    _config.nthreads = n


def get_num_threads() -> int:
    """The number of threads the C kernels use for large arrays."""
    if _config.nthreads:
        return _config.nthreads
    return _config.kernels.max_threads() if _config.BACKEND == "c" else 1


def info() -> dict:
    """Version, backend, SIMD path in use and available, threads, OpenMP.

    Examples
    --------
    >>> sorted(info())
    ['backend', 'isa', 'isa_available', 'num_threads', 'openmp', 'version']
    """
    c = _config.BACKEND == "c"
    names = list(_config.ISA_CODES)
    if not c:
        isa = "numba"
    elif _config.isa == _config.ISA_AUTO:
        isa = _config.kernels.isa_default()
    else:
        isa = names[_config.isa]
    return {
        "version": __version__,
        "backend": _config.BACKEND,
        "isa": isa,
        "isa_available": [n for n in names if _config.isa_available(n)],
        "num_threads": get_num_threads(),
        "openmp": bool(c and _config.kernels.has_openmp()),
    }
