"""The sweep and the command line of ``python -m dropout_fast bench``."""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Dict, List, Optional

import numpy as np

from dropout_fast import _config
from dropout_fast.bench import bandwidth, ops, peers, report
from dropout_fast.bench.timing import time_interleaved

DESCRIPTION = """\
Forward and backward of every dropout_fast operation next to every installed
peer (numpy, the Numba reference, torch eager, torch.compile, JAX,
TensorFlow; missing ones are listed as skipped), and against this machine's
memory bandwidth measured in the same run (copy and scale in C, plain and
streaming stores): "roofline %" is the op's bytes per second over the faster
scale probe's, counting the bytes the op must move. Timing: warm-up, then
A/B-interleaved rounds; the table shows medians and the spread (IQR/median).
"""

QUICK_SIZES = (18,)
# The default sweep, sized to finish in about 15 minutes on 2 cores: standard
# dropout (the op the roofline targets are about) at every other power of two,
# the other operations at a cache-resident, an L2/L3-sized and a DRAM-sized
# point (2**24 float32 = 64 MiB per array, twice the L3 of the machine it was
# sized on).
FULL_SIZES = tuple(range(12, 27, 2))
OTHER_SIZES = (14, 20, 24)
# An implementation whose call is projected (from its speed at the previous
# size of the same case) to take longer than this is not timed at that size;
# its row says so. It keeps one slow peer from taking minutes of a sweep.
TOO_SLOW_S = 1.0


def _log2_list(text: str) -> List[int]:
    """"12,16,20" or "12:26" or "12:26:2" (inclusive) -> log2 sizes."""
    out: List[int] = []
    for part in text.split(","):
        if ":" in part:
            lo, hi, *step = (int(v) for v in part.split(":"))
            out.extend(range(lo, hi + 1, step[0] if step else 1))
        elif part:
            out.append(int(part))
    return out


def _threads_list(text: str) -> List[int]:
    cores = os.cpu_count() or 1
    if text == "all":
        return list(range(1, cores + 1))
    return [cores if t == "max" else int(t) for t in text.split(",")]


def parse(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m dropout_fast bench", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"size 2**{QUICK_SIZES[0]}, float32, one "
                         "thread, 3 rounds, no torch.compile")
    ap.add_argument("--ops", default=",".join(ops.OPS),
                    help=f"comma-separated operations (default all: {','.join(ops.OPS)})")
    ap.add_argument("--sizes", help="log2 element counts: '12,16' or '12:26:2' (default: "
                                    "12:26:2 for dropout, 14,20,24 for the other ops; "
                                    f"--quick: {QUICK_SIZES[0]})")
    ap.add_argument("--dtype", help="float32, float64 or both comma-separated "
                                    "(default both; --quick: float32)")
    ap.add_argument("--threads", help="thread counts, e.g. '1,2', or 'all' for 1..cores "
                                      "(default all; --quick: 1)")
    ap.add_argument("--peers", default=",".join(peers.PEERS[1:]),
                    help="comma-separated peers to compare (default every installed one)")
    ap.add_argument("--rounds", type=int, help="timed rounds per case (default 5; --quick 3)")
    ap.add_argument("--min-time", type=float,
                    help="seconds per timed sample (default 0.01; --quick 0.005)")
    ap.add_argument("--isa", choices=list(_config.ISA_CODES),
                    help="force dropout_fast's SIMD path (default: the best available)")
    ap.add_argument("--json", metavar="FILE", help="write machine info, probes and rows as JSON")
    ap.add_argument("--plot", metavar="FILE.png",
                    help="plot throughput and roofline %% versus size (needs matplotlib)")
    args = ap.parse_args(argv)
    q = args.quick
    try:
        args.sizes = _log2_list(args.sizes) if args.sizes else (list(QUICK_SIZES) if q
                                                                 else None)
        args.threads = _threads_list(args.threads or ("1" if q else "all"))
    except ValueError as exc:
        ap.error(f"--sizes/--threads: {exc}")
    args.dtype = (args.dtype or ("float32" if q else "float32,float64")).split(",")
    args.ops = [o for o in args.ops.split(",") if o]
    args.peers = [p for p in args.peers.split(",") if p]
    args.rounds = args.rounds or (3 if q else 5)
    args.min_time = args.min_time if args.min_time is not None else (0.005 if q else 0.01)
    if args.sizes is not None and (not args.sizes or any(not 3 <= s <= 30 for s in args.sizes)):
        ap.error("--sizes: log2 values in [3, 30]")
    if any(t < 1 for t in args.threads):
        ap.error("--threads: expected positive integers")
    for name, given, known in (("--ops", args.ops, ops.OPS), ("--dtype", args.dtype,
                               ("float32", "float64")), ("--peers", args.peers, peers.PEERS)):
        bad = sorted(set(given) - set(known))
        if bad or not given:
            ap.error(f"{name}: unknown {bad} (choose from {', '.join(known)})")
    if args.rounds < 1 or args.min_time < 0:
        ap.error("--rounds must be >= 1 and --min-time >= 0")
    return args


