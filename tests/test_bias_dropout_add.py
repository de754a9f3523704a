"""Bias + dropout + residual (dropout_fast._fused): the C kernels, the Numba backend
and the plain-numpy oracle bit for bit; the fused op against the unfused
composition; invariance to threads and SIMD path; in-place and strided calls;
eval mode; the three gradients (bit-exact, and by float64 finite differences);
bad input."""
import doctest

import numpy as np
import pytest

import dropout_fast as df
import oracle
from dropout_fast import _config, _fused, reference
from dropout_fast._fused import (BiasDropoutAddMask, bias_dropout_add, bias_dropout_add_backward,
                                 bias_dropout_add_backward_impl, bias_dropout_add_forward,
                                 bias_dropout_add_forward_impl)

DTYPES = [np.float32, np.float64]
SEED = 0x9ABCDEF012345678
ISAS = [name for name in _config.ISA_CODES if _config.isa_available(name)]
BACKENDS = [pytest.param(_config.kernels, id=_config.BACKEND),
            pytest.param(reference, id="numba")]
# Shapes: empty, scalar-like, odd rows, rows shorter and longer than a 4096-element
# chunk, and one column.
SHAPES = [(0, 4), (1,), (7,), (3, 5), (2, 3, 9), (5, 1), (3, 4099), (33, 130)]
OFFSETS = [0, 3, 2**32 - 5, 2**64 - 2]


def at(seed, offset):
    g = df.Generator(seed)
    g.state = {**g.state, "offset": offset}
    return g


def data(shape, dtype, seed=0, specials=True):
    """Normal values; with specials, -0.0, NaN and +-inf at a few places."""
    x = (np.random.default_rng(seed).standard_normal(shape) * 10).astype(dtype)
    if specials and x.size:
        f = x.reshape(-1)
        f[::97] = -0.0
        f[1::101] = np.nan
        f[2::103] = np.inf
        f[3::107] = -np.inf
    return x


def inputs(shape, dtype, bias=True, seed=0):
    """x with special values, a finite bias, and a residual with -0.0 where x is
    finite (NaN payloads meeting NaN payloads are not part of the contract)."""
    x = data(shape, dtype, seed)
    b = data(shape[-1:], dtype, seed + 1, specials=False) if bias else None
    r = data(shape, dtype, seed + 2, specials=False)
    if r.size:
        r.reshape(-1)[5::11] = -0.0
    return x, b, r


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8),
                                  np.ascontiguousarray(b).view(np.uint8))


# --------------------------------------------------------------------------- bit-exact
@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("has_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("offset", OFFSETS)
def test_forward_backward_match_oracle(kernels, dtype, shape, has_bias, offset):
    x, b, r = inputs(shape, dtype, has_bias)
    g = at(SEED, offset)
    y, m = bias_dropout_add_forward_impl(kernels, x, b, r, 0.3, g, None, "bits")
    ref, keep = oracle.bias_dropout_add(x, b, r, SEED, offset, 0.3)
    same_bits(y, ref)
    same_bits(m.bits, oracle.packbits(keep))
    assert g.offset == offset + (x.size + 7) // 8 and m.offset == offset
    dy = data(shape, dtype, 7, specials=False)
    dx, db, dr = bias_dropout_add_backward_impl(kernels, dy, m, None)
    dx_ref, db_ref = oracle.bias_dropout_add_grads(dy, keep, 0.3)
    same_bits(dx, dx_ref)
    assert dr is dy
    if has_bias:
        same_bits(db, db_ref)
    else:
        assert db is None


@pytest.mark.parametrize("kernels", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 1e-9, 0.5, 1.0])
def test_edge_p(kernels, dtype, p):
    x, b, r = inputs((4, 33), dtype)
    y, m = bias_dropout_add_forward_impl(kernels, x, b, r, p, at(SEED, 9), None, "recompute")
    same_bits(y, oracle.bias_dropout_add(x, b, r, SEED, 9, p)[0])
    dy = data((4, 33), dtype, 3, specials=False)
    dx, db, _ = bias_dropout_add_backward_impl(kernels, dy, m, None)
    keep = m.to_bool()
    assert keep.all() if p == 0.0 else (not keep.any() if p == 1.0 else True)
    dx_ref, db_ref = oracle.bias_dropout_add_grads(dy, keep, p)
    same_bits(dx, dx_ref)
    same_bits(db, db_ref)


