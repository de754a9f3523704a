"""Hostile inputs for every op: non-finite and subnormal values, read-only and
big-endian arrays, object arrays, an `out` that overlaps the input partially or
itself (zero strides), and the input left untouched unless `out` is it.

Non-finite values follow the stream contract: a kept element is a*x + b as
the multiplication gives it (NaN stays NaN, inf stays inf), a dropped element
is exactly the variant's constant c (+0.0 for dropout) whatever x was.
PyTorch instead multiplies by a 0/1 mask, so NaN * 0 gives NaN there.
"""
import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import dropout_fast as df
from dropout_fast import _config, reference
from dropout_fast._variants import VARIANTS

SHAPE = (3, 4, 6, 5)
P = 0.3
SEED = 7


def _base(dtype=np.float32):
    return np.random.default_rng(0).standard_normal(SHAPE).astype(dtype)


def _bda(x, out):
    c = x.shape[-1]
    bias = np.linspace(-1, 1, c).astype(x.dtype) if x.dtype.kind == "f" else np.zeros(c)
    return df.bias_dropout_add(x, bias, np.ones(x.shape, np.float32), P, rng=SEED, out=out)


# Every op with an out= argument, as f(x, out): forward ops, and backward ops fed x as dy.
OPS = {
    "dropout": lambda x, out: df.dropout(x, P, rng=SEED, out=out),
    "dropout_forward": lambda x, out: df.dropout_forward(x, P, rng=SEED, out=out)[0],
    "dropout_backward": lambda x, out: df.dropout_backward(
        x, df.dropout_forward(np.zeros(SHAPE, np.float32), P, rng=SEED)[1], out=out),
    "spatial_dropout": lambda x, out: df.spatial_dropout(x, P, rng=SEED, out=out),
    "dropout2d": lambda x, out: df.dropout2d(x, P, rng=SEED, out=out),
    "variational_dropout": lambda x, out: df.variational_dropout(x, P, rng=SEED, out=out),
    "drop_path": lambda x, out: df.drop_path(x, P, rng=SEED, out=out),
    "drop_connect": lambda x, out: df.drop_connect(x, P, rng=SEED, out=out),
    "alpha_dropout": lambda x, out: df.alpha_dropout(x, P, rng=SEED, out=out),
    "feature_alpha_dropout": lambda x, out: df.feature_alpha_dropout(x, P, rng=SEED, out=out),
    "backward_variant": lambda x, out: df.backward(
        x, df.forward("alpha_dropout", np.zeros(SHAPE, np.float32), P, rng=SEED)[1], out=out),
    "drop_block": lambda x, out: df.drop_block(x, P, 3, rng=SEED, out=out),
    "drop_block_backward": lambda x, out: df.drop_block_backward(
        x, df.drop_block_forward(np.zeros(SHAPE, np.float32), P, 3, rng=SEED)[1], out=out),
    "gaussian_dropout": lambda x, out: df.gaussian_dropout(x, P, rng=SEED, out=out),
    "gaussian_dropout_backward": lambda x, out: df.gaussian_dropout_backward(
        x, df.gaussian_dropout_forward(np.zeros(SHAPE, np.float32), P, rng=SEED)[1], out=out),
    "bias_dropout_add": _bda,
    "bias_dropout_add_backward": lambda x, out: df.bias_dropout_add_backward(
        x, df.bias_dropout_add_forward(np.zeros(SHAPE, np.float32), None,
                                       np.zeros(SHAPE, np.float32), P, rng=SEED)[1], out=out)[0],
    "softmax": lambda x, out: df.softmax(x, out=out),
    "softmax_dropout": lambda x, out: df.softmax_dropout(x, P, rng=SEED, out=out),
    "softmax_dropout_backward": lambda x, out: df.softmax_dropout_backward(
        x, df.softmax_dropout_forward(np.zeros(SHAPE, np.float32), P, rng=SEED)[1], out=out),
}


@pytest.fixture(params=sorted(OPS))
def op(request):
    f = OPS[request.param]
    return f, f(_base(), None)


def test_readonly_input(op):
    f, ref = op
    x = _base()
    x.flags.writeable = False
    np.testing.assert_array_equal(f(x, None), ref)
    np.testing.assert_array_equal(f(x, np.empty(SHAPE, np.float32)), ref)


def test_input_untouched_unless_out(op):
    f, ref = op
    x = _base()
    f(x, None)
    f(x, np.empty_like(x))
    f(x, np.empty_like(x)[..., ::-1])
    f(x[::-1], None)
    np.testing.assert_array_equal(x, _base())
    # out=x is in place: x becomes the result.
    y = f(x, x)
    assert y is x
    np.testing.assert_array_equal(x, ref)


@pytest.mark.parametrize("shift", [1, 7, 8, 61, 360])
@pytest.mark.parametrize("out_first", [False, True])
def test_out_overlaps_input_partially(op, shift, out_first):
    """A result equal to the non-overlapping call's, or a ValueError; never a mix."""
    f, ref = op
    n = ref.size
    buf = np.zeros(n + shift, np.float32)
    x = buf[shift:].reshape(SHAPE) if out_first else buf[:n].reshape(SHAPE)
    out = buf[:n].reshape(SHAPE) if out_first else buf[shift:].reshape(SHAPE)
    x[...] = _base()
    try:
        y = f(x, out)
    except ValueError as e:
        assert "out" in str(e)
        return
    assert y is out
    np.testing.assert_array_equal(y, ref)


