"""Standard dropout through the public API: bit-exact against the plain-numpy
oracle and the Numba reference, invariant to threads, SIMD path and splitting,
statistically sound, and with a correct backward."""
import numpy as np
import pytest

import dropout_fast as df
from dropout_fast import _config, reference
from oracle import dropout as oracle_dropout
from oracle import packbits, threshold, tie_count

SIZES = [0, 1, 3, 4, 5, 31, 1000, 2**20 + 3]
DTYPES = [np.float32, np.float64]
ISAS = [name for name in _config.ISA_CODES if _config.isa_available(name)]


def at(seed, offset):
    """A Generator with the given seed, positioned at block `offset`."""
    g = df.Generator(seed)
    g.state = {**g.state, "offset": offset}
    return g


def data(n, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(n).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.3])
def test_forward_matches_oracle(n, dtype, p):
    x = data(n, dtype)
    seed, offset = 0x0123456789ABCDEF, 12345
    y_ref, keep = oracle_dropout(x, seed, offset, p)
    g = at(seed, offset)
    y, m = df.dropout_forward(x, p, rng=g)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y.view(np.uint8), y_ref.view(np.uint8))
    np.testing.assert_array_equal(m.bits, packbits(keep))
    assert g.offset == offset + (n + 7) // 8
    np.testing.assert_array_equal(m.to_bool(), keep)


@pytest.mark.parametrize("offset", [2**32 - 3, 2**64 - 2, 2**96 - 600])
def test_counter_carries(offset):
    """Block indices that carry past 2**32 and 2**64 inside one call."""
    x = data(4099, np.float32)
    y_ref, keep = oracle_dropout(x, 7, offset, 0.3)
    y, m = df.dropout_forward(x, 0.3, rng=at(7, offset))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(m.bits, packbits(keep))


@pytest.mark.parametrize("dtype", DTYPES)
def test_numba_reference_matches_c(dtype):
    x = data(2**16 + 5, dtype)
    for p, offset in [(0.3, 2**32 - 100), (0.5, 0), (0.9, 2**64 - 7)]:
        y_c, m_c = df.dropout_forward(x, p, rng=at(11, offset))
        y_r, m_r = reference.dropout_forward(x, p, rng=at(11, offset))
        np.testing.assert_array_equal(y_c, y_r)
        np.testing.assert_array_equal(m_c.bits, m_r.bits)
        dy = data(x.size, dtype, 1)
        np.testing.assert_array_equal(df.dropout_backward(dy, m_c),
                                      reference.dropout_backward(dy, m_r))


def test_tie_path_exercised():
    """p = 0.3 gives T with nonzero low 16 bits: ties A == T >> 16 must be resolved
    by stream 1. The oracle counts them; every backend must agree on those lanes."""
    p, n, seed = 0.3, 2**20, 99
    assert threshold(p) & 0xFFFF != 0
    assert tie_count(n, seed, 0, p) > 0
    x = np.ones(n, np.float32)
    y_ref, _ = oracle_dropout(x, seed, 0, p)
    for isa in ISAS:
        with _config.force_isa(isa):
            np.testing.assert_array_equal(df.dropout(x, p, rng=seed), y_ref, err_msg=isa)


def test_half_threshold_has_no_low_bits():
    assert threshold(0.5) & 0xFFFF == 0
    x = data(5000, np.float64)
    np.testing.assert_array_equal(df.dropout(x, 0.5, rng=3), oracle_dropout(x, 3, 0, 0.5)[0])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_invariant_to_isa_and_threads(isa, threads, monkeypatch):
    x = data(2**20 + 13, np.float32)
    y_ref, keep = oracle_dropout(x, 5, 77, 0.3)
    monkeypatch.setattr(_config, "nthreads", threads)
    with _config.force_isa(isa):
        y, m = df.dropout_forward(x, 0.3, rng=at(5, 77))
        dx = df.dropout_backward(x, m)
        dx_re = df.dropout_backward(x, df.dropout_forward(x, 0.3, rng=at(5, 77),
                                                          mask="recompute")[1])
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(m.bits, packbits(keep))
    np.testing.assert_array_equal(dx, y_ref)
    np.testing.assert_array_equal(dx_re, y_ref)


def test_split_calls_equal_one_call():
    x = data(8 * 1000 + 3, np.float32)
    whole = df.dropout(x, 0.3, rng=at(9, 40))
    g = at(9, 40)
    parts = [df.dropout(x[a:b], 0.3, rng=g) for a, b in [(0, 800), (800, 8000), (8000, x.size)]]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place(dtype):
    x = data(1001, dtype)
    y_ref, _ = oracle_dropout(x, 1, 0, 0.3)
    y = df.dropout(x, 0.3, rng=1, out=x)
    assert y is x
    np.testing.assert_array_equal(x, y_ref)