# --------------------------------------------------------------------------- the composition
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("has_bias", [True, False], ids=["bias", "no-bias"])
def test_fused_equals_composition(dtype, p, has_bias):
    """dropout(x + bias) + residual with the same Generator state: the same bits."""
    x, b, r = inputs((6, 7, 129), dtype, has_bias)
    g1, g2 = at(SEED, 77), at(SEED, 77)
    y = bias_dropout_add(x, b, r, p, rng=g1)
    v = x if b is None else x + b
    same_bits(y, df.dropout(v, p, rng=g2) + r)
    assert g1.offset == g2.offset


def test_mask_is_dropouts():
    """m is the DropoutMask of dropout(x + bias): dropout_backward with it gives dx."""
    x, b, r = inputs((5, 40), np.float32)
    y, m = bias_dropout_add_forward(x, b, r, 0.4, rng=at(3, 5))
    _, m2 = df.dropout_forward(x + b, 0.4, rng=at(3, 5))
    same_bits(m.bits, m2.bits)
    dy = data(x.shape, np.float32, 1, specials=False)
    same_bits(df.dropout_backward(dy, m), bias_dropout_add_backward(dy, m)[0])


# --------------------------------------------------------------------------- invariance
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(300, 257), (40, 2048), (1000, 100)], ids=str)
def test_every_isa_and_thread_count(monkeypatch, dtype, shape):
    """Large enough that 2 and 3 threads split the work (2**14 elements each), with
    column counts for one strip (100: fewer than 2 * 64) and several in backward."""
    x, b, r = inputs(shape, dtype)
    dy = data(shape, dtype, 5, specials=False)
    results = []
    for isa in ISAS:
        for nt in (1, 2, 3):
            monkeypatch.setattr(_config, "nthreads", nt)
            with _config.force_isa(isa):
                y, m = bias_dropout_add_forward(x, b, r, 0.2, rng=at(SEED, 2**32 - 100))
                g = bias_dropout_add_backward(dy, m)
                _, mr = bias_dropout_add_forward(x, b, r, 0.2, rng=at(SEED, 2**32 - 100),
                                                 mask="recompute")
                gr = bias_dropout_add_backward(dy, mr)
            results.append((isa, nt, y, m.bits, g[0], g[1], gr[0], gr[1]))
    first = results[0]
    for res in results[1:]:
        for a, b_ in zip(first[2:], res[2:]):
            same_bits(a, b_)
    same_bits(first[4], first[6])  # recompute == bits


def test_one_call_equals_split_calls():
    """Two calls on the halves (at multiples of 8 elements) equal one call."""
    x, b, r = inputs((64, 96), np.float32)
    g = at(SEED, 11)
    y = bias_dropout_add(x, b, r, 0.3, rng=at(SEED, 11))
    y1 = bias_dropout_add(x[:32], b, r[:32], 0.3, rng=g)
    y2 = bias_dropout_add(x[32:], b, r[32:], 0.3, rng=g)
    same_bits(y, np.concatenate([y1, y2]))


# --------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_views(dtype):
    x, b, r = inputs((16, 48), dtype)
    ref = bias_dropout_add(x, b, r, 0.3, rng=at(1, 0))
    rr = r.copy()
    assert bias_dropout_add(x, b, rr, 0.3, rng=at(1, 0), out=rr) is rr
    same_bits(rr, ref)
    xx = x.copy()
    assert bias_dropout_add(xx, b, r, 0.3, rng=at(1, 0), out=xx) is xx
    same_bits(xx, ref)
    # strided inputs, a strided output and an output overlapping the input off by one row
    big = np.zeros((32, 96), dtype)
    big[::2, ::2] = x
    out = np.zeros((16, 96), dtype)[:, ::2]
    same_bits(bias_dropout_add(big[::2, ::2], b, r, 0.3, rng=at(1, 0), out=out), ref)
    buf = np.concatenate([np.zeros((1, 48), dtype), x])
    res = bias_dropout_add(buf[1:], b, r, 0.3, rng=at(1, 0), out=buf[:-1])
    same_bits(res, ref)
    # reversed views follow the logical order
    xr = np.ascontiguousarray(x[::-1])
    same_bits(bias_dropout_add(xr[::-1], b, r, 0.3, rng=at(1, 0)), ref)


