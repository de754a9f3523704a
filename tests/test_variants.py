"""Structured dropout: every row of the variant table against the oracle, the
Numba reference, thread and SIMD invariance, gradients, statistics, PyTorch's
semantics where it has the same operation, and bad input."""
import math

import numpy as np
import pytest

import dropout_fast as df
from dropout_fast import _config, reference
from dropout_fast._variants import VARIANTS
from oracle import mask_bool

ISAS = [name for name in _config.ISA_CODES if _config.isa_available(name)]

# variant -> (input shape, options, noise shape the oracle expects)
CASES = {
    "dropout": ((6, 5, 7), {"noise_shape": (6, 1, 7)}, (6, 1, 7)),
    "spatial_dropout": ((4, 6, 5, 3), {"data_format": "channels_last"}, (4, 1, 1, 3)),
    "variational_dropout": ((3, 9, 17), {"time_axis": 1}, (3, 1, 17)),
    "drop_path": ((7, 3, 5), {"mode": "row"}, (7, 1, 1)),
    "drop_connect": ((13, 11), {}, (13, 11)),
    "embedding_dropout": ((10, 4), {}, (10, 1)),
    "alpha_dropout": ((5, 33), {}, (5, 33)),
    "feature_alpha_dropout": ((3, 4, 2, 5), {}, (3, 4, 1, 1)),
}


def at(seed, offset):
    g = df.Generator(seed)
    g.state = {**g.state, "offset": offset}
    return g


def expected_coefficients(variant, p, options):
    """(a, b, c) written out again from the papers and PyTorch's source."""
    if variant in ("alpha_dropout", "feature_alpha_dropout"):
        if p == 1:
            return 0.0, 0.0, 0.0
        # ATen's Dropout.cpp: a = 1 / sqrt((alpha * alpha * p + 1) * (1 - p)),
        # b = (noise - 1) * alpha * a + alpha * a * p
        alpha = 1.7580993408473766
        a = 1.0 / math.sqrt((alpha * alpha * p + 1) * (1 - p))
        return a, alpha * a * p, -alpha * a + alpha * a * p
    if variant == "drop_path" and not options.get("scale_by_keep", True):
        return (1.0 if p < 1 else 0.0), 0.0, 0.0
    return (1 / (1 - p) if p < 1 else 0.0), 0.0, 0.0


def oracle_variant(x, variant, p, options, noise_shape, seed, offset):
    keep = mask_bool(math.prod(noise_shape), seed, offset, p).reshape(noise_shape)
    t = x.dtype.type
    a, b, c = (t(v) for v in expected_coefficients(variant, p, options))
    y = np.where(np.broadcast_to(keep, x.shape), (x * a + b).astype(x.dtype), c)
    return y.astype(x.dtype), keep


def test_every_row_has_its_case_public_function_and_readme_entry():
    readme = open(__file__.rsplit("/tests/", 1)[0] + "/README.md").read()
    assert set(CASES) == set(VARIANTS)
    for name in VARIANTS:
        assert callable(getattr(df, name)), name
        assert f"df.{name}(" in readme, f"README's API tour lacks {name}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", sorted(CASES))
@pytest.mark.parametrize("p", [0.3, 0.5, 0.0, 1.0])
def test_matches_oracle_and_reference(variant, dtype, p):
    shape, options, noise_shape = CASES[variant]
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    seed, offset = 2**40 + 3, 2**32 - 1
    y_ref, keep = oracle_variant(x, variant, p, options, noise_shape, seed, offset)
    y, m = df.forward(variant, x, p, rng=at(seed, offset), **options)
    assert m.noise_shape == noise_shape and m.nbytes == (math.prod(noise_shape) + 7) // 8
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(m.to_bool(), keep)
    y_nb, m_nb = reference.forward(variant, x, p, rng=at(seed, offset), **options)
    np.testing.assert_array_equal(y_nb, y)
    dy = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    dx = df.backward(dy, m)
    a = dtype(expected_coefficients(variant, p, options)[0])
    np.testing.assert_array_equal(dx, np.where(np.broadcast_to(keep, shape), dy * a, 0))
    np.testing.assert_array_equal(reference.backward(dy, m_nb), dx)
    _, m_re = df.forward(variant, x, p, rng=at(seed, offset), mask="recompute", **options)
    assert m_re.nbytes == 0
    np.testing.assert_array_equal(df.backward(dy, m_re), dx)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("variant", sorted(CASES))
