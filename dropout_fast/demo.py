"""``python -m dropout_fast demo``: a real CPU training run, torch's dropout
against dropout_fast's, on scikit-learn's digits (shipped with the package,
no download).

An MLP (Srivastava et al. 2014: dropout 0.2 on the inputs, 0.5 on the hidden
layers) and a small CNN with spatial dropout are each trained twice in
lockstep from the same weights, batches and seeds (see `_demo_train`): once
with torch's modules, once patched with `dropout_fast.torch.patch_model`. The
table reports the median time per training step, the bytes the dropout layers
keep for backward (measured with saved-tensor hooks), the test accuracy of
both runs and the speedup; then Monte Carlo dropout on the test set gives the
accuracy of the most confident 50/80/100% of predictions and a PNG plot of
accuracy versus retained fraction. Last, `dropout_fast.advise.RateTuner`
chooses a dropout rate on the same data from the train/validation gap, shown
per round in the output and per epoch in the plot's last panel.

Needs the ``demo`` extra: ``pip install -e ".[demo]"``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import List, Optional

__all__ = ["main", "run", "parse_args"]

QUICK = {"epochs": 3, "hidden": 256, "width": 16, "samples": 10}
FULL = {"epochs": 20, "hidden": 1024, "width": 32, "samples": 100}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m dropout_fast demo",
        description="Train an MLP and a CNN on scikit-learn's digits twice, with torch's "
                    "dropout and with dropout_fast (same seeds and steps), compare step "
                    "time, memory saved for backward and accuracy, then MC dropout.")
    ap.add_argument("--quick", action="store_true",
                    help="CI-sized run (smaller networks, %d epochs, T=%d): a few seconds"
                         % (QUICK["epochs"], QUICK["samples"]))
    ap.add_argument("--epochs", type=int, default=None,
                    help="training epochs per network (default %d, or %d with --quick)"
                         % (FULL["epochs"], QUICK["epochs"]))
    ap.add_argument("--samples", type=int, default=None,
                    help="MC dropout samples T (default %d, or %d with --quick)"
                         % (FULL["samples"], QUICK["samples"]))
    ap.add_argument("--batch-size", type=int, default=64, help="mini-batch size (default 64)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for torch and dropout_fast (default: as configured)")
    ap.add_argument("--timer", choices=("wall", "cpu"), default="wall",
                    help="clock of the step timings: wall (default) or this process's CPU "
                         "time (steadier on a busy machine; use with --threads 1)")
    ap.add_argument("--plot", default="dropout_fast_demo.png",
                    help="where to write the PNG (default ./dropout_fast_demo.png)")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--no-tune", action="store_true",
                    help="skip the dropout-rate tuning section (dropout_fast.advise.RateTuner)")
    args = ap.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for name in ("epochs", "samples"):
        if getattr(args, name) is None:
            setattr(args, name, preset[name])
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")
    if args.batch_size < 1:
        ap.error("--batch-size must be >= 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    args.hidden, args.width = preset["hidden"], preset["width"]
    return args


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _header(args) -> str:
    import torch

    import dropout_fast

    info = dropout_fast.info()
    return (f"dropout_fast {dropout_fast.__version__} ({info.get('isa', '?')}, "
            f"{dropout_fast.get_num_threads()} threads) vs torch {torch.__version__} "
            f"({torch.get_num_threads()} threads); digits from scikit-learn; "
            f"{args.epochs} epochs, batch {args.batch_size}, seed {args.seed}, "
            f"{args.timer} clock"
            f"{', --quick' if args.quick else ''}")


def run(argv: Optional[List[str]] = None, out=None) -> dict:
    """Run the demo, print its report to `out` (stdout) and return its figures.

    Returns
    -------
    dict
        ``{"training": {net: {run: {...}}}, "mc": {net: {run: {...}}},
        "tuning": [TuningStep, ...], "plot": path}``.
    """
    import torch
    from tqdm import tqdm

    import dropout_fast
    from dropout_fast import _demo_mc as dmc
    from dropout_fast import _demo_train as dt

    out = out or sys.stdout
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        dropout_fast.set_num_threads(args.threads)
    dt.use_clock(args.timer)
    print(_header(args), file=out)
    data = dt.load(args.seed)
    nets = {
        "MLP": (lambda: dt.mlp(args.hidden), data.x_train, data.x_test),
        "CNN": (lambda: dt.cnn(args.width), data.images(data.x_train),
                data.images(data.x_test)),
    }
    per_epoch = dt.steps_per_epoch(data.x_train.shape[0], args.batch_size)
    if per_epoch < 1:
        raise SystemExit(f"--batch-size {args.batch_size} is larger than the training set")
    training, mc, models = {}, {}, {}
    for net, (make, xtr, xte) in nets.items():
        bar = tqdm(total=per_epoch * args.epochs, desc=f"training {net} (torch | dropout_fast)",
                   unit="step", disable=args.no_progress, file=sys.stderr, leave=False)

        def progress(losses, bar=bar):
            bar.update(1)
            bar.set_postfix(loss=" | ".join(f"{v:.3f}" for v in losses.values()),
                            refresh=False)

        runs = dt.train_pair(make, xtr, data.y_train, epochs=args.epochs,
                             batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             progress=progress)
        bar.close()
        xb, yb = xtr[:args.batch_size], data.y_train[:args.batch_size]
        training[net] = {}
        for r in runs:
            saved = dt.saved_by_dropout(r.model, xb, yb)
            training[net][r.name] = {
                "step_ms": 1e3 * r.median_step, "steps": len(r.step_times),
                "saved": {k: saved[k] for k in ("dropout", "total")},
                "dropout_ms": 1e3 * dt.dropout_layer_time(saved["inputs"]),
                "accuracy": dt.accuracy(r.model, xte, data.y_test),
                "final_loss": float(sum(r.losses[-per_epoch:]) / per_epoch)}
        models[net] = {r.name: r.model for r in runs}
        training[net]["replaced"] = len(runs[1].report)
    _training_table(training, data.y_test.shape[0], args, out)

    bar = tqdm(total=2 * len(nets), desc=f"MC dropout (T={args.samples})", unit="model",
               disable=args.no_progress, file=sys.stderr, leave=False)
    for net, (_, _, xte) in nets.items():
        mc[net] = {}
        for name, m in models[net].items():
            mc[net][name] = dmc.mc_evaluate(m, xte, data.y_test, samples=args.samples,
                                            seed=args.seed)
            bar.update(1)
    bar.close()
    _mc_table(mc, args, out)
    steps = [] if args.no_tune else _tune(args, out)
    path = None
    if not args.no_plot:
        from dropout_fast._demo_tune import tuning_panel

        path = dmc.plot(mc, args.plot, samples=args.samples,
                        extra=tuning_panel(steps) if steps else None)
        print(f"\nplot: accuracy vs retained fraction written to {os.path.abspath(path)}",
              file=out)
    return {"training": training, "mc": mc, "tuning": steps, "plot": path}


def _tune(args, out) -> list:
    """RateTuner choosing a dropout rate on digits, a progress bar over its rounds."""
    from tqdm import tqdm

    from dropout_fast._demo_tune import print_tuning, run_tuner

    bar = tqdm(desc="tuning the dropout rate", unit="round", disable=args.no_progress,
               file=sys.stderr, leave=False)

    def progress(step):
        bar.set_postfix(rate=f"{step.rate:.2f}", gap=f"{step.gap:+.3f}",
                        next=f"{step.advice.action} {step.advice.rate:.2f}", refresh=False)
        bar.update(1)

    steps = run_tuner(quick=args.quick, seed=args.seed, progress=progress)
    bar.close()
    print_tuning(steps, out)
    return steps


def _training_table(training: dict, n_test: int, args, out) -> None:
    print(f"\nTraining ({args.epochs} epochs, same seeds, batches and steps; step = forward "
          f"+ backward + Adam update, median over the steps; dropout alone = forward + "
          f"backward of the step's dropout layers by themselves, median of 30)", file=out)
    head = (f"{'network':<8}{'dropout':<14}{'step median':>12}{'dropout alone':>15}"
            f"{'saved by dropout':>18}{'(all layers)':>14}{'test acc':>10}")
    print(head, file=out)
    print("-" * len(head), file=out)
    for net, runs in training.items():
        for name in ("torch", "dropout_fast"):
            r = runs[name]
            print(f"{net:<8}{name:<14}{r['step_ms']:>9.2f} ms{r['dropout_ms']:>12.3f} ms"
                  f"{_size(r['saved']['dropout']):>18}"
                  f"{_size(r['saved']['total']):>14}{100 * r['accuracy']:>9.1f}%", file=out)
        t, f = runs["torch"], runs["dropout_fast"]
        speed = t["step_ms"] / f["step_ms"]
        saved_t, saved_f = t["saved"]["dropout"], f["saved"]["dropout"]
        ratio = f"{saved_t / saved_f:.1f}x less" if saved_f else "n/a"
        p = (t["accuracy"] + f["accuracy"]) / 2
        noise = 2 * math.sqrt(2 * p * (1 - p) / n_test)  # 2 sigma of a difference
        diff = 100 * (f["accuracy"] - t["accuracy"])
        verdict = "agree within noise" if abs(diff) <= 100 * noise + 1e-9 else "DIFFER"
        runs["speedup"], runs["memory_ratio"] = speed, (saved_t / saved_f if saved_f else None)
        runs["dropout_speedup"] = t["dropout_ms"] / f["dropout_ms"]
        # Amdahl: only the dropout share of torch's step gets faster.
        share = min(t["dropout_ms"] / t["step_ms"], 1.0)
        bound = 1.0 / (1.0 - share * (1.0 - 1.0 / runs["dropout_speedup"]))
        print(f"{'':<8}speedup {speed:.2f}x per step; dropout layers alone "
              f"{runs['dropout_speedup']:.2f}x and {100 * share:.0f}% of torch's step, which "
              f"caps the step's speedup at {bound:.2f}x", file=out)
        print(f"{'':<8}dropout memory for backward {ratio} "
              f"({_size(saved_t)} -> {_size(saved_f)} per step of {args.batch_size}); "
              f"accuracy {diff:+.1f} pts ({verdict}: 2 sigma = {100 * noise:.1f} pts, "
              f"n = {n_test}); patch_model replaced {runs['replaced']} modules", file=out)


def _mc_table(mc: dict, args, out) -> None:
    from dropout_fast._demo_mc import FRACTIONS

    print(f"\nMC dropout on the test set (T={args.samples} samples, mc_predict, only dropout "
          f"layers on): accuracy of the most confident predictions", file=out)
    head = (f"{'network':<8}{'dropout':<14}"
            + "".join(f"{f'{int(100 * f)}%':>8}" for f in FRACTIONS)
            + f"{'mean MI':>10}{'time (' + args.timer + ')':>13}")
    print(head, file=out)
    print("-" * len(head), file=out)
    for net, runs in mc.items():
        for name, r in runs.items():
            print(f"{net:<8}{name:<14}" + "".join(f"{100 * a:>7.1f}%" for a in r["table"])
                  + f"{r['mutual_information']:>10.4f}{r['seconds']:>11.2f} s", file=out)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``python -m dropout_fast demo``."""
    try:
        import sklearn  # noqa: F401
        import torch  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as e:
        print(f"python -m dropout_fast demo needs the demo extra ({e.name} is missing): "
              f"pip install -e \".[demo]\"", file=sys.stderr)
        return 2
    run(argv)
    return 0