@pytest.mark.parametrize("kernels", BACKENDS)
def test_residual_broadcast(kernels):
    """A residual of shape (C,) or (1, C) broadcasts; dresidual is summed back to it."""
    x, b, _ = inputs((6, 10), np.float64)
    r1 = data((10,), np.float64, 4, specials=False)
    for r in (r1, r1[None, :]):
        y, m = bias_dropout_add_forward_impl(kernels, x, b, r, 0.5, at(2, 0), None, "bits")
        same_bits(y, oracle.bias_dropout_add(x, b, np.broadcast_to(r, x.shape), 2, 0, 0.5)[0])
        dy = data(x.shape, np.float64, 6, specials=False)
        _, _, dr = bias_dropout_add_backward_impl(kernels, dy, m, None)
        assert dr.shape == r.shape
        np.testing.assert_allclose(dr.reshape(-1), dy.sum(axis=0), rtol=1e-15)


def test_eval_mode():
    x, b, r = inputs((5, 9), np.float32)
    g = at(4, 12)
    y = bias_dropout_add(x, b, r, 0.7, rng=g, training=False)
    same_bits(y, r + (x + b))
    assert g.offset == 12
    out = np.empty_like(x)
    assert bias_dropout_add(x, None, r, 0.7, training=False, out=out) is out
    same_bits(out, r + x)


def test_backward_in_place_keeps_dresidual():
    x, b, r = inputs((8, 16), np.float32)
    y, m = bias_dropout_add_forward(x, b, r, 0.5, rng=1)
    dy = data(x.shape, np.float32, 2, specials=False)
    ref = bias_dropout_add_backward(dy, m)
    d = dy.copy()
    dx, db, dr = bias_dropout_add_backward(d, m, out=d)
    assert dx is d and dr is not d
    same_bits(dx, ref[0])
    same_bits(db, ref[1])
    same_bits(dr, dy)


def test_empty_and_scalar():
    y, m = bias_dropout_add_forward(np.zeros((0, 3)), np.ones(3), np.zeros((0, 3)), 0.5, rng=0)
    assert y.shape == (0, 3) and m.nbytes == 0
    dx, db, _ = bias_dropout_add_backward(np.zeros((0, 3)), m)
    assert dx.shape == (0, 3) and db.tolist() == [0.0, 0.0, 0.0]
    y = bias_dropout_add(np.float64(2.0), None, np.float64(1.0), 0.0, rng=0)
    assert y.shape == () and float(y) == 3.0


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("mask", ["bits", "recompute"])
def test_gradients_finite_differences(mask):
    """float64 central differences of sum(w * y) with the mask held fixed (same seed)."""
    rng = np.random.default_rng(0)
    args = {"x": rng.standard_normal((3, 4, 5)), "bias": rng.standard_normal(5),
            "residual": rng.standard_normal((3, 4, 5))}
    w = rng.standard_normal((3, 4, 5))

    def loss(a):
        return float(np.sum(w * bias_dropout_add(a["x"], a["bias"], a["residual"], 0.4, rng=9)))

    _, m = bias_dropout_add_forward(args["x"], args["bias"], args["residual"], 0.4, rng=9,
                                    mask=mask)
    grads = dict(zip(("x", "bias", "residual"), bias_dropout_add_backward(w, m)))
    assert 0 < np.count_nonzero(grads["x"]) < w.size
    h = 1e-6
    for name, arr in args.items():
        num = np.empty_like(arr)
        for i in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[i] += h
            minus[i] -= h
            num[i] = (loss({**args, name: plus}) - loss({**args, name: minus})) / (2 * h)
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-8, err_msg=name)


