"""Attention dropout (dropout_fast._softmax): the C kernels, the Numba backend and
the plain-numpy oracle bit for bit; invariance to threads and SIMD path; equality
with softmax then dropout from separate calls; accuracy against torch; gradients
by finite differences; store, recompute and bits backward; the layer; bad input."""
import doctest

import numpy as np
import pytest

import dropout_fast as df
import oracle
from dropout_fast import _config, _softmax, api, reference
from dropout_fast._softmax import (SoftmaxDropout, softmax, softmax_backward_impl,
                                   softmax_dropout, softmax_dropout_backward,
                                   softmax_dropout_forward, softmax_forward_impl)

DTYPES = [np.float32, np.float64]
LENGTHS = [1, 3, 17, 256, 1000]
MASKS = [None, "add", "bool"]
SEED = 0x9ABCDEF012345678
ISAS = [name for name in _config.ISA_CODES if _config.isa_available(name)]
BACKENDS = [pytest.param(_config.kernels, id=_config.BACKEND),
            pytest.param(reference, id="numba")]


def at(seed, offset):
    g = df.Generator(seed)
    g.state = {**g.state, "offset": offset}
    return g


def scores(shape, dtype, seed=0):
    """Scaled normals with a few -inf scores and one fully -inf row."""
    s = (np.random.default_rng(seed).standard_normal(shape) * 4).astype(dtype)
    s.reshape(-1)[5::37] = -np.inf
    s[(0,) * (len(shape) - 1)] = -np.inf
    return s


def attn_mask(kind, shape, dtype, seed=1):
    """An additive mask broadcast over the batch, or a bool one over the queries
    (its first batch attends nothing)."""
    rng = np.random.default_rng(seed)
    if kind == "add":
        m = np.where(rng.random(shape[-2:]) < 0.2, -np.inf, rng.standard_normal(shape[-2:]))
        m[1] = -np.inf
        return m.astype(dtype)
    if kind == "bool":
        m = rng.random(shape[:-2] + (1, shape[-1])) < 0.7
        m[(0,) * (len(shape) - 2)] = False
        return m
    return None


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8),
                                  np.ascontiguousarray(b).view(np.uint8))


def run(kernels, s, p, mask, causal, offset, dy):
    """Forward in each mode and the three backward paths on one backend: (y, P,
    stored signed P, bits, ds from P, ds recomputed, ds recomputed from bits)."""
    y, m = softmax_forward_impl(kernels, s, p, -1, mask, causal, at(SEED, offset), None,
                                "store", False)
    y_r, mr = softmax_forward_impl(kernels, s, p, -1, mask, causal, at(SEED, offset), None,
                                   "recompute", False)
    y_b, mb = softmax_forward_impl(kernels, s, p, -1, mask, causal, at(SEED, offset), None,
                                   "recompute", True)
    same_bits(y, y_r)
    same_bits(y, y_b)
    ds = softmax_backward_impl(kernels, dy, m, None, None)
    ds_r = softmax_backward_impl(kernels, dy, mr, s, None)
    ds_b = softmax_backward_impl(kernels, dy, mb, s, None)
    return y, m.probs, m._probs, mb.bits, ds, ds_r, ds_b


# --------------------------------------------------------------------------- bit-exact
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lk", LENGTHS)
@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("causal", [False, True])
def test_c_numba_oracle_bit_exact(dtype, lk, kind, causal):
    shape = (2, 3, 5, lk)
    s = scores(shape, dtype)
    mask = attn_mask(kind, shape, dtype)
    dy = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    offset = 2**32 - 7  # the low counter word wraps inside the call
    results = [run(k, s, 0.3, mask, causal, offset, dy) for k in (_config.kernels, reference)]
    for a, b in zip(*results):
        same_bits(a, b)
    y, probs, signed, bits, ds, ds_r, ds_b = results[0]
    same_bits(ds, ds_r)
    same_bits(ds, ds_b)
    yo, po, keep = oracle.softmax_dropout(s, SEED, offset, 0.3, mask, causal)
    same_bits(y, yo)
    same_bits(probs, po)
    same_bits(bits, oracle.packbits(keep))
    # mode "store": the mask in P's sign bits, except past the causal cut (+0 there)
    cut = np.broadcast_to(np.arange(lk) > np.arange(5)[:, None], shape) if causal else False
    np.testing.assert_array_equal(np.signbit(signed), ~keep & ~cut)
    same_bits(ds, oracle.softmax_dropout_backward(dy, po, keep, 0.3, causal))
    assert not np.isnan(probs).any() and not np.isnan(y).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_isa_and_thread_count(dtype, monkeypatch):
    shape = (3, 4, 33, 129)  # 51084 elements: up to 3 threads
    s = scores(shape, dtype)
    dy = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    mask = attn_mask("bool", shape, dtype)
    ref = None
    for isa in ISAS:
        for nt in (1, 2, 3):
            monkeypatch.setattr(_config, "nthreads", nt)
            with _config.force_isa(isa):
                got = run(_config.kernels, s, 0.2, mask, True, 2**64 - 3, dy)
            if ref is None:
                ref = got
            for a, b in zip(ref, got):
                same_bits(a, b)


