"""pytest-benchmark suites for regression tracking (not part of the test command).

    pytest bench/ --benchmark-only
    pytest bench/ --benchmark-only --benchmark-compare   # against a saved run

Forward and backward of standard dropout, float32, at 2**16, 2**20 and 2**24
elements, single-threaded, next to the peers of dropout_fast.bench and
numpy.copyto (the memory-bandwidth yardstick).
"""
import numpy as np
import pytest

from dropout_fast import bench

SIZES = [2**16, 2**20, 2**24]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    bench.set_threads(1)


def _cases(make):
    for n in SIZES:
        x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
        for name, fn in make(x, 1).items():
            yield pytest.param(fn, id=f"{name}-2**{n.bit_length() - 1}",
                               marks=pytest.mark.skipif(fn is None, reason="not installed"))


@pytest.mark.parametrize("fn", _cases(bench.forward_impls))
def test_forward(benchmark, fn):
    benchmark.group = "forward"
    benchmark(fn)


@pytest.mark.parametrize("fn", _cases(bench.backward_impls))
def test_backward(benchmark, fn):
    benchmark.group = "backward"
    benchmark(fn)