def test_signed_zeros_bit_exact(variant, isa):
    """-0.0 inputs keep their sign through a pass with b == 0 in every backend
    and ISA (compared as bits: assert_array_equal takes -0.0 == +0.0)."""
    shape, options, noise_shape = CASES[variant]
    x = np.random.default_rng(3).standard_normal(shape)
    x[::2] = -0.0
    for dtype, u in ((np.float32, np.uint32), (np.float64, np.uint64)):
        xd = x.astype(dtype)
        with _config.force_isa(isa):
            y, m = df.forward(variant, xd, 0.4, rng=at(9, 7), **options)
            dx = df.backward(-xd, m)
        y_nb, m_nb = reference.forward(variant, xd, 0.4, rng=at(9, 7), **options)
        np.testing.assert_array_equal(y.view(u), y_nb.view(u))
        np.testing.assert_array_equal(dx.view(u), reference.backward(-xd, m_nb).view(u))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_invariant_to_isa_and_threads(isa, threads, monkeypatch):
    x = np.random.default_rng(0).standard_normal((16, 32, 24, 20)).astype(np.float32)
    want = {fmt: df.spatial_dropout(x, 0.3, data_format=fmt, rng=4)
            for fmt in ("channels_first", "channels_last")}
    want_var = df.variational_dropout(x.reshape(16, 32, -1), 0.3, rng=5)
    monkeypatch.setattr(_config, "nthreads", threads)
    with _config.force_isa(isa):
        for fmt, y in want.items():
            np.testing.assert_array_equal(df.spatial_dropout(x, 0.3, data_format=fmt, rng=4), y)
        np.testing.assert_array_equal(df.variational_dropout(x.reshape(16, 32, -1), 0.3, rng=5),
                                      want_var)
        np.testing.assert_array_equal(df.alpha_dropout(x, 0.3, rng=6),
                                      reference.forward("alpha_dropout", x, 0.3, rng=6)[0])


@pytest.mark.parametrize("variant", sorted(CASES))
def test_gradient_matches_finite_differences(variant):
    shape, options, _ = CASES[variant]
    rs = np.random.default_rng(3)
    x, w = rs.standard_normal(shape), rs.standard_normal(shape)
    eps, p = 1e-6, 0.4

    def loss(v):
        return float(np.sum(w * df.forward(variant, v, p, rng=at(8, 0), **options)[0]))

    _, m = df.forward(variant, x, p, rng=at(8, 0), **options)
    grad = df.backward(w, m)
    flat = x.reshape(-1)
    for i in np.random.default_rng(0).choice(flat.size, size=min(flat.size, 25), replace=False):
        e = np.zeros_like(flat)
        e[i] = eps
        fd = (loss(x + e.reshape(shape)) - loss(x - e.reshape(shape))) / (2 * eps)
        assert abs(grad.reshape(-1)[i] - fd) < 1e-6 * max(1.0, abs(fd))


def test_structure_whole_units_zero_together():
    x = np.random.default_rng(0).random((8, 16, 9, 9)) + 1.0
    y = df.spatial_dropout(x, 0.5, rng=0)
    dead = (y == 0).all(axis=(2, 3))
    assert ((y != 0).all(axis=(2, 3)) | dead).all() and 0 < dead.sum() < dead.size
    y = df.spatial_dropout(x.transpose(0, 2, 3, 1), 0.5, data_format="channels_last", rng=0)
    dead_last = (y == 0).all(axis=(1, 2))
    assert ((y != 0).all(axis=(1, 2)) | dead_last).all()
    seq = np.random.default_rng(1).random((4, 12, 10)) + 1.0
    y = df.variational_dropout(seq, 0.5, rng=1)
    assert np.array_equal(y == 0, np.broadcast_to((y == 0)[:, :1], y.shape))
    y = df.variational_dropout(seq, 0.5, time_axis=0, rng=1)
    assert np.array_equal(y == 0, np.broadcast_to((y == 0)[:1], y.shape))
    y = df.drop_path(x, 0.5, rng=2)
    per = (y == 0).reshape(8, -1)
    assert (per.all(axis=1) | ~per.any(axis=1)).all()
    y = df.drop_path(x, 0.5, mode="batch", rng=3)
    assert (y == 0).all() or (y == 2 * x).all()
    unscaled = df.drop_path(x, 0.5, scale_by_keep=False, rng=2)  # same seed, same mask
    np.testing.assert_array_equal(unscaled, np.where(per.reshape(x.shape), 0.0, x))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_channel_keep_fraction_within_5_sigma(p):
    n, c = 512, 512
    y = df.spatial_dropout(np.ones((n, c, 2, 2), np.float32), p, rng=9)
    kept = np.count_nonzero(y[:, :, 0, 0])
    assert abs(kept - n * c * (1 - p)) < 5 * math.sqrt(n * c * p * (1 - p))


