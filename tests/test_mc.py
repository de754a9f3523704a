"""Monte Carlo dropout (dropout_fast.mc): the sampling rule (each sample equals a
forward pass at its documented offset, batched and unbatched), the Welford
kernels (C, Numba and the oracle bit for bit; every ISA and thread count; one
call with k samples equal to k calls), streaming mean and variance against
numpy, entropy and mutual information against the direct formulas, and bad
input."""
import doctest

import numpy as np
import pytest

import dropout_fast as df
import oracle
from dropout_fast import _config, mc, reference
from dropout_fast.mc import (MCDropout, MCStats, Welford, entropy, mc_offsets, mc_predict,
                             mc_sample, mutual_information)

ISAS = [name for name in _config.ISA_CODES if _config.isa_available(name)]
SEED = 0x0123456789ABCDEF
W1 = np.random.default_rng(1).standard_normal((12, 20))
W2 = np.random.default_rng(2).standard_normal((20, 5))


def at(seed, offset):
    g = df.Generator(seed)
    g.state = {**g.state, "offset": offset}
    return g


def net(x, rng):
    """Two dropout calls per pass: 12 * N and 20 * N mask elements (not multiples of 8
    per row), logits out."""
    h = df.dropout(x, 0.3, rng=rng) @ W1
    return df.dropout(np.maximum(h, 0.0), 0.2, rng=rng) @ W2


class Recorder:
    """forward_fn that keeps each call's output and Generator offset (tests only)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, x, rng):
        start = rng.offset
        y = self.fn(x, rng)
        self.calls.append((start, y.copy()))
        return y


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(np.uint8),
                                  np.ascontiguousarray(b).view(np.uint8))


# --------------------------------------------------------------------------- the sampling rule
def test_unbatched_samples_are_forward_passes_at_their_offsets():
    x = np.random.default_rng(0).standard_normal((7, 12))
    g = at(SEED, 1000)
    rec = Recorder(net)
    s = mc_sample(rec, x, 9, rng=g)
    stride = (7 * 12 + 7) // 8 + (7 * 20 + 7) // 8
    assert s.stride == stride and s.base == 1000 and s.batch == 1 and s.count == 9
    offsets = mc_offsets(9, stride, base=1000)
    assert offsets == s.offsets() == [1000 + t * stride for t in range(9)]
    assert [c[0] for c in rec.calls] == offsets
    assert g.offset == 1000 + 9 * stride
    samples = []
    for t, off in enumerate(offsets):  # each sample regenerated alone
        y = net(x, at(SEED, off))
        same_bits(y, rec.calls[t][1])
        samples.append(y)
    mean, m2 = oracle.welford(samples)
    same_bits(s.mean, mean)
    same_bits(s.output.m2, m2)
    np.testing.assert_allclose(s.mean, np.mean(samples, axis=0), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(s.variance(), np.var(samples, axis=0), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(s.variance(ddof=1), np.var(samples, axis=0, ddof=1), rtol=1e-11,
                               atol=1e-12)


@pytest.mark.parametrize("T, k", [(10, 3), (10, 5), (4, 10), (7, 1)])
def test_batched_calls_follow_the_rule(T, k):
    x = np.random.default_rng(3).standard_normal((6, 12))
    g = at(SEED, 5)
    rec = Recorder(net)
    s = mc_sample(rec, x, T, rng=g, batch=k)
    kk = min(k, T)
    stride = (kk * 6 * 12 + 7) // 8 + (kk * 6 * 20 + 7) // 8
    assert s.stride == stride and [c[0] for c in rec.calls] == mc_offsets(T, stride, base=5,
                                                                           batch=k)
    samples = []
    for c, off in enumerate(mc_offsets(T, stride, base=5, batch=k)):
        kc = min(kk, T - c * kk)
        y = net(np.concatenate([x] * kc), at(SEED, off))
        same_bits(y, rec.calls[c][1])
        samples.extend(np.split(y, kc))
    assert len(samples) == T and g.offset == 5 + len(rec.calls) * stride
    mean, m2 = oracle.welford(samples)
    same_bits(s.mean, mean)
    same_bits(s.output.m2, m2)


def test_batched_equals_unbatched_for_one_dropout_call():
    """One dropout call over 8 * j elements per sample: the tiled mask's row blocks
    are exactly the unbatched samples' masks."""
    x = np.random.default_rng(4).standard_normal((4, 16)).astype(np.float32)

    def f(x, rng):
        return df.dropout(x, 0.5, rng=rng)
    a = mc_sample(f, x, 12, rng=at(SEED, 0))
    b = mc_sample(f, x, 12, rng=at(SEED, 0), batch=5)
    same_bits(a.mean, b.mean)
    same_bits(a.output.m2, b.output.m2)


