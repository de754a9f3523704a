"""Per-call cost of the numpy API on small arrays, and an A/B of two source trees.

    python bench/bench_call_overhead.py                       # this tree, 2**10, 2**14, 2**16
    python bench/bench_call_overhead.py --ab OLD_TREE NEW_TREE --rounds 5

Each call is timed with timeit: the best of 25 samples of about 2 ms each (the
intrinsic cost, least disturbed by other jobs on a shared machine), one thread.
--ab runs this script under each tree (PYTHONPATH=tree) in turn, A B A B ...,
and prints the median over rounds of each tree's figure and the ratio, with
numpy's multiply by a stored float mask (the backward a numpy user writes) as a
yardstick. Both trees must be built in place (python setup.py build_ext --inplace).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import timeit


def measure(sizes):
    from dropout_fast import _config

    _config.nthreads = 1
    res = {}
    for lg in sizes:
        res.update(_measure_size(lg))
    return res


def _measure_size(lg):
    import numpy as np

    import dropout_fast as df

    res = {}
    n = 1 << lg
    rs = np.random.default_rng(0)
    x = rs.standard_normal(n).astype(np.float32)
    dy = rs.standard_normal(n).astype(np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    x4 = x.reshape((n >> 14, 16, 32, 32) if n >= 1 << 14 else (1, n >> 8, 16, 16))
    y4, dy4, dx4 = np.empty_like(x4), dy.reshape(x4.shape), np.empty_like(x4)
    g = df.Generator(0)
    _, m = df.dropout_forward(x, 0.5, rng=g)
    _, ms = df.forward("spatial_dropout", x4, 0.5, rng=g)
    _, mp = df.forward("drop_path", x4, 0.5, rng=g)
    mf = np.where(m.to_bool(), np.float32(2), np.float32(0))
    calls = {
        "dropout(x)": lambda: df.dropout(x, 0.5),
        "dropout_forward(x, rng=g, out=y)": lambda: df.dropout_forward(x, 0.5, rng=g, out=y),
        "dropout_forward(x)": lambda: df.dropout_forward(x, 0.5),
        "dropout_backward(dy, m, out=dx)": lambda: df.dropout_backward(dy, m, out=dx),
        "dropout_backward(dy, m)": lambda: df.dropout_backward(dy, m),
        "numpy multiply(dy, mask, out=dx)": lambda: np.multiply(dy, mf, out=dx),
        "spatial_dropout forward, out=": lambda: df.forward("spatial_dropout", x4, 0.5,
                                                            rng=g, out=y4),
        "spatial_dropout backward, out=": lambda: df.backward(dy4, ms, out=dx4),
        "drop_path forward, out=": lambda: df.forward("drop_path", x4, 0.5, rng=g, out=y4),
        "drop_path backward, out=": lambda: df.backward(dy4, mp, out=dx4),
        "spatial_dropout(x4)": lambda: df.spatial_dropout(x4, 0.5),
    }
    for name, fn in calls.items():
        t = timeit.Timer(fn)
        num, secs = t.autorange()
        num = max(1, int(num * 0.002 / secs))
        res[f"{name} @ 2**{lg}"] = min(t.repeat(25, num)) / num * 1e6
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,14,16", help="log2 element counts")
    ap.add_argument("--ab", nargs=2, metavar=("TREE_A", "TREE_B"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if not args.ab:
        res = measure(sizes)
        if args.json:
            print(json.dumps(res))
        else:
            for k, v in res.items():
                print(f"{k:48s} {v:9.2f} us")
        return 0
    runs = {tree: [] for tree in args.ab}
    for _ in range(args.rounds):
        for tree in args.ab:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--json",
                                  "--sizes", args.sizes], env=env, cwd="/", check=True,
                                 capture_output=True, text=True).stdout
            runs[tree].append(json.loads(out))
    a, b = args.ab
    print(f"A = {a}, B = {b}: median over {args.rounds} interleaved rounds of the best of "
          f"25 samples, us per call")
    print(f"{'call':48s} {'A':>9s} {'B':>9s} {'B/A':>6s}")
    for k in runs[a][0]:
        ma = statistics.median(r[k] for r in runs[a])
        mb = statistics.median(r[k] for r in runs[b])
        print(f"{k:48s} {ma:9.2f} {mb:9.2f} {mb / ma:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
