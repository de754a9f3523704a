"""Benchmark of dropout_fast.torch against torch's own dropout: prints markdown tables.

    python bench/bench_torch.py [--threads 1] [--rounds 31] [--quick] [--alloc]

1. A training step of the Dropout module alone, forward and backward, with all
   Python and autograd overhead: ``y = m(x); y.backward(dy); x.grad = None`` for
   ``dropout_fast.torch.Dropout(0.5)`` (mask "bits" and "recompute") and
   ``torch.nn.Dropout(0.5)``, float32, shapes (256, 4096) and (32, 128), on the
   same thread count (``torch.set_num_threads`` and ``dropout_fast.set_num_threads``).
2. Memory saved for backward by one dropout layer on (256, 4096), counted with
   ``torch.autograd.graph.saved_tensors_hooks`` (bytes of every saved tensor).
3. With ``--alloc``: the cost of a fresh output of n float32 elements written
   once, ``torch.empty`` against ``numpy.empty`` wrapped by ``torch.from_numpy``
   (the page faults of the first write dominate; numpy asks for huge pages).

Rounds are A/B interleaved (each round runs every implementation once, so drift
on a shared machine hits them alike); the tables give medians.
"""
import argparse
import os

ARGS = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ARGS.add_argument("--threads", type=int, default=1)
ARGS.add_argument("--rounds", type=int, default=31)
ARGS.add_argument("--quick", action="store_true", help="fewer rounds")
ARGS.add_argument("--alloc", action="store_true", help="also time output allocation")
ARGS.add_argument("--timer", choices=("wall", "cpu"), default="wall",
                  help="wall clock, or this process's CPU time (steadier on a busy machine; "
                       "with several threads it sums them)")
OPTS = ARGS.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[var] = str(OPTS.threads)

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import dropout_fast as df  # noqa: E402
import dropout_fast.torch as dt  # noqa: E402

torch.set_num_threads(OPTS.threads)
df.set_num_threads(OPTS.threads)
ROUNDS = 7 if OPTS.quick else OPTS.rounds
CLOCK = time.perf_counter if OPTS.timer == "wall" else time.process_time


def _fmt(sec: float) -> str:
    return f"{sec * 1e6:.1f} us" if sec < 1e-3 else f"{sec * 1e3:.2f} ms"


def interleaved(cases: dict, reps: int) -> dict:
    """Median seconds per call of each case, rounds A/B interleaved."""
    times = {k: [] for k in cases}
    for fn in cases.values():  # warm up (first-call costs, allocator pools)
        for _ in range(3):
            fn()
    for _ in range(ROUNDS):
        for name, fn in cases.items():
            t0 = CLOCK()
            for _ in range(reps):
                fn()
            times[name].append((CLOCK() - t0) / reps)
    return {k: statistics.median(v) for k, v in times.items()}


def step_cases(shape):
    x = torch.randn(shape, requires_grad=True)
    dy = torch.randn(shape)
    mods = {"torch.nn.Dropout": torch.nn.Dropout(0.5),
            "dropout_fast.torch.Dropout (bits)": dt.Dropout(0.5),
            "dropout_fast.torch.Dropout (recompute)": dt.Dropout(0.5, mask="recompute")}

    def make(m):
        def step():
            y = m(x)
            y.backward(dy)
            x.grad = None
        return step
    return {k: make(m) for k, m in mods.items()}


def saved_bytes(module, shape) -> int:
    x = torch.randn(shape, requires_grad=True)
    total = []

    def pack(t):
        if t is not x:  # the input itself is the caller's, not the layer's
            total.append(t.numel() * t.element_size())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(total)


def main() -> None:
    print(f"torch {torch.__version__}, dropout_fast {df.__version__} ({df.info()['isa']}), "
          f"{OPTS.threads} thread(s), {ROUNDS} rounds, medians of {OPTS.timer} time\n")
    print("| shape | impl | fwd+bwd step | x torch time |")
    print("|---|---|---:|---:|")
    for shape, reps in (((256, 4096), 2 if OPTS.quick else 5), ((32, 128), 200)):
        res = interleaved(step_cases(shape), reps)
        base = res["torch.nn.Dropout"]
        for name, t in res.items():
            print(f"| {shape} | {name} | {_fmt(t)} | {t / base:.3f} |")
    print("\n| layer on (256, 4096) float32 | bytes saved for backward | torch / this |")
    print("|---|---:|---:|")
    tb = saved_bytes(torch.nn.Dropout(0.5), (256, 4096))
    for name, m in (("torch.nn.Dropout", torch.nn.Dropout(0.5)),
                    ("dropout_fast.torch.Dropout (bits)", dt.Dropout(0.5)),
                    ("dropout_fast.torch.Dropout (recompute)", dt.Dropout(0.5, mask="recompute"))):
        b = saved_bytes(m, (256, 4096))
        print(f"| {name} | {b} | {tb / b if b else float('inf'):.1f} |")
    if OPTS.alloc:
        alloc_table()


def alloc_table() -> None:
    print("\n| float32 elements | MiB | torch.empty + write | numpy.empty + from_numpy + write |")
    print("|---:|---:|---:|---:|")
    for log2 in (16, 18, 20, 21, 22, 23, 24):
        n = 1 << log2
        src = np.ones(n, np.float32)

        def with_torch():
            t = torch.empty(n)
            np.copyto(t.numpy(), src)

        def with_numpy():
            t = torch.from_numpy(np.empty(n, np.float32))
            np.copyto(t.numpy(), src)
        res = interleaved({"torch": with_torch, "numpy": with_numpy}, max(1, (1 << 22) // n))
        print(f"| 2**{log2} | {n * 4 / 2**20:g} | {_fmt(res['torch'])} | {_fmt(res['numpy'])} |")


if __name__ == "__main__":
    main()
