"""The standalone C library against the Python path: forward dropout on float32,
one thread, same size, A/B interleaved, medians (issue 7's target: the C library's
forward equals the Python path's kernel time within 5%).

A is bench/c/bench_fwd.c (df_dropout_fwd_f32 from plain C, linked against the
CMake build's static library); B is ``dropout_fast.dropout(x, p, rng=g, out=y)``
with one thread (DROPOUT_FAST_NUM_THREADS=1), the Cython extension built by
setup.py. Each round runs A's program for REPS calls and B for REPS calls,
alternating which goes first (ABBA), so load from other processes falls on both.
Each call is timed on two clocks: wall (monotonic) and the calling thread's CPU
time, which leaves out the time the thread waited for a core on a shared machine.
Both sides' buffers come from malloc with numpy's huge-page hint (see bench_fwd.c),
so the caller is the only difference.

    python bench/bench_c_vs_python.py [--n 16777216] [--rounds 8] [--reps 5]

builds build/bench (CMake, Release, -DDF_BUILD_BENCH=ON) unless --exe is given.
Not a test: the numbers depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DROPOUT_FAST_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import dropout_fast as df  # noqa: E402


def build_exe(build: str) -> str:
    """bench_fwd from the library's CMake project (Release, the default)."""
    subprocess.run(["cmake", "-S", os.path.join(ROOT, "src_c"), "-B", build,
                    "-DCMAKE_BUILD_TYPE=Release", "-DDF_BUILD_BENCH=ON", "-DDF_BUILD_TESTS=OFF",
                    "-DDF_BUILD_EXAMPLES=OFF"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", build, "--target", "bench_fwd"], check=True,
                   capture_output=True)
    return os.path.join(build, "bench_fwd")


def numpy_hugepages() -> int:
    """1 when numpy asks for transparent huge pages on large arrays (Linux), else 0:
    bench_fwd then places its buffers the same way."""
    get = getattr(np._core.multiarray if hasattr(np, "_core") else np.core.multiarray,
                  "_get_madvise_hugepage", None)
    return int(bool(get())) if get is not None else 0


def c_round(exe: str, n: int, reps: int, p: float) -> list:
    out = subprocess.run([exe, str(n), str(reps), "1", repr(p), str(numpy_hugepages())],
                         check=True, capture_output=True, text=True).stdout
    times = [(float(w), float(c)) for w, c in re.findall(r"^ns (\S+) (\S+)$", out, re.MULTILINE)]
    assert len(times) == reps, out
    return times


def py_round(x: np.ndarray, y: np.ndarray, g, reps: int, p: float) -> list:
    times = []
    for _ in range(reps):
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        df.dropout(x, p, rng=g, out=y)
        c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
        times.append((float(t1 - t0), float(c1 - c0)))
    return times


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1 << 24)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--exe", help="a built bench_fwd (default: build it in build/bench)")
    args = ap.parse_args(argv)
    exe = args.exe or build_exe(os.path.join(ROOT, "build", "bench"))
    info = subprocess.run([exe, "8", "1", "1", "0.1", str(numpy_hugepages())], check=True, capture_output=True, text=True).stdout
    x = (np.arange(args.n) % 1000).astype(np.float32) * np.float32(0.001)
    y = np.empty_like(x)
    g = df.Generator(42)
    df.dropout(x, args.p, rng=g, out=y)  # warm-up: pages of y, first-call setup
    a, b, paired = [], [], []
    for r in range(args.rounds):
        if r % 2 == 0:
            ta = c_round(exe, args.n, args.reps, args.p)
            tb = py_round(x, y, g, args.reps, args.p)
        else:
            tb = py_round(x, y, g, args.reps, args.p)
            ta = c_round(exe, args.n, args.reps, args.p)
        a += ta
        b += tb
        paired.append([statistics.median(t[k] for t in ta) / statistics.median(t[k] for t in tb)
                       for k in (0, 1)])
    i = df.info()
    print(f"C library:   {info.splitlines()[0]}")
    print(f"Python path: dropout_fast {i['version']} isa {i['isa']} openmp {int(i['openmp'])} "
          f"threads {i['num_threads']}")
    print(f"n = {args.n}, p = {args.p}, one thread, {args.rounds} rounds x {args.reps} calls each")
    for k, clock in enumerate(("wall", "thread CPU")):
        ca, cb = [t[k] for t in a], [t[k] for t in b]
        for name, t in (("C ", ca), ("Py", cb)):
            m = statistics.median(t)
            print(f"{clock:10s} {name} median {m / 1e6:8.3f} ms ({m / args.n:.3f} ns/elem), "
                  f"min {min(t) / 1e6:.3f}, max {max(t) / 1e6:.3f}")
        # The per-round ratio (both halves of a round ran back to back) is the
        # steadiest figure on a loaded machine; the others are there to compare.
        rr = statistics.median(p[k] for p in paired)
        print(f"{clock:10s} C / Python: median of per-round ratios {rr:.4f}, ratio of medians "
              f"{statistics.median(ca) / statistics.median(cb):.4f}, ratio of minima "
              f"{min(ca) / min(cb):.4f}; |ratio - 1| <= 5%: {'met' if abs(rr - 1) <= 0.05 else 'missed'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