def test_alpha_dropout_preserves_selu_moments():
    """SELU outputs of standard-normal inputs have mean 0 and variance 1; alpha
    dropout keeps both (Klambauer et al. 2017), within 5 sigma of the estimate."""
    lam, alph = 1.0507009873554805, 1.6732632423543772
    z = np.random.default_rng(0).standard_normal(2**21)
    s = lam * np.where(z > 0, z, alph * (np.exp(z) - 1))
    for p in (0.05, 0.2, 0.5):
        y = df.alpha_dropout(s, p, rng=11)
        n = y.size
        mean_se = y.std() / math.sqrt(n)
        var_se = math.sqrt((np.mean((y - y.mean()) ** 4) - y.var() ** 2) / n)
        assert abs(y.mean() - s.mean()) < 5 * mean_se + 1e-3
        assert abs(y.var() - s.var()) < 5 * var_se + 1e-3


def test_embedding_dropout_rows_and_gradient():
    rs = np.random.default_rng(0)
    w = rs.standard_normal((50, 8))
    ids = rs.integers(0, 50, size=(4, 20))
    out, m = df.embedding_dropout_forward(w, ids, 0.3, rng=at(1, 0))
    keep = mask_bool(50, 1, 0, 0.3)
    np.testing.assert_array_equal(out, np.where(keep[ids][..., None], w[ids] * (1 / 0.7), 0))
    np.testing.assert_array_equal(m.to_bool().ravel(), keep)
    # the whole-matrix form uses the same row mask for the same generator state
    np.testing.assert_array_equal(df.embedding_dropout(w, p=0.3, rng=at(1, 0))[ids], out)
    np.testing.assert_array_equal(df.embedding_dropout(w, ids, 0.3, rng=at(1, 0)), out)
    dout = rs.standard_normal(out.shape)
    grad = df.embedding_dropout_backward(dout, ids, m)
    want = np.zeros_like(w)
    for pos, tok in np.ndenumerate(ids):
        want[tok] += dout[pos] * (1 / 0.7) * keep[tok]
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-12)
    assert df.embedding_dropout(w, ids, 0.3, training=False).shape == (4, 20, 8)


def test_recurrent_dropout_bptt_gradient():
    """h_{t+1} = tanh(W @ rd(h_t) + x_t): summing rd.backward over the unrolled
    loop gives the finite-difference gradient of the loss with respect to h_0."""
    rs = np.random.default_rng(0)
    n, hdim, steps = 3, 6, 5
    wmat, xs = rs.standard_normal((hdim, hdim)) * 0.5, rs.standard_normal((steps, n, hdim))
    h0 = rs.standard_normal((n, hdim))

    def run(h, seed=21):
        rd = df.RecurrentDropout(0.4, rng=seed)
        rd.reset(h.shape)
        hs, ds = [h], []
        for t in range(steps):
            d = rd(hs[-1])
            ds.append(d)
            hs.append(np.tanh(d @ wmat.T + xs[t]))
        return rd, hs, ds

    rd, hs, ds = run(h0)
    assert all(np.array_equal(d == 0, ds[0] == 0) or not hs[i].all() for i, d in enumerate(ds))
    g = np.ones((n, hdim))  # loss = sum(h_T)
    for t in reversed(range(steps)):
        g = rd.backward((g * (1 - hs[t + 1] ** 2)) @ wmat)
    eps = 1e-6
    for i in range(n):
        for j in range(hdim):
            e = np.zeros_like(h0)
            e[i, j] = eps
            fd = (run(h0 + e)[1][-1].sum() - run(h0 - e)[1][-1].sum()) / (2 * eps)
            assert abs(g[i, j] - fd) < 1e-6
    assert df.RecurrentDropout(0.5).eval()(h0) is not None