def test_t_samples_equal_separate_dropout_calls():
    x = np.random.default_rng(5).standard_normal((3, 11)).astype(np.float32)
    s = mc_sample(lambda x, rng: df.dropout(x, 0.4, rng=rng), x, 6, rng=at(SEED, 40))
    m = (x.size + 7) // 8
    samples = [df.dropout(x, 0.4, rng=at(SEED, 40 + t * m)) for t in range(6)]
    same_bits(s.mean, oracle.welford(samples)[0])


def test_explicit_stride_and_errors():
    x = np.ones((2, 12))
    g = at(SEED, 0)
    rec = Recorder(net)
    mc_sample(rec, x, 3, rng=g, stride=100)
    assert [c[0] for c in rec.calls] == [0, 100, 200] and g.offset == 300
    with pytest.raises(RuntimeError, match="stride"):
        mc_sample(net, x, 3, rng=at(SEED, 0), stride=2)
    with pytest.raises(RuntimeError, match="rng"):
        mc_sample(lambda x, rng: df.dropout(x, 0.5, rng=7), x, 3, rng=0)


def test_many_samples_stream():
    """T = 10,000: statistics only, nothing per sample is kept."""
    x = np.random.default_rng(6).standard_normal((4, 8)).astype(np.float32)
    s = mc_sample(lambda x, rng: df.dropout(x, 0.5, rng=rng), x, 10_000, rng=1, batch=500)
    assert s.count == 10_000 and s.stride == 500 * 4
    np.testing.assert_allclose(s.mean, x, rtol=0.1, atol=0.05)
    np.testing.assert_allclose(s.variance(), x.astype(np.float64) ** 2, rtol=0.1, atol=0.05)


# --------------------------------------------------------------------------- Welford kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("length", [1, 7, 2049, 40000])
def test_welford_kernels_match_oracle(monkeypatch, dtype, length):
    samples = (np.random.default_rng(length).standard_normal((5, length)) * 100 + 3).astype(dtype)
    mean_ref, m2_ref = oracle.welford(samples)
    for kernels in (_config.kernels, reference):
        mean, m2 = np.zeros(length), np.zeros(length)
        kernels.welford_update(samples[:2].reshape(-1), mean, m2, 0, 0, -1)
        kernels.welford_update(samples[2].copy(), mean, m2, 2, 0, -1)
        kernels.welford_update(samples[3:].reshape(-1), mean, m2, 3, 0, -1)
        same_bits(mean, mean_ref)
        same_bits(m2, m2_ref)
        var = np.empty(length)
        kernels.welford_var(m2, var, 5, 1, 0, -1)
        same_bits(var, m2_ref / 4.0)
    for isa in ISAS:
        for nt in (1, 2, 3):
            monkeypatch.setattr(_config, "nthreads", nt)
            with _config.force_isa(isa):
                w = Welford(length)
                w.update_many(samples)
            same_bits(w.mean, mean_ref)
            same_bits(w.m2, m2_ref)


