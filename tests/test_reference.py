"""The Numba backend (dropout_fast.reference), called through the kernel
interface the API layer uses, against Random123's known answers and the
plain-numpy oracle, bit for bit."""
import functools
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import oracle
from dropout_fast import reference as ref

# Random123 kat_vectors: (counter, key, 10 rounds, 7 rounds).
KAT = [
    ((0, 0, 0, 0), (0, 0),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8),
     (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2,
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
     (0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
     (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A)),
]

SIZES = [0, 1, 3, 4, 5, 31, 1000, 2**20 + 3]
DTYPES = [np.float32, np.float64]
PS = [0.1, 0.5, 0.9, 0.3, 0.0, 1.0]
# block0 values: plain, odd, carrying past 2**32 and into the top word inside the call.
OFFSETS = [0, 7, 2**32 - 2, 2**64 - 5]
SEEDS = [0x0123456789ABCDEF, 2**64 - 1, 0, 12345]


@functools.lru_cache(maxsize=None)
def uniform(n, seed, block0):
    """The oracle's U for every element: one stream computation serves every p."""
    return oracle.uniform32(n, seed, block0)


def stream_args(seed, block0, p):
    """key0, key1, block_lo, block_hi, thresh, as the API layer passes them."""
    return (seed & 0xFFFFFFFF, seed >> 32, block0 % 2**64, block0 >> 64, oracle.threshold(p))


def scale(p):
    return float("inf") if p == 1 else 1.0 / (1.0 - p)


def data(n, dtype, seed=0):
    """Normal values with -0.0, NaN, +-inf and values that overflow when scaled."""
    x = (np.random.default_rng(seed).standard_normal(n) * 10).astype(dtype)
    x[::97] = -0.0
    x[1::101] = np.nan
    x[2::103] = np.inf
    x[3::107] = -np.inf
    x[4::109] = np.finfo(dtype).max
    return x


def assert_bits_equal(got, want):
    """Equal as bit patterns: +0.0 is not -0.0, NaN payloads count."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.tobytes() != want.tobytes():
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("rounds", [7, 10])
def test_philox_known_answers(rounds):
    ctr = np.array([c for c, _, _, _ in KAT], dtype=np.uint32)
    key = np.array([k for _, k, _, _ in KAT], dtype=np.uint32)
    want = np.array([r10 if rounds == 10 else r7 for _, _, r10, r7 in KAT], dtype=np.uint32)
    out = np.zeros_like(ctr)
    ref.philox4x32(ctr, key, out, rounds)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(oracle.philox4x32(ctr, key, rounds), want)


def test_philox_matches_oracle_every_round_count():
    rng = np.random.default_rng(1)
    ctr = rng.integers(0, 2**32, size=(257, 4), dtype=np.uint32)
    key = rng.integers(0, 2**32, size=(257, 2), dtype=np.uint32)
    ctr[:4] = 0xFFFFFFFF
    key[:2] = 0xFFFFFFFF
    for rounds in range(17):
        out = np.zeros_like(ctr)
        ref.philox4x32(ctr, key, out, rounds)
        np.testing.assert_array_equal(out, oracle.philox4x32(ctr, key, rounds), err_msg=rounds)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", range(len(OFFSETS)))
def test_kernels_match_oracle(k, dtype):
    """mask, fwd (with and without bits, in place) and bwd_bits over sizes and p."""
    seed, block0 = SEEDS[k], OFFSETS[k]
    for n in SIZES:
        u = uniform(n, seed, block0)
        x = data(n, dtype, k)
        dy = data(n, dtype, k + 10)
        nb = (n + 7) // 8
        for p in PS:
            args = stream_args(seed, block0, p)
            keep = u < np.uint64(args[-1])
            y_want, bits_want = oracle.apply_mask(x, keep, p), oracle.packbits(keep)
            msg = f"n={n} p={p} block0={block0:#x} {np.dtype(dtype)}"

            y, bits = np.full_like(x, 7), np.full(nb, 0xA5, np.uint8)
            ref.fwd(x, y, bits, *args, scale(p), 0, -1)
            assert_bits_equal(y, y_want)
            np.testing.assert_array_equal(bits, bits_want, err_msg=msg)

            y = np.full_like(x, 7)
            ref.fwd(x, y, None, *args, scale(p), 0, -1)
            assert_bits_equal(y, y_want)

            z = x.copy()
            ref.fwd(z, z, None, *args, scale(p), 0, -1)
            assert_bits_equal(z, y_want)

            m = np.full(nb, 0xFF, np.uint8)
            ref.mask(m, n, *args, 0, -1)
            np.testing.assert_array_equal(m, bits_want, err_msg=msg)

            dx = np.full_like(dy, 7)
            ref.bwd_bits(dy, dx, bits_want, scale(p), 0, -1)
            dx_want = oracle.apply_mask(dy, keep, p)
            assert_bits_equal(dx, dx_want)
            d = dy.copy()
            ref.bwd_bits(d, d, bits_want, scale(p), 0, -1)
            assert_bits_equal(d, dx_want)


@pytest.mark.parametrize("p", [0.3, 0.1, 0.9])
def test_tie_path_exercised(p):
    """T with nonzero low 16 bits: some elements have A == T >> 16 and are decided
    by stream 1, both ways; the kernels must still equal the oracle."""
    n, seed, block0 = 2**20 + 3, 99, 2**32 - 5
    t = oracle.threshold(p)
    assert t & 0xFFFF != 0
    a = oracle.draws(n, seed, block0, 0)
    b = oracle.draws(n, seed, block0, 1)
    tie = a == np.uint64(t >> 16)
    assert oracle.tie_count(n, seed, block0, p) == tie.sum() > 0
    assert (tie & (b < np.uint64(t & 0xFFFF))).any() and (tie & (b >= np.uint64(t & 0xFFFF))).any()
    x = data(n, np.float32)
    y_want, keep = oracle.dropout(x, seed, block0, p)
    y, bits = np.empty_like(x), np.empty((n + 7) // 8, np.uint8)
    ref.fwd(x, y, bits, *stream_args(seed, block0, p), scale(p), 0, -1)
    assert_bits_equal(y, y_want)
    np.testing.assert_array_equal(bits, oracle.packbits(keep))


def test_split_calls_equal_one_call():
    """Splitting at a multiple of 8 with block0 advanced by the blocks used
    changes nothing, also across the 2**32 carry."""
    n, seed, block0, p = 50_003, 2**64 - 1, 2**32 - 3000, 0.3
    x = data(n, np.float64)
    y, bits = np.empty_like(x), np.empty((n + 7) // 8, np.uint8)
    ref.fwd(x, y, bits, *stream_args(seed, block0, p), scale(p), 0, -1)
    for cut in (8, 8 * 2999, 8 * 3001, 8 * 4096):
        y2, bits2 = np.empty_like(x), np.empty_like(bits)
        ref.fwd(x[:cut], y2[:cut], bits2[:cut // 8], *stream_args(seed, block0, p), scale(p))
        ref.fwd(x[cut:], y2[cut:], bits2[cut // 8:],
                *stream_args(seed, block0 + cut // 8, p), scale(p))
        assert_bits_equal(y2, y)
        np.testing.assert_array_equal(bits2, bits)


def test_thread_count_does_not_change_output():
    n, p = 2**18 + 5, 0.3
    x = data(n, np.float32)
    out = []
    saved = numba.get_num_threads()
    try:
        for nt in sorted({1, 2, saved}):
            numba.set_num_threads(nt)
            y, bits = np.empty_like(x), np.empty((n + 7) // 8, np.uint8)
            ref.fwd(x, y, bits, *stream_args(7, 2**64 - 5, p), scale(p))
            out.append((y, bits))
    finally:
        numba.set_num_threads(saved)
    for y, bits in out[1:]:
        assert_bits_equal(y, out[0][0])
        np.testing.assert_array_equal(bits, out[0][1])


def test_refuses_out_of_bounds_arguments():
    x = np.ones(17, np.float32)
    with pytest.raises(ValueError, match="bits"):
        ref.fwd(x, x, np.empty(2, np.uint8), 1, 2, 0, 0, 2**31, 2.0)
    with pytest.raises(ValueError, match="y"):
        ref.fwd(x, np.empty(16, np.float32), None, 1, 2, 0, 0, 2**31, 2.0)
    with pytest.raises(TypeError, match="y"):
        ref.fwd(x, np.empty(17, np.float64), None, 1, 2, 0, 0, 2**31, 2.0)
    with pytest.raises(ValueError, match="thresh"):
        ref.mask(np.empty(3, np.uint8), 17, 1, 2, 0, 0, 2**32 + 1)
    with pytest.raises(ValueError, match="2\\*\\*96"):
        ref.mask(np.empty(3, np.uint8), 17, 1, 2, 2**64 - 2, 2**32 - 1, 2**31)
    with pytest.raises(ValueError, match="rounds"):
        ref.philox4x32(np.zeros((1, 4), np.uint32), np.zeros((1, 2), np.uint32),
                       np.zeros((1, 4), np.uint32), 17)
    assert np.all(x == 1)


def test_import_does_not_compile():
    code = ("from dropout_fast import reference as r\n"
            "ks = [r._philox_kernel, r._mask_kernel, r._fwd_kernel, r._bwd_kernel]\n"
            "assert not any(k.signatures for k in ks)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, cwd=root)
