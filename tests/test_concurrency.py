"""Concurrency: the kernels release the GIL, so Python threads run ops at once.

- 8 threads, each with its own Generator, run every op of df_ops.OPS (three
  rounds, started together at a barrier) on shared read-only inputs: each
  thread's arrays equal the same calls run serially, bit for bit.
- One Generator shared by 8 threads: the counter ranges handed out never
  overlap and tile [start, final offset) exactly (the reservation is atomic),
  and each call's mask is the one its recorded offset gives.
"""
import sys
import threading

import numpy as np
import pytest
from df_ops import OPS, make_inputs, run_all

import dropout_fast as df
from dropout_fast import _config

THREADS, ROUNDS = 8, 3


def in_threads(target, n=THREADS):
    """Run target(i) in n threads released together; re-raise the first failure."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def work(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def fast_switching():
    """Switch threads every 10 us (default 5 ms), so Python sections interleave too."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(saved)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_equal_serial(dtype, fast_switching):
    inputs = make_inputs(dtype)
    frozen = {k: v.copy() for k, v in inputs.items()}
    for v in inputs.values():
        v.flags.writeable = False  # shared by every thread: nothing may write them
    seeds = [1000 + i for i in range(THREADS)]
    concurrent = in_threads(lambda i: run_all(inputs, df.Generator(seeds[i]), ROUNDS))
    serial = [run_all(inputs, df.Generator(s), ROUNDS) for s in seeds]
    calls = 0
    for got, want in zip(concurrent, serial):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            if a is None:
                assert b is None
            else:
                assert a.dtype == b.dtype and a.shape == b.shape
                assert a.tobytes() == b.tobytes()
        calls += ROUNDS * len(OPS)
    assert calls == THREADS * ROUNDS * len(OPS)  # 8 * 3 * 17 = 408 op calls (fwd + bwd)
    for k, v in inputs.items():
        assert v.tobytes() == frozen[k].tobytes(), k
    # Different seeds give different masks: the comparison above is not vacuous.
    assert concurrent[0][0].tobytes() != concurrent[1][0].tobytes()


def test_threads_with_several_c_threads_each(fast_switching):
    """OpenMP teams inside concurrent Python threads: still the serial bits."""
    saved = _config.nthreads
    _config.nthreads = 3
    try:
        inputs = make_inputs(np.float32, n=8, c=16, h=32, w=32)  # big enough to split
        got = in_threads(lambda i: run_all(inputs, df.Generator(i), 1), n=4)
        for i, arrays in enumerate(got):
            want = run_all(inputs, df.Generator(i), 1)
            assert all(a is None and b is None or a.tobytes() == b.tobytes()
                       for a, b in zip(arrays, want))
    finally:
        _config.nthreads = saved


def check_tiling(calls, start, end):
    """calls: (offset, blocks) pairs; they must tile [start, end) with no overlap."""
    calls = sorted(calls)
    pos = start
    for offset, blocks in calls:
        assert offset == pos, f"gap or overlap at block {pos}: a call starts at {offset}"
        pos += blocks
    assert pos == end


@pytest.mark.parametrize("source", ["shared Generator", "default generator"])
def test_shared_generator_never_hands_out_a_range_twice(source, fast_switching):
    g = df.Generator(99).advance(2**32 - 1000)  # the ranges cross the 2**32 carry
    if source == "default generator":
        g = df.manual_seed(99).advance(2**32 - 1000)
    start = g.offset
    x = np.ones(1000, np.float32)
    sizes = [1, 7, 8, 9, 64, 1000]

    def work(i):
        calls = []
        for k in range(60):
            n = sizes[(i + k) % len(sizes)]
            rng = g if source == "shared Generator" else None
            y, m = df.dropout_forward(x[:n], 0.5, rng=rng)
            calls.append((m.offset, (n + 7) // 8, y, m.bits))
            if k % 10 == 0:
                calls.append((g._reserve(3), 3, None, None))  # raw reservations interleave too
        return calls
    calls = [c for per in in_threads(work) for c in per]
    check_tiling([(o, b) for o, b, _, _ in calls], start, g.offset)
    for offset, blocks, y, bits in calls:
        if y is None:
            continue
        # The mask came from the recorded range: redraw it there.
        y2, m2 = df.dropout_forward(x[:y.size], 0.5, rng=df.Generator(99).advance(offset))
        assert y2.tobytes() == y.tobytes() and m2.bits.tobytes() == bits.tobytes()


def test_reserve_is_atomic_under_contention(fast_switching):
    """Many tiny reservations from 8 threads: the offsets handed out are distinct
    and tile the range (a read-modify-write without the lock fails this)."""
    g = df.Generator(5).advance(2**64 - 5000)  # crossing the 2**64 carry
    start = g.offset
    per_thread = in_threads(lambda i: [(g._reserve(1 + (k % 3)), 1 + (k % 3))
                                       for k in range(5000)])
    check_tiling([c for calls in per_thread for c in calls], start, g.offset)
    assert g.offset == start + THREADS * sum(1 + (k % 3) for k in range(5000))
