"""Embedding dropout's kernels (df_embedding_fwd/bwd in C, their Numba twins in
dropout_fast/_ref_embedding.py) against each other and against a plain-numpy
oracle, bit for bit: the forward gather ``keep[ids] ? weight[ids] * a : +0``
and the backward ``numpy.add.at`` into zeros followed by the row mask. Every
instruction set, 1 and 2 threads, both dtypes, duplicated and empty ids, zero
width, strided and Fortran-order inputs, signed zeros and non-finite values,
and ids outside [0, V)."""
import numpy as np
import oracle
import pytest

import dropout_fast as df
from dropout_fast import _config, _core, reference
from dropout_fast.api import variant_coefficients

DTYPES = [np.float32, np.float64]
ISAS = [i for i in _config.ISA_CODES if _config.isa_available(i)]
SEED = 0x5EED_E3B


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request, monkeypatch):
    monkeypatch.setattr(_config, "nthreads", request.param)
    return request.param


def same(a, b, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert a.tobytes() == b.tobytes(), f"{what}: not bit-identical"


def scale(p, dtype):
    return np.dtype(dtype).type(variant_coefficients("embedding_dropout", p, np.dtype(dtype),
                                                     {})[0])


def oracle_forward(w, ids, keep, a):
    flat = ids.reshape(-1)
    t = w.dtype.type
    with np.errstate(all="ignore"):
        out = np.where(keep[flat][:, None], w[flat] * a, t(0))
    return out.reshape(ids.shape + (w.shape[1],))


def oracle_backward(dout, ids, keep, a, vocab):
    dim = dout.shape[-1]
    grad = np.zeros((vocab, dim), dout.dtype)
    with np.errstate(all="ignore"):
        np.add.at(grad, ids.reshape(-1), dout.reshape(ids.size, dim))
        return np.where(keep[:, None], grad * a, dout.dtype.type(0))


def values(rs, shape, dtype, specials=True):
    """Normal values with signed zeros, infinities and NaN sprinkled in."""
    v = rs.standard_normal(shape).astype(dtype)
    if specials and v.size:
        flat = v.reshape(-1)
        pick = rs.integers(0, flat.size, size=max(1, flat.size // 10))
        flat[pick] = rs.choice(np.array([-0.0, 0.0, np.inf, -np.inf, np.nan, 1e30],
                                        dtype=dtype), size=pick.size)
    return v


CASES = [  # (vocab, dim, ids shape): duplicates are certain where ids outnumber rows
    (50, 8, (4, 20)),
    (7, 1, (33,)),
    (300, 130, (2, 500)),     # 39 000 output elements: 2 threads really split
    (1000, 40, (1200,)),
    (3, 5, (0,)),             # no ids: the gradient is all +0.0
    (6, 0, (2, 3)),           # zero width
    (0, 4, (0, 2)),           # empty vocabulary
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("p", [0.3, 0.0, 1.0])
def test_c_numba_oracle(case, dtype, p, threads):
    vocab, dim, ishape = case
    rs = np.random.default_rng(vocab * 31 + dim)
    w = values(rs, (vocab, dim), dtype)
    ids = rs.integers(0, max(vocab, 1), size=ishape)
    dout = values(rs, ishape + (dim,), dtype)
    out, m = df.embedding_dropout_forward(w, ids, p, rng=SEED)
    rout, rm = reference.embedding_dropout_forward(w, ids, p, rng=SEED)
    same(m.bits, rm.bits, "mask")
    keep = np.unpackbits(m.bits, count=vocab, bitorder="little").astype(bool)
    np.testing.assert_array_equal(keep, oracle.mask_bool(vocab, SEED, 0, p))
    a = scale(p, dtype)
    same(out, oracle_forward(w, ids, keep, a), "forward vs oracle")
    same(rout, out, "forward: Numba vs C")
    for mm in (m, df.embedding_dropout_forward(w, ids, p, rng=SEED, mask="recompute")[1]):
        grad = df.embedding_dropout_backward(dout, ids, mm)
        same(grad, oracle_backward(dout, ids, keep, a, vocab), "backward vs oracle")
        same(reference.embedding_dropout_backward(dout, ids, mm), grad, "backward: Numba vs C")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("isa", ISAS)
def test_every_isa_and_thread_count_agree(dtype, isa):
    rs = np.random.default_rng(5)
    vocab, dim = 700, 67          # odd width: every vector body's tail
    w = values(rs, (vocab, dim), dtype)
    ids = rs.integers(0, vocab, size=2000)
    ids[::7] = 3                  # one row with hundreds of tokens
    dout = values(rs, (2000, dim), dtype)
    base_out, m = df.embedding_dropout_forward(w, ids, 0.4, rng=SEED)
    base_grad = reference.embedding_dropout_backward(dout, ids, m)
    saved = _config.nthreads
    try:
        with _config.force_isa(isa):
            for nt in (1, 2, 3):
                _config.nthreads = nt
                same(df.embedding_dropout_forward(w, ids, 0.4, rng=SEED)[0], base_out, isa)
                same(df.embedding_dropout_backward(dout, ids, m), base_grad, isa)
    finally:
        _config.nthreads = saved


def test_signed_zeros_sum_as_numpy_add_at():
    """A row with one token whose gradient is -0.0 sums to +0.0 + -0.0 = +0.0, as
    numpy.add.at into zeros gives; a kept row without tokens is +0.0 too."""
    w = np.ones((16, 3), np.float32)
    ids = np.arange(16)
    dout = np.full((16, 3), -0.0, np.float32)
    _, m = df.embedding_dropout_forward(w, ids, 0.0, rng=0)
    grad = df.embedding_dropout_backward(dout, ids, m)
    assert not np.signbit(grad).any()
    same(grad, reference.embedding_dropout_backward(dout, ids, m))


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_inputs(dtype, threads):
    """Row-strided, reversed, broadcast (stride 0) and Fortran-order matrices and
    non-contiguous dout give what their contiguous copies give."""
    rs = np.random.default_rng(9)
    base = values(rs, (40, 2, 12), dtype, specials=False)
    ids = rs.integers(0, 40, size=(3, 25)).astype(np.int32)
    weights = {
        "row stride": base[:, 0, :],
        "reversed rows": base[::-1, 1, :],
        "Fortran order": np.asfortranarray(base[:, 0, :]),
        "strided columns": base[:, 0, ::2],
        "broadcast rows": np.broadcast_to(base[0, 0, :], (40, 12)),
    }
    for name, w in weights.items():
        out, m = df.embedding_dropout_forward(w, ids, 0.5, rng=SEED)
        want, _ = df.embedding_dropout_forward(np.ascontiguousarray(w), ids, 0.5, rng=SEED)
        same(out, want, name)
        same(reference.embedding_dropout_forward(w, ids, 0.5, rng=SEED)[0], want, name)
    dbase = values(rs, (3, 25, 2, 24), dtype)
    _, m = df.embedding_dropout_forward(weights["row stride"], ids, 0.5, rng=SEED)
    for name, dout in {"row stride": dbase[:, :, 1, :12], "reversed": dbase[::-1, :, 0, 12:],
                       "strided columns": dbase[:, :, 0, ::2]}.items():
        grad = df.embedding_dropout_backward(dout, ids, m)
        same(grad, df.embedding_dropout_backward(np.ascontiguousarray(dout), ids, m), name)
        same(reference.embedding_dropout_backward(dout, ids, m), grad, name)


@pytest.mark.parametrize("idtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32,
                                    np.int64, np.uint64])
def test_id_dtypes(idtype):
    w = np.random.default_rng(1).standard_normal((20, 3))
    ids = np.array([[0, 19, 5], [5, 5, 7]], idtype)
    out, m = df.embedding_dropout_forward(w, ids, 0.5, rng=SEED)
    want, _ = df.embedding_dropout_forward(w, ids.astype(np.int64), 0.5, rng=SEED)
    same(out, want)
    dout = np.ones(ids.shape + (3,))
    same(df.embedding_dropout_backward(dout, ids, m),
         df.embedding_dropout_backward(dout, ids.astype(np.int64), m))


@pytest.mark.parametrize("bad", [[-1], [20], [0, 3, 2**40], np.array([2**63 + 1], np.uint64)],
                         ids=["negative", "V", "huge", "uint64"])
@pytest.mark.parametrize("mod", [df, reference], ids=["c", "numba"])
def test_bad_ids(bad, mod):
    w = np.ones((20, 3), np.float32)
    g = df.Generator(SEED)
    with pytest.raises(ValueError, match="ids"):
        mod.embedding_dropout_forward(w, np.asarray(bad), 0.5, rng=g)
    assert g.offset == 0, "a refused call consumed counter blocks"
    _, m = mod.embedding_dropout_forward(w, np.array([1, 2]), 0.5, rng=g)
    with pytest.raises(ValueError, match="ids"):
        mod.embedding_dropout_backward(np.ones((len(bad), 3), np.float32), np.asarray(bad), m)
    with pytest.raises(TypeError, match="ids"):
        mod.embedding_dropout_forward(w, np.array([0.5]), 0.5, rng=g)


@pytest.mark.parametrize("kernels", [_core, reference], ids=["c", "numba"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_check_ids_and_write_nothing(kernels, dtype):
    """The kernels themselves refuse an id outside [0, V) (the C contract's
    DF_ERR_INDEX), before writing any output."""
    w = np.ones((10, 4), dtype)
    bits = np.full(2, 0xFF, np.uint8)
    for bad in ([0, 10], [-1, 3], [9, -(2**62)]):
        ids = np.array(bad, np.int64)
        out = np.full((2, 4), 7, dtype)
        with pytest.raises(ValueError, match=r"ids: .*\[0, 10\)"):
            kernels.embedding_fwd(w, ids, bits, 2.0, out, 1, -1)
        assert (out == 7).all()
        grad = np.full((10, 4), 7, dtype)
        with pytest.raises(ValueError, match=r"ids: .*\[0, 10\)"):
            kernels.embedding_bwd(np.ones((2, 4), dtype), ids, bits, 2.0, grad, 1, -1)
        assert (grad == 7).all()


def test_c_wrapper_refuses_unsafe_buffers():
    w = np.ones((10, 4), np.float32)
    bits = np.zeros(2, np.uint8)
    ids = np.zeros(3, np.int64)
    with pytest.raises(ValueError, match="weight"):
        _core.embedding_fwd(np.asfortranarray(w), ids, bits, 1.0, np.empty((3, 4), np.float32),
                            1, -1)
    with pytest.raises(ValueError, match="out"):
        _core.embedding_fwd(w, ids, bits, 1.0, np.empty((2, 4), np.float32), 1, -1)
    with pytest.raises(TypeError, match="ids"):
        _core.embedding_fwd(w, ids.astype(np.int32), bits, 1.0, np.empty((3, 4), np.float32),
                            1, -1)
    with pytest.raises(ValueError, match="bits"):
        _core.embedding_bwd(np.ones((3, 4), np.float32), ids, bits[:1], 1.0, w, 1, -1)
    with pytest.raises(ValueError, match="ids"):
        _core.embedding_bwd(np.ones((3, 4), np.float32), ids[:2], bits, 1.0, w, 1, -1)