def test_out_overlaps_strided_input(op):
    """out and x interleaved in one buffer, both non-contiguous."""
    f, ref = op
    buf = np.zeros(SHAPE + (2,), np.float32)
    x, out = buf[..., 0], buf.reshape(-1)[1:1 + ref.size * 2:2].reshape(SHAPE)
    x[...] = _base()
    np.testing.assert_array_equal(f(x, out), ref)
    np.testing.assert_array_equal(x, _base())


@pytest.mark.parametrize("strides", ["zero", "self"])
def test_self_overlapping_out_refused(op, strides):
    f, _ = op
    mem = np.full(200, 5.0, np.float32)
    if strides == "zero":
        out = as_strided(mem, shape=SHAPE, strides=(0,) * len(SHAPE))
    else:  # consecutive rows share all but one element
        out = as_strided(mem, shape=SHAPE, strides=(16, 12, 8, 4))
    x = _base()
    with pytest.raises(ValueError, match="out: elements share memory"):
        f(x, out)
    np.testing.assert_array_equal(mem, 5.0)
    np.testing.assert_array_equal(x, _base())


def test_object_and_big_endian_inputs_refused(op):
    f, _ = op
    with pytest.raises(TypeError, match="float32 or float64"):
        f(_base().astype(object), None)
    be = _base().astype(">f4")
    with pytest.raises(TypeError, match="native byte order"):
        f(be, None)
    np.testing.assert_array_equal(be, _base())
    with pytest.raises(TypeError, match="out"):
        f(_base(), np.empty(SHAPE, ">f4"))


def _hostile(dtype):
    """Finite values with NaN, +-inf, subnormals and signed zeros mixed in."""
    x = _base(dtype)
    flat = x.reshape(-1)
    tiny = np.finfo(dtype).smallest_subnormal
    specials = np.array([np.nan, np.inf, -np.inf, tiny, -tiny, 3 * tiny, 0.0, -0.0], dtype)
    flat[: 8 * 45] = np.tile(specials, 45)
    return x


def _same(y, expected):
    """Equal values, NaN where NaN, and equal sign bits elsewhere (+0.0 is not -0.0)."""
    np.testing.assert_array_equal(y, expected)
    num = ~np.isnan(y)
    assert np.array_equal(np.signbit(y[num]), np.signbit(expected[num]))


def _same_bits(y, expected):
    words = np.uint32 if y.dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(y.view(words), expected.view(words))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", sorted(set(VARIANTS) - {"embedding_dropout"}))
def test_nonfinite_and_subnormal_values(variant, dtype):
    x = _hostile(dtype)
    y, m = df.forward(variant, x, P, rng=SEED)
    keep = np.broadcast_to(m.to_bool(), SHAPE)
    a, b, c = (dtype(v) for v in m.coefficients(dtype))
    with np.errstate(invalid="ignore", over="ignore"):
        kept = x * a if b == 0 else x * a + b
    _same(y, np.where(keep, kept, c))
    # Not vacuous: NaN and inf reached both kept and dropped positions.
    for bad in (np.isnan(x), np.isinf(x)):
        assert (bad & keep).any() and (bad & ~keep).any()
    if c == 0:
        assert not np.signbit(y[~keep]).any()
    np.testing.assert_array_equal(df.backward(x, m), np.where(keep, x * a, dtype(0)))
    _same(reference.forward(variant, x, P, rng=SEED)[0], y)   # the Numba backend agrees