# --------------------------------------------------------------------------- bad input
def _bad_calls(x, b, r):
    f = bias_dropout_add
    return [
        (lambda: f(x, b, np.zeros((3, 6), x.dtype), 0.5, rng=0), ValueError, "residual"),
        (lambda: f(x, np.zeros(5, x.dtype), r, 0.5, rng=0), ValueError, "bias"),
        (lambda: f(x, np.zeros((1, 6), x.dtype), r, 0.5, rng=0), ValueError, "bias"),
        (lambda: f(x, b.astype(np.float64), r, 0.5, rng=0), TypeError, "bias"),
        (lambda: f(x, b, r.astype(np.float64), 0.5, rng=0), TypeError, "residual"),
        (lambda: f(np.zeros((4, 6), np.int32), b, r, 0.5, rng=0), TypeError, "x"),
        (lambda: f(x, b, r, 1.5, rng=0), ValueError, "p"),
        (lambda: f(x, b, r, "0.5", rng=0), TypeError, "p"),
        (lambda: f(x, b, r, 0.5, rng=0, out=np.zeros((3, 6), x.dtype)), ValueError, "out"),
        (lambda: f(x, b, r, 0.5, rng="seed"), TypeError, "rng"),
        (lambda: f(x, b, r, 0.5, training=1), TypeError, "training"),
        (lambda: f(np.float32(1), b, np.float32(1), 0.5), ValueError, "bias"),
        (lambda: bias_dropout_add_forward(x, b, r, 0.5, mask="bytes"), ValueError, "mask"),
    ]


@pytest.mark.parametrize("case", range(13))
def test_bad_input_raises_and_leaves_inputs(case):
    x, b, r = inputs((4, 6), np.float32)
    saved = [a.copy() for a in (x, b, r)]
    g = df.default_generator()
    before = g.offset
    call, exc, name = _bad_calls(x, b, r)[case]
    with pytest.raises(exc, match=name):
        call()
    for a, s in zip((x, b, r), saved):
        same_bits(a, s)
    assert g.offset == before


def test_bad_backward_input():
    x, b, r = inputs((4, 6), np.float32)
    y, m = bias_dropout_add_forward(x, b, r, 0.5, rng=0)
    _, dm = df.dropout_forward(x, 0.5, rng=0)
    with pytest.raises(TypeError, match="m"):
        bias_dropout_add_backward(y, dm)
    with pytest.raises(ValueError, match="dy"):
        bias_dropout_add_backward(y[:2], m)
    with pytest.raises(TypeError, match="dy"):
        bias_dropout_add_backward(y.astype(np.float64), m)
    with pytest.raises(ValueError, match="out"):
        bias_dropout_add_backward(y, m, out=np.empty((2, 6), np.float32))
    assert isinstance(m, BiasDropoutAddMask) and "BiasDropoutAddMask" in repr(m)


def test_kernel_interface_refuses_bad_buffers():
    """Both backends refuse buffers that would let a kernel run out of bounds."""
    x = np.zeros(16, np.float32)
    for k in (_config.kernels, reference):
        with pytest.raises(ValueError):
            k.bias_dropout_add_fwd(x, np.zeros(5, np.float32), x, x, None, 0, 0, 0, 0, 0, 1.0, 0,
                                   -1)
        with pytest.raises(ValueError):
            k.bias_dropout_add_fwd(x, None, x[:8], x, None, 0, 0, 0, 0, 0, 1.0, 0, -1)
        with pytest.raises(ValueError):
            k.bias_dropout_add_bwd(x, x, np.zeros(3), None, 5, 0, 0, 0, 0, 0, 1.0, 0, -1)
        with pytest.raises(TypeError):
            k.bias_dropout_add_fwd(x, None, x.astype(np.float64), x, None, 0, 0, 0, 0, 0, 1.0, 0,
                                   -1)


def test_docstring_examples():
    result = doctest.testmod(_fused, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_reference_entry_point_matches():
    """reference.bias_dropout_add is the public call computed by the Numba kernels."""
    rng = np.random.default_rng(6)
    x, r = rng.standard_normal((2, 3, 33)), rng.standard_normal((2, 3, 33))
    b = rng.standard_normal(33)
    for bias in (b, None):
        y = bias_dropout_add(x, bias, r, 0.3, rng=7)
        np.testing.assert_array_equal(reference.bias_dropout_add(x, bias, r, 0.3, rng=7), y)
        np.testing.assert_array_equal(reference.bias_dropout_add(x, bias, r, 0.3, training=False),
                                      bias_dropout_add(x, bias, r, 0.3, training=False))
