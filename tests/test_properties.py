"""Property-based tests (hypothesis) of the structured variants, Gaussian dropout,
DropBlock and embedding dropout: over shapes of 0 to 5 dims (size-0 and size-1
axes), permuted, negatively strided and broadcast input views, float32/float64,
p at its edges and any float in [0, 1], and Generator offsets just below the
2**32, 2**64 and 2**96 counter carries:

- the C kernels equal the Numba reference bit for bit (every output, mask, gradient);
- forward and backward agree (bits mode = recompute mode = the one-shot function,
  backward of x with the forward's mask = the forward output, a numpy oracle of
  the coefficients), and an offset past 2**96 is an OverflowError on both backends;
- the input is never modified (nor any byte of its buffer outside the view),
  except by ``out=x``, which equals the out-of-place result, as does a strided `out`.

The examples are derandomized with no database (the profile in df_strategies.py):
every run checks the same ones. test_properties_fused.py covers the fusions.
"""
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
from dropout_fast._variants import VARIANTS
from dropout_fast.api import variant_coefficients

# Examples per test; 540 in all with the fusions' 180 (test_properties_fused.py).
N_VARIANTS, N_GAUSSIAN, N_DROPBLOCK, N_EMBEDDING = 180, 60, 60, 60

NDIMS = {"dropout": (0, 5), "spatial_dropout": (3, 5), "variational_dropout": (2, 5),
         "drop_path": (1, 5), "drop_connect": (0, 5), "alpha_dropout": (0, 5),
         "feature_alpha_dropout": (2, 5)}
ONE_SHOT = {"dropout": df.dropout, "spatial_dropout": df.spatial_dropout,
            "variational_dropout": df.variational_dropout, "drop_path": df.drop_path,
            "drop_connect": df.drop_connect, "alpha_dropout": df.alpha_dropout,
            "feature_alpha_dropout": df.feature_alpha_dropout}


def test_every_variant_is_covered():
    """Each row of the variant table is drawn here (embedding dropout by its own test)."""
    assert set(NDIMS) == set(ONE_SHOT) == set(VARIANTS) - {"embedding_dropout"}


@st.composite
def variant_options(draw, variant, shape):
    nd = len(shape)
    if variant == "dropout":
        ones = draw(st.lists(st.booleans(), min_size=nd, max_size=nd))
        ns = tuple(1 if o else d for o, d in zip(ones, shape))
        return {"noise_shape": draw(st.sampled_from([None, ns]))}
    if variant == "spatial_dropout":
        return {"data_format": draw(st.sampled_from(["channels_first", "channels_last"]))}
    if variant == "variational_dropout":
        return {"time_axis": draw(st.integers(-nd, nd - 1))}
    if variant == "drop_path":
        return {"mode": draw(st.sampled_from(["row", "batch"])),
                "scale_by_keep": draw(st.booleans())}
    return {}


