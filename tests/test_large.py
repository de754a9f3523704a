"""64-bit sizes and offsets end to end: a mask of more than 2**32 elements, and a
96-bit block index whose low 64 bits carry into the third counter word in the
middle of a call, on every instruction set and thread count.

The big mask stays cheap: 2**32 + 24 rows of a broadcast (read-only, 16-byte)
embedding matrix give 512 MiB of packed bits and a few gathered rows.
"""
import numpy as np
import oracle
import pytest

import dropout_fast as df
from dropout_fast import _config, reference

SEED = 0x5EED_0000_0000_0007
P = 0.3


def _keep_at(seed, offset, index, p):
    """keep(index) of a mask drawn at block `offset`, from the numpy oracle alone."""
    return bool(oracle.mask_bool(8, seed, offset + index // 8, p)[index % 8])


def test_mask_of_more_than_2_pow_32_elements():
    vocab = 2**32 + 24
    weight = np.broadcast_to(np.arange(1, 5, dtype=np.float32), (vocab, 4))
    g = df.Generator(SEED)
    g.advance(2**64 - 2**28 - 3)  # the block index also carries past 2**64 mid-call
    offset = g.offset
    # Rows at both ends, around 2**31 and 2**32 (int32 and uint32 overflow) and
    # around element 8 * (2**28 + 3), where the block index passes 2**64.
    ids = np.array([0, 1, 7, 8, 2**31 - 1, 2**31, 2**31 + 9, 8 * (2**28 + 3) - 1,
                    8 * (2**28 + 3), 8 * (2**28 + 3) + 8, 2**32 - 1, 2**32, 2**32 + 8,
                    vocab - 1], dtype=np.int64)
    out, m = df.embedding_dropout_forward(weight, ids, P, rng=g)
    assert g.offset == offset + (vocab + 7) // 8
    assert m.bits.size == (vocab + 7) // 8
    keep = np.array([_keep_at(SEED, offset, int(i), P) for i in ids])
    assert keep.any() and not keep.all()
    scale = np.float32(1 / (1 - P))
    expect = np.where(keep[:, None], np.arange(1, 5, dtype=np.float32) * scale, np.float32(0))
    np.testing.assert_array_equal(out, expect)
    # The bits around the 2**32 boundary, byte for byte, against the oracle.
    # The mask's last 7 bytes cover elements 2**32 - 32 to 2**32 + 24.
    tail = oracle.packbits(oracle.mask_bool(56, SEED, offset + 2**29 - 4, P))
    np.testing.assert_array_equal(m.bits[2**29 - 4:], tail)
    # Keep fraction over all 2**32 + 24 elements within 5 sigma.
    kept = int(np.bitwise_count(m.bits[:2**29].view(np.uint64)).sum(dtype=np.int64)) + \
        int(np.bitwise_count(m.bits[2**29:]).sum())
    assert abs(kept - vocab * (1 - P)) < 5 * np.sqrt(vocab * P * (1 - P))


def _isas():
    return [i for i in _config.ISA_CODES if _config.isa_available(i)]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_96_bit_carry_across_threads_and_isas(threads):
    """A 2**20-element call whose block index passes 2**64 inside some thread's chunk,
    then 2**64 * 3 + ... (a carry into a top word already non-zero)."""
    n = 2**20 + 5
    for offset in (2**64 - 50_001, (3 << 64) - 1):
        expect = oracle.packbits(oracle.mask_bool(n, SEED, offset, P))
        ref = np.empty_like(expect)
        reference.mask(ref, n, SEED & 0xFFFFFFFF, SEED >> 32, offset % 2**64, offset >> 64,
                       oracle.threshold(P))
        np.testing.assert_array_equal(ref, expect)
        x = np.ones(n, np.float32)
        for isa in _isas():
            with _config.force_isa(isa):
                old = _config.nthreads
                _config.nthreads = threads
                try:
                    g = df.Generator(SEED)
                    g.advance(offset)
                    y, m = df.dropout_forward(x, P, rng=g)
                finally:
                    _config.nthreads = old
            np.testing.assert_array_equal(m.bits, expect, err_msg=f"{isa}, {threads} threads")
            keep = np.unpackbits(expect, count=n, bitorder="little").astype(bool)
            np.testing.assert_array_equal(y, np.where(keep, np.float32(1 / (1 - P)), 0))


def test_generator_offset_is_not_truncated():
    """Offsets past 2**64 survive the round trip through the mask and backward."""
    g = df.Generator(SEED)
    g.advance((7 << 64) + 5)
    x = np.arange(1, 41, dtype=np.float64)
    y, m = df.dropout_forward(x, P, rng=g, mask="recompute")
    assert m.offset == (7 << 64) + 5 and g.offset == m.offset + 5
    keep = oracle.mask_bool(40, SEED, m.offset, P)
    np.testing.assert_array_equal(y, oracle.apply_mask(x, keep, P))
    np.testing.assert_array_equal(df.dropout_backward(x, m), y)
