"""Gaussian dropout (dropout_fast._gaussian): the C kernels, the Numba backend
and the plain-numpy oracle bit for bit; invariance to threads, SIMD path and
splitting; the normal deviates' statistics and the accuracy of the log and
cos they are built from; gradients; modes; edge cases and bad input."""
import doctest
import math

import numpy as np
import pytest

import dropout_fast as df
import oracle
from dropout_fast import _config, _gaussian, reference
from dropout_fast._gaussian import (GaussianDropout, GaussianNoise, gaussian_backward_impl,
                                    gaussian_dropout, gaussian_dropout_backward,
                                    gaussian_dropout_forward, gaussian_forward_impl)

DTYPES = [np.float32, np.float64]
SIZES = [0, 1, 7, 8, 9, 1000]
# Block offsets: plain, odd, the low counter word wrapping inside the call
# (a carry past 2**32 blocks), and a carry into the top word past 2**64.
OFFSETS = [0, 3, 2**32 - 5, 2**64 - 2, (5 << 64) + 2**64 - 1]
SEED = 0x9ABCDEF012345678
ISAS = [name for name in _config.ISA_CODES if _config.isa_available(name)]
BACKENDS = [pytest.param(_config.kernels, id=_config.BACKEND),
            pytest.param(reference, id="numba")]


def at(seed, offset):
    """A Generator with the given seed, positioned at block `offset`."""
    g = df.Generator(seed)
    g.state = {**g.state, "offset": offset}
    return g


def data(n, dtype, seed=0):
    """Normal values with -0.0, NaN, +-inf and the largest finite value."""
    x = (np.random.default_rng(seed).standard_normal(n) * 10).astype(dtype)
    x[::97] = -0.0
    x[1::101] = np.nan
    x[2::103] = np.inf
    x[3::107] = -np.inf
    x[4::109] = np.finfo(dtype).max
    return x


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8),
                                  np.ascontiguousarray(b).view(np.uint8))


# --------------------------------------------------------------------------- bit-exact
@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("offset", OFFSETS)
def test_forward_matches_oracle(kernels, dtype, n, offset):
    x = data(n, dtype)
    g = at(SEED, offset)
    y, m = gaussian_forward_impl(kernels, x, 0.3, g, None, "recompute")
    same_bits(y, oracle.gaussian_dropout(x, SEED, offset, 0.3))
    assert g.offset == offset + (n + 7) // 8 and m.offset == offset and m.nbytes == 0
    same_bits(m.multiplier(kernels), oracle.gaussian_multiplier(n, SEED, offset, 0.3, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9])
def test_kernels_c_numba_oracle_large(dtype, p):
    """The kernel interface itself, on a length that is no multiple of anything."""
    n, offset = 100003, 2**32 - 1000
    x = data(n, dtype, seed=1)
    sigma = math.sqrt(p / (1.0 - p))
    args = (SEED & 0xFFFFFFFF, SEED >> 32, offset % 2**64, offset >> 64, sigma)
    ref = oracle.gaussian_dropout(x, SEED, offset, p)
    for kernels in (_config.kernels, reference):
        y = np.empty_like(x)
        kernels.gaussian_fwd(x, y, *args, 0, -1)
        same_bits(y, ref)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_out(kernels, dtype):
    x = data(1003, dtype)
    ref = oracle.gaussian_dropout(x, SEED, 11, 0.25)
    y = x.copy()
    assert gaussian_forward_impl(kernels, y, 0.25, at(SEED, 11), y, "recompute")[0] is y
    same_bits(y, ref)
    y = x.copy()
    gaussian_forward_impl(kernels, y, 0.25, at(SEED, 11), y, "store")
    same_bits(y, ref)
    out = np.empty_like(x)
    assert gaussian_dropout(x, 0.25, rng=at(SEED, 11), out=out) is out
    same_bits(out, ref)


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("noise", ["recompute", "store"])
def test_non_contiguous(kernels, noise):
    """The noise follows the logical C-order index; strided outputs work too."""
    base = data(40 * 30, np.float32).reshape(40, 30)
    x = base[::2, ::-3].T  # (10, 20), negative strides, transposed
    ref = oracle.gaussian_dropout(np.ascontiguousarray(x), SEED, 4, 0.4)
    y, _ = gaussian_forward_impl(kernels, x, 0.4, at(SEED, 4), None, noise)
    same_bits(y, ref)
    out = np.zeros((10, 40), np.float32)[:, ::2]
    gaussian_forward_impl(kernels, x, 0.4, at(SEED, 4), out, noise)
    same_bits(out, ref)


def test_numba_wrapper_equals_c():
    x = data(777, np.float64)
    same_bits(reference.gaussian_dropout(x, 0.2, rng=at(SEED, 9)),
              gaussian_dropout(x, 0.2, rng=at(SEED, 9)))


