"""The per-call fast paths change no result: the direct kernel path equals the
general (strided) path bit for bit, and every memo (forward plans, thresholds,
the scale a DropoutMask remembers) returns what computing afresh gives,
including after the inputs it was keyed on change.
"""
import warnings

import numpy as np
import pytest

import dropout_fast as df
from dropout_fast import _config, _dropblock, _plans
from dropout_fast.api import direct_output

C = _config.kernels if _config.BACKEND == "c" else None
needs_c = pytest.mark.skipif(C is None, reason="the C extension is not built")

VARIANTS = {
    "dropout": {}, "spatial_dropout": {"data_format": "channels_last"},
    "variational_dropout": {"time_axis": 2}, "drop_path": {"mode": "row"},
    "drop_connect": {}, "alpha_dropout": {}, "feature_alpha_dropout": {},
}


def strided(a):
    """A non-contiguous copy of a (forces the general path)."""
    buf = np.zeros(a.shape + (2,), a.dtype)
    buf[..., 0] = a
    return buf[..., 0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("mask", ["bits", "recompute"])
def test_direct_path_equals_general_path(variant, dtype, mask):
    x = np.random.default_rng(1).standard_normal((3, 5, 4, 7)).astype(dtype)
    opts = VARIANTS[variant]
    g1, g2 = df.Generator(9).advance(2**32 - 3), df.Generator(9).advance(2**32 - 3)
    y1, m1 = df.forward(variant, x, 0.3, rng=g1, mask=mask, **opts)
    y2, m2 = df.forward(variant, strided(x), 0.3, rng=g2, mask=mask, **opts)
    assert y1.tobytes() == y2.tobytes() and g1.offset == g2.offset
    assert m1.packed().tobytes() == m2.packed().tobytes()
    # in place, and into a fresh out=
    g3 = df.Generator(9).advance(2**32 - 3)
    x3 = x.copy()
    assert df.forward(variant, x3, 0.3, rng=g3, out=x3, mask=mask, **opts)[0] is x3
    assert x3.tobytes() == y1.tobytes()
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(dtype)
    dx1 = df.backward(dy, m1)
    dx2 = df.backward(strided(dy), m2, out=strided(np.empty_like(dy)))
    out = np.empty_like(dy)
    assert df.backward(dy, m1, out=out) is out
    assert dx1.tobytes() == dx2.tobytes() == out.tobytes()


@needs_c
def test_direct_output_cases():
    x = np.arange(16, dtype=np.float32)
    y = C.direct_output(x, None)
    assert y.shape == x.shape and y.dtype == x.dtype and y.flags.c_contiguous
    assert not np.shares_memory(x, y)
    assert C.direct_output(x, x) is x
    out = np.empty_like(x)
    assert C.direct_output(x, out) is out
    buf = np.zeros(20, np.float32)
    assert C.direct_output(buf[:16], buf[4:]) is None          # partial overlap
    assert C.direct_output(buf[4:], buf[:16]) is None
    half = buf[8:16]
    assert C.direct_output(buf[:8], half) is half               # adjacent, disjoint
    assert C.direct_output(x[::2], None) is None                # strided input
    assert C.direct_output(x, np.empty(32, np.float32)[::2]) is None  # strided out
    assert C.direct_output(x, np.empty(16, np.float64)) is None
    assert C.direct_output(x, np.empty(15, np.float32)) is None
    assert C.direct_output(x, [0.0] * 16) is None
    ro = np.empty_like(x)
    ro.flags.writeable = False
    assert C.direct_output(x, ro) is None
    assert C.direct_output(np.empty(0, np.float32), None) is None
    assert C.direct_output(x.reshape(4, 4), np.empty((4, 4), np.float32, order="F")) is None
    assert C.direct_output(np.ones((), np.float32), None).shape == ()
    # The Python side refuses a bad out= with check_out's errors.
    with pytest.raises(ValueError, match="out: expected shape"):
        direct_output(C, x, np.empty(15, np.float32))
    with pytest.raises(TypeError, match="out: expected dtype"):
        direct_output(C, x, np.empty(16, np.float64))


def test_zero_dim_and_subclass_inputs():
    x = np.array(1.5, np.float32)
    y, m = df.dropout_forward(x, 0.5, rng=3)
    assert y.shape == () and type(y) is np.ndarray
    assert df.dropout_backward(np.ones((), np.float32), m).shape == ()
    mm = np.ones((4, 4), np.float64).view(np.matrix)
    ref = df.dropout(np.ones((4, 4)), 0.5, rng=4)
    assert np.array_equal(np.asarray(df.dropout(mm, 0.5, rng=4)), ref)


def test_plan_memo_keeps_validation():
    x = np.ones((2, 3), np.float32)
    df.dropout(x, 0.5, noise_shape=(2, 1), rng=0)
    with pytest.raises(TypeError, match="noise_shape"):
        df.dropout(x, 0.5, noise_shape=(2.0, 1), rng=0)
    s = np.ones((2, 3, 4), np.float32)
    df.variational_dropout(s, 0.5, time_axis=1, rng=0)
    with pytest.raises(TypeError, match="time_axis"):
        df.variational_dropout(s, 0.5, time_axis=1.0, rng=0)
    for _ in range(2):  # a memoised plan and a fresh one refuse the same bad options
        with pytest.raises(ValueError, match="data_format"):
            df.spatial_dropout(s, 0.5, data_format="nchw", rng=0)
    # a memo hit is exactly the derived plan
    key_plan = _plans.forward_plan("drop_path", 0.25, np.dtype(np.float64), (3, 4),
                                   {"mode": "batch", "scale_by_keep": False})
    _plans._plan_cache.clear()
    assert key_plan == _plans.forward_plan("drop_path", 0.25, np.dtype(np.float64), (3, 4),
                                           {"mode": "batch", "scale_by_keep": False})
    assert key_plan[:2] == ((1, 1), 1) and key_plan[2] == 1.0


def test_threshold_memo_ignores_numpy_scalars():
    p = 2.0 ** -30
    assert _plans.threshold_of(p) == _plans.threshold(p) == 2**32 - 4
    # float32 arithmetic rounds 1 - p to 1: never served from the float memo
    assert _plans.threshold_of(np.float32(p)) == _plans.threshold(np.float32(p)) == 2**32


def test_mask_scale_memo_follows_attribute_changes():
    x = np.ones((4, 3), np.float32)
    _, m = df.forward("drop_path", x, 0.5, rng=0, scale_by_keep=True)
    dy = np.ones_like(x)
    kept = m.to_bool()[:, 0]
    np.testing.assert_array_equal(df.backward(dy, m)[kept], 2.0)
    m.options["scale_by_keep"] = False           # in place
    np.testing.assert_array_equal(df.backward(dy, m)[kept], 1.0)
    m.options = {"mode": "row", "scale_by_keep": True}
    m.p = 0.75                                   # a new p
    np.testing.assert_array_equal(df.backward(dy, m)[kept], 4.0)
    np.testing.assert_array_equal(df.backward(dy.astype(np.float64), m)[kept], 4.0)
    m.variant = "alpha_dropout"                  # a new variant: its a for p = 0.75
    a = m.coefficients(np.float32)[0]
    np.testing.assert_array_equal(df.backward(dy, m)[kept], a)


def test_reserve_overflow_releases_the_lock():
    g = df.Generator(1).advance(2**96 - 10)
    with pytest.raises(OverflowError):
        g._reserve(11)
    assert g.offset == 2**96 - 10
    assert g._reserve(10) == 2**96 - 10  # the lock was released: no deadlock


def test_dropblock_rounded_scale():
    f32 = np.dtype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _dropblock._rounded(1e39, f32) == np.inf
        assert _dropblock._rounded(2.5, f32) == 2.5
        assert _dropblock._rounded(1 / 3, f32) == float(np.float32(1 / 3))
        assert _dropblock._rounded(1e39, np.dtype(np.float64)) == 1e39


def test_mask_without_memo_slot_and_pickled_masks():
    """A mask unpickled from a version without the memo slot, and a pickled
    mask with its memo, give the same gradient as the original."""
    import pickle

    x = np.random.default_rng(5).standard_normal((3, 8)).astype(np.float32)
    _, m = df.dropout_forward(x, 0.4, rng=2)
    want = df.dropout_backward(x, m)
    old = df.DropoutMask.__new__(df.DropoutMask)
    for name in ("p", "shape", "key", "offset", "bits", "noise_shape", "variant", "options"):
        setattr(old, name, getattr(m, name))
    assert df.dropout_backward(x, old).tobytes() == want.tobytes()
    assert df.dropout_backward(x, pickle.loads(pickle.dumps(m))).tobytes() == want.tobytes()
