"""Output: the rows of a run, the Markdown table, the progress bar, the JSON file.

A row is one implementation at one case (op, direction, size, dtype, threads).
Measured rows carry ``median_s``, ``best_s`` (the fastest sample: on a shared
machine, the closest to what the hardware does) and ``spread`` (interquartile
range / median; (max - min) / median under 4 rounds);
``elem_per_ns`` counts the op's elements; where the op has a bytes figure
(`ops.bytes_moved`), ``gb_per_s = bytes / median_s / 1e9`` and
``roofline_pct = 100 * gb_per_s / roofline_gb_per_s``, the roofline being the
faster of the plain and streaming scale probes over the same bytes on the
same threads (`bandwidth`). Skipped rows carry ``skipped`` (the reason) instead.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Dict, List, Optional

import numpy as np

# The documented fields (tests check them).
ROW_FIELDS = ("op", "direction", "n", "shape", "dtype", "threads", "impl", "bytes",
              "median_s", "best_s", "spread", "rounds", "elem_per_ns", "gb_per_s", "roofline_gb_per_s",
              "roofline_pct", "vs_dropout_fast", "skipped")
MACHINE_FIELDS = ("cpu", "cores", "simd", "bandwidth_simd", "openmp", "platform", "python",
                  "versions", "date")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(versions: Dict[str, Optional[str]], bandwidth_simd: str) -> dict:
    import dropout_fast as df

    info = df.info()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "simd": info["isa"],
        "simd_available": info["isa_available"],
        "bandwidth_simd": bandwidth_simd,
        "openmp": info["openmp"],
        "max_threads": info["num_threads"],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def make_row(case: dict, impl: str, timing=None, skipped: Optional[str] = None,
             roofline: Optional[float] = None, ours: Optional[float] = None) -> dict:
    row = dict.fromkeys(ROW_FIELDS)
    row.update(case, impl=impl)
    if timing is None:
        row["skipped"] = skipped or "not available"
        return row
    t = timing.median
    row.update(median_s=t, best_s=min(timing.samples), spread=timing.spread,
               rounds=len(timing.samples),
               elem_per_ns=case["n"] / t / 1e9)
    if case["bytes"] is not None:
        row["gb_per_s"] = case["bytes"] / t / 1e9
        if roofline:
            row["roofline_gb_per_s"] = roofline
            row["roofline_pct"] = 100 * row["gb_per_s"] / roofline
    if ours:
        row["vs_dropout_fast"] = t / ours
    return row


def _size(r: dict) -> str:
    n = r["n"]
    return f"2**{n.bit_length() - 1}" if n & (n - 1) == 0 else str(n)


def _time(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def markdown(rows: List[dict]) -> str:
    """One line per row; skipped implementations at the end of their case."""
    out = ["| op | dir | size | dtype | thr | impl | time | spread | elem/ns | GB/s | "
           "roofline % | x dropout_fast |",
           "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        head = (f"| {r['op']} | {r['direction'][:3]} | {_size(r)} | {r['dtype']} | "
                f"{r['threads']} | {r['impl']} |")
        if r["skipped"]:
            out.append(f"{head} skipped: {r['skipped']} | | | | | |")
            continue
        gb = "" if r["gb_per_s"] is None else f"{r['gb_per_s']:.1f}"
        pct = "" if r["roofline_pct"] is None else f"{r['roofline_pct']:.0f}"
        ratio = "" if r["vs_dropout_fast"] is None else f"{r['vs_dropout_fast']:.2f}"
        out.append(f"{head} {_time(r['median_s'])} | {100 * r['spread']:.0f}% | "
                   f"{r['elem_per_ns']:.2f} | {gb} | {pct} | {ratio} |")
    return "\n".join(out)


def summary(rows: List[dict]) -> str:
    """One line per case: elements/ns of each implementation (best first is
    not implied: columns are fixed), and dropout_fast's roofline %."""
    impls: List[str] = []
    cases: Dict[tuple, Dict[str, dict]] = {}
    for r in rows:
        if r["impl"] not in impls:
            impls.append(r["impl"])
        key = (r["op"], r["direction"], r["n"], r["dtype"], r["threads"])
        cases.setdefault(key, {})[r["impl"]] = r
    shown = [i for i in impls if any(not c.get(i, {}).get("skipped", True)
                                     for c in cases.values())]
    out = ["| op | dir | size | dtype | thr | " + " | ".join(shown) +
           " | dropout_fast roofline % |",
           "|---|---|---|---|---:|" + "---:|" * (len(shown) + 1)]
    for (op, d, n, dt, t), c in cases.items():
        cells = []
        for i in shown:
            r = c.get(i)
            cells.append("" if r is None or r["skipped"] else f"{r['elem_per_ns']:.2f}")
        ours = c.get("dropout_fast") or {}
        pct = ours.get("roofline_pct")
        size = _size({"n": n})
        out.append(f"| {op} | {d[:3]} | {size} | {dt} | {t} | " + " | ".join(cells) +
                   f" | {'' if pct is None else f'{pct:.0f}'} |")
    return "\n".join(out)


def slower_cases(rows: List[dict]) -> List[dict]:
    """The measured peer rows faster than dropout_fast on the same case
    (``vs_dropout_fast < 1``), slowest dropout_fast first."""
    out = [r for r in rows if not r["skipped"] and not r["impl"].startswith("dropout_fast")
           and r["vs_dropout_fast"] is not None and r["vs_dropout_fast"] < 1]
    return sorted(out, key=lambda r: r["vs_dropout_fast"])


def slower_table(rows: List[dict]) -> str:
    """`slower_cases` as Markdown: the case, the faster peer, how much faster."""
    found = slower_cases(rows)
    if not found:
        return "none: dropout_fast is the fastest in every measured case"
    out = ["| op | dir | size | dtype | thr | peer | peer elem/ns | peer speed-up |",
           "|---|---|---|---|---:|---|---:|---:|"]
    for r in found:
        out.append(f"| {r['op']} | {r['direction'][:3]} | {_size(r)} | {r['dtype']} | "
                   f"{r['threads']} | {r['impl']} | {r['elem_per_ns']:.2f} | "
                   f"{1 / r['vs_dropout_fast']:.2f}x |")
    return "\n".join(out)


def bandwidth_table(probes: List[dict]) -> str:
    out = ["| bytes | thr | copy | copy (streaming) | scale | scale (streaming) | roofline |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for b in probes:
        out.append(f"| {b['nbytes']} | {b['threads']} | {b['copy']:.1f} | {b['copy_nt']:.1f} | "
                   f"{b['scale']:.1f} | {b['scale_nt']:.1f} | {b['roofline']:.1f} |")
    return "\n".join(out)


def write_json(path: str, result: dict) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=lambda o: o.item() if isinstance(o, np.generic)
                  else str(o))


class Progress:
    """A one-line progress bar on stderr when it is a terminal, else a line
    per finished case."""

    def __init__(self, total: int, stream=None, width: int = 30):
        self.total, self.done, self.width = max(total, 1), 0, width
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.perf_counter()

    def step(self, label: str) -> None:
        self.done += 1
        frac = self.done / self.total
        el = time.perf_counter() - self.t0
        if self.tty:
            bar = "#" * int(frac * self.width)
            self.stream.write(f"\r[{bar:<{self.width}}] {self.done}/{self.total} "
                              f"{el:5.0f}s {label[:50]:<50}")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"  [{self.done}/{self.total} {el:.0f}s] {label}\n")
        self.stream.flush()
