"""pytest-benchmark suites for regression tracking (not part of the test command).

    pytest bench/ --benchmark-only
    pytest bench/ --benchmark-only --benchmark-compare   # against a saved run

Forward and backward of every operation of ``python -m dropout_fast bench``
(the same calls, from dropout_fast.bench's op registry), float32, one thread,
at 2**16 and 2**22 elements, next to the numpy peer and the memory-bandwidth
probe (scale with streaming stores over the same bytes).
"""
import numpy as np
import pytest

from dropout_fast import _config
from dropout_fast.bench import bandwidth, impl_numpy, ops, peers

SIZES = [16, 22]
FOUND = peers.detect(check_compile=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    peers.set_threads(1, FOUND)


def _cases():
    for op, spec in ops.OPS.items():
        for direction in spec.directions:
            for lg in SIZES:
                for impl in ("dropout_fast", "numpy"):
                    yield pytest.param(op, direction, lg, impl,
                                       id=f"{op}-{direction}-2**{lg}-{impl}")


@pytest.mark.parametrize("op,direction,lg,impl", _cases())
def test_op(benchmark, op, direction, lg, impl):
    a = ops.inputs(op, 1 << lg, np.float32)
    if impl == "dropout_fast":
        fn = ops.dropout_fast_impl(op, direction, a)
    else:
        fn = impl_numpy.impl(op, direction, a)
    benchmark.group = f"{op} {direction} 2**{lg}"
    benchmark.extra_info["bytes"] = ops.bytes_moved(op, direction, 1 << lg, np.float32)
    benchmark(fn)


@pytest.mark.skipif(not bandwidth.available(), reason="needs the C extension")
@pytest.mark.parametrize("lg", SIZES)
def test_bandwidth(benchmark, lg):
    x, y = bandwidth.aligned(4 << lg), bandwidth.aligned(4 << lg)
    benchmark.group = f"bandwidth 2**{lg}"
    benchmark(_config.kernels.bw_run, "scale", True, x, y, 1, 1)