def test_welford_class():
    rng = np.random.default_rng(8)
    samples = rng.standard_normal((20, 3, 4))
    w = Welford((3, 4))
    for s in samples[:10]:
        w.update(s)
    w.update_many(samples[10:])
    assert w.count == 20 and "count=20" in repr(w)
    np.testing.assert_allclose(w.mean, samples.mean(axis=0), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(w.variance(), samples.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(w.std(ddof=1), samples.std(axis=0, ddof=1), rtol=1e-12)
    assert not w.mean.flags.writeable
    w.update(np.asfortranarray(samples[0]))  # any layout
    assert w.count == 21


# --------------------------------------------------------------------------- entropy, BALD
def test_entropy_against_direct_formula():
    p = np.random.default_rng(9).dirichlet(np.ones(6), size=(4, 5))
    p[0, 0] = [1, 0, 0, 0, 0, 0]
    p[0, 1] = [0.5, 0.5, 0, 0, 0, 0]
    h = entropy(p)
    np.testing.assert_allclose(h, oracle.entropy(p), rtol=1e-13, atol=1e-16)
    assert h[0, 0] == 0.0 and abs(h[0, 1] - np.log(2)) < 1e-15
    samples = np.random.default_rng(10).dirichlet(np.ones(4) * 0.3, size=(30, 8))
    mi = mutual_information(samples)
    direct = oracle.entropy(samples.mean(axis=0)) - oracle.entropy(samples).mean(axis=0)
    np.testing.assert_allclose(mi, direct, rtol=1e-12, atol=1e-15)
    assert np.all(mi >= 0)


@pytest.mark.parametrize("batch", [None, 4])
def test_streamed_uncertainty_matches_stacked(batch):
    x = np.random.default_rng(11).standard_normal((9, 12))
    rec = Recorder(net)
    s = mc_sample(rec, x, 10, rng=at(SEED, 0), batch=batch, output="logits")
    logits = np.concatenate([np.split(y, len(y) // 9) for _, y in rec.calls])
    z = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    mean = probs.mean(axis=0)
    np.testing.assert_allclose(s.mean, mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s.variance(), probs.var(axis=0), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(s.predictive_entropy, oracle.entropy(mean), rtol=1e-12)
    np.testing.assert_allclose(s.expected_entropy, oracle.entropy(probs).mean(axis=0),
                               rtol=1e-12)
    mi = oracle.entropy(mean) - oracle.entropy(probs).mean(axis=0)
    np.testing.assert_allclose(s.mutual_information, np.maximum(mi, 0), rtol=1e-9, atol=1e-14)
    r = mc_predict(net, x, 10, rng=at(SEED, 0), batch=batch, output="logits")
    same_bits(r.mean, s.mean)
    same_bits(r.mutual_information, s.mutual_information)
    assert r.predicted_class.tolist() == np.argmax(mean, axis=-1).tolist()


def test_probs_output_and_wrapper():
    def probs(x, rng):
        z = net(x, rng).astype(np.float32)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    x = np.random.default_rng(12).standard_normal((5, 12))
    model = MCDropout(probs, T=20, rng=3, batch=7)
    a = model.predict(x)
    b = model(x)  # the owned Generator moved on: new masks
    assert a.mean.shape == (5, 5) and a.variance.shape == (5, 5)
    assert not np.array_equal(a.mean, b.mean)
    np.testing.assert_allclose(a.mean.sum(axis=-1), 1, atol=1e-6)
    s = MCDropout(probs, T=20, rng=3, batch=7).sample(x)
    same_bits(s.mean, a.mean)
    assert isinstance(s, MCStats) and "MCDropout" in repr(model)


# --------------------------------------------------------------------------- bad input
def test_bad_input():
    x = np.ones((2, 12))
    for call, exc, name in [
        (lambda: mc_sample(net, x, 0), ValueError, "T"),
        (lambda: mc_sample(net, x, 2.5), TypeError, "T"),
        (lambda: mc_sample(net, x, True), TypeError, "T"),
        (lambda: mc_sample(net, x, 3, batch=0), ValueError, "batch"),
        (lambda: mc_sample(net, x, 3, stride=0), ValueError, "stride"),
        (lambda: mc_sample("net", x, 3), TypeError, "forward_fn"),
        (lambda: mc_sample(net, x, 3, output="softmax"), ValueError, "output"),
        (lambda: mc_sample(net, np.float64(1), 3, batch=2), ValueError, "x"),
        (lambda: mc_sample(net, x, 3, output="probs"), ValueError, "forward_fn"),
        (lambda: mc_sample(lambda x, r: np.ones(3, int) + 0 * net(x, r)[0, :3].astype(int),
                           x, 2), TypeError, "forward_fn"),
        (lambda: mc_predict(net, x, 3, output=None), ValueError, "output"),
        (lambda: mc_offsets(0, 5), ValueError, "T"),
        (lambda: MCDropout(net, T=-1), ValueError, "T"),
        (lambda: Welford((2, -1)), ValueError, "shape"),
        (lambda: Welford((2,)).update(np.ones(3)), ValueError, "sample"),
        (lambda: Welford((2,)).update(np.ones(2, int)), TypeError, "sample"),
        (lambda: Welford((2,)).variance(), ValueError, "ddof"),
        (lambda: mutual_information(np.ones(3) / 3), ValueError, "samples"),
        (lambda: mc_sample(net, x, 2).predictive_entropy, ValueError, "predictive_entropy"),
    ]:
        with pytest.raises(exc, match=name):
            call()


@pytest.mark.parametrize("p, message", [
    ([[0.5, 0.6]], "sum to 1"), ([[1.5, -0.5]], "non-negative"), ([[np.nan, 1.0]], "NaN"),
    (0.5, "scalar"), ([["a", "b"]], "dtype")])
def test_entropy_refuses_non_probabilities(p, message):
    a = np.array(p) if not isinstance(p, float) else p
    saved = np.array(a, copy=True)
    with pytest.raises((ValueError, TypeError), match=message):
        entropy(a)
    np.testing.assert_array_equal(np.array(a), saved)


def test_mc_leaves_input_and_rng_on_error():
    x = np.random.default_rng(0).standard_normal((2, 12))
    saved = x.copy()
    g = at(SEED, 17)
    with pytest.raises(ValueError):
        mc_sample(net, x, 3, rng=g, output="probs")
    same_bits(x, saved)
    assert g.offset == 17


def test_docstring_examples():
    result = doctest.testmod(mc, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