def sizes_of(args: argparse.Namespace, op: str) -> List[int]:
    """The log2 sizes `op` runs at: --sizes, else the default sweep's."""
    if args.sizes is not None:
        return list(args.sizes)
    return list(FULL_SIZES if op == "dropout" else OTHER_SIZES)


def _implementations(op: str, direction: str, a: dict, found: Dict[str, peers.Peer],
                     wanted: Sequence[str], quick: bool,
                     too_slow: Dict[str, str]) -> Dict[str, object]:
    """impl name -> callable, or a string saying why it is skipped."""
    from dropout_fast.bench import impl_jax_tf, impl_numpy

    out: Dict[str, object] = {"dropout_fast": ops.dropout_fast_impl(op, direction, a)}
    if op == "dropout" and direction == "forward":
        out["dropout_fast (alloc)"] = ops.dropout_fast_alloc(op, a)
    makers = {
        "numpy": lambda: impl_numpy.impl(op, direction, a),
        "numba": lambda: ops.dropout_fast_impl(op, direction, a, numba=True),
        "torch": lambda: _torch(op, direction, a, False),
        "torch.compile": lambda: _torch(op, direction, a, True),
        "jax": lambda: impl_jax_tf.jax_impl(op, direction, a),
        "tensorflow": lambda: impl_jax_tf.tf_impl(op, direction, a),
    }
    for name in peers.PEERS[1:]:
        if name not in wanted:
            continue
        peer = found[name]
        if not peer.ok:
            out[name] = peer.skipped
        elif name == "torch.compile" and quick:
            out[name] = "--quick (compiling takes minutes)"
        elif name in too_slow:
            out[name] = too_slow[name]
        else:
            try:
                fn = makers[name]()
            except Exception as exc:  # a peer failing on one op must not end the run
                fn = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
            out[name] = fn if fn is not None else "no equivalent"
    return out


def _torch(op, direction, a, compiled):
    from dropout_fast.bench import impl_torch

    return impl_torch.impl(op, direction, a, compiled)


