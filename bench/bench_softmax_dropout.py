"""Attention dropout: dropout_fast's fused softmax + dropout against PyTorch.

    python bench/bench_softmax_dropout.py [--shape 8,12,256,256] [--p 0.1]
        [--dtype float32] [--threads 1] [--rounds 21] [--isa avx512] [--causal]

Forward: ``softmax_dropout`` (allocating and with ``out=``) and
``softmax_dropout_forward`` in both modes, against ``F.dropout(torch.softmax(s,
-1), p)``. Backward: ``softmax_dropout_backward`` from stored P, by
recomputation and by recomputation with stored bits, against torch autograd of
the same graph built once (``torch.autograd.grad(y, s, dy, retain_graph=True)``,
the reference of the ratio column, and ``y.backward(dy, retain_graph=True)``
into a fresh ``.grad``) and against torch's kernels called directly
(``aten.native_dropout_backward`` then ``_softmax_backward_data``). Every case runs
once per round, in turn (A/B interleaved, so drift on a shared machine hits all
alike); the table reports medians, in ns per element and relative to torch.
"""
import argparse
import statistics
import sys
import time

import numpy as np


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="8,12,256,256")
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--isa", default=None, help="force scalar, avx2 or avx512")
    ap.add_argument("--causal", action="store_true")
    return ap.parse_args(argv)


def backward_into_fresh_grad(leaf, y, dy):
    """y.backward on a graph built once, into a fresh .grad (not accumulated)."""
    leaf.grad = None
    y.backward(dy, retain_graph=True)


def cases(args):
    import torch
    import torch.nn.functional as F

    import dropout_fast as df
    from dropout_fast import _config
    from dropout_fast._softmax import (
        softmax_dropout,
        softmax_dropout_backward,
        softmax_dropout_forward,
    )

    _config.nthreads = args.threads
    torch.set_num_threads(args.threads)
    shape = tuple(int(d) for d in args.shape.split(","))
    dtype, p, causal = np.dtype(args.dtype), args.p, args.causal
    rng = np.random.default_rng(0)
    s = (rng.standard_normal(shape) * 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    out = np.empty_like(s)
    gen = df.Generator(1)
    _, m_store = softmax_dropout_forward(s, p, rng=gen, is_causal=causal)
    _, m_rec = softmax_dropout_forward(s, p, rng=gen, is_causal=causal, mode="recompute")
    _, m_bits = softmax_dropout_forward(s, p, rng=gen, is_causal=causal, mode="recompute",
                                        bits=True)

    ts, tdy = torch.from_numpy(s), torch.from_numpy(dy)
    lq, lk = shape[-2], shape[-1]
    tmask = torch.ones(lq, lk, dtype=torch.bool).tril() if causal else None

    def t_softmax(x):
        return torch.softmax(x.masked_fill(~tmask, -np.inf) if causal else x, -1)

    tsg = ts.clone().requires_grad_(True)
    ty = F.dropout(t_softmax(tsg), p)
    tp = t_softmax(ts)
    _, tkeep = torch.native_dropout(tp, p, True)
    tscale = 1.0 / (1.0 - p)
    aten = torch.ops.aten
    return [
        ("forward", "dropout_fast", lambda: softmax_dropout(s, p, rng=gen, is_causal=causal)),
        ("forward", "dropout_fast (out=)",
         lambda: softmax_dropout(s, p, rng=gen, is_causal=causal, out=out)),
        ("forward", "dropout_fast forward, store P",
         lambda: softmax_dropout_forward(s, p, rng=gen, is_causal=causal)),
        ("forward", "dropout_fast forward, recompute",
         lambda: softmax_dropout_forward(s, p, rng=gen, is_causal=causal, mode="recompute")),
        ("forward", "torch", lambda: F.dropout(t_softmax(ts), p)),
        ("backward", "dropout_fast (store P)", lambda: softmax_dropout_backward(dy, m_store)),
        ("backward", "dropout_fast (store P, out=)",
         lambda: softmax_dropout_backward(dy, m_store, out=out)),
        ("backward", "dropout_fast (recompute)",
         lambda: softmax_dropout_backward(dy, m_rec, scores=s)),
        ("backward", "dropout_fast (recompute, bits)",
         lambda: softmax_dropout_backward(dy, m_bits, scores=s)),
        ("backward", "torch",
         lambda: torch.autograd.grad(ty, tsg, tdy, retain_graph=True)),
        ("backward", "torch (y.backward)", lambda: backward_into_fresh_grad(tsg, ty, tdy)),
        ("backward", "torch kernels (no autograd)",
         lambda: torch._softmax_backward_data(aten.native_dropout_backward(tdy, tkeep, tscale),
                                              tp, -1, tp.dtype)),
    ], s.size


def main(argv=None):
    args = parse(argv if argv is not None else sys.argv[1:])
    from dropout_fast import _config
    if args.isa:
        ctx = _config.force_isa(args.isa)
        ctx.__enter__()
    table, n = cases(args)
    for _, _, fn in table:  # warm up: first-touch page faults, lazy initialisation
        fn()
    times = [[] for _ in table]
    for _ in range(args.rounds):
        for k, (_, _, fn) in enumerate(table):
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    med = [statistics.median(t) for t in times]
    torch_of = {op: med[k] for k, (op, impl, _) in enumerate(table) if impl == "torch"}
    isa = args.isa or _config.kernels.isa_default()
    print(f"shape {args.shape}, {args.dtype}, p = {args.p}, causal = {args.causal}, "
          f"{args.threads} thread(s), ISA {isa}, median of {args.rounds} interleaved rounds\n")
    print("| op | impl | ns/elem | time | x torch time |")
    print("|---|---|---:|---:|---:|")
    for k, (op, impl, _) in enumerate(table):
        print(f"| {op} | {impl} | {med[k] / n * 1e9:.3f} | {med[k] * 1e3:.2f} ms | "
              f"{med[k] / torch_of[op]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
