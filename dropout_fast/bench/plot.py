"""``--plot FILE.png``: throughput versus size per implementation, and
roofline % versus size, one column per direction (float32, one thread and the
most threads of the run). Needs matplotlib (``pip install dropout_fast[bench]``);
without it the plot is skipped with a message."""
from __future__ import annotations

from collections import defaultdict


def plot(result: dict, path: str, op: str = "dropout") -> str:
    """Draw `op`'s rows of `result` into `path`; returns a one-line message."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "skipped the plot: matplotlib is not installed (pip install 'dropout_fast[bench]')"
    rows = [r for r in result["rows"] if r["op"] == op and not r["skipped"]]
    if not rows:
        return f"skipped the plot: no measured rows of {op!r}"
    dtype = "float32" if any(r["dtype"] == "float32" for r in rows) else rows[0]["dtype"]
    rows = [r for r in rows if r["dtype"] == dtype]
    threads = sorted({r["threads"] for r in rows})
    shown = sorted({threads[0], threads[-1]})
    directions = [d for d in ("forward", "backward") if any(r["direction"] == d for r in rows)]
    fig, axes = plt.subplots(2, len(directions), figsize=(5.2 * len(directions), 7.2),
                             squeeze=False, sharex=True)
    impls = sorted({r["impl"] for r in rows}, key=lambda i: (not i.startswith("dropout_fast"), i))
    colors = {impl: f"C{i % 10}" for i, impl in enumerate(impls)}
    for j, direction in enumerate(directions):
        series = defaultdict(list)
        for r in rows:
            if r["direction"] == direction and r["threads"] in shown:
                series[(r["impl"], r["threads"])].append(r)
        for (impl, t), rs in sorted(series.items()):
            rs.sort(key=lambda r: r["n"])
            style = "-" if t == shown[0] else "--"
            lw = 2.2 if impl.startswith("dropout_fast") else 1.2
            label = f"{impl}, {t} thr"
            ns = [r["n"] for r in rs]
            axes[0][j].plot(ns, [r["elem_per_ns"] for r in rs], style, marker=".", lw=lw,
                            label=label, color=colors[impl])
            pct = [(r["n"], r["roofline_pct"]) for r in rs if r["roofline_pct"] is not None]
            if pct:
                axes[1][j].plot(*zip(*pct), style, marker=".", lw=lw, label=label,
                                color=colors[impl])
        axes[0][j].set_title(f"{op} {direction}, {dtype}")
        axes[0][j].set_ylabel("elements / ns")
        axes[0][j].set_yscale("log")
        axes[1][j].set_ylabel("roofline % (clipped at 150)")
        axes[1][j].set_ylim(0, 150)
        axes[1][j].axhline(100, color="grey", lw=0.8)
        axes[1][j].set_xlabel("elements")
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xscale("log", base=2)
            ax.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    m = result["machine"]
    fig.suptitle(f"dropout_fast bench, {m['cpu']}, {m['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=64)
    plt.close(fig)
    try:  # a 64-colour palette: a third of the bytes (Pillow comes with matplotlib)
        from PIL import Image

        Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)
    except (ImportError, OSError):
        pass
    return f"wrote {path}"