def test_torch_semantics_side_by_side():
    """The same structure and values as torch.nn.functional (different RNGs, so
    compared structurally and statistically)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    torch.manual_seed(0)
    base = np.random.default_rng(0).random((64, 32, 5, 5)).astype(np.float32) + 1
    for ours_fn, theirs_fn, x in [(df.dropout1d, F.dropout1d, base[:, :, 0].copy()),
                                  (df.dropout2d, F.dropout2d, base),
                                  (df.dropout3d, F.dropout3d, base[..., None].copy())]:
        axes = tuple(range(2, x.ndim))
        for y in (ours_fn(x, 0.3, rng=1), theirs_fn(torch.from_numpy(x), 0.3).numpy()):
            dead = (y == 0).all(axis=axes)  # whole (n, c) maps, scaled survivors
            assert ((y != 0).all(axis=axes) | dead).all()
            assert abs(dead.mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / dead.size)
            np.testing.assert_allclose(y[~dead] / x[~dead], 1 / 0.7, rtol=1e-6)
    z = np.zeros(4096, np.float32)
    for p in (0.1, 0.5):
        ours = np.unique(df.alpha_dropout(z, p, rng=2))
        theirs = np.unique(F.alpha_dropout(torch.from_numpy(z), p, training=True).numpy())
        np.testing.assert_allclose(ours, theirs, rtol=2e-7)
    zc = np.zeros((64, 16, 3), np.float32)
    theirs = F.feature_alpha_dropout(torch.from_numpy(zc), 0.5, training=True).numpy()
    ours = df.feature_alpha_dropout(zc, 0.5, rng=3)
    np.testing.assert_allclose(np.unique(ours), np.unique(theirs), rtol=2e-7)


def test_keras_channels_last_structure():
    """Keras' SpatialDropout2D (channels_last) drops whole (n, c) over H, W."""
    x = np.ones((3, 4, 5, 6), np.float32)
    _, m = df.forward("spatial_dropout", x, 0.5, rng=0, data_format="channels_last")
    assert m.noise_shape == (3, 1, 1, 6)


@pytest.mark.parametrize("call, exc, match", [
    (lambda x: df.spatial_dropout(x[0, 0], 0.5), ValueError, "x:"),
    (lambda x: df.spatial_dropout(x[None, None], 0.5), ValueError, "x:"),
    (lambda x: df.spatial_dropout(x, 0.5, data_format="NCHW"), ValueError, "data_format"),
    (lambda x: df.dropout2d(x[0], 0.5), ValueError, "x:"),
    (lambda x: df.dropout(x, 0.5, noise_shape=(2, 3, 1, 2)), ValueError, "noise_shape"),
    (lambda x: df.dropout(x, 0.5, noise_shape=(2, 3)), ValueError, "noise_shape"),
    (lambda x: df.dropout(x, 0.5, noise_shape="23"), (TypeError, ValueError), "noise_shape"),
    (lambda x: df.variational_dropout(x, 0.5, time_axis=4), ValueError, "time_axis"),
    (lambda x: df.variational_dropout(x, 0.5, time_axis=1.0), TypeError, "time_axis"),
    (lambda x: df.drop_path(x, 0.5, mode="col"), ValueError, "mode"),
    (lambda x: df.feature_alpha_dropout(x[0, 0, 0], 0.5), ValueError, "x:"),
    (lambda x: df.embedding_dropout(x, p=0.5), ValueError, "weight"),
    (lambda x: df.embedding_dropout(x[0, 0], np.array([5]), 0.5), ValueError, "ids"),
    (lambda x: df.embedding_dropout(x[0, 0], np.array([0.5]), 0.5), TypeError, "ids"),
    (lambda x: df.forward("dropblock", x, 0.5), ValueError, "variant"),
    (lambda x: df.alpha_dropout(x, 1.5), ValueError, "p:"),
    (lambda x: df.spatial_dropout(x, 0.5, training="yes"), TypeError, "training"),
    (lambda x: df.spatial_dropout(x, 0.5, training=False, data_format="x"), ValueError,
     "data_format"),
])
def test_bad_input(call, exc, match):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    before = x.copy()
    with pytest.raises(exc, match=match):
        call(x)
    np.testing.assert_array_equal(x, before)


def test_layers():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    for layer in [df.SpatialDropout(0.5, rng=0), df.VariationalDropout(0.5, rng=0),
                  df.DropPath(0.5, rng=0), df.AlphaDropout(0.2, rng=0),
                  df.FeatureAlphaDropout(0.2, rng=0), df.DropConnect(0.5, rng=0),
                  df.Dropout(0.5, noise_shape=(2, 3, 1, 1), rng=0)]:
        y = layer(x)
        dx = layer.backward(np.ones_like(x))
        assert y.shape == dx.shape == x.shape and repr(layer).startswith(type(layer).__name__)
        assert layer.eval()(x) is x and layer.backward(x) is x


def test_generic_backward_serves_dropblock_and_gaussian():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    dy = np.random.default_rng(1).standard_normal(x.shape)
    y, m = df.drop_block_forward(x, 0.2, 3, rng=5)
    np.testing.assert_array_equal(df.backward(dy, m), df.drop_block_backward(dy, m))
    y, m = df.gaussian_dropout_forward(x, 0.2, rng=5)
    np.testing.assert_array_equal(df.backward(dy, m), df.gaussian_dropout_backward(dy, m))
    with pytest.raises(TypeError, match="DropoutMask"):
        df.backward(dy, object())
