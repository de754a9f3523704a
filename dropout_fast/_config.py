"""Process-wide execution settings: thread count and instruction set.

They change speed only, never results: masks depend on (seed, offset, index)
alone. The backend is the C extension, or the Numba reference when the
extension cannot be imported.
"""
from __future__ import annotations

import contextlib
import os
import warnings

try:
    from dropout_fast import _core as kernels

    BACKEND = "c"
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    warnings.warn(
        f"dropout_fast: the compiled extension could not be imported ({exc}); "
        "falling back to the Numba reference backend, which is slower",
        RuntimeWarning,
        stacklevel=2,
    )
    from dropout_fast import reference as kernels

    BACKEND = "numba"

ISA_AUTO = -1
ISA_CODES = {"scalar": 0, "avx2": 1, "avx512": 2, "neon": 3}


def _threads_from_env() -> int:
    raw = os.environ.get("DROPOUT_FAST_NUM_THREADS", "")
    if not raw:
        return 0
    try:
        n = int(raw)
    except ValueError:
        n = -1
    if n < 1:
        warnings.warn(f"DROPOUT_FAST_NUM_THREADS={raw!r} is not a positive integer; ignored",
                      RuntimeWarning, stacklevel=2)
        return 0
    return n


nthreads = _threads_from_env()  # 0: the OpenMP default (all cores)
isa = ISA_AUTO                    # a code of ISA_CODES, or ISA_AUTO


def isa_available(name: str) -> bool:
    return BACKEND == "c" and kernels.isa_available(name)


@contextlib.contextmanager
def force_isa(name: str):
    """Run the C kernels on one instruction set inside the block (tests, benchmarks)."""
    global isa
    if not isa_available(name):
        raise ValueError(f"isa: {name!r} is not available here "
                         f"(choose from {[n for n in ISA_CODES if isa_available(n)]})")
    saved, isa = isa, ISA_CODES[name]
    try:
        yield
    finally:
        isa = saved