# --------------------------------------------------------------------------- invariance
@pytest.mark.skipif(_config.BACKEND != "c", reason="needs the C extension")
@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_and_isas(monkeypatch, dtype):
    """Every ISA and 1, 2, 3 threads (n is large enough that each gets a part)."""
    x = data(3 * 2**15 + 5, dtype)
    ref = oracle.gaussian_dropout(x, SEED, 2**32 - 7, 0.5)
    for name in ISAS:
        with _config.force_isa(name):
            for nt in (1, 2, 3):
                monkeypatch.setattr(_config, "nthreads", nt)
                y = gaussian_dropout(x, 0.5, rng=at(SEED, 2**32 - 7))
                same_bits(y, ref)


# Lengths around the SIMD groups (32 elements on AVX2, 64 on AVX-512) and offsets
# that put the carry out of the low 32 bits of the block index inside a group, on
# a group boundary, or one block from the end of the call.
GROUP_SIZES = [31, 32, 33, 63, 64, 65, 129, 257, 1031]
CARRY_OFFSETS = [2**32 - 3, 2**32 - 4, 2**32 - 8, 2**64 - 5, 2**33 - 1]


@pytest.mark.skipif(_config.BACKEND != "c", reason="needs the C extension")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", CARRY_OFFSETS)
def test_isas_match_scalar_at_group_edges(dtype, offset):
    """Every ISA's body equals the scalar specification bit for bit on tails,
    odd lengths and counter carries, out of place and in place, 1 and 2 threads."""
    kernels = _config.kernels
    args = (SEED & 0xFFFFFFFF, SEED >> 32, offset % 2**64, offset >> 64,
            _gaussian.gaussian_sigma(0.36))
    for n in GROUP_SIZES:
        x = data(n, dtype, seed=n)
        ref = np.empty_like(x)
        kernels.gaussian_fwd(x, ref, *args, 1, _config.ISA_CODES["scalar"])
        for name in ISAS:
            for nt in (1, 2):
                y = np.empty_like(x)
                kernels.gaussian_fwd(x, y, *args, nt, _config.ISA_CODES[name])
                same_bits(y, ref)
                y = x.copy()
                kernels.gaussian_fwd(y, y, *args, nt, _config.ISA_CODES[name])
                same_bits(y, ref)
    # the scalar body itself against the numpy oracle at this offset
    same_bits(ref, oracle.gaussian_dropout(x, SEED, offset, 0.36))


@pytest.mark.parametrize("kernels", BACKENDS)
def test_split_calls(kernels):
    """One call equals the same range in calls split at multiples of 8 elements."""
    x = data(5000, np.float64)
    whole = gaussian_forward_impl(kernels, x, 0.3, at(SEED, 2), None, "recompute")[0]
    g = at(SEED, 2)
    parts = [gaussian_forward_impl(kernels, x[a:b], 0.3, g, None, "recompute")[0]
             for a, b in [(0, 8), (8, 1608), (1608, 5000)]]
    same_bits(np.concatenate(parts), whole)


# --------------------------------------------------------------------------- statistics
N_STAT = 2**20


@pytest.fixture(scope="module")
def stat_sample():
    y = gaussian_dropout(np.ones(N_STAT), 0.3, rng=2024)
    return y, math.sqrt(0.3 / 0.7)


def test_mean_and_variance(stat_sample):
    y, sigma = stat_sample
    var = sigma**2
    assert abs(y.mean() - 1.0) < 5 * math.sqrt(var / N_STAT)
    # The sample variance of normal data has standard deviation var * sqrt(2 / (n - 1)).
    assert abs(y.var() - var) < 5 * var * math.sqrt(2.0 / (N_STAT - 1))


def test_standard_normal(stat_sample):
    """Empirical CDF of z at fixed points, tails, and no correlation at the lags
    that share a Philox block (1, 4) or a stream pattern (8)."""
    y, sigma = stat_sample
    z = (y - 1.0) / sigma
    for q in (-4.0, -3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0):
        cdf = 0.5 * (1.0 + math.erf(q / math.sqrt(2.0)))
        got = np.count_nonzero(z <= q) / N_STAT
        assert abs(got - cdf) < 5 * math.sqrt(cdf * (1 - cdf) / N_STAT) + 1e-9, q
    assert abs(np.mean(z**3)) < 5 * math.sqrt(15 / N_STAT)          # skewness
    assert abs(np.mean(z**4) - 3.0) < 5 * math.sqrt(96 / N_STAT)    # kurtosis
    for lag in (1, 4, 8):
        r = np.mean(z[:-lag] * z[lag:])
        assert abs(r) < 5 / math.sqrt(N_STAT), lag