def test_non_contiguous_views_follow_logical_order():
    base = data(64 * 50, np.float64).reshape(64, 50)
    for view in [base[::2, 1::3], base.T, base[::-1], np.asfortranarray(base)]:
        y_ref, keep = oracle_dropout(np.ascontiguousarray(view), 4, 9, 0.4)
        y, m = df.dropout_forward(view, 0.4, rng=at(4, 9))
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(m.to_bool(), keep)


def test_out_views_and_overlap():
    x = data(300, np.float32)
    y_ref, _ = oracle_dropout(x, 2, 0, 0.5)
    strided = np.zeros(600, np.float32)
    df.dropout(x, 0.5, rng=2, out=strided[::2])
    np.testing.assert_array_equal(strided[::2], y_ref)
    assert not strided[1::2].any()
    # out overlapping x without being it: the input must be read before it is written
    buf = np.concatenate([x, np.zeros(1, np.float32)])
    df.dropout(buf[:-1], 0.5, rng=2, out=buf[1:])
    np.testing.assert_array_equal(buf[1:], y_ref)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction_within_5_sigma(p):
    n = 2**22
    y = df.dropout(np.ones(n, np.float32), p, rng=123)
    kept = np.count_nonzero(y)
    sigma = np.sqrt(n * p * (1 - p))
    assert abs(kept - n * (1 - p)) < 5 * sigma


def test_mean_preserved():
    x = np.full(2**21, 3.0)
    y = df.dropout(x, 0.2, rng=8)
    sigma = 3.0 * np.sqrt(0.2 / 0.8) / np.sqrt(x.size)
    assert abs(y.mean() - 3.0) < 5 * sigma


def test_backward_bits_equals_recompute():
    x = data(4097, np.float32)
    dy = data(4097, np.float32, 2)
    _, m_bits = df.dropout_forward(x, 0.3, rng=at(6, 3))
    _, m_re = df.dropout_forward(x, 0.3, rng=at(6, 3), mask="recompute")
    assert m_bits.nbytes == (4097 + 7) // 8 and m_re.nbytes == 0 and m_re.bits is None
    np.testing.assert_array_equal(df.dropout_backward(dy, m_bits), df.dropout_backward(dy, m_re))
    np.testing.assert_array_equal(m_bits.to_bool(), m_re.to_bool())


def test_gradient_matches_finite_differences():
    """d/dx sum(w * dropout(x)) with the mask held fixed (same generator state)."""
    rs = np.random.default_rng(0)
    x, w = rs.standard_normal(257), rs.standard_normal(257)
    p, eps = 0.35, 1e-6

    def loss(v):
        return float(np.sum(w * df.dropout(v, p, rng=at(10, 0))))

    _, m = df.dropout_forward(x, p, rng=at(10, 0))
    grad = df.dropout_backward(w, m)
    fd = np.array([(loss(x + eps * e) - loss(x - eps * e)) / (2 * eps) for e in np.eye(x.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_identities():
    x = data(100, np.float32)
    g = at(1, 5)
    assert df.dropout(x, 0.5, training=False, rng=g) is x
    assert g.offset == 5  # eval mode draws nothing
    y, m = df.dropout_forward(x, 0.0, rng=g)
    np.testing.assert_array_equal(y, x)
    assert m.to_bool().all() and y is not x
    np.testing.assert_array_equal(df.dropout_backward(x, m), x)
    out = np.empty_like(x)
    assert df.dropout(x, 0.3, training=False, out=out) is out
    np.testing.assert_array_equal(out, x)


def test_p_one_gives_zeros_and_zero_gradients():
    x = data(100, np.float64)
    y, m = df.dropout_forward(x, 1.0, rng=0)
    assert not y.any() and not np.signbit(y).any()
    assert not df.dropout_backward(x, m).any()
    assert not m.to_bool().any()


def test_empty_and_zero_size():
    for shape in [(0,), (3, 0, 2)]:
        x = np.empty(shape, np.float32)
        y, m = df.dropout_forward(x, 0.5, rng=0)
        assert y.shape == shape and m.bits.size == 0 and m.to_bool().shape == shape
        assert df.dropout_backward(x, m).shape == shape


def test_layer_train_eval():
    layer = df.Dropout(0.25, rng=0)
    x = data(64, np.float32).reshape(8, 8)
    y = layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)) != 0, y != 0)
    layer.eval()
    assert layer.forward(x) is x
    assert layer.backward(x) is x
    assert df.Dropout(0.5, mask="recompute", rng=1).train().forward(x).shape == x.shape
