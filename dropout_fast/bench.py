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
import math
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


def time_interleaved(impls: Dict[str, Callable], rounds: int,
                     min_time: float) -> Dict[str, List[float]]:
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


def _structured_impls(variant: str, x: np.ndarray, options: dict, torch_forward, noise_shape):
    """Forward and backward of a structured variant next to torch's equivalent:
    torch_forward(t) is torch's own function, or a broadcast multiply by a
    (noise_shape) mask, the way timm and hand-written RNN code do it."""
    y, dx = np.empty_like(x), np.empty_like(x)
    g = df.Generator(0)
    _, m = df.forward(variant, x, P, rng=1, **options)
    fwd: Dict[str, Optional[Callable]] = {
        "dropout_fast": lambda: df.forward(variant, x, P, rng=g, mask="bits", **options),
        "dropout_fast (out=)": lambda: df.forward(variant, x, P, rng=g, out=y, **options),
        "numpy.copyto": lambda: np.copyto(y, x),
    }
    bwd: Dict[str, Optional[Callable]] = {
        "dropout_fast (out=)": lambda: df.backward(x, m, out=dx),
        "dropout_fast": lambda: df.backward(x, m),
        "numpy.copyto": lambda: np.copyto(dx, x),
    }
    torch = _torch()
    if torch is None:
        fwd["torch"] = bwd["torch"] = None
    else:
        t = torch.from_numpy(x)
        mask = (torch.rand(noise_shape) >= P).to(t.dtype) / (1 - P)
        fwd["torch"] = lambda: torch_forward(torch, t, mask)
        bwd["torch"] = lambda: t * mask  # autograd's backward of either form
    return fwd, bwd


def cases(ops, sizes, dtype, quick: bool):
    """(op name, shape, forward impls, backward impls) for every benchmarked case."""
    rs = np.random.default_rng(0)
    if "dropout" in ops:
        for n in sizes:
            x = rs.standard_normal(n).astype(dtype)
            yield "dropout", (n,), lambda x=x: forward_impls(x, 1), lambda x=x: backward_impls(x, 1)
    mult = lambda torch, t, mask: t * mask  # noqa: E731
    structured = {
        "spatial_dropout": ([(64, 64, 32, 32)] + ([] if quick else [(256, 64, 32, 32)]), {},
                            lambda torch, t, mask: torch.nn.functional.dropout2d(t, P),
                            lambda s: (s[0], s[1], 1, 1)),
        "variational_dropout": ([(64, 256, 512)], {}, mult, lambda s: (s[0], 1, s[2])),
        "drop_path": ([(64, 64, 32, 32)], {}, mult, lambda s: (s[0], 1, 1, 1)),
    }
    for op, (shapes, options, torch_fwd, noise) in structured.items():
        if op not in ops:
            continue
        for shape in shapes:
            x = rs.standard_normal(shape).astype(dtype)
            made = _structured_impls(op, x, options, torch_fwd, noise(shape))
            yield op, shape, lambda made=made: made[0], lambda made=made: made[1]


OPS = ("dropout", "spatial_dropout", "variational_dropout", "drop_path")


def run(sizes, dtype, threads: int, rounds: int, min_time: float, progress=None,
        ops=OPS, quick: bool = False) -> List[dict]:
    set_threads(threads)
    rows = []
    for op, shape, make_fwd, make_bwd in cases(ops, sizes, dtype, quick):
        n = math.prod(shape)
        for direction, make in (("forward", make_fwd), ("backward", make_bwd)):
            impls = make()
            present = {k: v for k, v in impls.items() if v is not None}
            samples = time_interleaved(present, rounds, min_time)
            ours = statistics.median(samples[next(iter(present))])
            for name, fn in impls.items():
                label = direction if op == "dropout" else f"{op} {direction}"
                row = {"op": label, "shape": list(shape), "n": n, "dtype": np.dtype(dtype).name,
                       "threads": threads, "impl": name}
                if fn is None:
                    row["skipped"] = "not installed"
                else:
                    med = statistics.median(samples[name])
                    row.update(ns_per_elem=med / n * 1e9, median_s=med,
                               spread=(max(samples[name]) - min(samples[name])) / med,
                               vs_dropout_fast=med / ours)
                rows.append(row)
            if progress:
                progress(f"{op} {direction} {shape} done")
    return rows


def _size(r: dict) -> str:
    if len(r["shape"]) == 1:
        return f"2**{int(np.log2(r['n']))}"
    return "x".join(str(d) for d in r["shape"])


def markdown(rows: List[dict]) -> str:
    out = ["| op | size | impl | ns/elem | time | x dropout_fast time |",
           "|---|---|---|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['op']} | {_size(r)} | {r['impl']} | skipped ({r['skipped']}) | | |")
            continue
        t = r["median_s"]
        shown = f"{t * 1e6:.1f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms"
        out.append(f"| {r['op']} | {_size(r)} | {r['impl']} | {r['ns_per_elem']:.3f} | {shown} | "
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
    ap.add_argument("--ops", type=lambda s: s.split(","), default=list(OPS),
                    help=f"comma-separated operations (default all: {','.join(OPS)})")
    ap.add_argument("--json", metavar="FILE", help="also write rows and machine info as JSON")
    args = ap.parse_args(argv)
    if args.threads < 1 or any(not 0 <= s <= 30 for s in args.sizes):
        ap.error("--threads must be >= 1 and --sizes log2 values in [0, 30]")
    unknown = set(args.ops) - set(OPS)
    if unknown:
        ap.error(f"--ops: unknown {sorted(unknown)} (choose from {', '.join(OPS)})")
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
               min_time, progress=lambda msg: print(f"  .. {msg}", file=sys.stderr, flush=True),
               ops=args.ops, quick=args.quick)
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": rows}, f, indent=1)
    return 0
