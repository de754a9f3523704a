"""Issue 6's target figures for standard dropout, float32: elements per ns and
roofline % of the forward and backward, in the kernel (the Cython entry point,
no argument checking) and through the Python API, best of N and median of N
single calls, against the bandwidth probe over the same bytes.

    python bench/targets.py [--threads 1,2] [--sizes 14,16,18,24,25,26]
"""
import argparse
import statistics
import time

import numpy as np

import dropout_fast as df
from dropout_fast import _config
from dropout_fast.bench import bandwidth


def calls(fn, reps):
    """(best, median) seconds of `reps` single calls after a warm-up call."""
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--sizes", default="14,16,18,24,25,26")
    args = ap.parse_args()
    k = _config.kernels
    print("| thr | size | call | elem/ns best | elem/ns median | roofline % best | "
          "roofline % median | roofline GB/s |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for threads in map(int, args.threads.split(",")):
        df.set_num_threads(threads)
        for lg in map(int, args.sizes.split(",")):
            n = 1 << lg
            x = bandwidth.aligned(4 * n)
            x[:] = np.random.default_rng(0).standard_normal(n)
            y, dx = bandwidth.aligned(4 * n), bandwidth.aligned(4 * n)
            bits = np.empty((n + 7) // 8, np.uint8)
            g = df.Generator(0)
            _, m = df.dropout_forward(x, 0.5, rng=1)
            cases = {
                "kernel fwd": lambda: k.fwd(x, y, bits, 1, 2, 0, 0, 1 << 31, 2.0, threads, -1),
                "api fwd": lambda: df.dropout_forward(x, 0.5, rng=g, out=y),
                "kernel bwd": lambda: k.bwd_bits(x, dx, m.bits, 2.0, threads, -1),
                "api bwd": lambda: df.dropout_backward(x, m, out=dx),
            }
            reps = 400 if lg <= 18 else 12
            timed = {name: calls(fn, reps) for name, fn in cases.items()}
            roof = bandwidth.measure(4 * n, threads, rounds=9)["roofline"]
            nbytes = 8 * n + n // 8   # read x, write y, the mask's bits
            for name, (best, med) in timed.items():
                print(f"| {threads} | 2**{lg} | {name} | {n / best / 1e9:.2f} | "
                      f"{n / med / 1e9:.2f} | {100 * nbytes / best / 1e9 / roof:.0f} | "
                      f"{100 * nbytes / med / 1e9 / roof:.0f} | {roof:.1f} |", flush=True)


if __name__ == "__main__":
    main()
