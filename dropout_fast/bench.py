"""Side-by-side benchmark of dropout implementations (``python -m dropout_fast bench``).

Each implementation runs in the same process over the same arrays. Timing is
A/B interleaved: every round runs each implementation once in turn, so drift
on a shared machine hits all of them alike; the table reports medians over
rounds. numpy.copyto of the same array is the memory-bandwidth yardstick.
Peers that are not installed are listed as skipped.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

import dropout_fast as df
from dropout_fast import _config, reference

P = 0.5


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def forward_impls(x: np.ndarray, threads: int) -> Dict[str, Optional[Callable]]:
    """name -> zero-argument callable computing dropout(x) (None: peer missing)."""
    y = np.empty_like(x)
    g = df.Generator(0)
    np_rng = np.random.default_rng(0)
    scale = x.dtype.type(1 / (1 - P))
    impls: Dict[str, Optional[Callable]] = {
        "dropout_fast": lambda: df.dropout(x, P, rng=g),
        "dropout_fast (out=)": lambda: df.dropout(x, P, rng=g, out=y),
        "numpy": lambda: np.multiply(x, (np_rng.random(x.shape, dtype=x.dtype) >= P) * scale,
                                     out=y),
        "numba reference": lambda: reference.dropout(x, P, rng=g, out=y),
        "numpy.copyto": lambda: np.copyto(y, x),
    }
    torch = _torch()
    if torch is not None:
        t = torch.from_numpy(x)
        impls["torch"] = lambda: torch.nn.functional.dropout(t, P, training=True)
    else:
        impls["torch"] = None
    return impls


def backward_impls(x: np.ndarray, threads: int) -> Dict[str, Optional[Callable]]:
    dy = x
    dx = np.empty_like(x)
    _, m_bits = df.dropout_forward(x, P, rng=1)
    _, m_re = df.dropout_forward(x, P, rng=1, mask="recompute")
    _, m_ref = reference.dropout_forward(x, P, rng=1)
    keep = m_bits.to_bool()
    scale = x.dtype.type(1 / (1 - P))
    impls: Dict[str, Optional[Callable]] = {
        "dropout_fast (bits)": lambda: df.dropout_backward(dy, m_bits),
        "dropout_fast (bits, out=)": lambda: df.dropout_backward(dy, m_bits, out=dx),
        "dropout_fast (recompute, out=)": lambda: df.dropout_backward(dy, m_re, out=dx),
        "numpy": lambda: np.multiply(dy, keep * scale, out=dx),
        "numba reference": lambda: reference.dropout_backward(dy, m_ref, out=dx),
        "numpy.copyto": lambda: np.copyto(dx, dy),
    }
    torch = _torch()
    if torch is not None:
        t = torch.from_numpy(x)
        _, mask = torch.ops.aten.native_dropout(t, P, True)
        impls["torch"] = lambda: torch.ops.aten.native_dropout_backward(t, mask, float(scale))
    else:
        impls["torch"] = None
    return impls


def time_interleaved(impls: Dict[str, Callable], rounds: int, min_time: float) -> Dict[str, List[float]]:
    """Seconds per call for each implementation, `rounds` samples each, A/B interleaved.

    Each sample repeats the call enough times to last about `min_time`."""
    loops = {}
    for name, fn in impls.items():
        fn()  # warm-up: JIT compilation, page faults, caches
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-7)
        loops[name] = max(1, int(min_time / one))
    samples: Dict[str, List[float]] = {name: [] for name in impls}
    for _ in range(rounds):
        for name, fn in impls.items():
            k = loops[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - t0) / k)
    return samples


def set_threads(threads: int) -> None:
    df.set_num_threads(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(threads)


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    torch = _torch()
    return {
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__ if torch else None,
        **{f"dropout_fast_{k}": v for k, v in df.info().items()},
    }


def run(sizes, dtype, threads: int, rounds: int, min_time: float, progress=None) -> List[dict]:
    set_threads(threads)
    rows = []
    for n in sizes:
        x = np.random.default_rng(0).standard_normal(n).astype(dtype)
        for op, make in (("forward", forward_impls), ("backward", backward_impls)):
            impls = make(x, threads)
            present = {k: v for k, v in impls.items() if v is not None}
            samples = time_interleaved(present, rounds, min_time)
            ours = statistics.median(samples[next(iter(present))])
            for name, fn in impls.items():
                row = {"op": op, "n": n, "dtype": np.dtype(dtype).name, "threads": threads,
                       "impl": name}
                if fn is None:
                    row["skipped"] = "not installed"
                else:
                    med = statistics.median(samples[name])
                    row.update(ns_per_elem=med / n * 1e9, median_s=med,
                               spread=(max(samples[name]) - min(samples[name])) / med,
                               vs_dropout_fast=med / ours)
                rows.append(row)
            if progress:
                progress(f"{op} n=2**{int(np.log2(n))} done")
    return rows


def markdown(rows: List[dict]) -> str:
    out = ["| op | n | impl | ns/elem | time | x dropout_fast time |",
           "|---|---|---|---:|---:|---:|"]
    for r in rows:
        size = f"2**{int(np.log2(r['n']))}"
        if "skipped" in r:
            out.append(f"| {r['op']} | {size} | {r['impl']} | skipped ({r['skipped']}) | | |")
            continue
        t = r["median_s"]
        shown = f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms"
        out.append(f"| {r['op']} | {size} | {r['impl']} | {r['ns_per_elem']:.3f} | {shown} | "
                   f"{r['vs_dropout_fast']:.2f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dropout_fast bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds (under a minute)")
    ap.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")],
                    default=[16, 20, 24], help="comma-separated log2 sizes (default 16,20,24)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=1, help="threads for every implementation")
    ap.add_argument("--isa", choices=list(_config.ISA_CODES),
                    help="force dropout_fast's SIMD path (default: the best available)")
    ap.add_argument("--json", metavar="FILE", help="also write rows and machine info as JSON")
    args = ap.parse_args(argv)
    if args.threads < 1 or any(not 0 <= s <= 30 for s in args.sizes):
        ap.error("--threads must be >= 1 and --sizes log2 values in [0, 30]")
    rounds, min_time = (5, 0.02) if args.quick else (15, 0.1)
    if args.isa:
        with _config.force_isa(args.isa):
            return _report(args, rounds, min_time)
    return _report(args, rounds, min_time)


def _report(args, rounds: int, min_time: float) -> int:
    info = machine_info()
    print(f"# dropout_fast {df.__version__} bench: {info['cpu']}, isa {info['dropout_fast_isa']}, "
          f"threads {args.threads}, {args.dtype}, p={P}, {time.strftime('%Y-%m-%d')}")
    rows = run([1 << s for s in args.sizes], np.dtype(args.dtype), args.threads, rounds,
               min_time, progress=lambda msg: print(f"  .. {msg}", file=sys.stderr, flush=True))
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": rows}, f, indent=1)
    return 0
