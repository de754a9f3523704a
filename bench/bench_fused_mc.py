"""Benchmark of bias_dropout_add and MC dropout: prints a markdown table.

    python bench/bench_fused_mc.py [--threads 1] [--rounds 15] [--quick]

1. ``residual + dropout(x + bias)`` on float32 (8, 512, 768), p = 0.1: the fused
   kernel (allocating and out=), the unfused dropout_fast composition, the Numba
   backend, numpy and torch (``residual + F.dropout(x + bias, p)``); backward
   (dx and dbias) next to torch's equivalent with a stored mask.
2. MC dropout, T = 100 samples of a 3-layer MLP (784-512-512-10, dropout 0.2
   after each hidden layer) on 256 rows and on 8 rows: samples per second
   unbatched and with batch = 4, 10, 25, 100 (x tiled, bigger matmuls).

Every implementation runs on `--threads` threads (BLAS, OpenMP, Numba, torch).
Rounds are A/B interleaved (each round runs every implementation once, so drift
on a shared machine hits them alike); the table gives medians.
"""
import argparse
import os
import sys

ARGS = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ARGS.add_argument("--threads", type=int, default=1)
ARGS.add_argument("--rounds", type=int, default=15)
ARGS.add_argument("--quick", action="store_true", help="fewer rounds, smaller MC run")
OPTS = ARGS.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = str(OPTS.threads)  # before numpy, numba and torch start their pools

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import dropout_fast as df  # noqa: E402
from dropout_fast import _fused, mc, reference  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None


def interleaved(cases: dict, rounds: int) -> dict:
    """Median seconds per call of each case, rounds A/B interleaved after one warm-up."""
    for fn in cases.values():
        fn()
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def bias_dropout_add_table(rounds: int):
    shape, p = (8, 512, 768), 0.1
    g = np.random.default_rng(0)
    x = g.standard_normal(shape, dtype=np.float32)
    b = g.standard_normal(shape[-1], dtype=np.float32)
    r = g.standard_normal(shape, dtype=np.float32)
    dy = g.standard_normal(shape, dtype=np.float32)
    out = np.empty_like(x)
    gen = df.Generator(1)
    np_rng = np.random.default_rng(1)
    scale = np.float32(1 / (1 - p))
    fwd = {
        "dropout_fast bias_dropout_add": lambda: _fused.bias_dropout_add(x, b, r, p, rng=gen),
        "dropout_fast bias_dropout_add (out=)":
            lambda: _fused.bias_dropout_add(x, b, r, p, rng=gen, out=out),
        "dropout_fast unfused: dropout(x + b) + r": lambda: df.dropout(x + b, p, rng=gen) + r,
        "numba reference": lambda: _fused.bias_dropout_add_impl(reference, x, b, r, p, True, gen,
                                                                None),
        "numpy": lambda: r + np.where(np_rng.random(shape, np.float32) >= p, (x + b) * scale, 0),
        "numpy add x + r (bandwidth yardstick)": lambda: np.add(x, r, out=out),
    }
    y, m = _fused.bias_dropout_add_forward(x, b, r, p, rng=gen)
    _, mr = _fused.bias_dropout_add_forward(x, b, r, p, rng=gen, mask="recompute")
    bwd = {
        "dropout_fast backward (bits)": lambda: _fused.bias_dropout_add_backward(dy, m),
        "dropout_fast backward (recompute)": lambda: _fused.bias_dropout_add_backward(dy, mr),
        "numba reference backward (bits)":
            lambda: _fused.bias_dropout_add_backward_impl(reference, dy, m, None),
    }
    if torch is not None:
        xt, bt, rt, dyt = (torch.from_numpy(a) for a in (x, b, r, dy))
        keep_t = torch.from_numpy(m.to_bool())
        fwd["torch: residual + F.dropout(x + bias, p)"] = lambda: rt + F.dropout(xt + bt, p)

        def torch_bwd():
            dx = dyt * keep_t * (1 / (1 - p))
            return dx, dx.sum(dim=(0, 1)), dyt
        bwd["torch: dy * mask * scale, sum over rows"] = torch_bwd
    rows = []
    for title, cases in (("forward", fwd), ("backward", bwd)):
        med = interleaved(cases, rounds)
        first = next(iter(med.values()))
        torch_t = next((v for k, v in med.items() if k.startswith("torch")), None)
        for name, t in med.items():
            rows.append((title, name, t, t / first, torch_t / t if torch_t else float("nan")))
    return rows


def mlp(seed=0):
    g = np.random.default_rng(seed)
    sizes = [784, 512, 512, 10]
    Ws = [(g.standard_normal((a, b_)) / np.sqrt(a)).astype(np.float32)
          for a, b_ in zip(sizes, sizes[1:])]
    bs = [np.zeros(b_, np.float32) for b_ in sizes[1:]]

    def forward(x, rng):
        h = np.maximum(x @ Ws[0] + bs[0], 0)
        h = df.dropout(h, 0.2, rng=rng, out=h)
        h = np.maximum(h @ Ws[1] + bs[1], 0)
        h = df.dropout(h, 0.2, rng=rng, out=h)
        return h @ Ws[2] + bs[2]
    return forward


def mc_table(T: int, rounds: int, nrows: int):
    forward = mlp()
    x = np.random.default_rng(1).standard_normal((nrows, 784)).astype(np.float32)
    rows = []
    cases = {f"batch={k}" if k else "unbatched":
             (lambda k=k: mc.mc_predict(forward, x, T, rng=7, batch=k, output="logits"))
             for k in (None, 4, 10, 25, 100)}
    med = interleaved(cases, rounds)
    base = med["unbatched"]
    for name, t in med.items():
        rows.append((nrows, name, t, T / t, base / t))
    return rows


def main():
    df.set_num_threads(OPTS.threads)
    if torch is not None:
        torch.set_num_threads(OPTS.threads)
    import numba
    numba.set_num_threads(min(OPTS.threads, numba.config.NUMBA_NUM_THREADS))
    rounds = 5 if OPTS.quick else OPTS.rounds
    info = df.info()
    print(f"dropout_fast {info['version']} ({info['isa']}, openmp {info['openmp']}), "
          f"numpy {np.__version__}, torch {torch.__version__ if torch else 'absent'}, "
          f"threads {OPTS.threads}, {rounds} rounds, medians\n")
    print("bias_dropout_add, float32 (8, 512, 768), p = 0.1\n")
    print("| op | impl | time | x first row | torch time / this |")
    print("|---|---|---:|---:|---:|")
    for op, name, t, rel, vs_torch in bias_dropout_add_table(rounds):
        print(f"| {op} | {name} | {fmt(t)} | {rel:.2f} | {vs_torch:.1f} |")
    T = 20 if OPTS.quick else 100
    print(f"\nMC dropout, T = {T}, 3-layer MLP 784-512-512-10 (dropout 0.2 x 2), "
          "mc_predict(output='logits')\n")
    print("| rows | mode | time | samples/s | x unbatched speed |")
    print("|---:|---|---:|---:|---:|")
    for nrows in (256, 8):
        for n, name, t, sps, up in mc_table(T, max(3, rounds // 3), nrows):
            print(f"| {n} | {name} | {fmt(t)} | {sps:.0f} | {up:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