@settings(PROFILE, max_examples=N_VARIANTS)
@given(data=st.data())
def test_variants(data):
    variant = data.draw(st.sampled_from(sorted(NDIMS)), "variant")
    dtype = data.draw(DTYPES, "dtype")
    lay = data.draw(layouts(dtype, *NDIMS[variant]), "x")
    opts = data.draw(variant_options(variant, lay.shape), "options")
    p, s = data.draw(PS, "p"), data.draw(STREAMS, "stream")
    x, snap, fn = lay.x, lay.base.copy(), ONE_SHOT[variant]
    ns = VARIANTS[variant].noise_shape(lay.shape, **opts)

    def run():
        y, m = df.forward(variant, x, p, rng=s.gen(), **opts)
        y2, m2 = df.forward(variant, x, p, rng=s.gen(), mask="recompute", **opts)
        y1 = fn(x, p, rng=s.gen(), **opts)
        return [y, m.bits, m2.packed(), y2, y1, df.backward(x, m), df.backward(x, m2)]
    got = run_or_overflow(run, s, math.prod(ns))
    assert_untouched(lay, snap)
    if got is None:
        return
    y, bits, bits2, y2, y1, dx, dx2 = got
    for other in (bits2, y2, y1):
        assert_bits(other, bits if other is bits2 else y)
    assert_bits(dx2, dx)
    a, b, c = variant_coefficients(variant, p, np.dtype(dtype), opts)
    t = np.dtype(dtype).type
    keep = np.broadcast_to(unpack(bits, ns), lay.shape)
    with np.errstate(all="ignore"):
        ax = t(a) * x
        assert_bits(y, np.where(keep, ax + t(b) if b else ax, t(c)), "y vs numpy oracle")
        assert_bits(dx, np.where(keep, ax, t(0.0)), "dx vs numpy oracle")
    if b == 0.0 and c == 0.0:  # inverted dropout: backward of x is the forward output
        assert_bits(dx, y)
    if variant == "spatial_dropout" and opts["data_format"] == "channels_first":
        alias = {3: df.dropout1d, 4: df.dropout2d, 5: df.dropout3d}[len(lay.shape)]
        assert_bits(alias(x, p, rng=s.gen()), y)
    check_out_forms(lay, lambda v, out: fn(v, p, rng=s.gen(), out=out, **opts), y)


@settings(PROFILE, max_examples=N_GAUSSIAN)
@given(data=st.data())
def test_gaussian_dropout(data):
    dtype = data.draw(DTYPES, "dtype")
    lay = data.draw(layouts(dtype), "x")
    p, s = data.draw(PS.filter(lambda p: p < 1.0), "p"), data.draw(STREAMS, "stream")
    x, snap = lay.x, lay.base.copy()

    def run():
        y, m = df.gaussian_dropout_forward(x, p, rng=s.gen())
        ys, ms = df.gaussian_dropout_forward(x, p, rng=s.gen(), noise="store")
        y1 = df.gaussian_dropout(x, p, rng=s.gen())
        return [y, ys, ms.noise, m.multiplier(), y1, df.gaussian_dropout_backward(x, m),
                df.backward(x, ms)]
    got = run_or_overflow(run, s, x.size)
    assert_untouched(lay, snap)
    if got is None:
        return
    y, ys, noise, mult, y1, dx, dxs = got
    assert_bits(mult, noise)
    for other in (ys, y1, dx, dxs):
        assert_bits(other, y)
    with np.errstate(all="ignore"):
        assert_bits(y, x * noise, "y vs x * multipliers")
    check_out_forms(lay, lambda v, out: df.gaussian_dropout(v, p, rng=s.gen(), out=out), y)


@st.composite
def block_inputs(draw, dtype):
    bs = draw(st.integers(1, 3))
    fmt = draw(st.sampled_from(["channels_first", "channels_last"]))
    spatial = tuple(draw(st.lists(st.integers(bs, bs + 3), min_size=2, max_size=3)))
    n, c = draw(st.integers(0, 2)), draw(st.integers(0, 3))
    shape = (n, c) + spatial if fmt == "channels_first" else (n,) + spatial + (c,)
    return bs, fmt, draw(layouts(dtype, shape=shape))


