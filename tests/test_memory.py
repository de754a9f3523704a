"""No memory growth from repeated calls of every op (tests/memory_soak.py).

The suite runs 600 calls per op after a warm-up; the recorded run with 100,000
calls per op is in docs/memory.md. The bounds sit far below what a leak would
give over 600 calls (one Python object per call: >= 600 * 28 bytes = 16 KiB of
traced memory; one buffer of the 4 KiB input per call: 2.4 MiB of RSS) and
above the noise seen (a few KiB traced, a few hundred KiB of RSS when the
allocator maps a new arena once).
"""
import tracemalloc

import pytest
from df_ops import OPS, make_inputs
from memory_soak import soak

CALLS = 600
TRACED_BOUND = 8 * 1024
RSS_BOUND = 1536 * 1024


@pytest.fixture(scope="module")
def tracing():
    tracemalloc.start()
    yield make_inputs(n=2, c=4, h=8, w=16)
    tracemalloc.stop()


@pytest.mark.parametrize("name", list(OPS))
def test_no_growth(name, tracing):
    r = soak(name, CALLS, warmup=100, inputs=tracing)
    assert r["traced"] < TRACED_BOUND, r
    assert r["rss"] < RSS_BOUND, r


def test_a_leak_would_be_seen(tracing):
    """The measurement catches a leak of one small array per call."""
    kept = []
    OPS["leaky"] = lambda a, g: kept.append(a["bias"].copy())
    try:
        r = soak("leaky", CALLS, warmup=10, inputs=tracing)
    finally:
        del OPS["leaky"]
    assert r["traced"] >= CALLS * a_bias_bytes(tracing)


def a_bias_bytes(inputs):
    return inputs["bias"].nbytes