def test_seeds_and_offsets_differ():
    a = gaussian_dropout(np.ones(4096), 0.5, rng=at(1, 0))
    b = gaussian_dropout(np.ones(4096), 0.5, rng=at(2, 0))
    c = gaussian_dropout(np.ones(4096), 0.5, rng=at(1, 512))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1 and abs(np.corrcoef(a, c)[0, 1]) < 0.1


# --------------------------------------------------------------------------- accuracy
def words(n=200_000):
    """Random words and the edges of the transform: 0, 2**32 - 1, quarter turns."""
    w = np.random.default_rng(5).integers(0, 2**32, n, dtype=np.uint64)
    edge = [0, 1, 2, 2**29 - 1, 2**29, 2**29 + 1, 2**30 - 1, 2**30 + 1, 3 * 2**29,
            2**31 - 1, 2**31, 2**31 + 1, 5 * 2**29, 3 * 2**30 + 1, 7 * 2**29,
            2**32 - 2**29 - 1, 2**32 - 2**29, 2**32 - 2, 2**32 - 1]
    return np.concatenate([np.array(edge, np.uint64), w])


def test_log_cos_accuracy():
    w = words()
    log_o, cos_o = oracle.gaussian_log(w), oracle.gaussian_cos2pi(w)
    log_n, cos_n = reference.gaussian_log_cos(w, w)
    same_bits(log_n, log_o)
    same_bits(cos_n, cos_o)
    u1 = (w.astype(np.float64) + 0.5) / 2**32
    u2 = w.astype(np.float64) / 2**32
    ref_log = np.array([math.log(v) for v in u1])
    ref_cos = np.array([math.cos(2 * math.pi * v) for v in u2])
    assert np.max(np.abs(log_o - ref_log) / np.abs(ref_log)) < 1e-12
    # math.cos(2 * math.pi * u) is itself off by up to ~4e-16 absolute (2 pi u
    # is rounded before the cos), so relative agreement is asked where |cos| >
    # 1e-3; the exact comparison below covers the zeros.
    big = np.abs(ref_cos) > 1e-3
    assert np.max(np.abs(cos_o - ref_cos)[big] / np.abs(ref_cos[big])) < 1e-12
    assert np.max(np.abs(cos_o - ref_cos)) < 1e-15


def test_log_cos_exact_reference():
    mpmath = pytest.importorskip("mpmath")
    w = words(2000)
    log_o, cos_o = oracle.gaussian_log(w), oracle.gaussian_cos2pi(w)
    with mpmath.workprec(120):
        for i, wi in enumerate(int(v) for v in w):
            exact_log = mpmath.log(mpmath.mpf(2 * wi + 1) / 2**33)
            exact_cos = mpmath.cos(2 * mpmath.pi * mpmath.mpf(wi) / 2**32)
            assert abs(float((log_o[i] - exact_log) / exact_log)) < 1e-14, wi
            assert abs(float((cos_o[i] - exact_cos) / exact_cos)) < 1e-14, wi


# --------------------------------------------------------------------------- gradients and modes
def test_gradient_finite_differences():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5))
    w = rng.standard_normal((3, 5))

    def loss(xv):  # the same generator position each time: the noise is held fixed
        return float(np.sum(gaussian_dropout(xv, 0.4, rng=at(SEED, 77)) * w))

    _, m = gaussian_dropout_forward(x, 0.4, rng=at(SEED, 77))
    dx = gaussian_dropout_backward(w, m)
    eps = 1e-6
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        fd = (loss(x + e) - loss(x - e)) / (2 * eps)
        assert abs(fd - dx[i]) <= 1e-7 * max(1.0, abs(dx[i])), i


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_store_equals_recompute(kernels, dtype):
    x, dy = data(999, dtype), data(999, dtype, seed=4)
    y_r, m_r = gaussian_forward_impl(kernels, x, 0.6, at(SEED, 5), None, "recompute")
    y_s, m_s = gaussian_forward_impl(kernels, x, 0.6, at(SEED, 5), None, "store")
    same_bits(y_r, y_s)
    assert m_r.noise is None and m_s.nbytes == 999 * np.dtype(dtype).itemsize
    same_bits(m_r.multiplier(kernels), m_s.multiplier())
    dx_r = gaussian_backward_impl(kernels, dy, m_r, None)
    same_bits(dx_r, gaussian_backward_impl(kernels, dy, m_s, None))
    with np.errstate(over="ignore"):
        same_bits(dx_r, (dy * m_s.noise).astype(dtype))
    out = dy.copy()
    assert gaussian_dropout_backward(out, m_r, out=out) is out
    same_bits(out, dx_r)


