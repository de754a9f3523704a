"""Property-based tests (hypothesis) of the fusions, softmax_dropout and
bias_dropout_add, with the same generators and checks as test_properties.py:
C equals the Numba reference bit for bit; forward, the one-shot form and
backward agree with each other and with the unfused composition
(``dropout(softmax(s))``, ``dropout(x + bias) + residual``); the inputs are
never modified, except by ``out=``, which equals the out-of-place result."""
import math

import numpy as np
from df_strategies import (
    DTYPES,
    PROFILE,
    PS,
    STREAMS,
    assert_bits,
    assert_untouched,
    check_out_forms,
    layouts,
    run_or_overflow,
    unpack,
    values,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import dropout_fast as df
from dropout_fast.api import variant_coefficients

N_SOFTMAX, N_BIAS_DROPOUT_ADD = 100, 80


@st.composite
def broadcastable(draw, shape):
    """A shape that broadcasts to `shape`: leading axes dropped, some set to 1."""
    lead = draw(st.integers(0, len(shape)))
    return tuple(1 if draw(st.booleans()) else d for d in shape[lead:])


@st.composite
def attention_masks(draw, shape, dtype):
    kind = draw(st.sampled_from([None, "bool", "float"]))
    if kind is None:
        return None
    mshape = draw(broadcastable(shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    keep = rng.random(mshape) < 0.7
    if kind == "bool":
        return keep
    return np.where(keep, rng.standard_normal(mshape), -np.inf).astype(dtype)


@settings(PROFILE, max_examples=N_SOFTMAX)
@given(data=st.data())
def test_softmax_dropout(data):
    dtype = data.draw(DTYPES, "dtype")
    lay = data.draw(layouts(dtype, 1, 4, max_side=5, finite=True), "scores")
    nd = len(lay.shape)
    axis = data.draw(st.integers(-nd, nd - 1), "axis")
    causal = nd >= 2 and axis in (-1, nd - 1) and data.draw(st.booleans(), "is_causal")
    mask = data.draw(attention_masks(lay.shape, dtype), "attn_mask")
    bits = data.draw(st.booleans(), "bits")
    p, s = data.draw(PS, "p"), data.draw(STREAMS, "stream")
    x, snap = lay.x, lay.base.copy()
    mask_snap = None if mask is None else mask.copy()
    dy = values(11, lay.shape, dtype, finite=True)
    kw = {"axis": axis, "attn_mask": mask, "is_causal": causal}

    def run():
        y, m = df.softmax_dropout_forward(x, p, rng=s.gen(), **kw)
        yr, mr = df.softmax_dropout_forward(x, p, rng=s.gen(), mode="recompute", bits=bits, **kw)
        y1 = df.softmax_dropout(x, p, rng=s.gen(), **kw)
        probs = df.softmax(x, **kw)
        return [y, m.probs, m.to_bool(), mr.to_bool(), yr, y1, probs,
                df.softmax_dropout_backward(dy, m), df.backward(dy, m),
                df.softmax_dropout_backward(dy, mr, scores=x)]
    got = run_or_overflow(run, s, x.size)
    assert_untouched(lay, snap, "scores")
    assert mask is None or mask.tobytes() == mask_snap.tobytes()
    if got is None:
        return
    y, probs_kept, keep, keep_r, yr, y1, probs, ds, ds_generic, ds_r = got
    assert_bits(probs_kept, probs)
    assert_bits(keep_r, keep)
    for other in (yr, y1):
        assert_bits(other, y)
    assert_bits(ds_generic, ds)
    assert_bits(ds_r, ds, "backward: recompute vs store")
    t = np.dtype(dtype).type
    scale = t(variant_coefficients("dropout", p, np.dtype(dtype), {"noise_shape": None})[0])
    assert_bits(y, np.where(keep, probs * scale, t(0.0)), "y vs P and the keep mask")
    if axis in (-1, nd - 1):  # the documented equality with the unfused composition
        assert_bits(y, df.dropout(probs, p, rng=s.gen()), "y vs dropout(softmax(s))")
    assert np.all(probs >= 0) and np.all(np.isfinite(probs))
    check_out_forms(lay, lambda v, out: df.softmax_dropout(v, p, rng=s.gen(), out=out, **kw), y)


def row_order_sum(dx: np.ndarray) -> np.ndarray:
    """The contract's dbias: each column of dx (viewed as (R, C)) summed in double
    over the rows in row order, then rounded once."""
    c = dx.shape[-1]
    acc = np.zeros(c)
    for row in dx.reshape(-1, c) if c else ():
        acc = acc + row.astype(np.float64)
    return acc.astype(dx.dtype)


@settings(PROFILE, max_examples=N_BIAS_DROPOUT_ADD)
@given(data=st.data())
def test_bias_dropout_add(data):
    dtype = data.draw(DTYPES, "dtype")
    lay = data.draw(layouts(dtype, 0, 5, finite=True), "x")
    shape = lay.shape
    with_bias = len(shape) > 0 and data.draw(st.booleans(), "bias?")
    blay = data.draw(layouts(dtype, shape=shape[-1:], finite=True), "bias") if with_bias else None
    rlay = data.draw(layouts(dtype, shape=data.draw(broadcastable(shape), "residual shape"),
                             finite=True), "residual")
    p, s = data.draw(PS, "p"), data.draw(STREAMS, "stream")
    x, bias, res = lay.x, None if blay is None else blay.x, rlay.x
    snaps = [(a, a.base.copy()) for a in (lay, blay, rlay) if a is not None]
    dy = values(13, shape, dtype, finite=True)

    def run():
        y, m = df.bias_dropout_add_forward(x, bias, res, p, rng=s.gen())
        yr, mr = df.bias_dropout_add_forward(x, bias, res, p, rng=s.gen(), mask="recompute")
        y1 = df.bias_dropout_add(x, bias, res, p, rng=s.gen())
        ye = df.bias_dropout_add(x, bias, res, p, training=False)
        dx, db, dres = df.bias_dropout_add_backward(dy, m)
        dxr, dbr, dresr = df.bias_dropout_add_backward(dy, mr)
        return [y, m.bits, mr.to_bool(), yr, y1, ye, dx, db, dres, dxr, dbr, dresr,
                df.dropout_backward(dy, m)]
    got = run_or_overflow(run, s, math.prod(shape))
    for a, snap in snaps:
        assert_untouched(a, snap)
    if got is None:
        return
    y, bits, keep_r, yr, y1, ye, dx, db, dres, dxr, dbr, dresr, dx_plain = got
    assert_bits(keep_r, unpack(bits, shape))
    for other in (yr, y1):
        assert_bits(other, y)
    for a, b in ((dxr, dx), (dbr, db), (dresr, dres), (dx_plain, dx)):
        assert_bits(a, b)
    with np.errstate(all="ignore"):
        v = x if bias is None else x + bias
        assert_bits(y, df.dropout(v, p, rng=s.gen()) + res, "y vs dropout(x + bias) + residual")
        assert_bits(ye, res + v, "eval mode vs residual + (x + bias)")
    assert_bits(dx, df.dropout_backward(dy, df.dropout_forward(v, p, rng=s.gen())[1]))
    assert db is None if bias is None else np.array_equal(db, row_order_sum(dx))
    want_dres = dy if res.shape == shape else dy.sum(
        axis=tuple(range(len(shape) - res.ndim)) + tuple(
            len(shape) - res.ndim + d for d, e in enumerate(res.shape)
            if e == 1 and shape[len(shape) - res.ndim + d] != 1)).reshape(res.shape)
    np.testing.assert_array_equal(dres, want_dres)
    check_out_forms(lay, lambda v, out: df.bias_dropout_add(v, bias, res, p, rng=s.gen(),
                                                            out=out), y)
    if res.shape == shape and not rlay.broadcast:  # out=residual, in place
        base = rlay.base.copy()
        r2 = rlay.view(base)
        assert df.bias_dropout_add(x, bias, r2, p, rng=s.gen(), out=r2) is r2
        assert_bits(r2, y, "out=residual")