@settings(PROFILE, max_examples=N_DROPBLOCK)
@given(data=st.data())
def test_drop_block(data):
    dtype = data.draw(DTYPES, "dtype")
    bs, fmt, lay = data.draw(block_inputs(dtype), "x")
    p, s = data.draw(PS, "p"), data.draw(STREAMS, "stream")
    eps = data.draw(st.sampled_from([1e-6, 0.0, 1.0]), "eps")
    x, snap = lay.x, lay.base.copy()
    kw = {"data_format": fmt, "eps": eps}

    def run():
        y, m = df.drop_block_forward(x, p, bs, rng=s.gen(), **kw)
        y2, m2 = df.drop_block_forward(x, p, bs, rng=s.gen(), mask="recompute", **kw)
        y1 = df.drop_block(x, p, bs, rng=s.gen(), **kw)
        return [y, m.bits, m2.packed(), m2.seeds(), y2, y1, df.drop_block_backward(x, m),
                df.backward(x, m2), np.array(m.scale)]
    sp = lay.shape[2:] if fmt == "channels_first" else lay.shape[1:-1]
    grid = math.prod(lay.shape) // math.prod(sp) * math.prod(e - bs + 1 for e in sp)
    got = run_or_overflow(run, s, grid)
    assert_untouched(lay, snap)
    if got is None:
        return
    y, bits, bits2, _seeds, y2, y1, dx, dx2, scale = got
    assert_bits(bits2, bits)
    for other in (y2, y1, dx, dx2):
        assert_bits(other, y)
    t = np.dtype(dtype).type
    with np.errstate(all="ignore"):
        want = np.where(unpack(bits, lay.shape), x * t(float(scale)), t(0.0))
    assert_bits(y, want, "y vs numpy oracle")
    if fmt == "channels_first" and eps == 1e-6:
        alias = df.drop_block2d if len(lay.shape) == 4 else df.drop_block3d
        assert_bits(alias(x, p, bs, rng=s.gen()), y)
    check_out_forms(lay, lambda v, out: df.drop_block(v, p, bs, rng=s.gen(), out=out, **kw), y)


@st.composite
def embedding_inputs(draw, dtype):
    v, d = draw(st.integers(0, 6)), draw(st.integers(0, 4))
    lay = draw(layouts(dtype, shape=(v, d)))
    ishape = tuple(draw(st.lists(st.integers(0, 3), min_size=0, max_size=3)))
    if v == 0 and math.prod(ishape) > 0:
        ishape = ishape + (0,)
    ids = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(
        0, max(v, 1), size=ishape)
    ids = ids.astype(draw(st.sampled_from([np.int64, np.int32, np.uint8])))
    return lay, ids


@settings(PROFILE, max_examples=N_EMBEDDING)
@given(data=st.data())
def test_embedding_dropout(data):
    dtype = data.draw(DTYPES, "dtype")
    lay, ids = data.draw(embedding_inputs(dtype), "weight, ids")
    p, s = data.draw(PS, "p"), data.draw(STREAMS, "stream")
    w, snap, ids_snap = lay.x, lay.base.copy(), ids.copy()
    v, d = lay.shape
    dout = values(7, ids.shape + (d,), dtype, finite=False)

    def run():
        o, m = df.embedding_dropout_forward(w, ids, p, rng=s.gen())
        o2, m2 = df.embedding_dropout_forward(w, ids, p, rng=s.gen(), mask="recompute")
        o1 = df.embedding_dropout(w, ids, p, rng=s.gen())
        w1 = df.embedding_dropout(w, None, p, rng=s.gen())
        return [o, m.bits, m2.packed(), o2, o1, w1, df.embedding_dropout_backward(dout, ids, m),
                df.embedding_dropout_backward(dout, ids, m2)]
    got = run_or_overflow(run, s, v)
    assert_untouched(lay, snap)
    assert ids.tobytes() == ids_snap.tobytes()
    if got is None:
        return
    o, bits, bits2, o2, o1, w1, dw, dw2 = got
    assert_bits(bits2, bits)
    assert_bits(o2, o)
    assert_bits(o1, o)
    assert_bits(dw2, dw)
    t = np.dtype(dtype).type
    a = t(variant_coefficients("embedding_dropout", p, np.dtype(dtype), {})[0])
    keep = unpack(bits, (v, 1))
    grad = np.zeros((v, d), dtype)
    np.add.at(grad, ids.reshape(-1), dout.reshape(ids.size, d))
    with np.errstate(all="ignore"):
        assert_bits(o, np.where(keep[ids.reshape(-1)], w[ids.reshape(-1)] * a,
                                t(0.0)).reshape(ids.shape + (d,)), "lookup vs numpy oracle")
        assert_bits(w1, np.where(keep, w * a, t(0.0)), "matrix vs numpy oracle")
        assert_bits(dw, np.where(keep, grad * a, t(0.0)), "gradient vs numpy oracle")
