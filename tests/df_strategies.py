"""Hypothesis strategies and checks shared by the property-based tests.

Arrays come as `Layout` objects: a C-contiguous base buffer and a recipe that
turns a buffer of the base's shape into the view under test (axes permuted,
steps of +-1 or +-2, size-1 axes broadcast). The recipe can be replayed on a
copy of the base, so an in-place call can be checked against an out-of-place
one, and every byte of the base outside the view can be checked untouched.
"""
import contextlib
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import dropout_fast as df
from dropout_fast import _config, reference

# CI reproducibility: the same examples on every run (derandomize), no example
# database on disk, no per-example deadline (a Numba compile can land in any one).
# The counts are per test; test_properties.py sums them for the report.
settings.register_profile(
    "dropout_fast", derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])
PROFILE = settings.get_profile("dropout_fast")

DTYPES = st.sampled_from([np.float32, np.float64])

# p: the edges (0, 1), values just above 0 and just below 1, a few plain ones, any float.
EDGE_PS = [0.0, 5e-324, 2.0**-40, 2.0**-33, 2.0**-32, 1e-9, 0.1, 0.5, 0.9,
           1 - 2.0**-32, 1 - 2.0**-33, 1 - 2.0**-53, 1.0]
PS = st.one_of(st.sampled_from(EDGE_PS), st.floats(0.0, 1.0))

# Generators: seeds at the key's edges and offsets just below the counter carries
# into word 1 (2**32 blocks), word 2 (2**64) and the end of the 96-bit index (2**96,
# where a call that does not fit must raise OverflowError on both backends).
SEEDS = st.one_of(st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**64 - 1, 0x0123456789ABCDEF]),
                  st.integers(0, 2**64 - 1))
OFFSETS = st.one_of(st.integers(0, 64),
                    st.integers(0, 40).map(lambda k: 2**32 - k),
                    st.integers(0, 40).map(lambda k: 2**64 - k),
                    st.integers(1, 40).map(lambda k: 2**96 - k))


@dataclass
class Stream:
    seed: int
    offset: int

    def gen(self) -> df.Generator:
        """A fresh Generator at this state: every call of a check starts here."""
        return df.Generator(self.seed).advance(self.offset)


STREAMS = st.builds(Stream, SEEDS, OFFSETS)


@dataclass
class Layout:
    base: np.ndarray
    perm: tuple
    steps: tuple
    shape: tuple
    broadcast: bool

    def view(self, base=None) -> np.ndarray:
        b = self.base if base is None else base
        v = b.transpose(np.argsort(self.perm))
        v = v[tuple(slice(None, None, s) for s in self.steps)] if self.steps else v[...]
        return np.broadcast_to(v, self.shape) if self.broadcast else v

    @property
    def x(self) -> np.ndarray:
        return self.view()

    def outside(self) -> np.ndarray:
        """Flat indices of the base that the view does not cover."""
        idx = np.arange(self.base.size).reshape(self.base.shape)
        return np.setdiff1d(idx.reshape(-1), self.view(idx).reshape(-1))


def values(seed: int, shape: tuple, dtype, finite: bool) -> np.ndarray:
    """Normal values; unless finite, with NaN, +-inf, -0.0, denormals and the
    dtype's max (which overflows when scaled) at a few places."""
    rng = np.random.default_rng(seed)
    a = np.asarray(rng.standard_normal(shape) * 4, dtype=dtype)  # an array even for ()
    if not finite and a.size:
        fi = np.finfo(dtype)
        specials = np.array([np.nan, np.inf, -np.inf, -0.0, fi.tiny / 4, -fi.tiny / 8, fi.max],
                            dtype)
        pos = rng.integers(0, a.size, size=min(a.size, 3))
        a.reshape(-1)[pos] = specials[rng.integers(0, specials.size, size=pos.size)]
    return a