@pytest.mark.parametrize("isa", [i for i in _config.ISA_CODES if _config.isa_available(i)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_every_isa(dtype, isa):
    """The SIMD bodies select, never multiply by a 0/1 mask: the same bits as the default."""
    x = _hostile(dtype)
    expect = [df.dropout(x, P, rng=SEED), df.spatial_dropout(x, P, rng=SEED),
              df.alpha_dropout(x, P, rng=SEED), df.gaussian_dropout(x, P, rng=SEED),
              df.bias_dropout_add(x, None, x, P, rng=SEED), df.softmax_dropout(x, P, rng=SEED)]
    _, m = df.dropout_forward(np.zeros(SHAPE, dtype), P, rng=SEED)
    expect.append(df.dropout_backward(x, m))
    with _config.force_isa(isa):
        got = [df.dropout(x, P, rng=SEED), df.spatial_dropout(x, P, rng=SEED),
               df.alpha_dropout(x, P, rng=SEED), df.gaussian_dropout(x, P, rng=SEED),
               df.bias_dropout_add(x, None, x, P, rng=SEED), df.softmax_dropout(x, P, rng=SEED),
               df.dropout_backward(x, m)]
    for g, e in zip(got, expect):
        _same(g, e)
    # Bit for bit, NaN payloads included, except softmax: there a NaN or +inf score
    # makes NaN rows whose sign bits depend on the SIMD path's max and sum order.
    for g, e in zip(got[:5] + got[6:], expect[:5] + expect[6:]):
        _same_bits(g, e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_plain_dropout(dtype):
    """Dropped positions are +0.0 even for NaN/inf input (PyTorch gives NaN there)."""
    x = _hostile(dtype)
    y, m = df.dropout_forward(x, P, rng=SEED)
    keep = m.to_bool()
    assert (y[~keep] == 0).all() and not np.signbit(y[~keep]).any()
    scale = dtype(1 / (1 - P))
    with np.errstate(invalid="ignore", over="ignore"):
        _same(y[keep], x[keep] * scale)
    # Subnormals scale as IEEE multiplication does (no flush to zero in the kernels).
    sub = keep & (np.abs(x) < np.finfo(dtype).tiny) & (x != 0)
    assert sub.any() and (y[sub] != 0).all()


def test_nonfinite_other_ops():
    x = _hostile(np.float32)
    # DropBlock: kept x * scale, dropped +0.0.
    y, m = df.drop_block_forward(x, P, 3, rng=SEED)
    keep = m.to_bool()
    with np.errstate(invalid="ignore", over="ignore"):
        _same(y, np.where(keep, x * np.float32(m.scale), np.float32(0)))
    # Gaussian dropout: y = x * m everywhere (nothing is dropped).
    y, g = df.gaussian_dropout_forward(x, P, rng=SEED)
    with np.errstate(invalid="ignore", over="ignore"):
        _same(y, x * g.multiplier())
    # bias + dropout + residual: a dropped NaN leaves the residual exactly.
    res = _base()
    y, m = df.bias_dropout_add_forward(x, None, res, P, rng=SEED)
    keep = m.to_bool()
    _same(y[~keep], res[~keep])
    assert np.isnan(y[keep & np.isnan(x)]).all()
    # Embedding dropout: whole rows, NaN rows included, become +0.0.
    w = np.full((40, 4), np.nan, np.float32)
    y, m = df.embedding_dropout_forward(w, np.arange(40), P, rng=SEED)
    keep = m.to_bool().reshape(-1)
    assert 0 < keep.sum() < 40
    _same(y[~keep], np.zeros((40 - keep.sum(), 4), np.float32))
    assert np.isnan(y[keep]).all()


def test_nonfinite_softmax_dropout():
    """A NaN score makes its row NaN where kept; dropped stays +0.0; other rows unchanged."""
    s = _base()
    bad = s.copy()
    bad[0, 0, 0, 2] = np.nan
    bad[1, 2, 3, 1] = np.inf
    y, m = df.softmax_dropout_forward(bad, P, rng=SEED)
    ref, _ = df.softmax_dropout_forward(s, P, rng=SEED)
    keep = m.to_bool()
    assert (y[~keep] == 0).all() and not np.signbit(y[~keep]).any()
    rows = np.zeros(SHAPE[:-1], bool)
    rows[0, 0, 0] = rows[1, 2, 3] = True
    assert np.isnan(y[rows][keep[rows]]).all()
    np.testing.assert_array_equal(y[~rows], ref[~rows])


def test_torch_gives_nan_where_dropped():
    """The documented difference: PyTorch multiplies, so dropped NaN stays NaN."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    y = torch.nn.functional.dropout(torch.full((64,), float("nan")), 0.5)
    assert torch.isnan(y).all()
    assert (df.dropout(np.full(64, np.nan, np.float32), 0.5, rng=0) == 0).any()


@pytest.mark.parametrize("shift", [0, 1, 7, 60])
def test_out_overlaps_other_inputs(shift):
    """out sharing memory with a second input (residual, bias, attention mask, the
    scores that backward recomputes from): the separate-out result, or ValueError."""
    x, r = _base(), _base()[::-1].copy()
    bias = np.linspace(-1, 1, SHAPE[-1]).astype(np.float32)
    n = x.size

    def overlapped(value):
        buf = np.zeros(n + shift, np.float32)
        other = buf[shift:shift + value.size].reshape(value.shape)
        other[...] = value
        return buf[:n].reshape(SHAPE), other

    _, m = df.softmax_dropout_forward(x, P, rng=SEED, mode="recompute")
    calls = {
        "residual": (lambda a: df.bias_dropout_add(x, bias, a[1], P, rng=SEED, out=a[0]), r),
        "bias": (lambda a: df.bias_dropout_add(x, a[1], r, P, rng=SEED, out=a[0]), bias),
        "attn_mask": (lambda a: df.softmax_dropout(x, P, attn_mask=a[1], rng=SEED, out=a[0]), r),
        "scores": (lambda a: df.softmax_dropout_backward(r, m, scores=a[1], out=a[0]), x),
    }
    for name, (f, value) in calls.items():
        ref = f((np.empty(SHAPE, np.float32), value.copy()))
        try:
            got = f(overlapped(value))
        except ValueError as e:
            assert "out" in str(e), name
            continue
        np.testing.assert_array_equal(got, ref, err_msg=name)