def run(args: argparse.Namespace, found: Optional[Dict[str, peers.Peer]] = None,
        progress: bool = True) -> dict:
    """Run the sweep of `args` (see `parse`) and return the JSON-ready result.

    Cases run size by size (all ops at one size share their input arrays);
    rows come back grouped by threads, dtype, op, size and direction."""
    found = found or peers.detect(check_compile="torch.compile" in args.peers and not args.quick)
    plan = {op: sizes_of(args, op) for op in args.ops}
    cases = [(t, dt, lg, op, d) for t in args.threads for dt in args.dtype
             for lg in sorted({s for v in plan.values() for s in v})
             for op in args.ops if lg in plan[op] for d in ops.OPS[op].directions]
    bar = report.Progress(len(cases)) if progress else None
    rows: List[dict] = []
    probes: Dict[tuple, dict] = {}
    speed: Dict[tuple, tuple] = {}   # (threads, dtype, op, dir, impl) -> (s per element, log2 n)
    t0 = time.perf_counter()
    for threads, dtype, lg, op, direction in cases:
        peers.set_threads(threads, found)
        n = 1 << lg
        a = ops.inputs(op, n, np.dtype(dtype))
        case = {"op": op, "direction": direction, "n": int(np.prod(a["shape"])),
                "shape": list(a["shape"]), "dtype": dtype, "threads": threads,
                "bytes": ops.bytes_moved(op, direction, n, dtype)}
        key = (n * np.dtype(dtype).itemsize, threads)
        if key not in probes and bandwidth.available():
            probes[key] = dict(bandwidth.measure(*key), nbytes=key[0], threads=threads)
        roof = probes.get(key, {}).get("roofline")
        too_slow = {}
        for name in args.peers:
            per_elem, at = speed.get((threads, dtype, op, direction, name), (0.0, 0))
            if per_elem * case["n"] > TOO_SLOW_S:
                too_slow[name] = (f"not timed: {per_elem * case['n']:.1f} s per call projected "
                                  f"from {1e-9 / per_elem:.3f} elem/ns at 2**{at}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            impls = _implementations(op, direction, a, found, args.peers, args.quick, too_slow)
            timed = {k: v for k, v in impls.items() if callable(v)}
            try:
                timings = time_interleaved(timed, args.rounds, args.min_time)
            except Exception:  # one failing implementation: time the others alone
                timings = {}
                for k, fn in timed.items():
                    try:
                        timings.update(time_interleaved({k: fn}, args.rounds, args.min_time))
                    except Exception as exc:
                        impls[k] = f"failed: {type(exc).__name__}"
        ours = timings["dropout_fast"].median if "dropout_fast" in timings else None
        for name, fn in impls.items():
            if name in timings and callable(fn):
                rows.append(report.make_row(case, name, timings[name], roofline=roof, ours=ours))
                speed[(threads, dtype, op, direction, name)] = (timings[name].median / case["n"],
                                                                lg)
            else:
                rows.append(report.make_row(case, name, skipped=str(fn)))
        del a, impls, timed
        if n * np.dtype(dtype).itemsize >= 1 << 24:
            gc.collect()   # free large arrays held in cycles (autograd graphs) now; a full
            # collection costs ~0.3 s with torch and JAX loaded, so only for large cases
        if bar:
            bar.step(f"{op} {direction[:3]} 2**{lg} {dtype} t={threads}")
    ops.release_inputs()
    order = {op: i for i, op in enumerate(ops.OPS)}
    rows.sort(key=lambda r: (r["threads"], args.dtype.index(r["dtype"]), order[r["op"]], r["n"],
                             ops.OPS[r["op"]].directions.index(r["direction"])))
    return {
        "schema": 1,
        "machine": report.machine_info(peers.versions(found), bandwidth.simd()),
        "settings": {"p": ops.P, "sizes_log2": plan, "dtypes": args.dtype,
                     "threads": args.threads, "ops": args.ops, "peers": args.peers,
                     "rounds": args.rounds, "min_time_s": args.min_time, "quick": args.quick,
                     "too_slow_s": TOO_SLOW_S,
                     "isa": args.isa or "auto", "jax_threads": "XLA default (fixed at start)",
                     "elapsed_s": time.perf_counter() - t0},
        "peers": {k: {"version": v.version, "skipped": v.skipped} for k, v in found.items()},
        "bandwidth": sorted(probes.values(), key=lambda b: (b["threads"], b["nbytes"])),
        "rows": rows,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(argv)
    if args.isa:
        with _config.force_isa(args.isa):
            result = run(args)
    else:
        result = run(args)
    m = result["machine"]
    print(f"# dropout_fast {m['versions']['dropout_fast']} bench, {m['date']}: {m['cpu']}, "
          f"{m['cores']} cores, SIMD {m['simd']}, p={ops.P}, "
          f"{result['settings']['elapsed_s']:.0f} s")
    skipped = {k: v["skipped"] for k, v in result["peers"].items() if v["skipped"]}
    for name, why in skipped.items():
        print(f"# skipped peer {name}: {why}")
    print()
    print(report.markdown(result["rows"]))
    print("\nSummary: elements per ns (higher is faster)\n")
    print(report.summary(result["rows"]))
    print("\nCases where a peer is faster than dropout_fast:\n")
    print(report.slower_table(result["rows"]))
    if result["bandwidth"]:
        print("\nBandwidth probes (GB/s, read + write), the roofline = the faster scale:\n")
        print(report.bandwidth_table(result["bandwidth"]))
    if args.json:
        report.write_json(args.json, result)
        print(f"\nwrote {args.json}")
    if args.plot:
        from dropout_fast.bench import plot

        msg = plot.plot(result, args.plot)
        print(msg, file=sys.stderr if msg.startswith("skipped") else sys.stdout)
    return 0