def test_large_backward_streams():
    """8 MiB of float32 or more: ds goes out through non-temporal stores (mode "store")."""
    shape = (16, 128, 1032)
    s = scores(shape, np.float32)
    dy = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    got = run(_config.kernels, s, 0.1, None, True, 5, dy)
    same_bits(got[4], got[5])
    g = dy.copy()
    _, m = softmax_dropout_forward(s, 0.1, is_causal=True, rng=at(SEED, 5))
    same_bits(softmax_dropout_backward(g, m, out=g), got[4])  # in place, over dy
    p = m.probs
    ref = oracle.softmax_dropout_backward(dy, p, m.to_bool(), 0.1, True)
    same_bits(got[4], ref)


def test_nan_rows_and_empty_rows():
    s = np.zeros((3, 8), np.float32)
    s[0, 3] = np.nan
    s[1] = -np.inf
    s[2, :4] = -np.inf
    s[2, 4] = np.nan
    for kernels in (_config.kernels, reference):
        p = _softmax.softmax_impl(kernels, s, -1, None, False, None)
        assert np.isnan(p[0]).all() and np.isnan(p[2]).all()
        same_bits(p[1], np.zeros(8, np.float32))


def test_exp_accuracy():
    for dtype, ulps in ((np.float32, 2), (np.float64, 2)):
        x = np.concatenate([np.linspace(-86.9, 0, 200001), -np.geomspace(1e-12, 1, 1001)])
        x = x.astype(dtype)
        got = reference.softmax_exp(x).astype(np.float64)
        want = np.exp(x.astype(np.float64))
        assert np.all(np.abs(got - want) <= ulps * np.spacing(want.astype(dtype)))
        same_bits(reference.softmax_exp(x), oracle.softmax_exp(x))
    assert reference.softmax_exp(np.array([-np.inf, -1000.0, 0.0]))[[0, 1]].tolist() == [0, 0]