@st.composite
def layouts(draw, dtype, min_ndim=0, max_ndim=5, max_side=4, shape=None, finite=False,
            broadcast=True):
    """A Layout of `dtype` with 0..5 dims (or the given shape), sizes 0..max_side."""
    if shape is None:
        ndim = draw(st.integers(min_ndim, max_ndim))
        shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=ndim, max_size=ndim)))
    ndim = len(shape)
    kind = draw(st.sampled_from(["c", "strided", "broadcast"] if broadcast else ["c", "strided"]))
    perm, steps, bc = tuple(range(ndim)), (1,) * ndim, ()
    if kind == "strided":
        perm = tuple(draw(st.permutations(range(ndim))))
        steps = tuple(draw(st.lists(st.sampled_from([1, 2, -1, -2]), min_size=ndim,
                                    max_size=ndim)))
    elif kind == "broadcast":
        bc = tuple(i for i in range(ndim) if draw(st.booleans()))
    ext = [1 if i in bc else (d - 1) * abs(s) + 1 if d else 0
           for i, (d, s) in enumerate(zip(shape, steps))]
    base = values(draw(st.integers(0, 2**32 - 1)), tuple(ext[p] for p in perm), dtype, finite)
    return Layout(base, perm, steps, shape, bool(bc))


# --------------------------------------------------------------------------- checks
@contextlib.contextmanager
def backend(kernels):
    """Run the public API on `kernels` (the C extension or the Numba reference)."""
    saved, _config.kernels = _config.kernels, kernels
    try:
        yield
    finally:
        _config.kernels = saved


def on_both(fn):
    """fn() on the C kernels, then on the Numba reference: both lists of arrays
    (or both the same exception type, which is re-raised for the caller)."""
    results = []
    for k in (_config.kernels, reference):
        with backend(k):
            try:
                results.append(fn())
            except OverflowError as e:  # an offset past 2**96: must be refused on both
                results.append(e)
    c, nb = results
    if isinstance(c, Exception) or isinstance(nb, Exception):
        assert type(c) is type(nb), (c, nb)
        raise c
    assert len(c) == len(nb)
    for i, (a, b) in enumerate(zip(c, nb)):
        assert_bits(a, b, f"output {i}: C vs Numba")
    return c


def assert_bits(a, b, what=""):
    """Equal bit for bit (+0.0 is not -0.0, NaN payloads count); None equals None."""
    if a is None or b is None:
        assert a is None and b is None, what
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    if np.ascontiguousarray(a).tobytes() != np.ascontiguousarray(b).tobytes():
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=what)


def assert_untouched(lay: Layout, snapshot: np.ndarray, what="input"):
    assert lay.base.tobytes() == snapshot.tobytes(), f"{what} was modified"


def strided_out(shape, dtype):
    """A non-contiguous output view of `shape` and its guard base (filled with NaN)."""
    base = np.full(tuple(shape) + (2,), np.nan, dtype)
    return base, base[..., 0]


def unpack(bits, shape):
    n = math.prod(shape)
    return np.unpackbits(bits, count=n, bitorder="little").view(bool).reshape(shape)


def overflows(stream, count):
    """Whether a call reserving ceil(count / 8) blocks passes the 96-bit counter."""
    return stream.offset + (count + 7) // 8 > 2**96


def run_or_overflow(fn, stream, count):
    """on_both(fn), or None when the offset overflows (checked to be the reason)."""
    try:
        return on_both(fn)
    except OverflowError:
        assert overflows(stream, count)
        return None


def check_out_forms(lay, call, want):
    """call(x, out) with out a strided array and with out=x (in place) gives
    `want` bit for bit, returns out, and writes nothing else."""
    guard, out = strided_out(lay.shape, lay.base.dtype)
    assert call(lay.x, out) is out
    assert_bits(out, want, "strided out")
    assert np.isnan(guard[..., 1]).all(), "out= wrote outside the view"
    if lay.broadcast:  # a read-only view: out=x is refused elsewhere (test_errors)
        return
    base = lay.base.copy()
    x = lay.view(base)
    assert call(x, x) is x
    assert_bits(x, want, "out=x")
    rest = lay.outside()
    assert base.reshape(-1)[rest].tobytes() == lay.base.reshape(-1)[rest].tobytes()
