"""Memory soak: call every op of df_ops.OPS many times and measure growth.

For each op: warm up (first-call caches, numpy's allocator pools), then measure
the resident set size (/proc/self/statm) and the bytes traced by tracemalloc
(Python objects and numpy buffers) before and after `calls` more calls, with a
full garbage collection at both points. A leak of one small object per call
shows in tracemalloc as at least tens of bytes times `calls`; a leak of one
array buffer (or of a C allocation) shows in the RSS as well.

    python tests/memory_soak.py --calls 100000          # the recorded run (docs/memory.md)

test_memory.py runs the same measurement with fewer calls.
"""
import argparse
import gc
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from df_ops import OPS, make_inputs  # noqa: E402

import dropout_fast as df  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def soak(name: str, calls: int, warmup: int = 200, inputs=None) -> dict:
    """Growth of RSS and of tracemalloc's traced bytes over `calls` calls of op `name`.

    tracemalloc must be tracing already (so the warm-up's allocations are seen)."""
    op, a = OPS[name], inputs if inputs is not None else make_inputs(n=2, c=3, h=6, w=8)
    g = df.Generator(7)
    for _ in range(warmup):
        op(a, g)
    gc.collect()
    rss0, traced0 = rss_bytes(), tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    for _ in range(calls):
        op(a, g)
    seconds = time.perf_counter() - t0
    gc.collect()
    return {"op": name, "calls": calls, "rss": rss_bytes() - rss0,
            "traced": tracemalloc.get_traced_memory()[0] - traced0, "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--ops", default=",".join(OPS), help="comma-separated op names")
    args = ap.parse_args(argv)
    tracemalloc.start()
    print(f"dropout_fast {df.__version__}, numpy {np.__version__}, "
          f"{args.calls} calls per op after 200 warm-up calls")
    print("| op | calls | RSS growth (bytes) | tracemalloc growth (bytes) | seconds |")
    print("|---|---:|---:|---:|---:|")
    for name in args.ops.split(","):
        r = soak(name, args.calls)
        print(f"| {r['op']} | {r['calls']} | {r['rss']} | {r['traced']} | {r['seconds']:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
