"""The public philox4x32 against Random123's known answers and the oracle."""
import numpy as np

import dropout_fast as df
from oracle import philox4x32 as oracle_philox

KAT = [  # counter, key, 10 rounds, 7 rounds (Random123 kat_vectors)
    ([0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
     [0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48]),
    ([0xffffffff] * 4, [0xffffffff] * 2, [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
     [0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662]),
    ([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0],
     [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
     [0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a]),
]


def test_known_answers():
    for ctr, key, r10, r7 in KAT:
        assert df.philox4x32(ctr, key).tolist() == r10
        assert df.philox4x32(ctr, key, rounds=7).tolist() == r7


def test_vectorised_and_broadcast_against_oracle():
    rs = np.random.default_rng(0)
    ctr = rs.integers(0, 2**32, size=(5, 7, 4), dtype=np.uint32)
    key = rs.integers(0, 2**32, size=(7, 2), dtype=np.uint32)
    out = df.philox4x32(ctr, key)
    assert out.shape == (5, 7, 4) and out.dtype == np.uint32
    np.testing.assert_array_equal(out, oracle_philox(ctr, np.broadcast_to(key, (5, 7, 2))))
    for r in (0, 1, 16):
        np.testing.assert_array_equal(df.philox4x32(ctr, key, rounds=r),
                                      oracle_philox(ctr, np.broadcast_to(key, (5, 7, 2)), r))
    assert df.philox4x32(np.zeros((0, 4), np.uint32), [1, 2]).shape == (0, 4)
