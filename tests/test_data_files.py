"""The known-answer files in tests/data: still what the oracle writes, and met
bit for bit by the Numba kernels."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from dropout_fast import reference as ref

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
_spec = importlib.util.spec_from_file_location("make_data", os.path.join(DATA, "make_data.py"))
make_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_data)

STREAMS = make_data.load_streams()


def test_files_match_the_generator():
    run = subprocess.run([sys.executable, os.path.join(DATA, "make_data.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_philox_kat_file():
    rows = make_data.load_kat()
    assert len(rows) >= 26 and {r for r, _, _, _ in rows[:6]} == {7, 10}
    for rounds, ctr, key, want in rows:
        out = np.zeros((1, 4), np.uint32)
        ref.philox4x32(np.array([ctr], np.uint32), np.array([key], np.uint32), out, rounds)
        assert tuple(int(v) for v in out[0]) == want, (rounds, ctr, key)


def test_stream_file_covers_the_contract_edges():
    names = {c["name"] for c in STREAMS}
    assert {"carry32_long", "carry64_long", "top_of_range"} <= names
    assert {c["n"] for c in STREAMS} >= {0, 1, 3, 5, 31, 1000, 4099}
    assert {c["p"] for c in STREAMS} >= {0.0, 0.1, 0.5, 0.9, 1.0, 0.3}
    assert {c["seed"] for c in STREAMS} >= {0, 2**64 - 1}
    assert {c["block0"] for c in STREAMS} >= {0, 5, 2**32 - 1, 2**64 - 3}
    assert sum(name.startswith("tie_") for name in names) >= 2


@pytest.mark.parametrize("case", STREAMS, ids=[c["name"] for c in STREAMS])
def test_stream_vectors(case):
    n, seed, block0, thresh = case["n"], case["seed"], case["block0"], case["thresh"]
    words = (seed & 0xFFFFFFFF, seed >> 32, block0 % 2**64, block0 >> 64, thresh)
    bits = np.full((n + 7) // 8, 0x5A, np.uint8)
    ref.mask(bits, n, *words, 0, -1)
    np.testing.assert_array_equal(bits, case["bits"])
    for dtype, key, scale in ((np.float32, "y32", "scale32"), (np.float64, "y64", "scale64")):
        x = make_data.x_input(n, dtype)
        y, b = np.empty_like(x), np.empty_like(bits)
        ref.fwd(x, y, b, *words, float(case[scale]), 0, -1)
        np.testing.assert_array_equal(y.view(np.uint8), case[key].view(np.uint8))
        np.testing.assert_array_equal(b, case["bits"])
        dx = np.empty_like(x)
        ref.bwd_bits(x, dx, case["bits"], float(case[scale]), 0, -1)
        np.testing.assert_array_equal(dx.view(np.uint8), case[key].view(np.uint8))
