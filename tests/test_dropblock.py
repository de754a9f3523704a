"""DropBlock (dropout_fast._dropblock): seeds against the plain-numpy oracle,
block geometry against torchvision's algorithm written with torch ops, the two
backends bit for bit, invariance, statistics, gradients and bad input."""
import doctest
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import oracle
from dropout_fast import Generator, _config
from dropout_fast import _dropblock as db
from dropout_fast import reference as ref

SEED = 0x5EED_0123_4567


def data(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def spatial_of(shape, data_format):
    return shape[2:] if data_format == "channels_first" else shape[1:-1]


def tv_gamma(p, spatial, bs):
    """torchvision's formula, written out as drop_block2d/3d write it."""
    if len(spatial) == 2:
        H, W = spatial
        return (p * H * W) / ((bs ** 2) * ((H - bs + 1) * (W - bs + 1)))
    D, H, W = spatial
    return (p * D * H * W) / ((bs ** 3) * ((D - bs + 1) * (H - bs + 1) * (W - bs + 1)))


def oracle_seeds(shape, data_format, bs, gamma, seed=SEED, block0=0):
    """Seed grid from the oracle in the stream's order, returned channels first."""
    grid = tuple(d - bs + 1 for d in spatial_of(shape, data_format))
    if data_format == "channels_first":
        gshape = shape[:2] + grid
    else:
        gshape = (shape[0],) + grid + (shape[-1],)
    seeds = ~oracle.mask_bool(math.prod(gshape), seed, block0, gamma).reshape(gshape)
    return seeds if data_format == "channels_first" else np.moveaxis(seeds, -1, 1)


def tv_noise(seeds, bs, dtype):
    """torchvision's keep tensor (1 - max_pool of the padded seeds) from given seeds."""
    nd = seeds.ndim - 2
    noise = torch.from_numpy(seeds.astype(dtype))
    noise = F.pad(noise, [bs // 2] * (2 * nd), value=0)
    pool = F.max_pool2d if nd == 2 else F.max_pool3d
    noise = pool(noise, stride=(1,) * nd, kernel_size=(bs,) * nd, padding=bs // 2)
    return 1 - noise


def anchored_keep(seeds, bs):
    """The anchored definition by a plain loop: a seed at i drops [i, i + bs) per axis."""
    dropped = np.zeros(seeds.shape[:2] + tuple(g + bs - 1 for g in seeds.shape[2:]), bool)
    for idx in np.argwhere(seeds):
        dropped[tuple(idx[:2]) + tuple(slice(i, i + bs) for i in idx[2:])] = True
    return ~dropped


def to_cf(a, data_format):
    return a if data_format == "channels_first" else np.moveaxis(a, -1, 1)


def from_cf(a, data_format):
    return a if data_format == "channels_first" else np.moveaxis(a, 1, -1)


ODD = [((2, 3, 9, 11), 3, 0.3, np.float32, "channels_first"),
       ((2, 3, 9, 11), 3, 0.3, np.float64, "channels_last"),
       ((1, 2, 7, 7), 7, 0.5, np.float64, "channels_first"),
       ((3, 2, 8, 5), 1, 0.2, np.float32, "channels_first"),
       ((2, 16, 13, 4), 5, 0.9, np.float32, "channels_last"),
       ((2, 2, 5, 6, 7), 3, 0.4, np.float64, "channels_first"),
       ((2, 5, 6, 7, 3), 3, 0.4, np.float32, "channels_last"),
       ((1, 1, 5, 5, 5), 5, 0.7, np.float32, "channels_first")]


# ------------------------------------------------------------------ (a) oracle and torchvision
@pytest.mark.parametrize("shape, bs, p, dtype, data_format", ODD)
def test_odd_sizes_match_torchvision_on_oracle_seeds(shape, bs, p, dtype, data_format):
    x = data(shape, dtype)
    gen = Generator(SEED).advance(3)
    y, m = db.drop_block_forward(x, p, bs, data_format=data_format, rng=gen)
    gamma = tv_gamma(p, spatial_of(shape, data_format), bs)
    assert m.gamma == gamma and m.offset == 3
    seeds = oracle_seeds(shape, data_format, bs, gamma, block0=3)
    np.testing.assert_array_equal(to_cf(m.seeds(), data_format), seeds)
    noise = tv_noise(seeds, bs, dtype)
    np.testing.assert_array_equal(to_cf(m.to_bool(), data_format), noise.numpy() == 1)
    tv_scale = (noise.numel() / (1e-6 + noise.sum())).item()
    s = dtype(m.scale)
    assert abs(s - dtype(tv_scale)) <= np.spacing(s)  # float32: torch rounds twice in float32
    y_tv = from_cf(np.asarray(torch.from_numpy(to_cf(x, data_format)) * noise
                              * (noise.numel() / (1e-6 + noise.sum()))), data_format)
    if dtype == np.float64:  # torch rounds the scale as we do: twice in double
        np.testing.assert_array_equal(y, y_tv)
    else:
        np.testing.assert_allclose(y, y_tv, rtol=2.0 ** -22, atol=0)
    np.testing.assert_array_equal(y, np.where(m.to_bool(), x * s, dtype(0)))


@pytest.mark.parametrize("shape, bs, data_format", [
    ((2, 3, 9, 10), 2, "channels_first"), ((2, 9, 10, 3), 4, "channels_last"),
    ((1, 2, 6, 6), 6, "channels_first"), ((2, 2, 5, 6, 7), 2, "channels_first"),
    ((1, 6, 5, 4, 2), 4, "channels_last")])
def test_even_sizes_follow_the_anchored_definition(shape, bs, data_format):
    x = data(shape)
    y, m = db.drop_block_forward(x, 0.6, bs, data_format=data_format, rng=SEED)
    seeds = oracle_seeds(shape, data_format, bs, tv_gamma(0.6, spatial_of(shape, data_format), bs))
    assert seeds.any()
    keep = anchored_keep(seeds, bs)
    np.testing.assert_array_equal(to_cf(m.to_bool(), data_format), keep)
    assert m.scale == x.size / (1e-6 + np.count_nonzero(keep))
    np.testing.assert_array_equal(y, np.where(m.to_bool(), x * np.float32(m.scale), 0))


# --------------------------------------------------------------------------- (b) backends
@pytest.mark.parametrize("shape, bs, p, dtype, data_format", ODD[:5] + [
    ((2, 3, 10, 12), 4, 0.35, np.float64, "channels_first")])
def test_c_equals_numba(shape, bs, p, dtype, data_format):
    x = data(shape, dtype)
    kw = dict(data_format=data_format, rng=SEED)
    assert np.array_equal(db.drop_block(x, p, bs, **kw), ref.drop_block(x, p, bs, **kw))
    yc, mc = db.drop_block_forward_impl(_config.kernels, x, p, bs, data_format, 1e-6, SEED,
                                        mask="recompute")
    yn, mn = db.drop_block_forward_impl(ref, x, p, bs, data_format, 1e-6, SEED, mask="recompute")
    assert np.array_equal(yc, yn) and np.array_equal(mc.packed(ref), mn.packed())
    dy = data(shape, dtype, seed=1)
    assert np.array_equal(db.drop_block_backward_impl(ref, dy, mn),
                          db.drop_block_backward(dy, mc))


# --------------------------------------------------------------------------- (c) invariance
def test_threads_and_isa_do_not_change_a_bit(monkeypatch):
    x = data((4, 8, 48, 48))
    expected, _ = db.drop_block_forward(x, 0.2, 5, rng=SEED)
    for n in (1, 2, 3):
        monkeypatch.setattr(_config, "nthreads", n)
        assert np.array_equal(db.drop_block(x, 0.2, 5, rng=SEED), expected)
        for name in _config.ISA_CODES:
            if _config.isa_available(name):
                with _config.force_isa(name):
                    y, m = db.drop_block_forward(x, 0.2, 5, rng=SEED, mask="recompute")
                    assert np.array_equal(y, expected)
                    assert np.array_equal(db.drop_block_backward(x, m), expected)


# --------------------------------------------------------------------------- (d) statistics
def test_seed_rate_and_dropped_fraction():
    p, bs, shape = 0.1, 5, (16, 16, 64, 64)
    x = np.ones(shape, np.float32)
    y, m = db.drop_block_forward(x, p, bs, rng=SEED)
    seeds, keep = m.seeds(), m.to_bool()
    gamma = tv_gamma(p, shape[2:], bs)
    n = seeds.size
    assert abs(np.count_nonzero(seeds) - n * gamma) < 5 * math.sqrt(n * gamma * (1 - gamma))
    # Whole blocks go together: every seed's block is dropped.
    win = np.lib.stride_tricks.sliding_window_view(~keep, (bs, bs), axis=(2, 3))
    assert win.all(axis=(-2, -1))[seeds].all()
    # A position covered by c seed positions is kept with probability (1 - gamma)**c;
    # maps are independent, so their kept fractions average within 5 standard errors.
    cover = np.convolve(np.ones(shape[2] - bs + 1), np.ones(bs))
    expected_keep = np.mean((1 - gamma) ** np.multiply.outer(cover, cover))
    per_map = keep.reshape(shape[0] * shape[1], -1).mean(axis=1)
    assert abs(per_map.mean() - expected_keep) < 5 * per_map.std(ddof=1) / math.sqrt(per_map.size)
    # Blocks overlap, so slightly less than p is dropped: p to first order in gamma.
    assert 0.8 * p < 1 - expected_keep < p
    assert abs(float(y.mean(dtype=np.float64)) - 1.0) < 1e-6  # the scale preserves the mean


# --------------------------------------------------------------------------- (e) gradient
def test_gradient_by_finite_differences():
    x, w = data((1, 2, 8, 8), np.float64), data((1, 2, 8, 8), np.float64, seed=1)

    def loss(v):  # an int rng starts a fresh Generator: the same mask every call
        return float(np.sum(w * db.drop_block(v, 0.3, 3, rng=SEED)))

    _, m = db.drop_block_forward(x, 0.3, 3, rng=SEED)
    grad = db.drop_block_backward(w, m)
    h, fd = 1e-6, np.empty_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        fd[i] = (loss(x + e) - loss(x - e)) / (2 * h)
    np.testing.assert_allclose(fd, grad, rtol=1e-6, atol=1e-7)
    assert np.any(grad == 0) and np.any(grad != 0)


# --------------------------------------------------------------------------- (f) bits vs recompute
@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_bits_and_recompute_agree(data_format):
    x, dy = data((2, 7, 9, 3)), data((2, 7, 9, 3), seed=2)
    yb, mb = db.drop_block_forward(x, 0.4, 3, data_format=data_format, rng=SEED)
    yr, mr = db.drop_block_forward(x, 0.4, 3, data_format=data_format, rng=SEED, mask="recompute")
    assert np.array_equal(yb, yr) and mr.nbytes == 0 and mb.nbytes == (x.size + 7) // 8
    assert np.array_equal(mb.to_bool(), mr.to_bool())
    assert np.array_equal(db.drop_block_backward(dy, mb), db.drop_block_backward(dy, mr))


# --------------------------------------------------------------------------- (g) channels_last
def test_channels_last_drops_blocks_across_each_channel():
    x = data((2, 12, 10, 4))
    _, m = db.drop_block_forward(x, 0.5, 3, data_format="channels_last", rng=SEED)
    seeds, keep = m.seeds(), m.to_bool()
    assert seeds.shape == (2, 10, 8, 4)
    for n, i, j, c in np.argwhere(seeds):
        assert not keep[n, i:i + 3, j:j + 3, c].any()
    # The same per-map geometry as channels first on the transposed seeds.
    np.testing.assert_array_equal(np.moveaxis(keep, -1, 1),
                                  anchored_keep(np.moveaxis(seeds, -1, 1), 3))


# --------------------------------------------------------------------------- edge cases
def test_offsets_identity_zeros_and_layouts():
    x = data((2, 3, 9, 8))
    gen = Generator(SEED)
    count = 2 * 3 * 7 * 6
    y0 = db.drop_block(x, 0.0, 3, rng=gen)
    assert np.array_equal(y0, x) and y0 is not x and gen.offset == (count + 7) // 8
    y1, m1 = db.drop_block_forward(x, 1.0, 3, rng=gen)
    assert not np.any(y1) and not m1.to_bool().any() and m1.seeds().all()
    assert gen.offset == 2 * ((count + 7) // 8)
    expected = db.drop_block(x, 0.5, 3, rng=SEED)
    view = np.asfortranarray(x)
    assert np.array_equal(db.drop_block(view, 0.5, 3, rng=SEED), expected)
    out = np.empty_like(x)
    assert db.drop_block(x, 0.5, 3, rng=SEED, out=out) is out and np.array_equal(out, expected)
    z = x.copy()
    assert db.drop_block2d(z, 0.5, 3, inplace=True, rng=SEED) is z and np.array_equal(z, expected)
    e = db.drop_block(np.empty((0, 3, 5, 5), np.float32), 0.5, 3, rng=gen)
    assert e.shape == (0, 3, 5, 5)
    x5 = data((1, 2, 4, 5, 6), np.float64)
    assert np.array_equal(db.drop_block3d(x5, 0.5, 2, rng=1), db.drop_block(x5, 0.5, 2, rng=1))


def test_layer_train_eval():
    layer = db.DropBlock(0.3, 3, mask="recompute", rng=SEED)
    x = data((2, 3, 8, 8))
    y = layer(x)
    assert np.array_equal(y, db.drop_block(x, 0.3, 3, rng=SEED))
    ones = np.ones_like(x)  # the scale depends on the mask alone
    assert np.array_equal(layer.backward(ones), db.drop_block(ones, 0.3, 3, rng=SEED))
    assert layer.eval().forward(x) is x and layer.backward(x) is x
    assert "block_size=3" in repr(layer)


# --------------------------------------------------------------------------- (h) bad input
BAD = [
    (dict(x=np.ones((2, 3, 8), np.float32)), ValueError, "x"),
    (dict(x=np.ones((1, 1, 1, 2, 3, 3), np.float32)), ValueError, "x"),
    (dict(x=np.ones((2, 3, 8, 8), np.int32)), TypeError, "x"),
    (dict(block_size=9), ValueError, "block_size"),
    (dict(block_size=0), ValueError, "block_size"),
    (dict(block_size=2.5), TypeError, "block_size"),
    (dict(block_size=True), TypeError, "block_size"),
    (dict(data_format="NCHW"), ValueError, "data_format"),
    (dict(data_format="channels_last"), ValueError, "block_size"),  # maps (3, 8) < 4
    (dict(p=-0.1), ValueError, "p"),
    (dict(p=1.5), ValueError, "p"),
    (dict(p="0.5"), TypeError, "p"),
    (dict(eps=-1.0), ValueError, "eps"),
    (dict(out=np.empty((2, 3, 8, 7), np.float32)), ValueError, "out"),
    (dict(out=np.empty((2, 3, 8, 8), np.float64)), TypeError, "out"),
    (dict(rng="seed"), TypeError, "rng"),
]


@pytest.mark.parametrize("kw, exc, name", BAD)
@pytest.mark.parametrize("training", [True, False])
def test_bad_input_raises_and_leaves_input_untouched(kw, exc, name, training):
    args = dict(x=data((2, 3, 8, 8)), p=0.5, block_size=4)
    args.update(kw)
    x = args.pop("x")
    before = x.copy()
    gen = Generator(1)
    call = dict(dict(rng=gen), **args)
    if "rng" in kw and not training:  # eval mode draws nothing, as dropout's does
        assert db.drop_block(x, training=False, **call) is x
        return
    with pytest.raises(exc, match=rf"^{name}:"):
        db.drop_block(x, training=training, **call)
    assert np.array_equal(x, before) and gen.offset == 0
    if training:
        with pytest.raises(exc, match=rf"^{name}:"):
            db.drop_block_forward(x, **call)


def test_bad_input_of_aliases_backward_and_layer():
    with pytest.raises(ValueError, match="^input:"):
        db.drop_block2d(np.ones((1, 2, 3, 4, 5), np.float32), 0.1, 1)
    with pytest.raises(ValueError, match="^input:"):
        db.drop_block3d(np.ones((1, 2, 3, 4), np.float32), 0.1, 1)
    with pytest.raises(ValueError, match="^block_size:"):
        db.drop_block2d(np.ones((1, 2, 3, 4), np.float32), 0.1, 4)
    _, m = db.drop_block_forward(np.ones((1, 1, 4, 4)), 0.5, 2, rng=0)
    with pytest.raises(ValueError, match="^dy:"):
        db.drop_block_backward(np.ones((1, 1, 4, 5)), m)
    with pytest.raises(TypeError, match="^m:"):
        db.drop_block_backward(np.ones((1, 1, 4, 4)), object())
    with pytest.raises(ValueError, match="^mask:"):
        db.drop_block_forward(np.ones((1, 1, 4, 4)), 0.5, 2, mask="bytes")
    with pytest.raises(ValueError, match="^mask:"):
        db.DropBlock(0.5, 2, mask="bytes")
    with pytest.raises(ValueError, match="^block_size:"):
        db.DropBlock(0.5, 0)
    with pytest.raises(ValueError, match="^data_format:"):
        db.DropBlock(0.5, 2, data_format="NHWC")


# --------------------------------------------------------------------------- (i) eval mode
def test_eval_returns_x_itself():
    x = data((2, 3, 8, 8))
    gen = Generator(3)
    assert db.drop_block(x, 0.5, 3, training=False, rng=gen) is x
    assert db.drop_block2d(x, 0.5, 3, training=False) is x
    out = np.empty_like(x)
    assert db.drop_block(x, 0.5, 3, training=False, out=out) is out and np.array_equal(out, x)
    assert gen.offset == 0
    with pytest.raises(TypeError, match="^training:"):
        db.drop_block(x, 0.5, 3, training="no")


def test_docstring_examples():
    result = doctest.testmod(db, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