def test_eval_and_identity_cases():
    x = data(100, np.float32)
    assert gaussian_dropout(x, 0.5, training=False) is x
    out = np.empty_like(x)
    assert gaussian_dropout(x, 0.5, training=False, out=out) is out
    same_bits(out, x)
    g = at(SEED, 0)
    y = gaussian_dropout(x, 0.0, rng=g)
    assert y is not x and g.offset == 13  # p == 0 copies, and still takes its blocks
    same_bits(y, x)
    y, m = gaussian_dropout_forward(x, 0, rng=g, noise="store")
    same_bits(y, x)
    assert np.all(m.multiplier() == 1) and m.sigma == 0.0
    e = np.empty((0, 3), np.float64)
    assert gaussian_dropout(e, 0.5).shape == (0, 3)


def test_layer():
    x = data(64, np.float64).reshape(8, 8)
    for noise in ("recompute", "store"):
        layer = GaussianDropout(0.3, noise=noise, rng=SEED)
        y = layer(x)
        same_bits(y, oracle.gaussian_dropout(x, SEED, 0, 0.3))
        dy = np.ones_like(y)
        same_bits(layer.backward(dy), oracle.gaussian_multiplier(64, SEED, 0, 0.3,
                                                                 np.float64).reshape(8, 8))
        assert layer.eval().forward(x) is x and layer.backward(dy) is dy
        assert layer.train().training and "GaussianDropout(p=0.3" in repr(layer)
    assert isinstance(gaussian_dropout_forward(x, 0.1)[1], GaussianNoise)


def test_docstring_examples():
    result = doctest.testmod(_gaussian, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("p, exc", [(float("nan"), ValueError), (1.0, ValueError),
                                    (1.5, ValueError), (-0.1, ValueError),
                                    ("0.5", TypeError), (True, TypeError)])
def test_bad_p(p, exc):
    x = data(50, np.float32)
    keep, g = x.copy(), at(SEED, 3)
    for call in (lambda: gaussian_dropout(x, p, rng=g, out=x),
                 lambda: gaussian_dropout(x, p, training=False),
                 lambda: gaussian_dropout_forward(x, p, rng=g, noise="store"),
                 lambda: GaussianDropout(p)):
        with pytest.raises(exc, match="^p: "):
            call()
    same_bits(x, keep)
    assert g.offset == 3


def test_bad_arrays_and_options():
    x = data(50, np.float32)
    keep, g = x.copy(), at(SEED, 3)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    cases = [
        (lambda: gaussian_dropout(np.arange(5), 0.5), TypeError, "x: "),
        (lambda: gaussian_dropout(x, 0.5, rng=g, out=np.empty(49, np.float32)), ValueError,
         "out: "),
        (lambda: gaussian_dropout(x, 0.5, rng=g, out=np.empty(50, np.float64)), TypeError, "out: "),
        (lambda: gaussian_dropout(x, 0.5, rng=g, out=ro), ValueError, "out: "),
        (lambda: gaussian_dropout(x, 0.5, rng=g, out=list(x)), TypeError, "out: "),
        (lambda: gaussian_dropout(x, 0.5, rng="seed"), TypeError, "rng: "),
        (lambda: gaussian_dropout(x, 0.5, training=None), TypeError, "training: "),
        (lambda: gaussian_dropout_forward(x, 0.5, rng=g, noise="bits"), ValueError, "noise: "),
        (lambda: GaussianDropout(0.5, noise="bits"), ValueError, "noise: "),
    ]
    for call, exc, msg in cases:
        with pytest.raises(exc, match="^" + msg):
            call()
    same_bits(x, keep)
    assert g.offset == 3
    _, m = gaussian_dropout_forward(x, 0.5, rng=g)
    dy = x.copy()
    for call, exc, msg in [
        (lambda: gaussian_dropout_backward(dy, object()), TypeError, "m: "),
        (lambda: gaussian_dropout_backward(dy[:10], m), ValueError, "dy: "),
        (lambda: gaussian_dropout_backward(dy.astype(np.float64), m), TypeError, "dy: "),
        (lambda: gaussian_dropout_backward(dy, m, out=ro), ValueError, "out: "),
    ]:
        with pytest.raises(exc, match="^" + msg):
            call()
    same_bits(dy, keep)


def test_kernel_interface_refuses_bad_sigma():
    x = np.ones(8)
    for sigma in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            reference.gaussian_fwd(x, x, 1, 2, 0, 0, sigma)
        if _config.BACKEND == "c":
            with pytest.raises(_config.kernels.KernelError, match="outside its domain"):
                _config.kernels.gaussian_fwd(x, x, 1, 2, 0, 0, sigma, 0, -1)
    assert np.all(x == 1)