# --------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("causal", [False, True])
def test_equals_softmax_then_dropout(dtype, kind, causal):
    shape = (2, 3, 7, 19)
    s = scores(shape, dtype)
    mask = attn_mask(kind, shape, dtype)
    g1, g2 = at(SEED, 11), at(SEED, 11)
    y = softmax_dropout(s, 0.4, attn_mask=mask, is_causal=causal, rng=g1)
    p = softmax(s, attn_mask=mask, is_causal=causal)
    same_bits(y, df.dropout(p, 0.4, rng=g2))
    assert g1.offset == g2.offset == 11 + (s.size + 7) // 8
    rows = p.sum(axis=-1, dtype=np.float64)
    assert np.all((np.abs(rows - 1) < 1e-5) | (rows == 0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lk", [5, 64])
def test_against_torch(dtype, lk):
    torch = pytest.importorskip("torch")
    shape = (2, 3, 6, lk)
    s = (np.random.default_rng(4).standard_normal(shape) * 3).astype(dtype)
    fmask = attn_mask("add", shape, dtype)
    fmask[1] = 0  # torch gives NaN for fully masked rows, we give 0: compare the rest
    bmask = np.random.default_rng(5).random((1, 1, 6, lk)) < 0.8
    bmask[..., 0] = True
    tol = {"rtol": 2e-6, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-14, "atol": 1e-16}
    ts = torch.from_numpy(s)
    cases = [({}, ts),
             ({"attn_mask": fmask}, ts + torch.from_numpy(fmask)),
             ({"attn_mask": bmask}, ts.masked_fill(~torch.from_numpy(bmask), -np.inf)),
             ({"is_causal": True},  # torch's SDPA: tril(ones(L, S)), top-left aligned
              ts.masked_fill(~torch.ones(6, lk, dtype=torch.bool).tril(), -np.inf))]
    for kw, masked in cases:
        np.testing.assert_allclose(softmax(s, **kw), torch.softmax(masked, -1).numpy(), **tol)


@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("causal", [False, True])
def test_gradient_finite_differences(kind, causal):
    shape = (2, 4, 6)
    s = np.random.default_rng(6).standard_normal(shape)
    s[0, 2] = -np.inf  # a fully masked row: zero gradient
    mask = attn_mask(kind, shape, np.float64)
    w = np.random.default_rng(7).standard_normal(shape)

    def loss(x):
        return float(np.sum(w * softmax_dropout(x, 0.25, attn_mask=mask, is_causal=causal,
                                                rng=at(3, 0))))
    _, m = softmax_dropout_forward(s, 0.25, attn_mask=mask, is_causal=causal, rng=at(3, 0))
    ds = softmax_dropout_backward(w, m)
    assert np.all(ds[0, 2] == 0)
    finite = np.where(np.isfinite(s), s, 0.0)
    for d in np.random.default_rng(8).standard_normal((4,) + shape):
        d = np.where(np.isfinite(s), d, 0.0)
        h = 1e-6
        num = (loss(finite + h * d) - loss(finite - h * d)) / (2 * h)
        assert abs(num - np.sum(ds * d)) < 1e-7 * max(1.0, abs(num))


def test_modes_memory_and_layout():
    s = scores((2, 3, 8, 40), np.float32)
    dy = np.ones_like(s)
    y, m = softmax_dropout_forward(s, 0.1, rng=at(1, 0))
    y2, m2 = softmax_dropout_forward(s, 0.1, rng=at(1, 0), mode="recompute", bits=True)
    same_bits(y, y2)
    assert m.nbytes == s.nbytes and m2.nbytes == (s.size + 7) // 8
    assert softmax_dropout_forward(s, 0.1, mode="recompute")[1].nbytes == 0
    same_bits(softmax_dropout_backward(dy, m), softmax_dropout_backward(dy, m2, scores=s))
    same_bits(df.dropout_backward(dy, m), softmax_dropout_backward(dy, m))  # the generic backward
    np.testing.assert_array_equal(y != 0, m.to_bool() & (m.probs != 0))
    # strided input, in-place output, axis moved last and back
    sv = scores((4, 30), np.float64)[:, ::2]
    same_bits(softmax(sv), softmax(np.ascontiguousarray(sv)))
    t = s.copy()
    same_bits(softmax_dropout(t, 0.5, rng=at(2, 0), out=t), softmax_dropout(s, 0.5, rng=at(2, 0)))
    g = dy.copy()
    same_bits(softmax_dropout_backward(g, m, out=g), softmax_dropout_backward(dy, m))
    x, dx = scores((5, 6, 7), np.float64), np.random.default_rng(9).standard_normal((5, 6, 7))
    mask = np.random.default_rng(10).random((6, 1)) < 0.5  # broadcast along the moved axis
    ya, ma = softmax_dropout_forward(x, 0.3, axis=1, attn_mask=mask, rng=at(4, 0))
    yb, mb = softmax_dropout_forward(np.moveaxis(x, 1, -1), 0.3, rng=at(4, 0),
                                     attn_mask=np.moveaxis(np.broadcast_to(mask, x.shape), 1, -1))
    same_bits(ya, np.moveaxis(yb, -1, 1))
    same_bits(softmax_dropout_backward(dx, ma),
              np.moveaxis(softmax_dropout_backward(np.moveaxis(dx, 1, -1), mb), -1, 1))
    np.testing.assert_array_equal(ma.to_bool(), np.moveaxis(mb.to_bool(), -1, 1))


def test_eval_mode_and_edge_p():
    s = scores((3, 9), np.float32)
    g = at(5, 0)
    same_bits(softmax_dropout(s, 0.5, training=False, rng=g), softmax(s))
    assert g.offset == 0
    y, m = softmax_dropout_forward(s, 0.0, rng=g)
    same_bits(y, softmax(s))
    assert g.offset == 4  # ceil(27 / 8) blocks
    y, m = softmax_dropout_forward(s, 1.0, rng=g)
    assert not y.any() and not softmax_dropout_backward(np.ones_like(s), m).any()
    empty = np.zeros((0, 4), np.float32)
    assert softmax_dropout(empty, 0.5).shape == (0, 4)
    assert softmax(np.zeros((3, 0))).shape == (3, 0)


def test_layer():
    s = scores((2, 2, 5, 5), np.float64)
    for mode in ("store", "recompute"):
        layer = SoftmaxDropout(0.5, mode=mode, bits=mode == "recompute", rng=9)
        y = layer.forward(s, is_causal=True)
        y2, m = softmax_dropout_forward(s, 0.5, is_causal=True, rng=at(9, 0))
        same_bits(y, y2)
        same_bits(layer.backward(np.ones_like(s)), softmax_dropout_backward(np.ones_like(s), m))
        layer.eval()
        same_bits(layer(s, None, True), softmax(s, is_causal=True))
        ds = layer.backward(np.ones_like(s))
        assert np.allclose(ds, 0.0)  # the softmax's gradient of a constant is zero
    with pytest.raises(RuntimeError):
        SoftmaxDropout(0.1).backward(s)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, exc, name", [
    (lambda s: softmax_dropout(s, 0.1, attn_mask=np.zeros((3, 4), np.float32)), ValueError,
     "attn_mask"),
    (lambda s: softmax_dropout(s, 0.1, attn_mask=np.zeros((3, 1, 6, 5), bool)), ValueError,
     "attn_mask"),
    (lambda s: softmax_dropout(s, 0.1, attn_mask=np.zeros((1, 2, 3, 6, 5), bool)), ValueError,
     "attn_mask"),
    (lambda s: softmax_dropout(s, 0.1, attn_mask=np.zeros(5, np.int32)), TypeError, "attn_mask"),
    (lambda s: softmax_dropout(s, 0.1, attn_mask=np.zeros(5)), TypeError, "attn_mask"),
    (lambda s: softmax_dropout(s, 0.1, axis=4), ValueError, "axis"),
    (lambda s: softmax(s, axis=-5), ValueError, "axis"),
    (lambda s: softmax_dropout(s, 0.1, axis=1.0), TypeError, "axis"),
    (lambda s: softmax_dropout(s, 1.5), ValueError, "p"),
    (lambda s: softmax_dropout(s, "0.1"), TypeError, "p"),
    (lambda s: softmax_dropout(np.zeros(s.shape, np.int32), 0.1), TypeError, "scores"),
    (lambda s: softmax_dropout(s.astype(np.float16), 0.1), TypeError, "scores"),
    (lambda s: softmax_dropout(s, 0.1, is_causal=1), TypeError, "is_causal"),
    (lambda s: softmax_dropout(s[0, 0, 0], 0.1, is_causal=True), ValueError, "is_causal"),
    (lambda s: softmax_dropout(s, 0.1, axis=0, is_causal=True), ValueError, "is_causal"),
    (lambda s: softmax_dropout(s, 0.1, training=1), TypeError, "training"),
    (lambda s: softmax_dropout(s, 0.1, out=np.empty((2, 3), np.float32)), ValueError, "out"),
    (lambda s: softmax_dropout_forward(s, 0.1, mode="bits"), ValueError, "mode"),
    (lambda s: softmax_dropout_forward(s, 0.1, mode="recompute", out=s), ValueError, "out"),
    (lambda s: softmax_dropout_backward(s, softmax_dropout_forward(s, 0.1, mode="recompute")[1]),
     ValueError, "scores"),
    (lambda s: softmax_dropout_backward(s[0], softmax_dropout_forward(s, 0.1)[1]), ValueError,
     "dy"),
    (lambda s: softmax_dropout_backward(s, api.dropout_forward(s, 0.1)[1]), TypeError, "m"),
])
def test_bad_input(call, exc, name):
    s = scores((2, 3, 6, 5), np.float32)
    before = s.copy()
    with pytest.raises(exc, match=rf"^{name}\b"):
        call(s)
    same_bits(s, before)


def test_bad_input_consumes_no_counter():
    g = at(1, 10)
    with pytest.raises(ValueError):
        softmax_dropout(np.zeros((2, 3), np.float32), 0.1, attn_mask=np.zeros(4, bool), rng=g)
    assert g.offset == 10


def test_doctests():
    result = doctest.testmod(_softmax, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_package_exports_and_reference_entry_point():
    """The public names live at the package top; reference.softmax_dropout is the
    same call computed by the Numba kernels, bit for bit."""
    for name in _softmax.__all__:
        assert getattr(df, name) is getattr(_softmax, name)
    s = np.random.default_rng(5).standard_normal((2, 3, 9, 9)).astype(np.float32)
    for kw in ({}, {"is_causal": True}, {"attn_mask": s[0, 0] > 1.0}):
        y = df.softmax_dropout(s, 0.2, rng=at(SEED, 2**32 - 3), **kw)
        np.testing.assert_array_equal(reference.softmax_dropout(s, 0.2, rng=at(SEED, 2**32 - 3),
                                                                **kw), y)
    np.testing.assert_array_equal(reference.softmax_dropout(s, 0.2, training=False),
                                  df.softmax(s))
