"""The roofline: this machine's memory bandwidth, measured in the same run.

Copy (``y = x``) and scale (``y = 0.5 x``) in C (src_c/bench/df_bandwidth.c)
over the same bytes as the operation being timed, with plain and with
non-temporal (streaming) stores, on the same number of threads. Bandwidth
counts the bytes a kernel must move (read x, write y: 2 * nbytes), not the
extra read-for-ownership that plain stores cause beyond the cache; so plain
stores show a lower figure there, and the roofline is the faster of the two
scale kernels. An operation's roofline % is

    (bytes it must move / its time) / roofline bandwidth at its size,

so 100 % means "as fast as streaming those bytes through the core can be".
"""
from __future__ import annotations

import functools
from typing import Dict

import numpy as np

from dropout_fast import _config
from dropout_fast.bench.timing import summarize

PROBES = ("copy", "copy_nt", "scale", "scale_nt")


def aligned(nbytes: int) -> np.ndarray:
    """A float32 view of nbytes bytes on a 64-byte boundary (one cache line)."""
    nbytes = max(64, (nbytes + 63) // 64 * 64)
    buf = np.zeros(nbytes + 64, np.uint8)
    off = (-buf.ctypes.data) % 64
    return buf[off:off + nbytes].view(np.float32)


def available() -> bool:
    return _config.BACKEND == "c" and hasattr(_config.kernels, "bw_run")


def simd() -> str:
    return _config.kernels.bw_simd() if available() else "none"


@functools.cache
def measure(nbytes: int, threads: int, rounds: int = 7, min_time: float = 0.01) -> Dict[str, float]:
    """Bandwidth in GB/s (1e9 bytes/s, counting read + write) of each probe over
    arrays of nbytes bytes on `threads` threads, median of `rounds` samples, and
    "roofline": the faster of scale and scale_nt. Empty without the C extension."""
    if not available():
        return {}
    run = _config.kernels.bw_run
    x, y = aligned(nbytes), aligned(nbytes)
    x[:] = 1.0
    out: Dict[str, float] = {}
    passes = {}
    for probe in PROBES:
        kernel, nt = probe.split("_")[0], probe.endswith("_nt")
        run(kernel, nt, x, y, 1, threads)   # warm-up: page faults, caches
        # Passes per call: doubled until a call lasts min_time and doubling the
        # passes nearly doubles the time, so the start of the thread team (tens
        # of ms on a loaded machine) is amortised and the figure is bandwidth.
        k, t = 1, run(kernel, nt, x, y, 1, threads)
        while k < 1 << 22:
            t2 = run(kernel, nt, x, y, 2 * k, threads)
            k *= 2
            if t2 >= min_time and t2 > 1.8 * t:
                break
            t = t2
        passes[probe] = k
    samples = {p: [] for p in PROBES}
    for _ in range(rounds):  # interleaved, like the operations themselves
        for probe in PROBES:
            kernel, nt = probe.split("_")[0], probe.endswith("_nt")
            k = passes[probe]
            samples[probe].append(run(kernel, nt, x, y, k, threads) / k)
    for probe in PROBES:
        t = summarize(samples[probe])
        out[probe] = 2 * x.nbytes / t.median / 1e9
        out[probe + "_spread"] = t.spread
    out["roofline"] = max(out["scale"], out["scale_nt"])
    return out
