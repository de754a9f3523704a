"""The numbers a forward call derives from its arguments, memoised: the keep
threshold, the variant's coefficients, and the mask shape. A layer calls with
the same arguments every step, and deriving them again (a rule called with
keyword options, coefficients rounded through numpy scalars) cost more than
the kernel itself on small arrays.

Every memo is keyed by values that determine its result and holds only results
of calls that succeeded, so a hit returns what the computation would have. The
memos are plain dicts: a lookup or an insert is atomic under the GIL, and two
threads computing the same entry store the same value.
"""
from __future__ import annotations

import math

import numpy as np

from dropout_fast._variants import VARIANTS

MEMO_LIMIT = 256  # entries per memo before it is emptied (bounded memory)


def threshold(p: float) -> int:
    """The keep threshold of the stream contract: min(floor((1 - p) * 2**32), 2**32)."""
    return min(math.floor((1.0 - p) * 4294967296.0), 1 << 32)


_thresh_cache: dict = {}


def threshold_of(p: float) -> int:
    """threshold(p), memoised for float p (the type `check_p` returns; a numpy
    scalar p may compute 1 - p in its own precision, so it is never memoised)."""
    if type(p) is not float:
        return threshold(p)
    t = _thresh_cache.get(p)
    if t is None:
        if len(_thresh_cache) > MEMO_LIMIT:
            _thresh_cache.clear()
        t = _thresh_cache[p] = threshold(p)
    return t


_coeff_cache: dict = {}


def variant_coefficients(variant: str, p: float, dtype: np.dtype, options: dict) -> tuple:
    """The variant's (a, b, c), each computed in double and rounded once to dtype;
    memoised, since a layer calls with the same arguments every step."""
    try:
        # Unsorted: keyword order only splits the memo, never changes a value.
        key = (variant, p, dtype.char, *options.items())
        hit = _coeff_cache.get(key)
    except TypeError:  # an unhashable option value (a list noise_shape): no memo
        key, hit = None, None
    if hit is None:
        if len(_coeff_cache) > MEMO_LIMIT:
            _coeff_cache.clear()
        t = dtype.type
        hit = tuple(float(t(v)) for v in VARIANTS[variant].coefficients(p, **options))
        if key is not None:
            _coeff_cache[key] = hit
    return hit


_plan_cache: dict = {}
_PLAIN = (type(None), str, bool)  # option values whose == is identity of meaning


def forward_plan(variant: str, p: float, dtype: np.dtype, shape: tuple, options: dict) -> tuple:
    """(noise_shape, mask elements, a, b, c, threshold) of a forward call.

    The mask-shape rule raises ValueError/TypeError for bad options, as before.
    Memoised only when every option value is None, a str or a bool: values of
    other types can compare equal across types (1 == 1.0, (2, 1) == (2.0, 1))
    while a rule accepts one and refuses the other, so those are derived each
    call. p is the float `check_p` returned.
    """
    key = None
    for v in options.values():
        if type(v) not in _PLAIN:
            break
    else:
        key = (variant, p, dtype.char, shape, *options.items())
        hit = _plan_cache.get(key)
        if hit is not None:
            return hit
    noise_shape = VARIANTS[variant].noise_shape(shape, **options)
    a, b, c = variant_coefficients(variant, p, dtype, options)
    plan = (noise_shape, math.prod(noise_shape), a, b, c, threshold_of(p))
    if key is not None:
        if len(_plan_cache) > MEMO_LIMIT:
            _plan_cache.clear()
        _plan_cache[key] = plan
    return plan
